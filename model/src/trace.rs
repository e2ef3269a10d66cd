//! The records of a trace: what a driver gave the protocol and what its operating system
//! did, one [`Line`] per step, as the real backend writes them (feature `trace` of
//! `harrow-real`) and `harrow validate` reads them back.
//!
//! Only data lives here (no IO, no clock): the writer is the backend's, the checks are the
//! `harrow` command's. A supervising process writes one trace per nursery, beginning with
//! [`Record::Open`]; a child process writes its own, beginning with [`Record::ChildStart`].
//! Every line is stamped with `CLOCK_MONOTONIC` nanoseconds, which is system-wide, so the
//! lines of a parent's and its children's traces can be put in one order.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::driver::{ChildEvent, OsEvent};
use crate::error::ExitStatus;
use crate::id::{ChildId, RequestId};
use crate::method::{Situation, SpawnMethod};
use crate::supervisor::{Event, SpawnSpec, SupervisorConfig, TeardownCause};
use crate::time::Timestamp;

/// The trace format's version, written in every header; a reader refuses another.
pub const VERSION: u32 = 1;

/// One line of a trace: when, and what.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    /// `CLOCK_MONOTONIC` nanoseconds when the line was written (after the step it records).
    pub t: u64,
    /// What happened.
    #[serde(flatten)]
    pub rec: Record,
}

/// Bytes, written as lowercase hexadecimal text.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Hex(pub Vec<u8>);

impl fmt::Debug for Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl Serialize for Hex {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{self:?}"))
    }
}

impl<'de> Deserialize<'de> for Hex {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Hex, D::Error> {
        d.deserialize_str(HexVisitor)
    }
}

struct HexVisitor;

impl Visitor<'_> for HexVisitor {
    type Value = Hex;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an even number of hexadecimal digits")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Hex, E> {
        let digit = |c: u8| match c {
            b'0'..=b'9' => Ok(c - b'0'),
            b'a'..=b'f' => Ok(c - b'a' + 10),
            _ => Err(E::custom(
                "a byte string holds a character that is not a hex digit",
            )),
        };
        if !v.len().is_multiple_of(2) {
            return Err(E::custom("a byte string has an odd number of hex digits"));
        }
        v.as_bytes()
            .chunks(2)
            .map(|p| Ok(digit(p[0])? << 4 | digit(p[1])?))
            .collect::<Result<Vec<u8>, E>>()
            .map(Hex)
    }
}

/// What an [`OsEvent`] was, as a trace writes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TracedEvent {
    /// Bytes arrived on a child's channel.
    Bytes(ChildId, Hex),
    /// A child's channel reached end-of-file.
    Eof(ChildId),
    /// A child exited.
    Exited(ChildId),
    /// SIGINT reached the process.
    Interrupt,
    /// The wait's deadline was reached.
    Deadline,
}

impl From<&OsEvent> for TracedEvent {
    fn from(ev: &OsEvent) -> Self {
        match ev {
            OsEvent::Bytes(c, b) => TracedEvent::Bytes(*c, Hex(b.clone())),
            OsEvent::Eof(c) => TracedEvent::Eof(*c),
            OsEvent::Exited(c) => TracedEvent::Exited(*c),
            OsEvent::Interrupt => TracedEvent::Interrupt,
            OsEvent::Deadline => TracedEvent::Deadline,
        }
    }
}

impl From<TracedEvent> for OsEvent {
    fn from(ev: TracedEvent) -> Self {
        match ev {
            TracedEvent::Bytes(c, b) => OsEvent::Bytes(c, b.0),
            TracedEvent::Eof(c) => OsEvent::Eof(c),
            TracedEvent::Exited(c) => OsEvent::Exited(c),
            TracedEvent::Interrupt => OsEvent::Interrupt,
            TracedEvent::Deadline => OsEvent::Deadline,
        }
    }
}

/// What a [`ChildEvent`] was, as a child's trace writes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TracedChildEvent {
    /// Bytes arrived from the parent.
    Bytes(Hex),
    /// The parent channel reached end-of-file.
    Eof,
    /// The process was killed (the simulator's cooperative death).
    Killed,
}

impl From<&ChildEvent> for TracedChildEvent {
    fn from(ev: &ChildEvent) -> Self {
        match ev {
            ChildEvent::Bytes(b) => TracedChildEvent::Bytes(Hex(b.clone())),
            ChildEvent::Eof => TracedChildEvent::Eof,
            ChildEvent::Killed => TracedChildEvent::Killed,
        }
    }
}

/// One step of a trace.
///
/// A parent's trace holds the user's calls on the nursery (each is replayed as the same call
/// on a fresh driver), and every call its driver made on the [`crate::driver::Os`] with what
/// it returned (each is what the replayed driver must ask for next, and what it is answered).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Record {
    /// A nursery's trace begins: its process, its protocol time's epoch, its configuration.
    Open {
        /// [`VERSION`].
        version: u32,
        /// The supervising process.
        pid: u32,
        /// `CLOCK_MONOTONIC` nanoseconds at protocol time zero.
        epoch: u64,
        /// The supervisor's configuration.
        config: SupervisorConfig,
    },
    /// The user spawned a child.
    Spawn {
        /// What to spawn.
        spec: SpawnSpec,
    },
    /// The user sent a request.
    Request {
        /// To which child.
        child: ChildId,
        /// Its payload.
        payload: Hex,
        /// Its deadline.
        deadline: Option<Timestamp>,
    },
    /// The user gave a request up.
    AbandonRequest {
        /// To which child it went.
        child: ChildId,
        /// Which request.
        id: RequestId,
    },
    /// The user cancelled a child.
    Cancel {
        /// Which child.
        child: ChildId,
    },
    /// The user stopped a child hard.
    HardStop {
        /// Which child.
        child: ChildId,
    },
    /// The user (or the nursery on its behalf) began teardown.
    BeginTeardown {
        /// Why.
        cause: TeardownCause,
    },
    /// The user took a request's end.
    ClaimReply {
        /// To which child it went.
        child: ChildId,
        /// Which request.
        id: RequestId,
    },
    /// The user took a run-to-result child's result.
    ClaimResult {
        /// Which child.
        child: ChildId,
    },
    /// The user took the errors not yet taken.
    ClaimErrors,
    /// The nursery took an event the driver queued for it.
    Event {
        /// The event.
        event: Event,
    },
    /// The clock was read.
    Now {
        /// What it said.
        now: Timestamp,
    },
    /// The process's situation was read (before a spawn).
    Situation {
        /// What it was.
        situation: Situation,
    },
    /// A child was launched.
    Launch {
        /// Which child.
        child: ChildId,
        /// The actor it runs.
        actor: String,
        /// How it was started.
        method: SpawnMethod,
        /// Whether it started, or why not.
        result: Result<(), String>,
        /// Its pid, for a process child that started.
        pid: Option<u32>,
    },
    /// A frame was sent to a child.
    Send {
        /// Which child.
        child: ChildId,
        /// The frame's bytes.
        frame: Hex,
    },
    /// Our end of a child's channel was closed.
    Close {
        /// Which child.
        child: ChildId,
    },
    /// A child was SIGKILLed.
    Kill {
        /// Which child.
        child: ChildId,
    },
    /// A thread child was abandoned.
    Abandon {
        /// Which child.
        child: ChildId,
    },
    /// A child was reaped.
    Reap {
        /// Which child.
        child: ChildId,
        /// How it ended, or why it could not be reaped.
        result: Result<ExitStatus, String>,
    },
    /// A child was retired.
    Retire {
        /// Which child.
        child: ChildId,
    },
    /// The driver waited.
    Wait {
        /// Until when.
        deadline: Option<Timestamp>,
        /// What happened, in the order reported.
        events: Vec<TracedEvent>,
        /// The clock when the wait returned.
        now: Timestamp,
        /// Why no wait was possible any more, if it failed.
        failed: Option<String>,
    },
    /// A child process's trace begins.
    ChildStart {
        /// [`VERSION`].
        version: u32,
        /// This process (the supervising process's, for a thread child).
        pid: u32,
        /// The actor it runs.
        actor: String,
    },
    /// The child sent a frame to its parent.
    ChildSend {
        /// The frame's bytes.
        frame: Hex,
    },
    /// What the child's wait or poll reported.
    ChildEvents {
        /// The events, in the order reported.
        events: Vec<TracedChildEvent>,
    },
    /// The child's loop ended with this exit code.
    ChildExit {
        /// The code.
        code: i32,
    },
    /// The trace reached its size limit: nothing after this step was written.
    Truncated {
        /// The limit, in bytes.
        limit: u64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;

    #[test]
    fn hex_round_trips_and_names_what_is_wrong() {
        let h = Hex(vec![0, 1, 0xab, 0xff]);
        assert_eq!(alloc::format!("{h:?}"), "0001abff");
        let v = HexVisitor;
        let back: Result<Hex, de::value::Error> = v.visit_str("0001abff");
        assert_eq!(back, Ok(h));
        let odd: Result<Hex, de::value::Error> = HexVisitor.visit_str("abc");
        assert!(odd.unwrap_err().to_string().contains("odd"));
        let bad: Result<Hex, de::value::Error> = HexVisitor.visit_str("zz");
        assert!(bad.unwrap_err().to_string().contains("not a hex digit"));
    }
}
