//! [`AsyncNursery`]: the nursery for tokio programs (feature `tokio`).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::{Future, poll_fn};
use std::os::fd::{AsFd, OwnedFd};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use harrow_model::supervisor::{NurseryPhase, Outcome, TeardownCause, TeardownReport};
use harrow_model::wire::Role;
use harrow_model::{ChildError, ChildId, RequestId, SpawnMethod};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::unix::AsyncFd;
use tokio::time::{Instant, Sleep};

use crate::actor::{decode, encode, registry_ref};
use crate::nursery::{Child, Completion, Error, Nursery, NurseryConfig, Ticket};

/// How many turns of the event loop one poll may take before it yields to the runtime.
const TURNS_PER_POLL: usize = 16;

/// How late a deadline may fire rather than re-arm the sleep (tokio's timer counts whole
/// milliseconds anyway).
const SLACK: Duration = Duration::from_millis(1);

/// A nursery for tokio programs (feature `tokio`): a cloneable handle to one [`Nursery`]
/// whose waits are futures.
///
/// It is the blocking [`Nursery`] — the same protocol, the same driver, the same operating
/// system layer — waited on through tokio's reactor instead of a blocking `epoll_wait`: the
/// nursery's event loop descriptor (an epoll instance, [`Nursery`]'s `AsFd`) is registered
/// with tokio (`AsyncFd`), and the protocol's next deadline is a tokio sleep. When either
/// fires, the loop is turned once without waiting. There is no extra thread, no polling loop
/// and no `spawn_blocking`.
///
/// The handle is cheap to clone, and every clone drives the one nursery, so many tasks
/// spawn, send requests, cancel and wait at once (on a current-thread or a multi-thread
/// runtime). The nursery sits behind a mutex that no `.await` holds. Whichever waiting future
/// was polled last is the one tokio wakes when the descriptor is readable (*the reader*); it
/// turns the loop and hands every completion to its own waiter: a request's end wakes the
/// future that awaits that request, and nothing else; a turn wakes the waits that have no
/// completion of their own (a spawn's handshake, a stop, a result, a teardown, `wait_any`).
/// A reader that is dropped or finishes passes the role to another waiter, so no readiness
/// is ever announced to nobody.
///
/// # Dropping a future
///
/// Futures are lazy: nothing is sent or spawned before the first poll. What dropping one at
/// each of its await points does:
///
/// | method | dropped while | what the drop does |
/// |---|---|---|
/// | `spawn`, `spawn_with` | the child boots (before its handshake) | cancels that child: the protocol stops it (graceful, then by the timeouts), and the report lists it |
/// | `request`, `request_within`, `request_bytes` | waiting for the answer | abandons the request (`Nursery::abandon`): its reply, kept or to come, is dropped and answers nothing later; nothing stays held |
/// | `result` | waiting for the result | nothing: the result is kept for a later `result` |
/// | `stop` | waiting for the child to be gone | nothing more: the cancel was sent and the protocol stops the child anyway |
/// | `wait_child` | waiting for the child's end | nothing: a later `wait_child` or `outcome` says how it ended |
/// | `wait_any` | waiting | nothing: what completes stays queued for the next `wait_any` |
/// | `teardown`, `fail` | waiting for the report | the teardown goes on while other handles' waits turn the loop; if this was the last handle, the nursery is dropped (below) |
///
/// Each row is a `drop_*` test in `real/tests/nursery_async.rs`.
///
/// Dropping the last handle (a `teardown` or `fail` future holds the one it was called on)
/// drops the nursery, as dropping a blocking [`Nursery`] does: every child is ended at once, without a
/// graceful cancel, and reaped, within the protocol's bounds; no report is made. That drop
/// blocks the thread it runs on for as long as it takes (the kill and reap are immediate
/// unless a process is stuck in the kernel).
///
/// # Interaction with the process
///
/// SIGINT (with `handle_sigint`) reaches the async nursery as it reaches the blocking one: the
/// nursery tears down, and every wait returns [`Error::Interrupted`] once the teardown is over
/// (the other waits keep turning the loop meanwhile). A multi-thread runtime makes the process
/// multi-threaded, so plain `Fork` is refused there, with the error that names `ForkServer`;
/// on a current-thread runtime (in a process with no other thread) it works.
#[derive(Clone)]
pub struct AsyncNursery {
    shared: Arc<Mutex<Inner>>,
}

impl fmt::Debug for AsyncNursery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncNursery").finish_non_exhaustive()
    }
}

/// Who waits: for a request's end (woken by that end), or for something else (woken by every
/// turn of the loop).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Key {
    Request(ChildId, RequestId),
    Other(u64),
}

/// The nursery with what tokio needs to wait on it.
struct Inner {
    /// A duplicate of the nursery's event loop descriptor, registered with tokio's reactor.
    fd: AsyncFd<OwnedFd>,
    /// Armed at the protocol's next deadline by the reader.
    sleep: Pin<Box<Sleep>>,
    core: Core,
}

/// The nursery and its waiters.
struct Core {
    nursery: Nursery,
    /// The spawn method of [`AsyncNursery::spawn`].
    method: SpawnMethod,
    /// How many failures, and how many ends, `finished` keeps at most (`Limits::max_ended`).
    max_ended: usize,
    /// Waiters for one request's end.
    requests: HashMap<(ChildId, RequestId), Waker>,
    /// Waiters for anything else.
    others: HashMap<u64, Waker>,
    next_key: u64,
    /// The waiter last registered with tokio's reactor and the sleep.
    reader: Option<Key>,
    /// Results ready, failures and ends, for [`AsyncNursery::wait_any`], in the order they
    /// came.
    finished: VecDeque<Completion>,
    /// The nursery's phase when last looked at: a change wakes every waiter.
    phase: NurseryPhase,
    /// Wakers to wake once the lock is released.
    to_wake: Vec<Waker>,
}

impl AsyncNursery {
    /// An async nursery with the default configuration.
    pub fn open() -> Result<AsyncNursery, Error> {
        AsyncNursery::open_with(NurseryConfig::default())
    }

    /// An async nursery with this configuration. Call it inside a tokio runtime with IO and
    /// time enabled (`Builder::enable_all`): outside any runtime, [`Error::Open`]; in a runtime
    /// without them, tokio panics, as its own types do.
    pub fn open_with(config: NurseryConfig) -> Result<AsyncNursery, Error> {
        tokio::runtime::Handle::try_current().map_err(|e| {
            Error::Open(
                format!(
                    "{e}; open an AsyncNursery inside a tokio runtime, with IO and time enabled"
                )
                .into(),
            )
        })?;
        let nursery = Nursery::open_with(config)?;
        let dup = nursery.as_fd().try_clone_to_owned().map_err(|e| {
            Error::Open(format!("cannot duplicate the event loop's descriptor: {e}").into())
        })?;
        let fd = crate::sys::reactor::register_readable(dup).map_err(|e| {
            Error::Open(format!("cannot register the event loop with tokio's reactor: {e}").into())
        })?;
        let core = Core {
            phase: nursery.nursery_phase(),
            nursery,
            method: config.method,
            max_ended: config.limits.max_ended as usize,
            requests: HashMap::new(),
            others: HashMap::new(),
            next_key: 0,
            reader: None,
            finished: VecDeque::new(),
            to_wake: Vec::new(),
        };
        let inner = Inner {
            fd,
            sleep: Box::pin(tokio::time::sleep_until(Instant::now())),
            core,
        };
        Ok(AsyncNursery {
            shared: Arc::new(Mutex::new(inner)),
        })
    }

    /// Spawns a child named `name` running `actor` by the nursery's method, in the role the
    /// registry gives the actor; ready once the child has completed its handshake (or
    /// failed, within the boot timeout). Dropped before then, it cancels the child.
    pub async fn spawn(&self, name: &str, actor: &str) -> Result<Child, Error> {
        let role = registry_ref().role(actor).unwrap_or(Role::Daemon);
        let method = self.with(|i| i.core.method);
        self.spawn_with(name, actor, method, role).await
    }

    /// Spawns by a given method and role; see [`AsyncNursery::spawn`] and
    /// [`Nursery::spawn_with`].
    pub async fn spawn_with(
        &self,
        name: &str,
        actor: &str,
        method: SpawnMethod,
        role: Role,
    ) -> Result<Child, Error> {
        let child = self.op(|n| n.start_with(name, actor, method, role))?;
        let mut booting = Booting {
            shared: &self.shared,
            child: Some(child),
        };
        let key = self.key();
        let ready = self.wait(key, |c| c.nursery.poll_ready(child)).await;
        booting.child = None;
        ready.map(|()| child)
    }

    /// Sends a typed request and waits for the typed reply (see [`Nursery::request`]); the
    /// request is encoded at once and sent at the first poll. Dropped before the answer,
    /// it abandons the request.
    pub fn request<'a, Req: Serialize, Resp: DeserializeOwned>(
        &'a self,
        child: Child,
        req: &Req,
    ) -> impl Future<Output = Result<Resp, Error>> + Send + use<'a, Req, Resp> {
        self.typed(child, encode(req), None)
    }

    /// [`AsyncNursery::request`] that ends with [`Error::TimedOut`] if no reply has come
    /// within `timeout`; the child is not cancelled, and its late reply is dropped.
    pub fn request_within<'a, Req: Serialize, Resp: DeserializeOwned>(
        &'a self,
        child: Child,
        req: &Req,
        timeout: Duration,
    ) -> impl Future<Output = Result<Resp, Error>> + Send + use<'a, Req, Resp> {
        self.typed(child, encode(req), Some(timeout))
    }

    /// Sends raw request bytes and waits for the raw reply bytes.
    pub async fn request_bytes(&self, child: Child, payload: Vec<u8>) -> Result<Vec<u8>, Error> {
        self.exchange(child, payload, None).await
    }

    /// Waits for a run-to-result child's typed result and hands it over (once); see
    /// [`Nursery::result`]. Dropped before then, the result stays kept.
    pub async fn result<Out: DeserializeOwned>(&self, child: Child) -> Result<Out, Error> {
        let key = self.key();
        let bytes = self.wait(key, |c| c.nursery.poll_result(child)).await?;
        decode(&bytes).map_err(Error::Payload)
    }

    /// Cancels one child: graceful first, then SIGKILL (or abandonment) by the timeouts.
    pub fn cancel(&self, child: Child) -> Result<(), Error> {
        self.op(|n| n.cancel(child))
    }

    /// Cancels one child and waits until it is gone (exited, killed or abandoned, and
    /// reaped). Dropped before then, the child is stopped all the same.
    pub async fn stop(&self, child: Child) -> Result<(), Error> {
        self.cancel(child)?;
        let key = self.key();
        self.wait(key, |c| c.learned(child, Nursery::poll_gone))
            .await
    }

    /// Stops one child forcefully now, without asking it first; see [`Nursery::kill`].
    /// [`AsyncNursery::wait_child`] waits for its end.
    pub fn kill(&self, child: Child) -> Result<(), Error> {
        self.op(|n| n.kill(child))
    }

    /// How `child` ended, if it has, without waiting; see [`Nursery::outcome`].
    pub fn outcome(&self, child: Child) -> Result<Option<Outcome>, Error> {
        self.with(|i| {
            i.op(|n| n.outcome(child))
                .inspect(|_| i.core.forget_end(child))
        })
    }

    /// Waits until `child` ends, and says how: its outcome if it ended without an error of
    /// its own, [`Error::Child`] if it failed; see [`Nursery::wait_child`] (bound the wait
    /// with `tokio::time::timeout`). Dropped, it changes nothing.
    pub async fn wait_child(&self, child: Child) -> Result<Outcome, Error> {
        let key = self.key();
        self.wait(key, |c| c.learned(child, Nursery::poll_child_end))
            .await
    }

    /// The next child that finished: a run-to-result child's result is ready
    /// ([`Completion::Result`], take it with [`AsyncNursery::result`]), a child failed
    /// ([`Completion::Failed`]), or a child's life is over ([`Completion::Ended`], not
    /// reported for a child whose end its caller learned by `stop`, `wait_child` or
    /// `outcome`); each once, in the order it happened. `Ok(None)` at once when nothing is
    /// queued and no child lives. Requests' ends go to their own futures and are never
    /// reported here. Dropped, it loses nothing: what completes stays queued (the last
    /// `Limits::max_ended` failures and ends, every result until it is claimed).
    pub async fn wait_any(&self) -> Result<Option<Completion>, Error> {
        let key = self.key();
        self.wait(key, Core::next_finished).await
    }

    /// The live child registered under `name`; never one known to be dead.
    pub fn lookup(&self, name: &str) -> Option<Child> {
        self.with(|i| i.core.nursery.lookup(name))
    }

    /// The pid of a process child (a name for logs); see [`Nursery::pid`].
    pub fn pid(&self, child: Child) -> Option<i32> {
        self.with(|i| i.core.nursery.pid(child))
    }

    /// Answers held for no caller plus requests given up whose reply has not come yet.
    #[cfg(feature = "internals")]
    pub(crate) fn unclaimed_replies(&self) -> usize {
        self.with(|i| i.core.nursery.unclaimed_replies())
    }

    /// Child errors reported and not yet taken, oldest first, each once.
    pub fn take_failures(&self) -> Vec<ChildError> {
        self.with(|i| i.core.nursery.take_failures())
    }

    /// Ends the body normally: daemons are cancelled, run-to-result children joined; ready
    /// with the report once every child is gone. Other handles' calls are refused from now
    /// on (the nursery is tearing down).
    pub async fn teardown(self) -> TeardownReport {
        self.close(TeardownCause::BodyFinished).await
    }

    /// Ends the body with an error: every child is cancelled; ready with the report.
    pub async fn fail(self) -> TeardownReport {
        self.close(TeardownCause::BodyFailed).await
    }

    async fn close(self, cause: TeardownCause) -> TeardownReport {
        self.op(|n| n.begin_close(cause));
        let key = self.key();
        self.wait(key, |c| c.nursery.poll_report()).await
    }

    /// A typed request's future, its payload encoded (or not) already.
    async fn typed<Resp: DeserializeOwned>(
        &self,
        child: Child,
        payload: Result<Vec<u8>, String>,
        timeout: Option<Duration>,
    ) -> Result<Resp, Error> {
        let payload = payload.map_err(Error::Payload)?;
        let reply = self.exchange(child, payload, timeout).await?;
        decode(&reply).map_err(Error::Payload)
    }

    /// Sends a request and waits for its answer; abandons it if dropped before.
    async fn exchange(
        &self,
        child: Child,
        payload: Vec<u8>,
        timeout: Option<Duration>,
    ) -> Result<Vec<u8>, Error> {
        let ticket = self.op(|n| n.start_request_bytes(child, payload, timeout))?;
        let mut pending = Pending {
            shared: &self.shared,
            ticket: Some(ticket),
        };
        let key = Key::Request(ticket.child().id(), ticket.id());
        let answer = self.wait(key, |c| c.nursery.poll_take(ticket)).await;
        pending.ticket = None;
        answer
    }

    /// Waits until `check` says the wait is over, turning the event loop whenever this
    /// waiter is the reader and the nursery's descriptor is readable or a deadline passed.
    async fn wait<T>(&self, key: Key, mut check: impl FnMut(&mut Core) -> Option<T>) -> T {
        let _waiter = Waiter {
            shared: &self.shared,
            key,
        };
        poll_fn(|cx| self.with(|i| i.poll_wait(key, cx, &mut check))).await
    }

    /// A key for a waiter that waits for something other than a request.
    fn key(&self) -> Key {
        self.with(|i| {
            i.core.next_key += 1;
            Key::Other(i.core.next_key)
        })
    }

    /// Runs `f` on the nursery and passes on what it brought (see [`Inner::op`]).
    fn op<R>(&self, f: impl FnOnce(&mut Nursery) -> R) -> R {
        self.with(|i| i.op(f))
    }

    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        with(&self.shared, f)
    }
}

/// Runs `f` under the lock, then wakes whom it asked to wake, after the lock is released.
fn with<R>(shared: &Mutex<Inner>, f: impl FnOnce(&mut Inner) -> R) -> R {
    let (r, wake) = {
        let mut inner = shared.lock().unwrap_or_else(PoisonError::into_inner);
        let r = f(&mut inner);
        (r, std::mem::take(&mut inner.core.to_wake))
    };
    wake.into_iter().for_each(Waker::wake);
    r
}

impl Inner {
    /// One poll of a wait: `check` first; else registers the waiter as the reader, and
    /// turns the loop while it is due.
    fn poll_wait<T>(
        &mut self,
        key: Key,
        cx: &mut Context<'_>,
        check: &mut impl FnMut(&mut Core) -> Option<T>,
    ) -> Poll<T> {
        for _ in 0..TURNS_PER_POLL {
            if let Some(v) = check(&mut self.core) {
                return Poll::Ready(v);
            }
            self.core.register(key, cx.waker());
            if !self.turn_if_due(cx) {
                return Poll::Pending;
            }
        }
        // Input keeps coming: let the runtime run other tasks, and come back.
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Turns the loop once if its descriptor is readable or the protocol's deadline has
    /// passed, and says whether it did; otherwise `cx` is woken when either happens.
    fn turn_if_due(&mut self, cx: &mut Context<'_>) -> bool {
        let Inner { fd, sleep, core } = self;
        match fd.poll_read_ready(cx) {
            Poll::Ready(Ok(mut guard)) => {
                core.turn();
                // Tokio is told "not ready" only when the descriptor is seen not ready: the
                // registration is edge-triggered, and a turn may leave events behind.
                if !readable(guard.get_inner()) {
                    guard.clear_ready();
                }
                return true;
            }
            Poll::Ready(Err(e)) => panic!(
                "tokio's reactor refused to wait on the nursery ({e}): the runtime the \
                 AsyncNursery was opened in has shut down; use it only inside that runtime"
            ),
            Poll::Pending => {}
        }
        let Some(left) = core.nursery.next_deadline() else {
            return false;
        };
        if left.is_zero() {
            // Passed already: a sleep re-armed now would fire a timer tick later, every time.
            core.turn();
            return true;
        }
        let at = Instant::now() + left;
        if sleep.is_elapsed() || at + SLACK < sleep.deadline() {
            sleep.as_mut().reset(at);
        }
        if sleep.as_mut().poll(cx).is_ready() {
            core.turn();
            return true;
        }
        false
    }

    /// Runs `f` on the nursery (an operation that does not wait), then passes on what it
    /// brought: the events it produced go to their waiters, and a deadline it set earlier
    /// than the reader's sleep wakes the reader to arm it.
    fn op<R>(&mut self, f: impl FnOnce(&mut Nursery) -> R) -> R {
        let r = f(&mut self.core.nursery);
        if self.core.settle() {
            self.core.wake_others();
        }
        let unarmed = self.core.nursery.next_deadline().is_some_and(|left| {
            self.sleep.is_elapsed() || Instant::now() + left + SLACK < self.sleep.deadline()
        });
        if unarmed {
            self.core.wake_reader();
        }
        r
    }
}

impl Core {
    /// Registers `waker` for `key`, and makes it the reader.
    fn register(&mut self, key: Key, waker: &Waker) {
        let held = match key {
            Key::Request(child, id) => self
                .requests
                .entry((child, id))
                .or_insert(Waker::noop().clone()),
            Key::Other(n) => self.others.entry(n).or_insert(Waker::noop().clone()),
        };
        if !held.will_wake(waker) {
            *held = waker.clone();
        }
        self.reader = Some(key);
    }

    /// Forgets the waiter `key`. Without a reader (it was the reader, or the waiter woken to
    /// take the role finished without waiting), another waiter is woken to take the role, so
    /// that the descriptor's readiness is always announced to a live waiter.
    fn remove(&mut self, key: Key) {
        match key {
            Key::Request(child, id) => self.requests.remove(&(child, id)),
            Key::Other(n) => self.others.remove(&n),
        };
        if self.reader == Some(key) {
            self.reader = None;
        }
        if self.reader.is_none() {
            let next = self.others.values().chain(self.requests.values()).next();
            self.to_wake.extend(next.cloned());
        }
    }

    /// One turn of the event loop that does not wait; its completions go to their waiters,
    /// and every waiter without a completion of its own is woken to look again.
    fn turn(&mut self) {
        // A closed nursery is not turned; its waiters learn of it from their checks.
        let _ = self.nursery.turn_once();
        self.settle();
        self.wake_others();
    }

    /// Hands each completion the nursery has to its waiter; says whether there was any (or
    /// the nursery's phase changed, which wakes every waiter).
    fn settle(&mut self) -> bool {
        let mut any = false;
        while let Some(c) = self.nursery.pop_completion() {
            any = true;
            match c {
                Completion::Request { child, id } => {
                    let waiter = self.requests.get(&(child.id(), id));
                    self.to_wake.extend(waiter.cloned());
                }
                finished => self.queue_finished(finished),
            }
        }
        let phase = self.nursery.nursery_phase();
        if phase != self.phase {
            self.phase = phase;
            self.to_wake.extend(self.requests.values().cloned());
            any = true;
        }
        any
    }

    /// Queues a result, a failure or an end for `wait_any`, keeping the last `max_ended`
    /// failures and the last `max_ended` ends (results are bounded by the protocol's records).
    fn queue_finished(&mut self, c: Completion) {
        let same = |x: &Completion| core::mem::discriminant(x) == core::mem::discriminant(&c);
        if !matches!(c, Completion::Result(_))
            && self.finished.iter().filter(|x| same(x)).count() >= self.max_ended
            && let Some(i) = self.finished.iter().position(same)
        {
            self.finished.remove(i);
        }
        self.finished.push_back(c);
    }

    /// `check` of `child`'s end; once it answers, the end is learned and not reported to
    /// `wait_any`.
    fn learned<T>(
        &mut self,
        child: Child,
        check: impl FnOnce(&mut Nursery, Child) -> Option<T>,
    ) -> Option<T> {
        let answer = check(&mut self.nursery, child)?;
        self.forget_end(child);
        Some(answer)
    }

    /// Drops `child`'s end from what `wait_any` has yet to report: its caller learned it.
    fn forget_end(&mut self, child: Child) {
        self.finished.retain(|c| *c != Completion::Ended(child));
    }

    /// `wait_any`'s check: the next result still kept or failure, `Ok(None)` if no child
    /// lives.
    fn next_finished(&mut self) -> Option<Result<Option<Completion>, Error>> {
        while let Some(c) = self.finished.pop_front() {
            if let Completion::Result(child) = c
                && !self.nursery.result_kept(child)
            {
                continue;
            }
            return Some(Ok(Some(c)));
        }
        if let Some(e) = self.nursery.wait_cut_short() {
            return Some(Err(e));
        }
        (self.nursery.live_children() == 0).then_some(Ok(None))
    }

    /// Wakes every waiter that is not waiting for a request.
    fn wake_others(&mut self) {
        self.to_wake.extend(self.others.values().cloned());
    }

    /// Wakes the reader.
    fn wake_reader(&mut self) {
        let waker = match self.reader {
            Some(Key::Request(child, id)) => self.requests.get(&(child, id)),
            Some(Key::Other(n)) => self.others.get(&n),
            None => None,
        };
        self.to_wake.extend(waker.cloned());
    }
}

/// Whether `fd` is readable now (an error counts as readable: a spare turn is harmless, a
/// readiness cleared too early is a lost wake-up).
fn readable(fd: &OwnedFd) -> bool {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let mut fds = [PollFd::new(fd, PollFlags::IN)];
    let now = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    poll(&mut fds, Some(&now)).map_or(true, |n| n > 0)
}

/// A wait in progress: dropped (finished or not), the waiter is forgotten.
struct Waiter<'a> {
    shared: &'a Mutex<Inner>,
    key: Key,
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        with(self.shared, |i| i.core.remove(self.key));
    }
}

/// A request sent and not yet answered: dropped so, it is abandoned.
struct Pending<'a> {
    shared: &'a Mutex<Inner>,
    ticket: Option<Ticket>,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket {
            // An error says it ended meanwhile: then there is nothing left to give up.
            let _ = with(self.shared, |i| i.op(|n| n.abandon(ticket)));
        }
    }
}

/// A child started and not yet booted: dropped so, it is cancelled.
struct Booting<'a> {
    shared: &'a Mutex<Inner>,
    child: Option<Child>,
}

impl Drop for Booting<'_> {
    fn drop(&mut self) {
        if let Some(child) = self.child {
            // An error says it is already over: then there is nothing left to cancel.
            let _ = with(self.shared, |i| i.op(|n| n.cancel(child)));
        }
    }
}
