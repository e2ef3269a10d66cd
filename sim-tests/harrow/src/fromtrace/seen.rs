//! What a nursery's parent did with each child and heard from it, in a form a real trace and
//! the pure world's log share: the commands it gave through its operating system, and the
//! messages, end-of-file and exit it was told of. Frames are named by their message's kind
//! (and a reply's or result's outcome), not their bytes: the simulator's payloads are not
//! the real program's.

use std::collections::BTreeMap;
use std::fmt;

use harrow_model::trace::{Record, TracedEvent};
use harrow_model::wire::{FrameDecoder, Message};
use harrow_model::{ChildId, ExitStatus, SpawnMethod};

/// One thing between the parent and one child.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Seen {
    /// The parent launched it.
    Launch(SpawnMethod),
    /// The parent sent it a message.
    Send(String),
    /// The parent closed its end of the channel.
    Close,
    /// The parent SIGKILLed it.
    Kill,
    /// The parent abandoned its thread.
    Abandon,
    /// The parent reaped it.
    Reap(Result<ExitStatus, String>),
    /// The parent forgot it.
    Retire,
    /// A message from it arrived.
    Got(String),
    /// Its channel reached end-of-file.
    Eof,
    /// Its exit was reported.
    Exited,
}

impl Seen {
    /// Whether this is a command the parent gave (not something it was told).
    pub fn is_command(&self) -> bool {
        !matches!(self, Seen::Got(_) | Seen::Eof | Seen::Exited)
    }
}

impl fmt::Display for Seen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Seen::Launch(m) => write!(f, "launch by {m}"),
            Seen::Send(m) => write!(f, "send {m}"),
            Seen::Close => f.write_str("close"),
            Seen::Kill => f.write_str("SIGKILL"),
            Seen::Abandon => f.write_str("abandon"),
            Seen::Reap(Ok(s)) => write!(f, "reap: {s}"),
            Seen::Reap(Err(e)) => write!(f, "reap failed: {e}"),
            Seen::Retire => f.write_str("retire"),
            Seen::Got(m) => write!(f, "got {m}"),
            Seen::Eof => f.write_str("got end-of-file"),
            Seen::Exited => f.write_str("saw it exit"),
        }
    }
}

/// A message as [`Seen`] names it: its kind, and for a reply or a result whether it is an
/// answer or which kind of error.
pub(super) fn describe(m: &Message) -> String {
    let outcome = |r: &Result<Vec<u8>, harrow_model::wire::RemoteError>| match r {
        Ok(_) => "ok".to_string(),
        Err(e) => format!("{:?}", e.kind).to_lowercase(),
    };
    match m {
        Message::Reply { result, .. } => format!("Reply {}", outcome(result)),
        Message::Finished { result } => format!("Finished {}", outcome(result)),
        other => other.name().into(),
    }
}

/// Reads records in order: what each says happened between the parent and a child, and
/// every message that arrived, whole. `decoders` holds each channel's partial frame across
/// calls. A channel's bytes that are no frame are an error naming the child.
#[derive(Debug)]
pub(super) struct Reader {
    max_frame: u32,
    decoders: BTreeMap<ChildId, FrameDecoder>,
    /// What was seen, in order.
    pub(super) seen: Vec<(ChildId, Seen)>,
    /// Every message that arrived, by child, in order.
    pub(super) got: BTreeMap<ChildId, Vec<Message>>,
}

impl Reader {
    /// A reader of channels whose frames are at most `max_frame` bytes.
    pub(super) fn new(max_frame: u32) -> Reader {
        Reader {
            max_frame,
            decoders: BTreeMap::new(),
            seen: Vec::new(),
            got: BTreeMap::new(),
        }
    }

    /// Reads one record.
    pub(super) fn read(&mut self, rec: &Record) -> Result<(), String> {
        let mut note = |c: ChildId, s: Seen| self.seen.push((c, s));
        match rec {
            Record::Launch { child, method, .. } => note(*child, Seen::Launch(*method)),
            Record::Send { child, frame } => {
                let m = one_message(&frame.0, self.max_frame).map_err(|e| {
                    format!("the parent sent {child} a frame that is no message: {e}")
                })?;
                note(*child, Seen::Send(describe(&m)));
            }
            Record::Close { child } => note(*child, Seen::Close),
            Record::Kill { child } => note(*child, Seen::Kill),
            Record::Abandon { child } => note(*child, Seen::Abandon),
            Record::Reap { child, result } => note(*child, Seen::Reap(result.clone())),
            Record::Retire { child } => note(*child, Seen::Retire),
            Record::Wait { events, .. } => {
                for ev in events {
                    self.event(ev)?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn event(&mut self, ev: &TracedEvent) -> Result<(), String> {
        match ev {
            TracedEvent::Bytes(child, bytes) => {
                let d = self
                    .decoders
                    .entry(*child)
                    .or_insert_with(|| FrameDecoder::new(self.max_frame));
                let bad = |e| format!("{child} wrote bytes that are no frame ({e:?})");
                d.push(&bytes.0).map_err(bad)?;
                while let Some(m) = d.next_message().map_err(bad)? {
                    self.seen.push((*child, Seen::Got(describe(&m))));
                    self.got.entry(*child).or_default().push(m);
                }
            }
            TracedEvent::Eof(child) => self.seen.push((*child, Seen::Eof)),
            TracedEvent::Exited(child) => self.seen.push((*child, Seen::Exited)),
            TracedEvent::Interrupt | TracedEvent::Deadline => {}
        }
        Ok(())
    }
}

/// The one message a whole frame holds.
fn one_message(frame: &[u8], max_frame: u32) -> Result<Message, String> {
    let mut d = FrameDecoder::new(max_frame);
    d.push(frame).map_err(|e| format!("{e:?}"))?;
    d.next_message()
        .map_err(|e| format!("{e:?}"))?
        .ok_or_else(|| "a cut frame".to_string())
}
