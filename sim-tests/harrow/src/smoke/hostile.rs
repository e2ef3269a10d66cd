//! Hostile children: a process child that, asked anything, writes on its channel behind the
//! protocol's back. Each scenario expects a typed error, a parent whose memory stays within
//! [`MEMORY_SLACK`] of where it was, and a teardown within its bound. (Plain garbage is the
//! `malformed-frame` scenario.)

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use harrow_model::RequestId;
use harrow_model::error::ProtocolViolation;
use harrow_model::wire::{DEFAULT_MAX_FRAME, FrameError, Message, RemoteError};
use harrow_real::{Cancel, Daemon};
use harrow_real::{ChildErrorKind, Error, TeardownReport, sys};

use super::{Failure, SpawnMethod, Verdict, open, settled, short_timeouts, with_nursery};

/// How far the parent's resident memory may grow while a hostile child does its worst.
const MEMORY_SLACK: u64 = 8 * 1024 * 1024;

/// Frames in the flood of replies.
const FLOOD: usize = 2000;

/// Bytes in the flood of `Failed` reports: 1 GiB, in frames of the largest size allowed.
const FAILED_FLOOD_BYTES: usize = 1 << 30;

/// What a hostile child does when asked anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Act {
    /// A length header announcing a whole frame, then nothing, ever.
    HugeLengthThenSilence,
    /// Replies to requests that were never sent.
    UnknownReplyFlood,
    /// A second handshake.
    SecondHandshake,
    /// A stream of `Failed` reports of the largest frame size, 1 GiB in all.
    FailedFlood,
    /// Part of a frame, then exit.
    HalfFrameThenExit,
}

impl Act {
    /// Every act, with the actor name that does it.
    pub(super) const ALL: [(Act, &'static str); 5] = [
        (Act::HugeLengthThenSilence, "hostile-huge-length"),
        (Act::UnknownReplyFlood, "hostile-unknown-replies"),
        (Act::SecondHandshake, "hostile-second-handshake"),
        (Act::FailedFlood, "hostile-failed-flood"),
        (Act::HalfFrameThenExit, "hostile-half-frame"),
    ];

    fn actor(self) -> &'static str {
        Act::ALL
            .iter()
            .find(|(a, _)| *a == self)
            .map(|(_, name)| *name)
            .expect("every act is named")
    }
}

/// The hostile actor: serves normally until asked, then does its act.
pub(super) struct Hostile(pub(super) Act);

fn frame(m: &Message) -> Vec<u8> {
    m.encode(DEFAULT_MAX_FRAME).expect("a small message fits")
}

/// Writes `bytes` on a duplicate of this process child's channel; false once the parent
/// stopped reading (closed its end) or did not read for a second.
fn write_raw(bytes: &[u8]) -> bool {
    let Ok(fd) = sys::duplicate_child_channel() else {
        return false;
    };
    matches!(
        sys::send_all_timeout(fd.as_fd(), bytes, Some(Duration::from_secs(1))),
        Ok(sys::SendOutcome::Complete)
    )
}

impl Daemon for Hostile {
    fn handle(
        &mut self,
        _id: RequestId,
        payload: Vec<u8>,
        _cancel: &Cancel<'_>,
    ) -> Result<Vec<u8>, RemoteError> {
        match self.0 {
            Act::HugeLengthThenSilence => {
                write_raw(&DEFAULT_MAX_FRAME.to_le_bytes());
                std::thread::sleep(Duration::from_secs(60));
            }
            Act::UnknownReplyFlood => {
                for i in 0..FLOOD as u64 {
                    let m = Message::Reply {
                        id: RequestId(1_000_000 + i),
                        result: Ok(vec![0; 64]),
                    };
                    if !write_raw(&frame(&m)) {
                        break;
                    }
                }
            }
            Act::SecondHandshake => {
                write_raw(&frame(&Message::Handshake {
                    version: harrow_model::wire::PROTOCOL_VERSION,
                    pid: std::process::id(),
                }));
            }
            Act::FailedFlood => {
                // The message is cut to fit: every frame is as large as a frame may be.
                let whole =
                    Message::Failed(RemoteError::error("x".repeat(DEFAULT_MAX_FRAME as usize)))
                        .encode_fitted(DEFAULT_MAX_FRAME);
                for _ in 0..FAILED_FLOOD_BYTES / whole.len() {
                    if !write_raw(&whole) {
                        break;
                    }
                }
            }
            Act::HalfFrameThenExit => {
                let whole = frame(&Message::Reply {
                    id: RequestId(0),
                    result: Ok(vec![7; 100]),
                });
                write_raw(&whole[..whole.len() / 2]);
                sys::exit_now(0);
            }
        }
        Ok(payload)
    }
}

/// Whether `kind` is the typed error `act` must produce.
fn expected(act: Act, kind: &ChildErrorKind) -> bool {
    use ChildErrorKind::Protocol;
    match act {
        // Asked and never answered: stopped by the escalation; the cut frame is typed.
        Act::HugeLengthThenSilence => matches!(
            kind,
            Protocol(ProtocolViolation::Malformed(
                FrameError::EofInsideFrame { .. }
            ))
        ),
        Act::UnknownReplyFlood => matches!(kind, Protocol(ProtocolViolation::UnknownReply(_))),
        Act::SecondHandshake => matches!(kind, Protocol(ProtocolViolation::Unexpected { .. })),
        // The first report is kept; the second closes the channel.
        Act::FailedFlood => matches!(kind, Protocol(ProtocolViolation::SecondFailure)),
        Act::HalfFrameThenExit => matches!(
            kind,
            Protocol(ProtocolViolation::Malformed(
                FrameError::EofInsideFrame { .. }
            ))
        ),
    }
}

/// The errors the report holds for its one child, checked against the act.
fn judge(act: Act, report: &TeardownReport) -> Result<String, Failure> {
    let kinds: Vec<&ChildErrorKind> = report.errors.iter().map(|e| &e.kind).collect();
    ensure!(
        kinds.iter().any(|k| expected(act, k)),
        "no {act:?} error among {} reported: {:?}",
        kinds.len(),
        kinds.iter().take(3).collect::<Vec<_>>()
    );
    // A child has one death and at most one failure of its own to report.
    ensure!(
        kinds.len() <= 2,
        "{} errors reported for one child: a hostile child grows its parent's report \
         without bound (issue #14, fault 3: one failure per child; more is a protocol \
         violation)",
        kinds.len()
    );
    let own = kinds
        .iter()
        .filter(|k| matches!(k, ChildErrorKind::Remote(_)))
        .count();
    ensure!(
        act != Act::FailedFlood || own == 1,
        "{own} failure reports of the child's own kept; the first, and only it, belongs in the report"
    );
    Ok(kinds
        .iter()
        .map(|k| format!("{k:?}").chars().take(80).collect::<String>())
        .collect::<Vec<_>>()
        .join("; "))
}

/// A process child that does `act` when asked: the request fails (typed) or times out, the
/// report has the act's typed error and at most two errors, the parent's memory stays
/// within [`MEMORY_SLACK`], and the teardown ends within its bound.
pub(super) fn hostile(method: SpawnMethod, act: Act) -> Verdict {
    settled(method, || {
        let t = short_timeouts();
        let rss = || crate::soak::holdings().map(|h| h.rss).map_err(Failure);
        let before = rss()?;
        let started = Instant::now();
        let (asked, report) = with_nursery(open(method, t)?, |n| {
            let c = n.spawn("hostile", act.actor())?;
            Ok(n.request_within::<u64, u64>(c, &1, Duration::from_secs(1)))
        })?;
        let took = started.elapsed();
        let grew = rss()?.saturating_sub(before);
        let asked = match asked {
            Ok(v) => format!("answered {v}"),
            Err(e @ (Error::Child(_) | Error::TimedOut { .. } | Error::Closed | Error::Op(_))) => {
                e.to_string().chars().take(60).collect()
            }
            Err(other) => return Err(Failure(format!("the request failed untyped: {other:?}"))),
        };
        let errors = judge(act, &report)?;
        ensure!(
            grew <= MEMORY_SLACK,
            "the parent grew by {} KiB (limit {} KiB)",
            grew / 1024,
            MEMORY_SLACK / 1024
        );
        let bound = t.teardown_bound(method) + Duration::from_secs(2);
        ensure!(took <= bound, "took {took:?}, more than {bound:?}");
        Ok(format!(
            "{act:?}: request: {asked}; errors: {errors}; grew {} KiB; {took:.1?}",
            grew / 1024
        ))
    })
}

/// `hostile-huge-length`.
pub fn huge_length_then_silence(method: SpawnMethod) -> Verdict {
    hostile(method, Act::HugeLengthThenSilence)
}

/// `hostile-unknown-replies`.
pub fn unknown_reply_flood(method: SpawnMethod) -> Verdict {
    hostile(method, Act::UnknownReplyFlood)
}

/// `hostile-second-handshake`.
pub fn second_handshake(method: SpawnMethod) -> Verdict {
    hostile(method, Act::SecondHandshake)
}

/// `hostile-failed-flood`.
pub fn failed_flood(method: SpawnMethod) -> Verdict {
    hostile(method, Act::FailedFlood)
}

/// `hostile-half-frame`.
pub fn half_frame_then_exit(method: SpawnMethod) -> Verdict {
    hostile(method, Act::HalfFrameThenExit)
}
