//! The fork server: a re-executed copy of this test binary forks children on request.
//!
//! How the server runs: this file has its own `main` (`harness = false`). In the process that
//! `ForkServer::start` re-executes, `sys::inherited_role()` is `Some("fork-server")`, and
//! `main` serves with [`run_child`] as the children's body instead of running the tests.
//! Every test starts its own server; the harness checks that no child and no descriptor of
//! the test process outlives it.

mod common;

use std::os::fd::{AsFd, OwnedFd};
use std::process::ExitCode;
use std::sync::{Mutex, mpsc};
use std::time::{Duration, Instant};

use common::{MUST, MUST_NOT, Test, encode_fds, expected_child_fds, recv_fds, recv_n, send};
use harrow_real::forkserver::{ForkServer, ForkServerError, MAX_ACTOR_LEN, ROLE, Request, serve};
use harrow_real::sys::{
    self, ExitStatus, Pid, Pidfd, Prelude, ReapOutcome, Signal, SignalOutcome,
    adopt_inherited_channel, channel_pair, fork_child, inherited_role,
};

fn main() -> ExitCode {
    if inherited_role().as_deref() == Some(ROLE) {
        let control = adopt_inherited_channel().expect("adopt the fork server's control socket");
        serve(control, run_child);
    }
    common::main(&[
        Test {
            name: "a_served_child_runs_and_its_exit_code_comes_back_through_reap",
            run: a_served_child_runs_and_its_exit_code_comes_back_through_reap,
        },
        Test {
            name: "a_served_child_has_only_stdio_and_its_channel",
            run: a_served_child_has_only_stdio_and_its_channel,
        },
        Test {
            name: "a_served_child_has_no_caught_ignored_or_blocked_signal",
            run: a_served_child_has_no_caught_ignored_or_blocked_signal,
        },
        Test {
            name: "the_passed_pidfd_kills_the_child_and_signals_its_exit",
            run: the_passed_pidfd_kills_the_child_and_signals_its_exit,
        },
        Test {
            name: "two_children_do_not_hold_each_others_channel_ends",
            run: two_children_do_not_hold_each_others_channel_ends,
        },
        Test {
            name: "shutdown_kills_the_children_and_their_groups_then_the_server_exits_0",
            run: shutdown_kills_the_children_and_their_groups_then_the_server_exits_0,
        },
        Test {
            name: "dropping_the_client_ends_the_server_and_its_children",
            run: dropping_the_client_ends_the_server_and_its_children,
        },
        Test {
            name: "a_stopped_server_is_a_timeout_not_a_hang",
            run: a_stopped_server_is_a_timeout_not_a_hang,
        },
        Test {
            name: "a_server_that_dies_mid_request_is_a_typed_error",
            run: a_server_that_dies_mid_request_is_a_typed_error,
        },
        Test {
            name: "bad_names_and_unknown_pids_are_refused_without_breaking_the_client",
            run: bad_names_and_unknown_pids_are_refused_without_breaking_the_client,
        },
        Test {
            name: "start_works_from_a_multi_threaded_process",
            run: start_works_from_a_multi_threaded_process,
        },
        Test {
            name: "the_server_outlives_the_thread_that_started_it",
            run: the_server_outlives_the_thread_that_started_it,
        },
        Test {
            name: "bug_forkserver_outlives_killed_client",
            run: bug_forkserver_outlives_killed_client,
        },
        Test {
            name: "bug_forkserver_drop_blocks_past_timeouts",
            run: bug_forkserver_drop_blocks_past_timeouts,
        },
    ])
}

/// The children's body in the served process (its parent, the server, is single-threaded, so
/// it may allocate):
/// - `exit:N`: writes `b`, exits N;
/// - `wait`: writes `r`, exits 0 at end of stream;
/// - `fds`: reports its open descriptors, exits 0 at end of stream;
/// - `grandchild`: starts `sleep 60` (in the child's process group), reports its pid (4 bytes),
///   at end of stream stops it and exits 0.
fn run_child(actor: &str, channel: OwnedFd) -> i32 {
    if let Some(code) = actor.strip_prefix("exit:") {
        send(channel.as_fd(), b"b");
        return code.parse().unwrap_or(98);
    }
    match actor {
        "wait" => send(channel.as_fd(), b"r"),
        "signals" => {
            let masks = ["SigCgt:", "SigIgn:", "SigBlk:"].map(common::status_mask);
            let report: Vec<u8> = masks.iter().flat_map(|m| m.to_le_bytes()).collect();
            send(channel.as_fd(), &report);
        }
        "fds" => {
            let mut fds = [0; 64];
            let n = sys::list_open_fds(&mut fds).expect("list descriptors");
            send(channel.as_fd(), &encode_fds(&fds[..n]));
        }
        "grandchild" => {
            // The channel stays ours: `sleep` must not hold our end of stream.
            rustix::io::fcntl_setfd(&channel, rustix::io::FdFlags::CLOEXEC).expect("cloexec");
            let mut sleeper = std::process::Command::new("sleep")
                .arg("60")
                .spawn()
                .expect("spawn sleep");
            send(channel.as_fd(), &(sleeper.id() as i32).to_le_bytes());
            let code = common::exit_at_eof(channel);
            // Reached only on a graceful end; a killed child leaves `sleep` to the group kill.
            let _ = sleeper.kill();
            let _ = sleeper.wait();
            return code;
        }
        _ => return 99,
    }
    common::exit_at_eof(channel)
}

/// Waits up to [`MUST`] for a served child to exit (its pidfd turns readable).
fn await_exit(pidfd: &Pidfd) {
    assert!(
        pidfd.wait_exited(Some(MUST)).unwrap(),
        "a served child did not exit within {MUST:?}"
    );
}

/// A second handle on `pidfd`, to look at a process after its owner is gone.
fn dup(pidfd: &Pidfd) -> Pidfd {
    Pidfd::from_owned(pidfd.as_fd().try_clone_to_owned().unwrap())
}

/// Shuts `server` down and asserts that it cleaned up and exited 0.
fn shut(server: ForkServer) {
    assert_eq!(server.shutdown().unwrap(), ExitStatus::Exited(0));
}

/// The child runs `run_child` with its channel, and its exit code comes back through
/// `reap`, once; a second reap is refused locally.
fn a_served_child_runs_and_its_exit_code_comes_back_through_reap() {
    let mut server = ForkServer::start().unwrap();
    let child = server.spawn("exit:7").unwrap();
    assert_eq!(recv_n(child.channel.as_fd(), 1), b"b");
    await_exit(&child.pidfd);
    assert_eq!(server.reap(child.pid).unwrap(), ExitStatus::Exited(7));
    assert_eq!(server.live_children(), 0);
    let err = server.reap(child.pid).unwrap_err();
    assert!(matches!(err, ForkServerError::UnknownChild { .. }), "{err}");
    assert!(server.is_usable());
    shut(server);
}

/// The scrub ran in the served child: stdio and its channel at 3, nothing of the server's
/// (its control socket, other children's pidfds) and nothing of ours.
fn a_served_child_has_only_stdio_and_its_channel() {
    let mut server = ForkServer::start().unwrap();
    let first = server.spawn("wait").unwrap();
    let child = server.spawn("fds").unwrap();
    assert_eq!(recv_n(first.channel.as_fd(), 1), b"r");
    assert_eq!(recv_fds(child.channel.as_fd()), expected_child_fds());
    for c in [first, child] {
        drop(c.channel);
        await_exit(&c.pidfd);
        assert_eq!(server.reap(c.pid).unwrap(), ExitStatus::Exited(0));
    }
    shut(server);
}

/// The server resets its own signal state once (std ignores SIGPIPE and catches SIGSEGV and
/// SIGBUS in every Rust program) so that its children, which skip the prelude's reset,
/// start with no caught, ignored or blocked signal, exactly like a forked child.
fn a_served_child_has_no_caught_ignored_or_blocked_signal() {
    let mut server = ForkServer::start().unwrap();
    let child = server.spawn("signals").unwrap();
    let report = recv_n(child.channel.as_fd(), 24);
    // glibc reserves signals 32 and 33 for itself and refuses to change them: not ours.
    let glibc_reserved = (1u64 << 31) | (1 << 32);
    let masks: Vec<u64> = report
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()) & !glibc_reserved)
        .collect();
    assert_eq!(masks, [0, 0, 0], "caught, ignored, blocked");
    drop(child.channel);
    await_exit(&child.pidfd);
    assert_eq!(server.reap(child.pid).unwrap(), ExitStatus::Exited(0));
    shut(server);
}

/// The client is not the parent, yet the passed pidfd signals the child and turns readable at
/// its exit; before the exit a reap says running; after the server's reap the pidfd answers
/// "gone", so it can never reach a process that inherits the pid.
fn the_passed_pidfd_kills_the_child_and_signals_its_exit() {
    let mut server = ForkServer::start().unwrap();
    let child = server.spawn("wait").unwrap();
    assert_eq!(recv_n(child.channel.as_fd(), 1), b"r");
    assert!(!child.pidfd.wait_exited(Some(MUST_NOT)).unwrap());
    assert_eq!(server.try_reap(child.pid).unwrap(), ReapOutcome::Running);
    assert_eq!(
        child.pidfd.send_signal(Signal::KILL).unwrap(),
        SignalOutcome::Delivered
    );
    await_exit(&child.pidfd);
    // The leader is a zombie, not reaped: its group can still be named safely.
    let _ = server.kill_group(child.pid).unwrap();
    assert_eq!(
        server.reap(child.pid).unwrap(),
        ExitStatus::Signaled(libc::SIGKILL)
    );
    assert_eq!(
        child.pidfd.send_signal(Signal::KILL).unwrap(),
        SignalOutcome::Gone
    );
    let err = server.kill_group(child.pid).unwrap_err();
    assert!(matches!(err, ForkServerError::UnknownChild { .. }), "{err}");
    shut(server);
}

/// Closing A's channel ends A while B lives: neither the server nor B kept A's end.
fn two_children_do_not_hold_each_others_channel_ends() {
    let mut server = ForkServer::start().unwrap();
    let a = server.spawn("wait").unwrap();
    let b = server.spawn("wait").unwrap();
    assert_eq!(recv_n(a.channel.as_fd(), 1), b"r");
    assert_eq!(recv_n(b.channel.as_fd(), 1), b"r");
    drop(a.channel);
    await_exit(&a.pidfd);
    assert!(
        !b.pidfd.wait_exited(Some(MUST_NOT)).unwrap(),
        "B ended with A's end of stream"
    );
    assert_eq!(server.reap(a.pid).unwrap(), ExitStatus::Exited(0));
    drop(b.channel);
    await_exit(&b.pidfd);
    assert_eq!(server.reap(b.pid).unwrap(), ExitStatus::Exited(0));
    shut(server);
}

/// Makes this process the subreaper of its orphaned descendants until dropped.
struct Subreaper;

impl Subreaper {
    fn on() -> Subreaper {
        rustix::process::set_child_subreaper(Some(rustix::process::getpid())).unwrap();
        Subreaper
    }
}

impl Drop for Subreaper {
    fn drop(&mut self) {
        rustix::process::set_child_subreaper(None).unwrap();
    }
}

/// With our channel ends still open (so no child ends by itself), closing the control socket
/// makes the server kill every child and its process group, reap them, and exit 0.
///
/// The grandchild (`sleep`, no parent-death signal) dies only through the group kill. We are
/// its subreaper for the test, so it is reparented to us and reaped here, not left to init.
fn shutdown_kills_the_children_and_their_groups_then_the_server_exits_0() {
    let _subreaper = Subreaper::on();
    let mut server = ForkServer::start().unwrap();
    let waiter = server.spawn("wait").unwrap();
    let parent = server.spawn("grandchild").unwrap();
    assert_eq!(recv_n(waiter.channel.as_fd(), 1), b"r");
    let raw = i32::from_le_bytes(recv_n(parent.channel.as_fd(), 4).try_into().unwrap());
    // Not our child yet, but alive (it sleeps) while we open its pidfd: the pid is its own.
    let grandchild = Pidfd::open(Pid::from_raw(raw).unwrap()).unwrap();
    assert!(!grandchild.wait_exited(Some(Duration::ZERO)).unwrap());

    shut(server);
    for child in [&waiter, &parent] {
        assert!(child.pidfd.wait_exited(Some(Duration::ZERO)).unwrap());
        assert_eq!(
            child.pidfd.send_signal(Signal::KILL).unwrap(),
            SignalOutcome::Gone,
            "the server reaped child {} before it exited",
            child.pid
        );
    }
    assert!(
        grandchild.wait_exited(Some(MUST)).unwrap(),
        "the grandchild in the child's process group survived"
    );
    // Its parent is reaped, so it was reparented to us: reap it.
    assert_eq!(
        grandchild.reap_blocking().unwrap(),
        ExitStatus::Signaled(libc::SIGKILL)
    );
}

/// Dropping the client (no shutdown call) ends the server and its children too.
fn dropping_the_client_ends_the_server_and_its_children() {
    let mut server = ForkServer::start().unwrap();
    let child = server.spawn("wait").unwrap();
    assert_eq!(recv_n(child.channel.as_fd(), 1), b"r");
    let server_pidfd = dup(server.server_pidfd());
    drop(server);
    assert_eq!(
        server_pidfd.send_signal(Signal::KILL).unwrap(),
        SignalOutcome::Gone,
        "the drop reaped the server"
    );
    assert_eq!(
        child.pidfd.send_signal(Signal::KILL).unwrap(),
        SignalOutcome::Gone
    );
}

/// A stopped server answers nothing: the spawn fails with `Unresponsive` after the timeout,
/// every later call is `Broken`, and the drop still ends the server.
fn a_stopped_server_is_a_timeout_not_a_hang() {
    let timeout = Duration::from_millis(300);
    let mut server = ForkServer::start_with_timeout(timeout).unwrap();
    let server_pidfd = dup(server.server_pidfd());
    let _ = server_pidfd.send_signal(Signal::STOP).unwrap();
    let began = Instant::now();
    let err = server.spawn("exit:0").unwrap_err();
    let took = began.elapsed();
    assert!(
        matches!(
            err,
            ForkServerError::Unresponsive {
                request: Request::Spawn,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        took >= timeout && took < timeout * 5,
        "timed out after {took:?}"
    );
    assert!(err.to_string().contains("drop this ForkServer"), "{err}");
    assert!(!server.is_usable());
    let err = server.spawn("exit:0").unwrap_err();
    assert!(matches!(err, ForkServerError::Broken { .. }), "{err}");
    drop(server);
    assert_eq!(
        server_pidfd.send_signal(Signal::KILL).unwrap(),
        SignalOutcome::Gone
    );
}

/// The server takes the request and dies before replying: `ServerGone` with its status,
/// promptly (not after the 5 s timeout); a server dead before the request: `ServerGone` too.
fn a_server_that_dies_mid_request_is_a_typed_error() {
    let mut server = ForkServer::start().unwrap();
    let killer = dup(server.server_pidfd());
    // Stopped, it cannot answer; killed 200 ms into the request, it closes the socket.
    let _ = killer.send_signal(Signal::STOP).unwrap();
    let thread = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        let _ = killer.send_signal(Signal::KILL).unwrap();
    });
    let began = Instant::now();
    let err = server.spawn("exit:0").unwrap_err();
    assert!(
        began.elapsed() < server.timeout(),
        "took {:?}",
        began.elapsed()
    );
    let ForkServerError::ServerGone { request, status } = err else {
        panic!("{err}")
    };
    assert_eq!(request, Request::Spawn);
    assert_eq!(status, Some(ExitStatus::Signaled(libc::SIGKILL)));
    thread.join().unwrap();
    drop(server);

    let mut server = ForkServer::start().unwrap();
    let _ = server.server_pidfd().send_signal(Signal::KILL).unwrap();
    assert!(server.server_pidfd().wait_exited(Some(MUST)).unwrap());
    let err = server.spawn("exit:0").unwrap_err();
    assert!(matches!(err, ForkServerError::ServerGone { .. }), "{err}");
    assert!(err.to_string().contains("start a new one"), "{err}");
}

/// Local refusals leave the client usable.
fn bad_names_and_unknown_pids_are_refused_without_breaking_the_client() {
    let mut server = ForkServer::start().unwrap();
    for name in [String::new(), "x".repeat(MAX_ACTOR_LEN + 1)] {
        let err = server.spawn(&name).unwrap_err();
        assert!(matches!(err, ForkServerError::ActorName { .. }), "{err}");
    }
    let stranger = Pid::current();
    let err = server.reap(stranger).unwrap_err();
    assert!(matches!(err, ForkServerError::UnknownChild { .. }), "{err}");
    let err = server.kill_group(stranger).unwrap_err();
    assert!(matches!(err, ForkServerError::UnknownChild { .. }), "{err}");
    assert!(server.is_usable());
    let child = server.spawn("exit:0").unwrap();
    await_exit(&child.pidfd);
    assert_eq!(server.reap(child.pid).unwrap(), ExitStatus::Exited(0));
    shut(server);
}

/// Another thread holds a lock the whole time: start and spawn still work (exec, then a
/// single-threaded server), where plain fork would be refused.
fn start_works_from_a_multi_threaded_process() {
    static HELD: Mutex<()> = Mutex::new(());
    let (release, wait) = mpsc::channel::<()>();
    let (locked, is_locked) = mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        let _guard = HELD.lock().unwrap();
        locked.send(()).unwrap();
        let _ = wait.recv();
    });
    is_locked.recv().unwrap();
    assert!(sys::thread_count().unwrap() >= 2);

    let mut server = ForkServer::start().unwrap();
    let child = server.spawn("exit:3").unwrap();
    await_exit(&child.pidfd);
    assert_eq!(server.reap(child.pid).unwrap(), ExitStatus::Exited(3));
    shut(server);
    release.send(()).unwrap();
    holder.join().unwrap();
}

/// The server's parent-death signal (armed by exec for the starting thread) is disarmed: the
/// thread that started it exits, and the server and its children live on.
fn the_server_outlives_the_thread_that_started_it() {
    let mut server = std::thread::spawn(ForkServer::start)
        .join()
        .unwrap()
        .unwrap();
    assert!(
        !server.server_pidfd().wait_exited(Some(MUST_NOT)).unwrap(),
        "the server died with the thread that started it"
    );
    let child = server.spawn("exit:5").unwrap();
    await_exit(&child.pidfd);
    assert_eq!(server.reap(child.pid).unwrap(), ExitStatus::Exited(5));
    shut(server);
}

/// How long a process forked from the client without exec holds its copy of the control
/// socket in the two tests below: far past every bound they check.
const HOLD: Duration = Duration::from_secs(4);

/// Forks (no descriptor scrub, no parent-death signal) a process that holds a copy of every
/// descriptor of ours, the fork server's control socket among them, for [`HOLD`]: what a
/// plain `fork()` in a thread child of the client leaves behind. `theirs` (made before the
/// server, so below its control socket) goes to the child's fd 3, which its prelude
/// overwrites: fd 3 must not be the control socket.
fn fork_control_holder(theirs: OwnedFd) -> sys::ChildProcess {
    fork_child(Prelude::UNSCRUBBED_LOSES_EOF, theirs, |_| {
        let _ = rustix::process::set_parent_process_death_signal(None);
        std::thread::sleep(HOLD);
        0
    })
    .unwrap()
}

/// The client process of `bug_forkserver_outlives_killed_client`: starts a server, spawns a
/// `wait` child, forks a control holder, reports the three pids (12 bytes), then sleeps
/// until it is killed.
fn run_client(channel: OwnedFd) -> i32 {
    let (_keep, theirs) = channel_pair().unwrap();
    let mut server = ForkServer::start().expect("start the server");
    let child = server.spawn("wait").expect("spawn");
    assert_eq!(recv_n(child.channel.as_fd(), 1), b"r");
    let holder = fork_control_holder(theirs);
    let pids: Vec<u8> = [server.server_pid(), child.pid, holder.pid()]
        .iter()
        .flat_map(|p| p.as_raw().to_le_bytes())
        .collect();
    send(channel.as_fd(), &pids);
    std::mem::forget((server, child, holder));
    std::thread::sleep(Duration::from_secs(60));
    0
}

/// The client was SIGKILLed while a process forked from it without exec still held the
/// control socket, so the socket never reached end of stream: the server and its children
/// lived on until that process exited. Fixed: the server holds a pidfd of its client (its
/// parent) and ends, killing its children, when that turns readable.
fn bug_forkserver_outlives_killed_client() {
    let _subreaper = Subreaper::on();
    let (ours, theirs) = channel_pair().unwrap();
    let mut client = fork_child(Prelude::STANDARD, theirs, run_client).unwrap();
    let raw = recv_n(ours.as_fd(), 12);
    let pid = |i: usize| {
        let n = i32::from_le_bytes(raw[i * 4..i * 4 + 4].try_into().unwrap());
        Pidfd::open(Pid::from_raw(n).unwrap()).unwrap()
    };
    let (server, child, holder) = (pid(0), pid(1), pid(2));
    client.kill_and_reap().unwrap();
    let bound = Duration::from_millis(1500);
    let start = Instant::now();
    let server_ended = server.wait_exited(Some(bound)).unwrap();
    let waited = start.elapsed();
    let child_ended = child.wait_exited(Some(Duration::ZERO)).unwrap();
    // Clean up before judging: the holder, then the server (both now reparented to us).
    let _ = holder.send_signal(Signal::KILL).unwrap();
    holder.reap_blocking().unwrap();
    assert!(
        server.wait_exited(Some(MUST)).unwrap(),
        "the server outlived the holder"
    );
    let status = server.reap_blocking().unwrap();
    assert!(
        server_ended,
        "the server was still alive {waited:?} after its client was SIGKILLed"
    );
    assert!(child_ended, "the served child outlived the server's end");
    assert_eq!(status, ExitStatus::Exited(0), "the server's own status");
}

/// Dropping the client while a forked copy held the control socket waited the whole 5 s
/// timeout for an end of stream that could not come, then killed the server. Fixed: the
/// client shuts the socket down (for every copy at once) rather than only closing its own
/// descriptor, so the server sees end of stream at once and cleans up.
fn bug_forkserver_drop_blocks_past_timeouts() {
    let (_keep, theirs) = channel_pair().unwrap();
    let mut server = ForkServer::start().unwrap();
    let child = server.spawn("wait").unwrap();
    assert_eq!(recv_n(child.channel.as_fd(), 1), b"r");
    let server_pidfd = dup(server.server_pidfd());
    let mut holder = fork_control_holder(theirs);
    let start = Instant::now();
    drop(server);
    let took = start.elapsed();
    let _ = holder.kill_and_reap();
    assert!(
        took < Duration::from_millis(1000),
        "dropping the client took {took:?}: it waited for an end of stream a forked copy of \
         the control socket held back"
    );
    assert_eq!(
        server_pidfd.send_signal(Signal::KILL).unwrap(),
        SignalOutcome::Gone,
        "the drop reaped the server"
    );
    assert!(child.pidfd.wait_exited(Some(MUST)).unwrap());
}
