//! Actors by name: what a child runs, registered the same way in every process.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::OnceLock;

use harrow_model::RequestId;
use harrow_model::driver::Actor;
use harrow_model::wire::RemoteError;
use serde::Serialize;
use serde::de::DeserializeOwned;

type Maker = Box<dyn Fn() -> Box<dyn Actor + Send> + Send + Sync>;

/// The actors a program can run as children, by name.
///
/// Build it the same way in every process (typically in one function called from `main`), and
/// pass it to [`crate::init`] first thing: a re-executed child finds its actor by name there.
#[derive(Default)]
pub struct Registry {
    makers: BTreeMap<String, Maker>,
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

    /// Registers an actor of your own making, built afresh in each child.
    pub fn actor<A, F>(mut self, name: &str, make: F) -> Self
    where
        A: Actor + Send + 'static,
        F: Fn() -> A + Send + Sync + 'static,
    {
        self.makers
            .insert(name.to_string(), Box::new(move || Box::new(make())));
        self
    }

    /// Registers a daemon that answers typed requests with `f`; an `Err` reaches the caller.
    pub fn handler<Req, Resp, F>(self, name: &str, f: F) -> Self
    where
        Req: DeserializeOwned + 'static,
        Resp: Serialize + 'static,
        F: Fn(Req) -> Result<Resp, String> + Clone + Send + Sync + 'static,
    {
        self.actor(name, move || Handler {
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
        self.actor(name, move || Main { f: f.clone() })
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

    /// A fresh instance of the named actor.
    pub fn make(&self, name: &str) -> Option<Box<dyn Actor + Send>> {
        self.makers.get(name).map(|m| m())
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

impl<F, Req, Resp> Actor for Handler<F, Req, Resp>
where
    Req: DeserializeOwned,
    Resp: Serialize,
    F: Fn(Req) -> Result<Resp, String>,
{
    fn start(&mut self, _name: &str) -> Result<(), RemoteError> {
        Ok(())
    }

    fn main(&mut self) -> Result<Vec<u8>, RemoteError> {
        Err(RemoteError::refused(
            "a request handler has no main function",
        ))
    }

    fn handle(&mut self, _id: RequestId, payload: Vec<u8>) -> Result<Vec<u8>, RemoteError> {
        let req: Req = decode(&payload).map_err(RemoteError::refused)?;
        let resp = (self.f)(req).map_err(RemoteError::error)?;
        encode(&resp).map_err(RemoteError::refused)
    }
}

struct Main<F> {
    f: F,
}

impl<F, Out> Actor for Main<F>
where
    Out: Serialize,
    F: Fn() -> Result<Out, String>,
{
    fn start(&mut self, _name: &str) -> Result<(), RemoteError> {
        Ok(())
    }

    fn main(&mut self) -> Result<Vec<u8>, RemoteError> {
        let out = (self.f)().map_err(RemoteError::error)?;
        encode(&out).map_err(RemoteError::refused)
    }

    fn handle(&mut self, _id: RequestId, _payload: Vec<u8>) -> Result<Vec<u8>, RemoteError> {
        Err(RemoteError::refused(
            "a run-to-result actor takes no requests",
        ))
    }
}
