//! Property 11's subtree check can fail: a supervisor that leaves its nursery's children
//! behind is caught, both when it exits on its own and when its supervisor kills it before it
//! began tearing down.
//!
//! No scenario scripts such a supervisor (the scripted actors tear their nurseries down, and
//! no flaw of the catalogue breaks that), so these tests run a scenario with actors of their
//! own: the branch opens its nursery as a scripted one does, then neglects it. The same
//! scenario with the scripted branch, which tears its nursery down, holds.

use std::sync::{Arc, Mutex};

use harrow_model::actor::{Actor, Cancel, Daemon};
use harrow_model::driver::Driver;
use harrow_model::supervisor::{Supervisor, SupervisorConfig};
use harrow_model::wire::RemoteError;
use harrow_model::{RequestId, SpawnMethod};
use harrow_sim::platform::Shuttle;
use harrow_sim::scenario::{Behaviour, ChildPlan, Ending, Scenario};
use harrow_sim::sim::{
    ActorFactory, Outcome, ScriptFactory, SimEnv, SimOs, execute, execute_with, spawn_and_settle,
};

/// How the test's branch neglects its nursery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Neglect {
    /// It never tells its runtime it supervises: a cancel is acknowledged at once and the
    /// branch exits, its nursery open.
    Unreported,
    /// It tells its runtime, but when asked to tear its nursery down it stops yielding
    /// instead, until its supervisor kills it.
    Stalls,
}

/// The scripted actors, except that the actor named `branch` neglects its nursery.
struct Neglectful {
    scripts: Arc<ScriptFactory>,
    branch: String,
    children: Vec<ChildPlan>,
    neglect: Neglect,
}

impl ActorFactory<Shuttle> for Neglectful {
    fn make(&self, env: SimEnv<Shuttle, Self>, actor: &str) -> Actor {
        if actor == self.branch {
            return Actor::Daemon(Box::new(Branch {
                env,
                children: self.children.clone(),
                neglect: self.neglect,
                nursery: None,
            }));
        }
        let scripted = SimEnv {
            shared: env.shared,
            factory: self.scripts.clone(),
            process: env.process,
            thread: env.thread,
            is_thread: env.is_thread,
            actor_lock: env.actor_lock,
            ctx: env.ctx,
        };
        ActorFactory::<Shuttle>::make(&*self.scripts, scripted, actor)
    }
}

/// A daemon that opens its own nursery when it starts, then neglects it.
struct Branch {
    env: SimEnv<Shuttle, Neglectful>,
    children: Vec<ChildPlan>,
    neglect: Neglect,
    nursery: Option<Driver<SimOs<Shuttle, Neglectful>>>,
}

impl Daemon for Branch {
    fn start(&mut self, _name: &str) -> Result<(), RemoteError> {
        let sup = Supervisor::new(SupervisorConfig::default()).expect("the default config");
        let mut d = Driver::new(sup, self.env.nursery_os());
        let _ = spawn_and_settle(&mut d, &self.children, &mut Vec::new());
        self.nursery = Some(d);
        Ok(())
    }

    fn handle(
        &mut self,
        _id: RequestId,
        _payload: Vec<u8>,
        _cancel: &Cancel<'_>,
    ) -> Result<Vec<u8>, RemoteError> {
        Ok(b"pong".to_vec())
    }

    fn supervises(&self) -> bool {
        self.neglect == Neglect::Stalls && self.nursery.is_some()
    }

    fn teardown_subtree(&mut self) {
        self.env.block(None);
    }
}

/// A branch `a` (a process) whose nursery holds a process child and a thread child.
fn tree() -> Scenario {
    let leaf = |name: &str, method| ChildPlan::daemon(name, method, Behaviour::Serves);
    let branch = ChildPlan {
        children: vec![
            leaf("a1", SpawnMethod::Fork),
            leaf("a2", SpawnMethod::Thread),
        ],
        ..leaf("a", SpawnMethod::Exec)
    };
    Scenario::new("neglected-subtree", vec![branch], Ending::Finish)
}

/// The problems of each of `schedules` random shuttle executions of `run`.
fn problems_of(
    schedules: usize,
    run: impl Fn() -> Outcome + Send + Sync + 'static,
) -> Vec<Vec<String>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    let scheduler = shuttle::scheduler::RandomScheduler::new_from_seed(7, schedules);
    shuttle::Runner::new(scheduler, shuttle::Config::new()).run(move || {
        let out = run();
        seen2.lock().unwrap().push(out.problems);
    });
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), schedules, "every schedule ran");
    seen.clone()
}

/// Runs the tree with the branch neglecting its nursery as `neglect` says.
fn neglected(neglect: Neglect) -> Vec<Vec<String>> {
    problems_of(40, move || {
        let sc = tree();
        let factory = Neglectful {
            scripts: Arc::new(ScriptFactory::new(&sc)),
            branch: "a".into(),
            children: sc.children[0].children.clone(),
            neglect,
        };
        execute_with::<Shuttle, _>(&sc, factory)
    })
}

/// Asserts that some schedule broke exactly the subtree check, with `expected` (one problem
/// per child left behind), and no schedule broke anything else.
fn only_the_subtree_check(runs: &[Vec<String>], expected: &[&str]) {
    let failing: Vec<&Vec<String>> = runs.iter().filter(|p| !p.is_empty()).collect();
    assert!(
        !failing.is_empty(),
        "no schedule of {} broke property 11",
        runs.len()
    );
    for problems in failing {
        assert_eq!(problems, expected, "a schedule broke something else");
    }
}

#[test]
fn a_branch_that_exits_with_its_nursery_open_breaks_property_11() {
    only_the_subtree_check(
        &neglected(Neglect::Unreported),
        &[
            "`a1` (pid 4) outlived the nursery of `a` (pid 3), which exited without tearing it \
             down (property 11)",
            "`a2` (a thread) outlived the nursery of `a` (pid 3), which exited without tearing \
             it down (property 11)",
        ],
    );
}

#[test]
fn a_branch_killed_before_it_began_its_teardown_breaks_property_11() {
    only_the_subtree_check(
        &neglected(Neglect::Stalls),
        &[
            "`a` (pid 3) was killed by its supervisor before it began tearing its nursery \
             down: `a1` (pid 4) outlived it (property 11)",
            "`a` (pid 3) was killed by its supervisor before it began tearing its nursery \
             down: `a2` (a thread) outlived it (property 11)",
        ],
    );
}

#[test]
fn the_same_tree_with_the_scripted_branch_holds() {
    let runs = problems_of(40, || execute::<Shuttle>(&tree()));
    assert!(runs.iter().all(|p| p.is_empty()), "{runs:?}");
}
