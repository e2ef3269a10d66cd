//! Requests inside one child's lifecycle: sent, answered, timed out, given up, or ended by the
//! child's end; each ends exactly once, as one [`Action::RequestEnded`].
//!
//! A request that timed out or was given up has ended, but it stays in flight (and counted
//! against `max_in_flight`) until its late reply arrives, which is then dropped, or until the
//! child's channel ends. So a child that is slow to answer cannot be sent more than
//! `max_in_flight` requests by callers that keep giving up on it, and a late reply never
//! reaches a caller: it answers the request it was sent for, which has already ended.

use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use super::lifecycle::{Action, Lifecycle, Phase, Refusal, StepContext};
use crate::error::ProtocolViolation;
use crate::flaw::Flaw;
use crate::id::RequestId;
use crate::time::Timestamp;
use crate::wire::{Message, RemoteError};

/// A request sent to a child whose reply has not arrived. (When its caller stops waiting,
/// if it set a time, is among the lifecycle's `timed` while it waits.)
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct InFlight {
    /// Its id.
    pub id: RequestId,
    /// Whether it has already ended (timed out or given up): its late reply is dropped.
    pub ended: bool,
}

/// How a request ended. Every request ends exactly once.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RequestEnd {
    /// The child answered: its handler's result, or the error it returned.
    Answered {
        /// The id the reply message carried: the request's own in the shipped protocol
        /// (property 13 checks it).
        reply: RequestId,
        /// The handler's result.
        result: Result<Vec<u8>, RemoteError>,
    },
    /// Its deadline passed first; its late reply, if one comes, is dropped.
    TimedOut,
    /// Its caller gave it up; its late reply, if one comes, is dropped.
    Abandoned,
    /// The child's channel ended first: the child died, failed, or was stopped. Its error,
    /// if its end is one, is reported as the child's.
    ChildEnded,
}

impl RequestEnd {
    /// Whether the supervisor keeps it for its caller to claim: every end but a give-up,
    /// whose caller has stopped listening.
    pub fn is_kept(&self) -> bool {
        *self != RequestEnd::Abandoned
    }
}

impl Lifecycle {
    /// Requests sent and not ended: those still waiting for their answer.
    pub fn open_requests(&self) -> impl Iterator<Item = &InFlight> {
        self.in_flight.iter().filter(|r| !r.ended)
    }

    /// The earliest wait this child's lifecycle bounds: its phase's deadline, or a request's.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        let requests = self.timed.iter().map(|&(_, due)| due);
        self.deadline.into_iter().chain(requests).min()
    }

    pub(super) fn on_request(
        &mut self,
        id: RequestId,
        payload: Vec<u8>,
        deadline: Option<Timestamp>,
        cx: &StepContext,
        out: &mut Vec<Action>,
    ) -> Result<(), Refusal> {
        match self.phase {
            Phase::Serving if !self.cancel_sent => {}
            Phase::Done => return Err(Refusal::Finished),
            _ => return Err(Refusal::NotServing),
        }
        if self.in_flight.len() >= cx.max_in_flight as usize {
            return Err(Refusal::TooManyInFlight);
        }
        self.in_flight.push(InFlight { id, ended: false });
        if let Some(due) = deadline {
            self.timed.push((id, due));
        }
        self.requests_sent += 1;
        out.push(Action::Send(Message::Request { id, payload }));
        Ok(())
    }

    pub(super) fn on_reply(
        &mut self,
        now: Timestamp,
        id: RequestId,
        result: Result<Vec<u8>, RemoteError>,
        cx: &StepContext,
        out: &mut Vec<Action>,
    ) -> Result<(), Refusal> {
        let Some(i) = self.in_flight.iter().position(|r| r.id == id) else {
            return self.on_violation(now, ProtocolViolation::UnknownReply(id), cx, out);
        };
        let request = self.in_flight.remove(i);
        self.stop_timing(id);
        let end = RequestEnd::Answered { reply: id, result };
        if !request.ended {
            self.end_request(id, end, out);
        } else if cx.flaws.has(Flaw::LateReplyAnswersLaterRequest) {
            // The flaw: replies are matched to the oldest request still waiting, not by id.
            if let Some(j) = self.in_flight.iter().position(|r| !r.ended) {
                let later = self.in_flight.remove(j);
                self.stop_timing(later.id);
                self.end_request(later.id, end, out);
            }
        }
        // Otherwise the late reply of a request that has ended: dropped.
        Ok(())
    }

    /// The caller gives a request up: it ends now (if it has not), and its late reply will
    /// be dropped. A request the lifecycle does not hold is refused.
    pub(super) fn on_abandon_request(
        &mut self,
        id: RequestId,
        out: &mut Vec<Action>,
    ) -> Result<(), Refusal> {
        let Some(request) = self.in_flight.iter_mut().find(|r| r.id == id) else {
            return Err(Refusal::Invalid);
        };
        if request.ended {
            return Ok(());
        }
        request.ended = true;
        self.stop_timing(id);
        self.end_request(id, RequestEnd::Abandoned, out);
        Ok(())
    }

    /// Ends every request whose deadline has passed.
    pub(super) fn expire_requests(&mut self, now: Timestamp, out: &mut Vec<Action>) {
        let mut due = Vec::new();
        // Oldest first: `timed` is in the order the requests were sent.
        self.timed.retain(|&(id, at)| {
            let passed = at <= now;
            if passed {
                due.push(id);
            }
            !passed
        });
        for id in due {
            if let Some(request) = self.in_flight.iter_mut().find(|r| r.id == id) {
                request.ended = true;
            }
            self.end_request(id, RequestEnd::TimedOut, out);
        }
    }

    /// The request `id` no longer waits: its deadline, if it had one, is disarmed.
    fn stop_timing(&mut self, id: RequestId) {
        self.timed.retain(|&(timed, _)| timed != id);
    }

    /// Our end of the channel closed: nothing more will be read from it. Every request still
    /// waiting ends now with the child's end, and those that had ended stop waiting for
    /// their late replies.
    pub(super) fn end_requests_at_close(&mut self, out: &mut Vec<Action>) {
        self.timed.clear();
        for request in core::mem::take(&mut self.in_flight) {
            if !request.ended {
                self.end_request(request.id, RequestEnd::ChildEnded, out);
            }
        }
    }

    fn end_request(&mut self, id: RequestId, end: RequestEnd, out: &mut Vec<Action>) {
        self.requests_ended += 1;
        out.push(Action::RequestEnded(id, end));
    }
}
