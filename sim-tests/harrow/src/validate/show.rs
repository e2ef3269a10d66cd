//! Records in a line each, for failure messages and numbered traces: frames as the
//! messages they hold, long text cut short.

use harrow_model::time::Timestamp;
use harrow_model::trace::{Record, TracedChildEvent, TracedEvent};
use harrow_model::wire::FrameDecoder;

/// The longest a shown frame or payload gets before it is cut.
const MAX_SHOWN: usize = 120;

/// Cuts `s` to [`MAX_SHOWN`] characters.
pub(super) fn cut(s: String) -> String {
    if s.chars().count() <= MAX_SHOWN {
        return s;
    }
    s.chars().take(MAX_SHOWN).collect::<String>() + "…"
}

/// The messages a frame (or a run of received bytes) holds.
pub(super) fn frame(bytes: &[u8], max_frame: u32) -> String {
    let mut dec = FrameDecoder::new(max_frame);
    let mut shown = Vec::new();
    if dec.push(bytes).is_ok() {
        while let Ok(Some(m)) = dec.next_message() {
            shown.push(format!("{m:?}"));
        }
    }
    if shown.is_empty() {
        shown.push(format!("{} bytes", bytes.len()));
    } else if dec.buffered() > 0 {
        shown.push(format!("and {} bytes of a frame", dec.buffered()));
    }
    cut(shown.join(", "))
}

/// A timestamp as seconds.
pub(super) fn time(t: Timestamp) -> String {
    format!("{:.6}s", t.as_nanos() as f64 / 1e9)
}

fn deadline(d: Option<Timestamp>) -> String {
    d.map_or_else(|| "no deadline".into(), |d| format!("until {}", time(d)))
}

/// One event as a parent's trace holds it.
pub(super) fn event(ev: &TracedEvent, max_frame: u32) -> String {
    match ev {
        TracedEvent::Bytes(c, b) => format!("bytes from {c} [{}]", frame(&b.0, max_frame)),
        TracedEvent::Eof(c) => format!("end-of-file from {c}"),
        TracedEvent::Exited(c) => format!("{c} exited"),
        TracedEvent::Interrupt => "SIGINT".into(),
        TracedEvent::Deadline => "deadline".into(),
    }
}

fn child_event(ev: &TracedChildEvent, max_frame: u32) -> String {
    match ev {
        TracedChildEvent::Bytes(b) => format!("bytes [{}]", frame(&b.0, max_frame)),
        TracedChildEvent::Eof => "end-of-file".into(),
        TracedChildEvent::Killed => "killed".into(),
    }
}

/// One record.
pub(super) fn record(rec: &Record, max_frame: u32) -> String {
    let events = |evs: &mut dyn Iterator<Item = String>| evs.collect::<Vec<_>>().join("; ");
    match rec {
        Record::Open { pid, .. } => format!("nursery opens in process {pid}"),
        Record::Spawn { spec } => format!(
            "user: spawn `{}` ({}, {:?}, {:?})",
            spec.name, spec.actor, spec.method, spec.role
        ),
        Record::Request {
            child,
            payload,
            deadline: d,
        } => format!(
            "user: request to {child}, {} bytes, {}",
            payload.0.len(),
            deadline(*d)
        ),
        Record::AbandonRequest { child, id } => format!("user: abandon {id} to {child}"),
        Record::Cancel { child } => format!("user: cancel {child}"),
        Record::HardStop { child } => format!("user: hard stop {child}"),
        Record::BeginTeardown { cause } => format!("user: begin teardown ({cause:?})"),
        Record::ClaimReply { child, id } => format!("user: take the end of {id} to {child}"),
        Record::ClaimResult { child } => format!("user: take {child}'s result"),
        Record::ClaimErrors => "user: take the errors".into(),
        Record::Event { event } => cut(format!("event: {event:?}")),
        Record::Now { now } => format!("clock: {}", time(*now)),
        Record::Situation { situation } => format!("situation: {situation:?}"),
        Record::Launch {
            child,
            actor,
            method,
            result,
            pid,
        } => match result {
            Ok(()) => format!("launch {child} ({actor}, {method:?}): ok, pid {pid:?}"),
            Err(e) => cut(format!("launch {child} ({actor}, {method:?}): failed: {e}")),
        },
        Record::Send { child, frame: f } => format!("send to {child} [{}]", frame(&f.0, max_frame)),
        Record::Close { child } => format!("close {child}'s channel"),
        Record::Kill { child } => format!("SIGKILL {child}"),
        Record::Abandon { child } => format!("abandon {child}"),
        Record::Reap { child, result } => format!("reap {child}: {result:?}"),
        Record::Retire { child } => format!("retire {child}"),
        Record::Wait {
            deadline: d,
            events: evs,
            now,
            failed,
        } => {
            let what = events(&mut evs.iter().map(|e| event(e, max_frame)));
            let failed = failed
                .as_ref()
                .map_or(String::new(), |f| format!(", failed: {f}"));
            format!(
                "wait {} -> [{what}] at {}{failed}",
                deadline(*d),
                time(*now)
            )
        }
        Record::ChildStart { pid, actor, .. } => format!("child process {pid} runs `{actor}`"),
        Record::ChildSend { frame: f } => format!("child sends [{}]", frame(&f.0, max_frame)),
        Record::ChildEvents { events: evs } => format!(
            "child is told [{}]",
            events(&mut evs.iter().map(|e| child_event(e, max_frame)))
        ),
        Record::ChildExit { code } => format!("child exits with code {code}"),
        Record::Truncated { limit } => {
            format!("truncated: the trace reached its limit of {limit} bytes")
        }
    }
}
