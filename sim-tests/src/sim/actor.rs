//! Scripted actors: each child does what its plan's behaviour says.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::platform::Platform;
use crate::sim::{ActorFactory, ScriptedPanic, SimEnv, SimOs};
use harrow_model::actor::{Actor, Cancel, Daemon, Task};
use harrow_model::driver::Driver;
use harrow_model::policy::Timeouts;
use harrow_model::supervisor::{Supervisor, SupervisorConfig, TeardownCause};
use harrow_model::wire::{DEFAULT_MAX_FRAME, Message, RemoteError, RemoteErrorKind, Role};
use harrow_model::{Flaws, RequestId};

use crate::scenario::{ABORTED, Behaviour, ChildPlan, STOPPED_EARLY, Scenario};

/// Makes each child's scripted actor from the scenario's plans, looked up by actor name.
#[derive(Debug)]
pub struct ScriptFactory {
    plans: BTreeMap<String, ChildPlan>,
    timeouts: Timeouts,
    flaws: Flaws,
}

impl ScriptFactory {
    /// The factory for every child in the scenario's tree (names are unique in a tree).
    pub fn new(sc: &Scenario) -> Self {
        let mut plans = BTreeMap::new();
        let mut stack: Vec<&ChildPlan> = sc.children.iter().collect();
        while let Some(p) = stack.pop() {
            plans.insert(p.name.clone(), p.clone());
            stack.extend(p.children.iter());
        }
        ScriptFactory {
            plans,
            timeouts: sc.timeouts,
            flaws: sc.flaws,
        }
    }
}

impl<P: Platform> ActorFactory<P> for ScriptFactory {
    fn boot(&self, actor: &str) -> Result<(), i32> {
        match self.plans.get(actor).map(|p| &p.behaviour) {
            Some(Behaviour::CrashesBeforeHandshake { code }) => Err(*code),
            _ => Ok(()),
        }
    }

    /// A daemon or a task as its plan says (an actor the scenario does not know is a daemon
    /// that fails to start).
    fn make(&self, env: SimEnv<P, Self>, actor: &str) -> Actor {
        let config = SupervisorConfig {
            timeouts: self.timeouts,
            flaws: self.flaws,
            ..SupervisorConfig::default()
        };
        let plan = self.plans.get(actor).cloned();
        let role = plan.as_ref().map_or(Role::Daemon, |p| p.role);
        let scripted = Box::new(Scripted {
            env,
            plan,
            config,
            nursery: None,
            served: 0,
        });
        match role {
            Role::Daemon => Actor::Daemon(scripted),
            Role::RunToResult => Actor::Task(scripted),
        }
    }
}

struct Scripted<P: Platform> {
    env: SimEnv<P, ScriptFactory>,
    plan: Option<ChildPlan>,
    config: SupervisorConfig,
    nursery: Option<Driver<SimOs<P, ScriptFactory>>>,
    /// Requests its handler has answered.
    served: u32,
}

impl<P: Platform> Scripted<P> {
    fn open_nursery(&mut self, plans: &[ChildPlan]) {
        let sup = Supervisor::new(self.config).expect("scenario timeouts are valid");
        let mut d = Driver::new(sup, self.env.nursery_os());
        let mut refused = Vec::new();
        let _ = super::spawn_and_settle(&mut d, plans, &mut refused);
        self.nursery = Some(d);
    }
}

/// Tears the actor's nursery down, first recording that its teardown began (a supervisor
/// killed while it tears down is excused by property 11's subtree check), then hands what
/// its supervisor covered to the world. (A nursery whose process is killed before it closes
/// hands in nothing: coverage is a lower bound.)
fn close_nursery<P: Platform>(
    env: &SimEnv<P, ScriptFactory>,
    d: &mut Driver<SimOs<P, ScriptFactory>>,
    cause: TeardownCause,
) {
    env.shared.begin_closing((env.process, env.thread));
    d.begin_teardown(cause);
    let _ = d.run_to_close();
    env.shared.hand_in(&d.sup.take_coverage());
}

impl<P: Platform> Scripted<P> {
    /// What its behaviour does when it starts: fail, crash, block, or open its nursery.
    fn begin(&mut self) -> Result<(), RemoteError> {
        let Some(plan) = self.plan.clone() else {
            return Err(RemoteError::new(RemoteErrorKind::Refused, "no such actor"));
        };
        let env = &self.env;
        match &plan.behaviour {
            Behaviour::CrashesAfterHandshake { code } => {
                env.exit_process(*code);
                return Err(RemoteError::new(
                    RemoteErrorKind::Panic,
                    "crashed after its handshake",
                ));
            }
            Behaviour::FailsActor { message } => {
                return Err(RemoteError::new(RemoteErrorKind::Panic, message));
            }
            Behaviour::ReportsFailureTwice { message } => {
                let err = RemoteError::new(RemoteErrorKind::Panic, message);
                env.send_raw(&Message::Failed(err.clone()).encode_fitted(DEFAULT_MAX_FRAME));
                return Err(err);
            }
            Behaviour::Blocks { ms } => {
                let until = env.now() + Duration::from_millis(*ms);
                env.actor_code(|| env.block(Some(until)));
            }
            Behaviour::BlocksForever => {
                env.actor_code(|| env.block(None));
            }
            Behaviour::LeaksChannel { hold_ms } => {
                env.spawn_helper(Duration::from_millis(*hold_ms));
                env.actor_code(|| env.block(None));
            }
            Behaviour::ClosesChannel => {
                env.close_channel();
                env.actor_code(|| env.block(None));
            }
            Behaviour::WritesOutOfTurn { message } => {
                env.send_raw(&message.message().encode_fitted(DEFAULT_MAX_FRAME));
                env.actor_code(|| ());
            }
            _ => env.actor_code(|| ()),
        }
        if !plan.children.is_empty() && env.alive() {
            self.open_nursery(&plan.children);
        }
        Ok(())
    }
}

/// How often long work (`Behaviour::Works`) asks its cancel token.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

impl<P: Platform> Scripted<P> {
    /// Long work: `ms` of it, asking `cancel` every [`CHECKPOINT_EVERY`]; `done` when it ran
    /// to its end, [`STOPPED_EARLY`] when the token said stop (or the process died under it).
    fn work(&self, ms: u64, cancel: &Cancel<'_>, done: &[u8]) -> Vec<u8> {
        let env = &self.env;
        let until = env.now() + Duration::from_millis(ms);
        loop {
            if cancel.is_cancelled() {
                return STOPPED_EARLY.to_vec();
            }
            let now = env.now();
            if now >= until {
                return done.to_vec();
            }
            let next = until.min(now + CHECKPOINT_EVERY);
            if !env.actor_code(|| env.block(Some(next))) {
                return STOPPED_EARLY.to_vec();
            }
        }
    }
}

impl<P: Platform> Task for Scripted<P> {
    fn start(&mut self, _name: &str) -> Result<(), RemoteError> {
        self.begin()
    }

    fn run(&mut self, cancel: &Cancel<'_>) -> Result<Vec<u8>, RemoteError> {
        let result = match self.plan.as_ref().map(|p| &p.behaviour) {
            Some(Behaviour::FailsMain { message }) => {
                Err(RemoteError::new(RemoteErrorKind::Error, message))
            }
            Some(&Behaviour::Works { ms }) => Ok(self.work(ms, cancel, b"done")),
            _ => Ok(b"done".to_vec()),
        };
        // A run-to-result actor's nursery belongs to its main, as a harrow-real `Nursery`
        // opened there does: it is torn down, its children cancelled and reaped, before the
        // result goes out and the child exits.
        let cause = if result.is_ok() {
            TeardownCause::BodyFinished
        } else {
            TeardownCause::BodyFailed
        };
        if let Some(mut d) = self.nursery.take() {
            close_nursery(&self.env, &mut d, cause);
        }
        result
    }
}

impl<P: Platform> Daemon for Scripted<P> {
    fn start(&mut self, _name: &str) -> Result<(), RemoteError> {
        self.begin()
    }

    fn handle(
        &mut self,
        id: RequestId,
        _payload: Vec<u8>,
        cancel: &Cancel<'_>,
    ) -> Result<Vec<u8>, RemoteError> {
        let behaviour = self.plan.as_ref().map(|p| &p.behaviour);
        if let Some(&Behaviour::Works { ms }) = behaviour {
            return Ok(self.work(ms, cancel, b"pong"));
        }
        if let Some(&Behaviour::CrashesInRequest { nth }) = behaviour
            && !self.env.is_thread
        {
            if self.served == nth {
                // Its process ends here; the loop sees it dead and runs nothing more.
                self.env.exit_process(ABORTED);
                return Err(RemoteError::new(RemoteErrorKind::Panic, "aborted"));
            }
            self.env.shared.with(|w| w.answered_before_crash.push(id));
        }
        self.served += 1;
        let fails = matches!(behaviour, Some(Behaviour::FailsRequests));
        let answer = self.env.actor_code(|| {
            if fails {
                Err(RemoteError::new(RemoteErrorKind::Error, "request failed"))
            } else {
                Ok(b"pong".to_vec())
            }
        });
        // Outside its actor code, so that a thread child's actor lock is released first.
        if let Some(Behaviour::PanicsInRequests { message }) = behaviour {
            std::panic::resume_unwind(Box::new(ScriptedPanic(message.clone())));
        }
        answer
    }

    fn supervises(&self) -> bool {
        self.nursery.is_some()
    }

    fn teardown_subtree(&mut self) {
        if let Some(d) = &mut self.nursery {
            close_nursery(&self.env, d, TeardownCause::BodyFinished);
        }
    }
}
