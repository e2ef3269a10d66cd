//! Actors by name: what a child runs, registered the same way in every process.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::OnceLock;

use harrow_model::RequestId;
use harrow_model::actor::{Actor, Cancel, Daemon, Task};
use harrow_model::wire::{RemoteError, Role};
use serde::Serialize;
use serde::de::DeserializeOwned;

type Maker = Box<dyn Fn() -> Made + Send + Sync>;

/// A fresh instance of a registered actor, by how its child runs it.
pub(crate) enum Made {
    /// Its code is called inline by the child's event loop, one call at a time.
    Actor(Actor),
    /// Its requests are futures, run concurrently on a tokio runtime of the child's own.
    #[cfg(feature = "tokio")]
    Async(crate::async_child::AsyncActor),
}

/// The actors a program can run as children, by name.
///
/// Build it the same way in every process (typically in one function called from `main`), and
/// pass it to [`crate::init`] first thing: a re-executed child finds its actor by name there.
#[derive(Default)]
pub struct Registry {
    /// Each actor's role and the maker of its instances.
    makers: BTreeMap<String, (Role, Maker)>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("actors", &self.makers.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Registry::default()
    }

    /// Registers a daemon of your own making, built afresh in each child.
    pub fn daemon<D, F>(mut self, name: &str, make: F) -> Self
    where
        D: Daemon + Send + 'static,
        F: Fn() -> D + Send + Sync + 'static,
    {
        let maker: Maker = Box::new(move || Made::Actor(Actor::Daemon(Box::new(make()))));
        self.makers.insert(name.to_string(), (Role::Daemon, maker));
        self
    }

    /// Registers a run-to-result task of your own making, built afresh in each child.
    pub fn task<T, F>(mut self, name: &str, make: F) -> Self
    where
        T: Task + Send + 'static,
        F: Fn() -> T + Send + Sync + 'static,
    {
        let maker: Maker = Box::new(move || Made::Actor(Actor::Task(Box::new(make()))));
        self.makers
            .insert(name.to_string(), (Role::RunToResult, maker));
        self
    }

    /// Registers a daemon that answers typed requests with `f`; an `Err` reaches the caller.
    pub fn handler<Req, Resp, F>(self, name: &str, f: F) -> Self
    where
        Req: DeserializeOwned + 'static,
        Resp: Serialize + 'static,
        F: Fn(Req) -> Result<Resp, String> + Clone + Send + Sync + 'static,
    {
        self.daemon(name, move || Handler {
            f: f.clone(),
            _types: std::marker::PhantomData::<fn(Req) -> Resp>,
        })
    }

    /// Registers a run-to-result actor: `f` runs once and its result is the child's result.
    pub fn main<Out, F>(self, name: &str, f: F) -> Self
    where
        Out: Serialize + 'static,
        F: Fn() -> Result<Out, String> + Clone + Send + Sync + 'static,
    {
        self.task(name, move || Main { f: f.clone() })
    }

    /// Registers an async daemon that answers typed requests with the future `f` returns;
    /// an `Err` reaches the caller. Its child runs a current-thread tokio runtime of its own
    /// and serves up to `Limits::max_in_flight` requests at once (see
    /// [`Registry::async_handler_limited`] for fewer).
    ///
    /// The [`CancelToken`](crate::CancelToken) `f` is given says when the child is
    /// cancelled: a handler that awaits it (or asks it) can end early, and its reply still
    /// goes out. The child acknowledges a cancel only once every request it started has
    /// finished; one that does not finish is killed at the kill grace.
    #[cfg(feature = "tokio")]
    pub fn async_handler<Req, Resp, F, Fut>(self, name: &str, f: F) -> Self
    where
        Req: DeserializeOwned + 'static,
        Resp: Serialize + 'static,
        F: Fn(Req, crate::CancelToken) -> Fut + Clone + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<Resp, String>> + 'static,
    {
        self.async_daemon(name, None, f)
    }

    /// [`Registry::async_handler`], serving at most `concurrency` requests at once (and never
    /// more than `Limits::max_in_flight`); the others wait their turn in arrival order.
    #[cfg(feature = "tokio")]
    pub fn async_handler_limited<Req, Resp, F, Fut>(
        self,
        name: &str,
        concurrency: std::num::NonZeroU32,
        f: F,
    ) -> Self
    where
        Req: DeserializeOwned + 'static,
        Resp: Serialize + 'static,
        F: Fn(Req, crate::CancelToken) -> Fut + Clone + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<Resp, String>> + 'static,
    {
        self.async_daemon(name, Some(concurrency), f)
    }

    #[cfg(feature = "tokio")]
    fn async_daemon<Req, Resp, F, Fut>(
        mut self,
        name: &str,
        concurrency: Option<std::num::NonZeroU32>,
        f: F,
    ) -> Self
    where
        Req: DeserializeOwned + 'static,
        Resp: Serialize + 'static,
        F: Fn(Req, crate::CancelToken) -> Fut + Clone + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<Resp, String>> + 'static,
    {
        let maker: Maker = Box::new(move || {
            let f = f.clone();
            Made::Async(crate::async_child::AsyncActor::new(
                concurrency,
                move |payload, cancel| {
                    let f = f.clone();
                    Box::pin(async move {
                        let req: Req = decode(&payload).map_err(RemoteError::refused)?;
                        let resp = f(req, cancel).await.map_err(RemoteError::error)?;
                        encode(&resp).map_err(RemoteError::refused)
                    })
                },
            ))
        });
        self.makers.insert(name.to_string(), (Role::Daemon, maker));
        self
    }

    /// This registry with every actor of `other` added (`other` wins on a name clash).
    pub fn merge(mut self, other: Registry) -> Self {
        self.makers.extend(other.makers);
        self
    }

    /// Whether an actor of this name is registered.
    pub fn contains(&self, name: &str) -> bool {
        self.makers.contains_key(name)
    }

    /// The names of the registered actors, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.makers.keys().map(String::as_str)
    }

    /// The role a child running the named actor has: a daemon serves requests, a task runs to
    /// a result.
    pub fn role(&self, name: &str) -> Option<Role> {
        self.makers.get(name).map(|(role, _)| *role)
    }

    /// A fresh instance of the named actor.
    pub(crate) fn make(&self, name: &str) -> Option<Made> {
        self.makers.get(name).map(|(_, make)| make())
    }
}

static REGISTRY: OnceLock<Registry> = OnceLock::new();

/// Installs the process's registry; the first one wins.
pub(crate) fn install(registry: Registry) -> &'static Registry {
    let _ = REGISTRY.set(registry);
    registry_ref()
}

/// The installed registry (empty if [`crate::init`] was not called).
pub(crate) fn registry_ref() -> &'static Registry {
    REGISTRY.get_or_init(Registry::new)
}

/// Whether [`crate::init`] installed a registry (so a re-executed child can find its actor).
pub(crate) fn initialized() -> bool {
    REGISTRY.get().is_some_and(|r| !r.makers.is_empty())
}

/// Encodes a payload in the backend's wire format (postcard).
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, String> {
    postcard::to_allocvec(value).map_err(|e| format!("cannot encode the payload: {e}"))
}

/// Decodes a payload in the backend's wire format (postcard).
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    postcard::from_bytes(bytes).map_err(|e| format!("cannot decode the payload: {e}"))
}

struct Handler<F, Req, Resp> {
    f: F,
    _types: std::marker::PhantomData<fn(Req) -> Resp>,
}

impl<F, Req, Resp> Daemon for Handler<F, Req, Resp>
where
    Req: DeserializeOwned,
    Resp: Serialize,
    F: Fn(Req) -> Result<Resp, String>,
{
    fn handle(
        &mut self,
        _id: RequestId,
        payload: Vec<u8>,
        _cancel: &Cancel<'_>,
    ) -> Result<Vec<u8>, RemoteError> {
        let req: Req = decode(&payload).map_err(RemoteError::refused)?;
        let resp = (self.f)(req).map_err(RemoteError::error)?;
        encode(&resp).map_err(RemoteError::refused)
    }
}

struct Main<F> {
    f: F,
}

impl<F, Out> Task for Main<F>
where
    Out: Serialize,
    F: Fn() -> Result<Out, String>,
{
    fn run(&mut self, _cancel: &Cancel<'_>) -> Result<Vec<u8>, RemoteError> {
        let out = (self.f)().map_err(RemoteError::error)?;
        encode(&out).map_err(RemoteError::refused)
    }
}
