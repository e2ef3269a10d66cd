//! Scenarios as data: the tree, each child's method and behaviour, and the environment's faults.

use std::fmt;
use std::time::Duration;

use harrow_model::policy::{Limits, Timeouts};
use harrow_model::supervisor::SupervisorConfig;
use harrow_model::wire::Role;
use harrow_model::{Flaws, SpawnMethod};
use serde::{Deserialize, Serialize};

/// What a child's actor does once started.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Behaviour {
    /// Serves requests and stops promptly when cancelled.
    Serves,
    /// Blocks without yielding for this many milliseconds, then serves.
    Blocks {
        /// How long it does not yield.
        ms: u64,
    },
    /// Blocks without yielding, forever.
    BlocksForever,
    /// Exits with this code before its handshake.
    CrashesBeforeHandshake {
        /// Its exit code.
        code: i32,
    },
    /// Exits with this code right after its handshake.
    CrashesAfterHandshake {
        /// Its exit code.
        code: i32,
    },
    /// Its main function returns this error (run-to-result children).
    FailsMain {
        /// The error text.
        message: String,
    },
    /// Every request it serves fails.
    FailsRequests,
    /// Its handler panics in the first request it serves: the caller gets the panic, then
    /// the actor has failed, its other requests are refused, and the child stops.
    PanicsInRequests {
        /// The panic's message.
        message: String,
    },
    /// Its actor fails outside any request, then the child exits.
    FailsActor {
        /// The error text.
        message: String,
    },
    /// Its actor fails outside any request and the child reports the failure twice: once
    /// written on its channel by the actor itself, behind its runtime's back, then by the
    /// runtime; then it exits. A hostile or broken child; a thread child, which has no
    /// channel descriptor of its own to write on, reports it once.
    ReportsFailureTwice {
        /// The error text.
        message: String,
    },
    /// Starts a detached helper that keeps its channel open this long, then stops yielding.
    LeaksChannel {
        /// How long the helper holds the channel.
        hold_ms: u64,
    },
    /// Answers its first `nth` requests, then its process dies in the next one's handler (an
    /// `abort`: exit by SIGABRT). A thread child cannot end its process; it answers them all.
    CrashesInRequest {
        /// How many requests it answers before the one it dies in.
        nth: u32,
    },
    /// Each request (or its main function) works this long, asking its cancel token at
    /// checkpoints; once the token says stop, the work returns at once with what it has
    /// (`stopped early`). The actor that cooperates with a cancel: it is never killed.
    Works {
        /// How long one piece of work takes when nothing stops it.
        ms: u64,
    },
    /// Once its actor starts, the actor closes its end of the channel (a daemon that closes
    /// every descriptor it did not open, say) and stops yielding: its process lives on with
    /// no channel. Its parent sees the channel's end and must stop it like a child that died,
    /// by the grace bound, though no exit comes. A thread child, which shares its parent's
    /// descriptors, closes nothing and only stops yielding.
    ClosesChannel,
    /// A hostile or broken daemon: once its actor starts, the actor writes a message on its
    /// channel itself, behind its runtime's back, that the protocol does not allow there;
    /// then it serves. Its parent must take it for the violation it is (property 20). A
    /// thread child, which has no channel descriptor of its own, writes nothing.
    WritesOutOfTurn {
        /// What it writes.
        message: OutOfTurn,
    },
}

/// A message a child writes out of turn (`Behaviour::WritesOutOfTurn`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutOfTurn {
    /// A second handshake.
    Handshake,
    /// A result, from a daemon, which has none.
    Finished,
    /// A cancel acknowledgement nobody asked for (unless it crosses a cancel on its way).
    CancelAck,
}

impl OutOfTurn {
    /// The message written.
    pub fn message(self) -> harrow_model::wire::Message {
        use harrow_model::wire::Message;
        match self {
            OutOfTurn::Handshake => Message::Handshake {
                version: harrow_model::wire::PROTOCOL_VERSION,
                pid: 0,
            },
            OutOfTurn::Finished => Message::Finished {
                result: Ok(b"out of turn".to_vec()),
            },
            OutOfTurn::CancelAck => Message::CancelAck,
        }
    }
}

impl Behaviour {
    /// Whether its actor always yields and stops when asked: its child, unless the user
    /// hard-stops it, must end without being killed or abandoned (property 16). Those that
    /// block, leak their channel, write a second failure report or any other message out of
    /// turn do not; those that crash end by themselves.
    pub fn cooperates(&self) -> bool {
        !matches!(
            self,
            Behaviour::Blocks { .. }
                | Behaviour::BlocksForever
                | Behaviour::LeaksChannel { .. }
                | Behaviour::ReportsFailureTwice { .. }
                | Behaviour::WritesOutOfTurn { .. }
                | Behaviour::ClosesChannel
        )
    }
}

/// What the payload of work that its cancel token stopped says (`Behaviour::Works`).
pub const STOPPED_EARLY: &[u8] = b"stopped early";

/// A call the user's code makes on one child while the nursery runs: from the body or from
/// another of its threads, so at any moment once the child is spawned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserAct {
    /// `cancel(child)`: it is asked to stop, and must end within `cancel_ack` plus its grace;
    /// the body waits for it to end before it ends itself (property 17).
    Cancel {
        /// Which child, by spawn order.
        child: usize,
    },
    /// `hard_stop(child)`: it is killed (or its thread abandoned) now, and ends at once; the
    /// body waits for it to end before it ends itself (property 17).
    HardStop {
        /// Which child, by spawn order.
        child: usize,
    },
    /// The caller of the first request to `child` still waiting gives it up: the request ends
    /// at once, as given up (property 14), and its late reply answers nothing (property 13).
    /// The body waits to give it up, unless every request to `child` ends first.
    GiveUp {
        /// Which child, by spawn order.
        child: usize,
    },
}

impl UserAct {
    /// The child it acts on, by spawn order.
    pub fn child(self) -> usize {
        match self {
            UserAct::Cancel { child } | UserAct::HardStop { child } | UserAct::GiveUp { child } => {
                child
            }
        }
    }
}

/// The exit status of a child that aborts (`CrashesInRequest`), as a shell reports an abort
/// (128 + SIGABRT); the simulated kernel ends a process by its own exit only.
pub const ABORTED: i32 = 134;

/// One child in the tree.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ChildPlan {
    /// Its instance name.
    pub name: String,
    /// How it is started.
    pub method: SpawnMethod,
    /// Daemon or run-to-result.
    pub role: Role,
    /// What its actor does.
    pub behaviour: Behaviour,
    /// Children it supervises itself.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<ChildPlan>,
}

impl ChildPlan {
    /// A daemon child with this behaviour.
    pub fn daemon(name: &str, method: SpawnMethod, behaviour: Behaviour) -> Self {
        ChildPlan {
            name: name.into(),
            method,
            role: Role::Daemon,
            behaviour,
            children: Vec::new(),
        }
    }

    /// A run-to-result child with this behaviour.
    pub fn run_to_result(name: &str, method: SpawnMethod, behaviour: Behaviour) -> Self {
        ChildPlan {
            name: name.into(),
            method,
            role: Role::RunToResult,
            behaviour,
            children: Vec::new(),
        }
    }
}

/// How the nursery's body ends once its children are spawned and its requests sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ending {
    /// The body returns normally.
    Finish,
    /// The body fails.
    Fail,
    /// SIGINT arrives at the root.
    Interrupt,
}

/// A fault the environment injects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// SIGKILL to the root's `child`-th child (spawn order) once it is launched.
    SigkillChild {
        /// Which child, by spawn order.
        child: usize,
    },
    /// SIGINT to the root.
    SigintRoot,
    /// The root dies (SIGKILL) without tearing down.
    ParentDeath,
    /// The root's body makes its spawns from a worker thread of its process (a thread pool's,
    /// or tokio's blocking pool's), which exits once they are made, while the nursery lives.
    SpawningThreadExits,
}

/// A whole test case: configuration, tree, body and faults.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Scenario {
    /// A short name for tables and files.
    pub name: String,
    /// The timeout policy.
    #[serde(default = "default_timeouts")]
    pub timeouts: Timeouts,
    /// Switched-on flaws.
    #[serde(default)]
    pub flaws: Flaws,
    /// The root's children, in spawn order.
    pub children: Vec<ChildPlan>,
    /// Requests the body sends to each serving daemon, all at once (pipelined).
    #[serde(default)]
    pub requests: u32,
    /// How long the caller of the first request to each daemon waits for its answer at most,
    /// in milliseconds; the others wait as long as the child lives. Past it, the request ends
    /// timed out, and its late reply must answer nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_timeout_ms: Option<u64>,
    /// How the body ends.
    pub ending: Ending,
    /// Faults the environment may inject.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<Fault>,
    /// The user's calls on single children, each made once, at any moment after the child is
    /// spawned and before the body ends.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub user: Vec<UserAct>,
    /// Whether each child process's prelude arms the parent-death signal and re-checks its
    /// parent, as the real backend's does (`real/LINUX.md`, fact 4): a process dies with its
    /// parent. Off, the platform has no such signal and an orphan has only the protocol's own
    /// defence, its self-cancel on parent EOF; the flaws that disarm that defence are shown
    /// this way.
    #[serde(default = "yes", skip_serializing_if = "is_yes")]
    pub parent_death_signal: bool,
    /// The requests one child may hold (`Limits::max_in_flight`), if not the default: the
    /// body's requests past it are refused, sending nothing (property 19).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<u32>,
    /// The retired children whose records and errors the nursery keeps (`Limits::max_ended`),
    /// if not the default: older ones are only counted (property 19).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ended: Option<u32>,
}

fn default_timeouts() -> Timeouts {
    Scenario::TIMEOUTS
}

fn yes() -> bool {
    true
}

fn is_yes(b: &bool) -> bool {
    *b
}

impl Scenario {
    /// The timeouts scenarios use unless they say otherwise: round numbers for readable traces.
    pub const TIMEOUTS: Timeouts = Timeouts {
        boot: Duration::from_millis(1000),
        cancel_ack: Duration::from_millis(500),
        kill_grace: Duration::from_millis(1600),
        thread_abandon: Duration::from_millis(3000),
        reap: Duration::from_millis(5000),
        drain: Duration::from_millis(500),
    };

    /// A scenario with default timeouts, no flaws, no requests and no faults.
    pub fn new(name: &str, children: Vec<ChildPlan>, ending: Ending) -> Self {
        Scenario {
            name: name.into(),
            timeouts: Self::TIMEOUTS,
            flaws: Flaws::NONE,
            children,
            requests: 0,
            request_timeout_ms: None,
            ending,
            faults: Vec::new(),
            user: Vec::new(),
            parent_death_signal: true,
            max_in_flight: None,
            max_ended: None,
        }
    }

    /// The root nursery's configuration: the scenario's timeouts, flaws and limits.
    pub fn config(&self) -> SupervisorConfig {
        let d = SupervisorConfig::default();
        SupervisorConfig {
            timeouts: self.timeouts,
            flaws: self.flaws,
            limits: Limits {
                max_in_flight: self.max_in_flight.unwrap_or(d.limits.max_in_flight),
                max_ended: self.max_ended.unwrap_or(d.limits.max_ended),
                ..d.limits
            },
            ..d
        }
    }

    /// Refuses a scenario whose body would wait forever by design.
    ///
    /// A clean body exit joins run-to-result children: it waits for their results as for a
    /// thread's join. A child that never returns one (and is not stopped by a fault or an
    /// error) makes that join endless, which is the user's choice, not a protocol hang.
    pub fn check(&self) -> Result<(), String> {
        let endless = |c: &ChildPlan| {
            c.role == Role::RunToResult
                && matches!(
                    c.behaviour,
                    Behaviour::BlocksForever | Behaviour::LeaksChannel { .. }
                )
        };
        // Errors that start a teardown, which cancels the join. A child that a fault SIGKILLs
        // may die before its error is out, and a death first seen once the teardown has begun
        // (its cancel sent) is not an error: its error rescues nothing.
        let killed = |i: usize| self.faults.contains(&Fault::SigkillChild { child: i });
        let errs = self.children.iter().enumerate().any(|(i, c)| {
            !killed(i)
                && matches!(
                    (&c.behaviour, c.role),
                    (Behaviour::CrashesBeforeHandshake { .. }, _)
                        | (Behaviour::FailsActor { .. }, _)
                        | (Behaviour::ReportsFailureTwice { .. }, _)
                        | (Behaviour::FailsMain { .. }, Role::RunToResult)
                        | (Behaviour::CrashesAfterHandshake { .. }, Role::RunToResult)
                        | (Behaviour::ClosesChannel, Role::RunToResult)
                )
        });
        let rescued = self.ending != Ending::Finish
            || self.faults.iter().any(|f| match *f {
                Fault::SigkillChild { child } => self
                    .children
                    .get(child)
                    .is_some_and(|c| endless(c) && c.method != SpawnMethod::Thread),
                Fault::SigintRoot | Fault::ParentDeath => true,
                Fault::SpawningThreadExits => false,
            });
        match self.children.iter().find(|c| endless(c)) {
            Some(c) if !rescued && !errs => Err(format!(
                "scenario `{}`: run-to-result child `{}` never returns, and the clean body exit \
                 joins it forever by design; end the body with an error or SIGINT, or add a fault",
                self.name, c.name
            )),
            _ => Ok(()),
        }
    }

    /// The bound on teardown once it starts: the ack timeout plus the longest grace.
    pub fn teardown_bound(&self) -> Duration {
        let grace = self
            .children
            .iter()
            .map(|c| self.timeouts.grace(c.method))
            .max();
        self.timeouts.cancel_ack + grace.unwrap_or_default()
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({} children, ending {:?})",
            self.name,
            self.children.len(),
            self.ending
        )
    }
}

/// The three canonical scenarios of the protocol, whose traces are pinned.
pub fn canonical() -> Vec<Scenario> {
    let happy = Scenario {
        requests: 1,
        ..Scenario::new(
            "happy",
            vec![ChildPlan::daemon(
                "echo",
                SpawnMethod::Fork,
                Behaviour::Serves,
            )],
            Ending::Finish,
        )
    };
    let stuck = |method: SpawnMethod| {
        Scenario::new(
            &format!("stuck-{}", method.to_string().to_lowercase()),
            vec![ChildPlan::daemon(
                "spinner",
                method,
                Behaviour::BlocksForever,
            )],
            Ending::Finish,
        )
    };
    let fail = |i: usize| Behaviour::FailsMain {
        message: format!("assert 0 in errorer{i}"),
    };
    let errorers = (0..25)
        .map(|i| ChildPlan::run_to_result(&format!("errorer{i}"), SpawnMethod::ForkServer, fail(i)))
        .collect();
    let many = Scenario::new("errorers-25", errorers, Ending::Finish);
    vec![
        happy,
        stuck(SpawnMethod::Fork),
        stuck(SpawnMethod::Thread),
        many,
    ]
}

/// loom's matrix: one or two children × every spawn method × every single fault.
pub fn loom_matrix() -> Vec<Scenario> {
    let faults: [(&str, Option<Fault>); 4] = [
        ("none", None),
        ("sigkill", Some(Fault::SigkillChild { child: 0 })),
        ("sigint", Some(Fault::SigintRoot)),
        ("parent-death", Some(Fault::ParentDeath)),
    ];
    let mut out = Vec::new();
    for method in SpawnMethod::ALL {
        for (fname, fault) in faults {
            // SIGKILL is for processes; a thread child has no pid of its own.
            if method == SpawnMethod::Thread && matches!(fault, Some(Fault::SigkillChild { .. })) {
                continue;
            }
            for n in 1..=2 {
                let lower = method.to_string().to_lowercase();
                let children = (0..n)
                    .map(|i| ChildPlan::daemon(&format!("c{i}"), method, Behaviour::Serves))
                    .collect();
                let mut sc = Scenario::new(
                    &format!("matrix-{lower}-{n}-{fname}"),
                    children,
                    Ending::Finish,
                );
                // A single child carries a request; pairs are about spawn and teardown under faults.
                sc.requests = u32::from(n == 1);
                sc.faults = fault.into_iter().collect();
                out.push(sc);
            }
        }
    }
    out
}

/// Requests inside the protocol, for every engine: a request timing out while its child is
/// killed, requests pipelined to a child that is killed mid-batch, and to one that aborts in
/// the third. Each request must end exactly once (property 14), no late reply may answer
/// another (property 13), and an answer computed before a crash must arrive (property 15).
pub fn requests() -> Vec<Scenario> {
    let times_out = Scenario {
        requests: 1,
        request_timeout_ms: Some(100),
        faults: vec![Fault::SigkillChild { child: 0 }],
        ..Scenario::new(
            "request-times-out-child-killed",
            vec![ChildPlan::daemon(
                "slow",
                SpawnMethod::Fork,
                Behaviour::Blocks { ms: 300 },
            )],
            Ending::Finish,
        )
    };
    let pipelined = Scenario {
        requests: 3,
        faults: vec![Fault::SigkillChild { child: 0 }],
        ..Scenario::new(
            "pipelined-requests-child-killed",
            vec![ChildPlan::daemon(
                "echo",
                SpawnMethod::Exec,
                Behaviour::Serves,
            )],
            Ending::Finish,
        )
    };
    let aborts = Scenario {
        requests: 3,
        ..Scenario::new(
            "pipelined-requests-child-aborts",
            vec![ChildPlan::daemon(
                "brittle",
                SpawnMethod::ForkServer,
                Behaviour::CrashesInRequest { nth: 2 },
            )],
            Ending::Finish,
        )
    };
    // Answered in time: its deadline must be disarmed, not fire later, while a busy sibling
    // holds the teardown open past it.
    let answered = Scenario {
        requests: 1,
        request_timeout_ms: Some(100),
        ..Scenario::new(
            "request-answered-before-its-deadline",
            vec![
                ChildPlan::daemon("echo", SpawnMethod::Exec, Behaviour::Serves),
                ChildPlan::daemon("busy", SpawnMethod::Fork, Behaviour::Blocks { ms: 300 }),
            ],
            Ending::Finish,
        )
    };
    vec![times_out, pipelined, aborts, answered]
}

/// The user's calls on single children, for every engine: a cancel of a child busy with long
/// work while its sibling works on, a hard stop of a child that never yields and of a thread
/// child at work, a request given up; and a run-to-result child cancelled in its main
/// function. The workers ask their cancel tokens: a cancel, the user's or the teardown's,
/// stops their work early and none of them is killed (property 16); each stop ends its child
/// within its bound (property 17), each request given up ends at once (property 14).
pub fn user() -> Vec<Scenario> {
    let works = Behaviour::Works { ms: 2000 };
    let cancel = Scenario {
        requests: 1,
        user: vec![UserAct::Cancel { child: 0 }],
        ..Scenario::new(
            "user-cancels-a-worker",
            vec![
                ChildPlan::daemon("w0", SpawnMethod::Fork, works.clone()),
                ChildPlan::daemon("w1", SpawnMethod::Exec, works.clone()),
            ],
            Ending::Finish,
        )
    };
    let hard_stop = Scenario {
        requests: 1,
        user: vec![
            UserAct::HardStop { child: 0 },
            UserAct::HardStop { child: 1 },
        ],
        ..Scenario::new(
            "user-hard-stops",
            vec![
                ChildPlan::daemon("spinner", SpawnMethod::ForkServer, Behaviour::BlocksForever),
                ChildPlan::daemon("t", SpawnMethod::Thread, works.clone()),
            ],
            Ending::Finish,
        )
    };
    let give_up = Scenario {
        requests: 2,
        user: vec![UserAct::GiveUp { child: 0 }],
        ..Scenario::new(
            "user-gives-up-a-request",
            vec![ChildPlan::daemon("w", SpawnMethod::Exec, works.clone())],
            Ending::Finish,
        )
    };
    let main = Scenario {
        user: vec![UserAct::Cancel { child: 0 }],
        ..Scenario::new(
            "user-cancels-a-main",
            vec![ChildPlan::run_to_result("m", SpawnMethod::Thread, works)],
            Ending::Finish,
        )
    };
    vec![cancel, hard_stop, give_up, main]
}

/// The nursery's bounds and accounts, for every engine: requests past a child's limit,
/// refused exactly there (one child answers at once, the other is busy); and a window of
/// retired records smaller than the nursery, whose dropped records' errors must still be
/// counted, with a body that fails after a child's failure began the teardown, whose cause
/// must stay that first failure (property 19).
pub fn limits() -> Vec<Scenario> {
    let request_limit = Scenario {
        requests: 3,
        max_in_flight: Some(2),
        ..Scenario::new(
            "request-limit",
            vec![
                ChildPlan::daemon("echo", SpawnMethod::Exec, Behaviour::Serves),
                ChildPlan::daemon("slow", SpawnMethod::Fork, Behaviour::Blocks { ms: 300 }),
            ],
            Ending::Finish,
        )
    };
    let window = Scenario {
        requests: 1,
        max_ended: Some(1),
        ..Scenario::new(
            "ended-window",
            vec![
                ChildPlan::daemon(
                    "fails",
                    SpawnMethod::Fork,
                    Behaviour::FailsActor {
                        message: "bad state".into(),
                    },
                ),
                ChildPlan::daemon(
                    "crashes",
                    SpawnMethod::Exec,
                    Behaviour::CrashesAfterHandshake { code: 3 },
                ),
                ChildPlan::daemon("t", SpawnMethod::Thread, Behaviour::FailsRequests),
            ],
            Ending::Fail,
        )
    };
    vec![request_limit, window]
}

/// Hostile children, for every engine: a daemon whose actor writes a message out of turn on
/// its channel (a second handshake, a result, an unasked cancel ack), beside a thread
/// sibling that serves. Each must be reported as a protocol violation when its parent reads
/// it out of turn (property 20), and stopped like any failed child. And a run-to-result
/// child whose actor closes its channel and lives on: the body's join of its result must
/// end (a hang otherwise), by the grace bound and a kill.
pub fn out_of_turn() -> Vec<Scenario> {
    let one = |name: &str, method: SpawnMethod, message: OutOfTurn| Scenario {
        requests: 1,
        ..Scenario::new(
            name,
            vec![
                ChildPlan::daemon("rogue", method, Behaviour::WritesOutOfTurn { message }),
                ChildPlan::daemon("t", SpawnMethod::Thread, Behaviour::Serves),
            ],
            Ending::Finish,
        )
    };
    // Its channel ends, its process does not: the body's join of its result must still end,
    // by the grace bound and a kill.
    let closes = Scenario::new(
        "main-closes-its-channel",
        vec![
            ChildPlan::run_to_result("rogue", SpawnMethod::Exec, Behaviour::ClosesChannel),
            ChildPlan::daemon("t", SpawnMethod::Thread, Behaviour::Serves),
        ],
        Ending::Finish,
    );
    vec![
        one("second-handshake", SpawnMethod::Fork, OutOfTurn::Handshake),
        one(
            "daemon-sends-a-result",
            SpawnMethod::Exec,
            OutOfTurn::Finished,
        ),
        one(
            "unasked-cancel-ack",
            SpawnMethod::ForkServer,
            OutOfTurn::CancelAck,
        ),
        closes,
    ]
}

/// shuttle's large scenarios: a 25-child nursery of mixed behaviours, and three-level trees.
pub fn large() -> Vec<Scenario> {
    let methods = [
        SpawnMethod::Exec,
        SpawnMethod::ForkServer,
        SpawnMethod::Thread,
    ];
    let behaviours = [
        Behaviour::Serves,
        Behaviour::Blocks { ms: 300 },
        Behaviour::BlocksForever,
        Behaviour::FailsRequests,
        Behaviour::Serves,
    ];
    let children = (0..25)
        .map(|i| ChildPlan::daemon(&format!("n{i}"), methods[i % 3], behaviours[i % 5].clone()))
        .collect();
    let mut nursery = Scenario::new("nursery-25", children, Ending::Fail);
    nursery.requests = 1;
    let leaf = |name: &str, method| ChildPlan::daemon(name, method, Behaviour::Serves);
    let branch = |name: &str, method, kids: Vec<ChildPlan>| ChildPlan {
        children: kids,
        ..leaf(name, method)
    };
    let tree = |name: &str, ending: Ending, faults: Vec<Fault>| Scenario {
        faults,
        ..Scenario::new(
            name,
            vec![
                branch(
                    "a",
                    SpawnMethod::ForkServer,
                    vec![leaf("a1", SpawnMethod::Fork), leaf("a2", SpawnMethod::Exec)],
                ),
                branch(
                    "b",
                    SpawnMethod::Exec,
                    vec![
                        leaf("b1", SpawnMethod::Thread),
                        leaf("b2", SpawnMethod::ForkServer),
                    ],
                ),
            ],
            ending,
        )
    };
    vec![
        nursery,
        tree("tree-3", Ending::Finish, vec![]),
        tree("tree-3-sigint", Ending::Interrupt, vec![]),
        tree(
            "tree-3-parent-death",
            Ending::Finish,
            vec![Fault::ParentDeath],
        ),
    ]
}
