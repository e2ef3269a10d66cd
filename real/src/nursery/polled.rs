//! The nursery's waits in polled form, for the async nursery ([`crate::AsyncNursery`]): each
//! says whether what the blocking call waits for has happened, without turning the event
//! loop, so that the async face turns it only when its descriptor is readable or a deadline
//! has passed.
//!
//! Each check answers as its blocking call would once its wait ends: `None` while that call
//! would keep waiting. A nursery SIGINT is tearing down keeps its waiters waiting until the
//! teardown is over (the blocking calls finish it on the spot), then says
//! [`Error::Interrupted`].

use harrow_model::supervisor::{Outcome, Phase, TeardownCause, TeardownReport};
use harrow_model::trace::Record;
use harrow_model::wire::Role;

use super::{Child, Completion, Error, Nursery, Ticket};
use harrow_model::error::ChildOpError;

impl Nursery {
    /// One turn of the event loop that does not wait (none once the nursery has closed).
    pub(crate) fn turn_once(&mut self) -> Result<(), Error> {
        self.turn_now()
    }

    /// The next completion the event loop has brought (each once, in order), without
    /// turning it.
    pub(crate) fn pop_completion(&mut self) -> Option<Completion> {
        self.absorb_events();
        self.next_completion()
    }

    /// Whether a wait must end early, and with what: [`Error::Interrupted`] once the teardown
    /// SIGINT started is over (not before), [`Error::Closed`] once the nursery has closed.
    pub(crate) fn wait_cut_short(&self) -> Option<Error> {
        if !self.driver.sup.is_closed() {
            None
        } else if self.interrupted() {
            Some(Error::Interrupted)
        } else {
            Some(Error::Closed)
        }
    }

    /// [`Nursery::ready`], polled: whether `child` has completed its handshake, or failed.
    pub(crate) fn poll_ready(&mut self, child: Child) -> Option<Result<(), Error>> {
        let id = match self.own(child) {
            Ok(id) => id,
            Err(e) => return Some(Err(e)),
        };
        if self.handshake_done(id) {
            return Some(Ok(()));
        }
        if self.phase_of(id).is_none_or(|p| p == Phase::Done) {
            return Some(Err(self
                .failure_of(id)
                .map(Error::Child)
                .unwrap_or(Error::Closed)));
        }
        self.wait_cut_short().map(Err)
    }

    /// [`Nursery::wait_bytes`], polled: `ticket`'s answer once its request has ended.
    pub(crate) fn poll_take(&mut self, ticket: Ticket) -> Option<Result<Vec<u8>, Error>> {
        if let Err(e) = self.own_ticket(ticket) {
            return Some(Err(e));
        }
        if self.settled(ticket.child, ticket.id) {
            return Some(self.take_settled(ticket));
        }
        self.wait_cut_short().map(Err)
    }

    /// [`Nursery::result`], polled: the run-to-result child's result bytes once known.
    pub(crate) fn poll_result(&mut self, child: Child) -> Option<Result<Vec<u8>, Error>> {
        let id = match self.own(child) {
            Ok(id) => id,
            Err(e) => return Some(Err(e)),
        };
        if self.driver.sup.lifecycle(id).map(|l| l.role) == Some(Role::Daemon) {
            return Some(Err(Error::NoResult(id)));
        }
        if self.forgotten(id) {
            return Some(Err(Error::Op(ChildOpError::AlreadyFinished(id))));
        }
        if self.driver.sup.has_result(id) {
            self.forget_completion(&Completion::Result(child));
            self.driver.os.note(|| Record::ClaimResult { child: id });
            return match self.driver.sup.claim_result(id) {
                Some(Ok(bytes)) => Some(Ok(bytes)),
                Some(Err(e)) => Some(Err(self.remote(id, e))),
                None => None,
            };
        }
        let known =
            self.failure_of(id).is_some() || self.phase_of(id).is_none_or(|p| p == Phase::Done);
        if self.lifecycle_done(id) && known {
            return Some(Err(self.end_known(id)));
        }
        self.wait_cut_short().map(Err)
    }

    /// [`Nursery::stop`]'s wait, polled: whether `child` is gone.
    pub(crate) fn poll_gone(&mut self, child: Child) -> Option<Result<(), Error>> {
        let id = match self.own(child) {
            Ok(id) => id,
            Err(e) => return Some(Err(e)),
        };
        if self.ended(id) {
            self.forget_completion(&Completion::Ended(child));
            return Some(Ok(()));
        }
        self.wait_cut_short().map(Err)
    }

    /// [`Nursery::wait_child`] without a timeout, polled: how `child` ended, once it has.
    pub(crate) fn poll_child_end(&mut self, child: Child) -> Option<Result<Outcome, Error>> {
        let id = match self.own(child) {
            Ok(id) => id,
            Err(e) => return Some(Err(e)),
        };
        match self.end_of_child(id) {
            Ok(Some(outcome)) => Some(Ok(outcome)),
            Ok(None) => self.wait_cut_short().map(Err),
            Err(e) => Some(Err(e)),
        }
    }

    /// Whether the run-to-result child `child` has a result kept for [`Nursery::result`].
    pub(crate) fn result_kept(&self, child: Child) -> bool {
        self.own(child)
            .is_ok_and(|id| self.driver.sup.has_result(id))
    }

    /// How many children are live (not yet retired).
    pub(crate) fn live_children(&self) -> usize {
        self.driver.sup.live_count()
    }

    /// Starts the teardown `teardown` and `fail` wait for (a second call changes nothing).
    pub(crate) fn begin_close(&mut self, cause: TeardownCause) {
        self.driver.os.note(|| Record::BeginTeardown { cause });
        self.driver.begin_teardown(cause);
    }

    /// The teardown's report once the nursery has closed (the first call takes the one the
    /// event loop made; a later one gets a fresh copy).
    pub(crate) fn poll_report(&mut self) -> Option<TeardownReport> {
        if self.report.is_none() && !self.driver.sup.is_closed() {
            return None;
        }
        Some(
            self.report
                .take()
                .unwrap_or_else(|| self.driver.sup.report()),
        )
    }

    /// The nursery's phase (open, tearing down, closed): a change wakes every waiter.
    pub(crate) fn nursery_phase(&self) -> harrow_model::supervisor::NurseryPhase {
        self.driver.sup.phase()
    }
}
