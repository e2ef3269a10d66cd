//! Resource-limit scenarios: spawning with no descriptor to spare.
//!
//! [`FdCeiling`] lowers this process's soft `RLIMIT_NOFILE` so that not one more descriptor
//! can be opened, for as long as it lives; the scenario spawns under it and checks that the
//! spawn fails with a typed error naming descriptors, that no sibling is harmed, and that the
//! teardown reports only statuses some reap really returned.

use std::fs::File;

use harrow_model::Timeouts;
use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

use super::{DOUBLE, Failure, SpawnMethod, Verdict, open, open_fd_count, settled, with_nursery};
use harrow_real::{ChildErrorKind, Error, ExitStatus, Outcome, TeardownReport};

/// While alive: every descriptor number below the soft `RLIMIT_NOFILE` is taken, so the next
/// `open`, `socketpair`, `pidfd_open` or received `SCM_RIGHTS` descriptor fails (`EMFILE`,
/// `MSG_CTRUNC`). Dropping it restores the limit and closes the fillers.
#[derive(Debug)]
pub(super) struct FdCeiling {
    saved: Rlimit,
    fillers: Vec<File>,
}

impl FdCeiling {
    /// Fills the holes below the highest open descriptor, then lowers the soft limit to just
    /// above it, leaving `spare` numbers free.
    pub(super) fn lower(spare: u64) -> Result<FdCeiling, Failure> {
        let saved = getrlimit(Resource::Nofile);
        let mut fds = [0; 4096];
        let n = harrow_real::sys::list_open_fds(&mut fds)
            .map_err(|e| Failure(format!("list /proc/self/fd: {e}")))?;
        let highest = fds[..n].iter().copied().max().unwrap_or(2);
        let mut fillers = Vec::new();
        // Each open takes the lowest free number: stop once it lands above the highest.
        loop {
            let f = File::open("/dev/null").map_err(|e| Failure(format!("open /dev/null: {e}")))?;
            if std::os::fd::AsRawFd::as_raw_fd(&f) > highest {
                break;
            }
            fillers.push(f);
        }
        let ceiling = u64::try_from(highest).map_err(|_| "negative descriptor")? + 1 + spare;
        let lowered = Rlimit {
            current: Some(ceiling),
            maximum: saved.maximum,
        };
        setrlimit(Resource::Nofile, lowered)
            .map_err(|e| Failure(format!("lower RLIMIT_NOFILE: {e}")))?;
        Ok(FdCeiling { saved, fillers })
    }
}

impl Drop for FdCeiling {
    fn drop(&mut self) {
        let _ = setrlimit(Resource::Nofile, self.saved);
        self.fillers.clear();
    }
}

/// The refused spawn's error names descriptors and is a spawn error; the report shows
/// `exited_0` children exiting 0 and no status that no reap returned (harrow never reports a
/// made-up `Exited(-1)`); the descriptors open `before` are open again.
fn judge(failed: &Error, report: &TeardownReport, exited_0: usize, before: usize) -> Verdict {
    let text = failed.to_string();
    ensure!(
        text.contains("descriptors"),
        "the refused spawn's error does not name descriptors: {text}"
    );
    let typed = match failed {
        Error::Child(e) => matches!(e.kind, ChildErrorKind::LaunchFailed(_)),
        Error::Spawn(_) => true,
        _ => false,
    };
    ensure!(typed, "the refused spawn is not a spawn error: {failed:?}");
    let made_up = |s: ExitStatus| s == ExitStatus::Exited(-1);
    let invented = report.children.iter().find(|c| match c.outcome {
        Some(Outcome::Exited(s) | Outcome::Killed { status: s, .. }) => made_up(s),
        _ => false,
    });
    if let Some(c) = invented {
        return Err(Failure(format!("a made-up exit status: {c:?}")));
    }
    let clean = Some(Outcome::Exited(ExitStatus::Exited(0)));
    let exited = report
        .children
        .iter()
        .filter(|c| c.outcome == clean)
        .count();
    ensure!(
        exited == exited_0,
        "expected {exited_0} children to exit 0: {:?}",
        report.children
    );
    let after = open_fd_count()?;
    ensure!(
        after == before,
        "{before} descriptors open before, {after} after"
    );
    Ok(text)
}

/// One child serves, a second is spawned with no descriptor to spare: that spawn fails with
/// an error that names descriptors, the first child answers as before, a third spawned once
/// the limit is back serves too, and the teardown reports both exiting 0.
pub fn fd_pressure(method: SpawnMethod) -> Verdict {
    settled(method, || {
        let before = open_fd_count()?;
        let (failed, report) = with_nursery(open(method, Timeouts::TRACTOR)?, |n| {
            let a = n.spawn("sibling", DOUBLE)?;
            let four: u64 = n.request(a, &2u64)?;
            ensure!(four == 4, "2 * 2 came back as {four}");
            let ceiling = FdCeiling::lower(0)?;
            let spawned = n.spawn("squeezed", DOUBLE);
            drop(ceiling);
            let failed = match spawned {
                Ok(_) => return Err("the spawn with no descriptor to spare succeeded".into()),
                Err(e) => e,
            };
            let six: u64 = n
                .request(a, &3u64)
                .map_err(|e| Failure(format!("the sibling stopped serving: {e}")))?;
            ensure!(six == 6, "2 * 3 came back as {six}");
            let c = n.spawn("after", DOUBLE)?;
            let eight: u64 = n.request(c, &4u64)?;
            ensure!(eight == 8, "2 * 4 came back as {eight}");
            Ok(failed)
        })?;
        let text = judge(&failed, &report, 2, before)?;
        Ok(format!("the squeezed spawn failed cleanly: {text}"))
    })
}

/// The most spawns [`fd_limit_until_refused`] tries before it gives up on a refusal.
const MAX_TRIES: usize = 16;

/// Under a limit that leaves a few descriptors free, spawns until one is refused (at most
/// [`MAX_TRIES`]): the refusal is a typed error naming descriptors, every child spawned
/// before it still answers, and the teardown reports each of them exiting 0 and nothing made
/// up, with every descriptor returned.
pub fn fd_limit_until_refused(method: SpawnMethod) -> Verdict {
    settled(method, || {
        let before = open_fd_count()?;
        let ((spawned, failed), report) = with_nursery(open(method, Timeouts::TRACTOR)?, |n| {
            // The fork server (ForkServer) is started before the limit, with the first child.
            let first = n.spawn("first", DOUBLE)?;
            let ceiling = FdCeiling::lower(9)?;
            let mut children = vec![first];
            let mut failed = None;
            for i in 0..MAX_TRIES {
                match n.spawn(&format!("c{i}"), DOUBLE) {
                    Ok(c) => children.push(c),
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            for (i, c) in children.iter().enumerate() {
                let x = i as u64;
                let doubled: u64 = n
                    .request(*c, &x)
                    .map_err(|e| Failure(format!("child {i} stopped serving: {e}")))?;
                ensure!(doubled == 2 * x, "2 * {x} came back as {doubled}");
            }
            drop(ceiling);
            Ok((children.len(), failed))
        })?;
        let Some(failed) = failed else {
            return Err(Failure(format!(
                "{MAX_TRIES} spawns under the limit all succeeded"
            )));
        };
        let text = judge(&failed, &report, spawned, before)?;
        Ok(format!("{spawned} children, then refused: {text}"))
    })
}

/// With no descriptor to spare, `/proc/self/task` cannot be opened, so this process's
/// threads cannot be counted: a `Fork` spawn is refused with an error that says exactly that
/// and what to do, not with a made-up thread count.
pub fn thread_count_unreadable(method: SpawnMethod) -> Verdict {
    let (spawned, report) = with_nursery(open(method, Timeouts::TRACTOR)?, |n| {
        let ceiling = FdCeiling::lower(0)?;
        let spawned = n.spawn("uncounted", DOUBLE);
        drop(ceiling);
        Ok(spawned)
    })?;
    ensure!(
        report.children.is_empty(),
        "a refused spawn was recorded: {:?}",
        report.children
    );
    let text = match spawned {
        Ok(_) => return Err("Fork was not refused with the threads uncountable".into()),
        Err(e @ Error::Spawn(_)) => e.to_string(),
        Err(other) => return Err(Failure(format!("not a spawn refusal: {other:?}"))),
    };
    ensure!(
        text.contains("could not count this process's threads")
            && text.contains("out of file descriptors")
            && !text.contains(&usize::MAX.to_string()),
        "the refusal does not say the threads could not be counted: {text}"
    );
    Ok(format!("refused as expected: {text}"))
}
