//! Long pseudo-random call sequences (fixed seeds, so deterministic): no input sequence may
//! panic, and the kernel's structural invariants hold after every call.

use super::fd::Object;
use super::*;

/// A tiny fixed-seed generator: tests only, so the kernel itself stays free of randomness.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u32) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        u32::try_from((self.0 >> 33) % u64::from(below.max(1))).unwrap_or(0)
    }
}

/// Any pid, fd, thread or lock in a small range, valid or not, so misuse is exercised too.
fn random_call(k: &mut Kernel, rng: &mut Lcg) {
    let pid = Pid(rng.next(8));
    let other = Pid(rng.next(8));
    let fd = Fd(rng.next(9));
    let fd2 = Fd(rng.next(9));
    let signal = [Signal::Int, Signal::Kill, Signal::Term][rng.next(3) as usize];
    let thread = k
        .threads(pid)
        .ok()
        .and_then(|t| t.first().copied())
        .unwrap_or(ThreadId(0));
    let lock = LockId(rng.next(3));
    let _ = match rng.next(24) {
        0 | 1 => k.fork(pid, thread).map(drop),
        2 => k.spawn_exec(pid, thread, &[fd]).map(drop),
        3 => k.exit(pid, 0),
        4 | 5 => k.socketpair(pid).map(drop),
        6 => k.pipe(pid, 1).map(drop),
        7 | 8 => k.send(pid, fd, b"m"),
        9 => k.recv(pid, fd).map(drop),
        10 => k.close(pid, fd),
        11 => k.dup2(pid, fd, fd2).map(drop),
        12 => k.close_all_except(pid, &[fd]),
        13 => k.shutdown(
            pid,
            fd,
            [Shutdown::Read, Shutdown::Write][rng.next(2) as usize],
        ),
        14 => k.kill(pid, other, signal),
        15 => k.killpg(pid, other, signal),
        16 => k.pidfd_open(pid, other).map(drop),
        17 => k.pidfd_send_signal(pid, fd, signal),
        18 => k.waitid_pidfd(pid, fd).map(drop),
        19 => k.waitpid_any(pid).map(drop),
        20 => k
            .install_sigint_handler(pid, fd)
            .and(k.set_pdeathsig(pid, Some(signal))),
        21 => k.lock_acquire(pid, thread, lock).map(drop),
        22 => k
            .spawn_thread(pid)
            .map(drop)
            .and(k.write_nonblocking(pid, fd)),
        _ => k.exit_thread(pid, thread),
    };
}

/// The structural invariants; returns what is broken.
fn broken_invariant(k: &Kernel) -> Option<&'static str> {
    for (pid, p) in &k.processes {
        if p.fds.values().any(|o| !k.objects.contains_key(o)) {
            return Some("an fd points at a freed object");
        }
        if p.state != ProcState::Running && !(p.fds.is_empty() && p.threads.is_empty()) {
            return Some("a zombie kept fds or threads");
        }
        if *pid != Pid::INIT && !k.processes.contains_key(&p.parent) {
            return Some("a process's parent is gone");
        }
        if p.parent == Pid::INIT && p.state != ProcState::Running {
            return Some("init left a zombie unreaped");
        }
        if p.fds.keys().any(|fd| fd.0 >= k.config.max_fds_per_process) {
            return Some("an fd beyond the limit");
        }
    }
    if k.objects.keys().any(|o| k.holders(*o).is_empty()) {
        return Some("an object outlived its last fd");
    }
    if k.pids_where(|p| p.role == Role::Bystander).len() > 1 {
        return Some("more than one bystander");
    }
    None
}

/// `readable` must say exactly whether `recv` (or `drain`) would return something.
fn readable_agrees_with_reading(k: &Kernel) -> bool {
    for (pid, p) in &k.processes {
        for (fd, object) in &p.fds {
            let mut probe = k.clone();
            let ready = k.readable(*pid, *fd);
            let agrees = match k.objects.get(object) {
                Some(Object::Socket(_)) => {
                    ready.ok() != Some(probe.recv(*pid, *fd) == Ok(RecvOutcome::WouldBlock))
                }
                Some(Object::PipeReader(r)) => {
                    ready.ok() == Some(r.buffered > 0 || !k.objects.contains_key(&r.writer))
                }
                _ => true,
            };
            if !agrees {
                return false;
            }
        }
    }
    true
}

#[test]
fn random_call_sequences_never_panic_and_keep_the_invariants() {
    for seed in 0..200 {
        let config = KernelConfig {
            pid_pool: 5,
            max_fds_per_process: 9,
            channel_capacity: 2,
            max_log: 16,
            bystander_on_reuse: seed % 2 == 0,
            ..KernelConfig::default()
        };
        let mut k = Kernel::new(config).unwrap();
        let mut rng = Lcg(seed);
        for step in 0..300 {
            random_call(&mut k, &mut rng);
            if let Some(broken) = broken_invariant(&k) {
                panic!("seed {seed} step {step}: {broken}\n{}", k.log());
            }
            assert!(
                readable_agrees_with_reading(&k),
                "seed {seed} step {step}\n{}",
                k.log()
            );
        }
        assert!(k.log().len() <= 16);
    }
}
