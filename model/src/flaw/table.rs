//! The one table of flaws: everything said about each flaw, in catalogue order.
//!
//! Everything else is derived from it: [`Flaw::ALL`](super::Flaw::ALL), the slugs, the
//! postmortems, the corpus's one-line descriptions, the checkers' list of which engine must
//! find which flaw in which scenario, and `model/FLAWS.md` (rendered by
//! `harrow flaws --markdown`). Adding a flaw is one [`Flaw`] variant (its switch) and one
//! entry here, at the index of its variant.
//!
//! The engines and scenarios are named as plain data: the model does not run any checker.

use super::Flaw;

/// A checking engine that must find a flaw. The engines live in `harrow-sim`; here they are
/// only names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Engine {
    /// loom: every interleaving of the simulated operating system, preemption-bounded.
    Loom,
    /// shuttle: sampled schedules (random, then PCT) of the simulated operating system.
    Shuttle,
    /// The explicit-state search: breadth-first over every state of the pure world.
    Explicit,
}

impl Engine {
    /// Every engine.
    pub const ALL: [Engine; 3] = [Engine::Loom, Engine::Shuttle, Engine::Explicit];

    /// Its lower-case name, as `harrow check --engine` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Loom => "loom",
            Engine::Shuttle => "shuttle",
            Engine::Explicit => "explicit",
        }
    }
}

/// Everything said about one flaw.
#[derive(Clone, Copy, Debug)]
pub struct Entry {
    /// The switch.
    pub flaw: Flaw,
    /// A short kebab-case name; the flaw's scenario is `f<number>-<slug>`.
    pub slug: &'static str,
    /// What the switch does, in one line.
    pub title: &'static str,
    /// The tractor bug it re-creates: its class and, in brackets, its nickname.
    pub tractor: &'static str,
    /// The properties of `model/PROPERTIES.md` it breaks, by number.
    pub breaks: &'static [u8],
    /// What goes wrong with the switch on.
    pub bug: &'static str,
    /// What the shipped protocol does instead, and why that works.
    pub fix: &'static str,
    /// The engines that must find it.
    pub engines: &'static [Engine],
    /// The smallest scenario that shows it, by the name of its shape in `harrow-sim`'s
    /// `flaws` module.
    pub scenario: &'static str,
}

use Engine::{Explicit, Loom, Shuttle};

/// Every flaw, F1 first; entry `i` is flaw number `i + 1`.
pub const TABLE: [Entry; 18] = [
    Entry {
        flaw: Flaw::NoChannelAbortOnAbandon,
        slug: "no-channel-abort-on-abandon",
        title: "abandoning a thread child leaves our end of its channel open",
        tractor: "H2 (cancel-delivery hang)",
        breaks: &[9],
        bug: "A thread child that never checkpoints is abandoned after its join timeout, but the \
              parent's channel to it stays open, and the parent task reading that channel waits \
              for an end-of-file that only the abandoned thread could cause.",
        fix: "Abandoning a thread child closes our end of its channel in the same transition, \
              so no reader of ours depends on the abandoned thread ever closing its end.",
        engines: &[Loom, Shuttle, Explicit],
        scenario: "thread-never-yields",
    },
    Entry {
        flaw: Flaw::DestroyBeforeJoin,
        slug: "destroy-before-join",
        title: "a thread child's context is destroyed before its thread is joined",
        tractor: "H3 (destroy race)",
        breaks: &[4],
        bug: "A subinterpreter was destroyed, and its thread state recycled, while its driver \
              thread still ran; the thread's late write landed in state that by then belonged \
              to another child.",
        fix: "A thread child's context is freed only by the join. An abandoned thread's context \
              is leaked on purpose and counted in the teardown report.",
        engines: &[Loom, Shuttle],
        scenario: "thread-slow",
    },
    Entry {
        flaw: Flaw::ForkFromBusyProcess,
        slug: "fork-from-busy-process",
        title: "`Fork` is allowed from a multi-threaded process",
        tractor: "H4 (fork from a busy interpreter)",
        breaks: &[7],
        bug: "fork() from a process with other threads copies the locks they hold into a child \
              that has no thread to release them; the child wedges before its handshake.",
        fix: "Plain `Fork` is refused in a multi-threaded process with an error that names \
              `ForkServer`, whose single-threaded server forks safely.",
        engines: &[Shuttle, Explicit],
        scenario: "thread-beside-fork",
    },
    Entry {
        flaw: Flaw::MutualWaitAtTeardown,
        slug: "mutual-wait-at-teardown",
        title: "the child waits for the parent's end-of-file to exit; the parent closes only \
                after the exit",
        tractor: "H7 (mutual wait at teardown)",
        breaks: &[8, 9],
        bug: "The child's parent-channel loop ends only on end-of-file, while the parent waits \
              for the child to exit before closing its end: each waits for the other.",
        fix: "The child exits right after its cancel-ack without waiting for end-of-file; the \
              parent closes its end on the ack and bounds its wait for the exit by the kill \
              grace.",
        engines: &[Loom, Shuttle, Explicit],
        scenario: "fork-serves",
    },
    Entry {
        flaw: Flaw::KillAndReapByPid,
        slug: "kill-and-reap-by-pid",
        title: "kill and reap by raw pid, with a second reaper",
        tractor: "H8 (double reap)",
        breaks: &[3],
        bug: "poll() and wait() both reaped the same pid, and a kill by raw pid after the reap \
              could hit an unrelated process that had been given the same pid.",
        fix: "A pidfd is opened at spawn; signals and the single reap go through it, so a late \
              signal gets ESRCH instead of reaching a bystander.",
        engines: &[Loom, Shuttle, Explicit],
        scenario: "fork-slow",
    },
    Entry {
        flaw: Flaw::NoFdScrub,
        slug: "no-fd-scrub",
        title: "a forked child keeps every inherited descriptor",
        tractor: "H9 (inherited file descriptors)",
        breaks: &[9, 11],
        bug: "Forked children inherited every descriptor, their siblings' channel ends and their \
              own parent-side end among them, so an end-of-file that should have woken a reader \
              never came.",
        fix: "The forked child moves its channel to a fixed descriptor and closes every other \
              inherited one before it runs any runtime code.",
        engines: &[Loom, Shuttle, Explicit],
        scenario: "fork-serves-parent-dies",
    },
    Entry {
        flaw: Flaw::UnboundedPeerDrain,
        slug: "unbounded-peer-drain",
        title: "draining a child's channel waits for end-of-file with no deadline",
        tractor: "H11 (unbounded peer-clear)",
        breaks: &[8],
        bug: "Teardown waited for every peer channel to close with no deadline, so one stuck \
              peer held everyone.",
        fix: "After a child exits, its channel is drained for late messages only until the \
              drain deadline; then our end is closed.",
        engines: &[Shuttle, Explicit],
        scenario: "fork-leaks-channel",
    },
    Entry {
        flaw: Flaw::NoHandshakeOrDeathRace,
        slug: "no-handshake-or-death-race",
        title: "the handshake wait ignores the child's death and has no boot timeout",
        tractor: "H12 (boot death)",
        breaks: &[7],
        bug: "A child died before its handshake, and the parent waited for the handshake \
              forever.",
        fix: "The handshake wait also ends on the child's exit (a boot failure carrying its \
              status) and on the boot timeout.",
        engines: &[Loom, Shuttle, Explicit],
        scenario: "fork-dies-at-boot",
    },
    Entry {
        flaw: Flaw::NoEscalation,
        slug: "no-escalation",
        title: "a cancel-ack timeout leads to nothing; the child is never killed",
        tractor: "H13 (cancel-ack timeout without escalation)",
        breaks: &[8],
        bug: "When the cancel-ack timed out, the parent logged it and went on waiting for a \
              child that would never exit.",
        fix: "An ack timeout escalates at once to SIGKILL, or to abandonment for a thread child.",
        engines: &[Loom, Shuttle, Explicit],
        scenario: "fork-never-yields",
    },
    Entry {
        flaw: Flaw::SerialTeardown,
        slug: "serial-teardown",
        title: "children are cancelled one after another",
        tractor: "L2 (parallel bound)",
        breaks: &[8],
        bug: "Cancelling children one after another makes the teardown of N stuck children \
              cost N timeouts.",
        fix: "Every cancel goes out in one step and all of them share one deadline, so N \
              children cost one timeout.",
        engines: &[Shuttle, Explicit],
        scenario: "three-exec-never-yield",
    },
    Entry {
        flaw: Flaw::DroppedWakeups,
        slug: "dropped-wakeups",
        title: "the signal self-pipe is read before the pending flags, so a wakeup can be lost",
        tractor: "H1 (SIGINT starvation)",
        breaks: &[10],
        bug: "A wakeup byte written to a full self-pipe is dropped, and a reader that checks the \
              flags before draining the pipe misses a signal that arrives between the two.",
        fix: "Signals are level flags and the pipe only wakes: the reader drains the pipe first, \
              then takes every flag.",
        engines: &[Loom, Shuttle],
        scenario: "thread-quick-sigint",
    },
    Entry {
        flaw: Flaw::ControlPathSharesLock,
        slug: "control-path-shares-lock",
        title: "the event loop takes a lock that thread actors also hold",
        tractor: "H1 (SIGINT starvation)",
        breaks: &[10],
        bug: "An abandoned subinterpreter kept the shared interpreter lock, and the event loop \
              that had to handle SIGINT starved behind it.",
        fix: "The control path takes no lock that actor threads hold, so an abandoned thread \
              cannot stall it.",
        engines: &[Shuttle],
        scenario: "thread-never-yields-sigint",
    },
    Entry {
        flaw: Flaw::NoDeregistrationOnKill,
        slug: "no-deregistration-on-kill",
        title: "a killed or abandoned child stays in the name registry",
        tractor: "H6 (stale registry entries)",
        breaks: &[6],
        bug: "A killed child's name stayed in the registry, and lookups returned a dead actor.",
        fix: "A child is deregistered in the very transition that kills, abandons or reaps it.",
        engines: &[Loom, Shuttle, Explicit],
        scenario: "fork-never-yields",
    },
    Entry {
        flaw: Flaw::NoSelfCancelOnParentEof,
        slug: "no-self-cancel-on-parent-eof",
        title: "a child whose parent channel reaches end-of-file keeps serving",
        tractor: "L8 (orphans)",
        breaks: &[11],
        bug: "A child whose parent died kept serving forever: nothing in the protocol told it \
              to stop.",
        fix: "End-of-file on the parent channel without a cancel before it means the parent is \
              gone, and the child cancels itself.",
        engines: &[Shuttle, Explicit],
        scenario: "orphan-serves",
    },
    Entry {
        flaw: Flaw::AcceptEveryFailure,
        slug: "accept-every-failure",
        title: "every `Failed` report a child sends is accepted and kept",
        tractor: "none: found in harrow by a hostile child (issue #14, fault 3)",
        breaks: &[5],
        bug: "A child reports its own failure with `Failed`, and the parent kept every one, in \
              every phase: a child that sent them in a loop grew its parent's errors, report \
              and memory without bound (1,000 frames of 256 KiB grew the parent by 751 MiB), \
              and the per-step checks over that many errors stretched a teardown past its \
              bound.",
        fix: "A child fails once. The first `Failed` is its error; a second is a protocol \
              violation (`SecondFailure`), which closes the channel, so nothing more from that \
              child is read or kept.",
        engines: &[Loom, Shuttle, Explicit],
        scenario: "exec-reports-failure-twice",
    },
    Entry {
        flaw: Flaw::SpawnFromCallersThread,
        slug: "spawn-from-callers-thread",
        title: "children are launched by the thread that called spawn, which may exit while \
                the nursery lives",
        tractor: "none: found in harrow by spawning from a thread pool (issue #14, fault 2)",
        breaks: &[12],
        bug: "Linux sends a child's parent-death signal (`PR_SET_PDEATHSIG`) when the thread \
              that forked it exits, not only when its parent process dies. An `Exec` child \
              spawned from a worker thread (a thread pool's, tokio's blocking pool, which \
              retires idle threads) was SIGKILLed when that thread ended; its supervisor saw \
              an exit by signal 9, blamed the child, and cancelled the whole nursery.",
        fix: "Only a thread that outlives the child launches it: the main thread, which lives \
              as long as the process, or harrow's spawner thread, which runs while some \
              nursery needs it and dies with the process, so the signal still fires when the \
              parent process dies.",
        engines: &[Loom, Shuttle, Explicit],
        scenario: "exec-spawned-by-a-worker",
    },
    Entry {
        flaw: Flaw::LateReplyAnswersLaterRequest,
        slug: "late-reply-answers-later-request",
        title: "a reply is matched to the oldest request still waiting, not by its id",
        tractor: "none: the hazard of any request channel whose callers may give up (issue #10)",
        breaks: &[13],
        bug: "A caller whose request timed out (or who gave it up) stops waiting, but the \
              child still answers it. A parent that hands each reply to the oldest request \
              still waiting gives that late reply to the next caller, who takes another \
              request's answer for its own; every answer after it is off by one.",
        fix: "Replies are matched by request id only. A request that timed out or was given \
              up stays in flight, counted against `max_in_flight`, until its late reply comes \
              and is dropped, or its child's channel ends; no reply can answer another \
              request.",
        engines: &[Loom, Shuttle, Explicit],
        scenario: "fork-slow-request-gives-up",
    },
    Entry {
        flaw: Flaw::RepliesQueuedBehindLaterWork,
        slug: "replies-queued-behind-later-work",
        title: "a child starts every pipelined request at once, so a reply waits behind the \
                next request's work",
        tractor: "none: found in harrow by pipelining requests to a handler that aborts \
                  (issue #10)",
        breaks: &[15],
        bug: "The child runtime turned each request it accepted into a start command at once. \
              Its driver runs a request's work inline, so a pipelined batch left the starts of \
              the later requests ahead of the reply of the one that had just finished: the \
              reply went out only after every later handler had run. A handler that aborted \
              its process in the fourth request took the three replies already computed with \
              it, and their callers saw their child's death instead of their answers.",
        fix: "The runtime queues accepted requests itself and starts the next one only when \
              the work before it has finished, after that work's reply is among its commands: \
              each answer computed is sent before any later request begins.",
        engines: &[Loom, Shuttle, Explicit],
        scenario: "exec-crashes-mid-batch",
    },
];

/// Every entry sits at its flaw's index; checked when the crate compiles.
const _: () = {
    let mut i = 0;
    while i < TABLE.len() {
        assert!(TABLE[i].flaw as usize == i, "TABLE is in catalogue order");
        i += 1;
    }
};
