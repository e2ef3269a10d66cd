//! The clock thread: moves time when nothing else can happen, and fires due deadlines.

use super::world::Shared;
use crate::platform::Platform;

/// The clock's body: until the scenario is over, fire deadlines one at a time.
///
/// A deadline already due fires at whatever point the scheduler runs the clock, racing with
/// everything else. Time moves forward to the next deadline only when every other thread is
/// asleep and has seen the latest change: as on an idle machine, nothing is left to run
/// before the timer. A thread that is merely slow to be scheduled therefore cannot make a
/// bounded wait look unbounded. When every thread is asleep and no deadline is pending, the
/// clock sleeps too, and loom and shuttle report the deadlock: that is a hang.
pub fn clock_thread<P: Platform>(shared: P::Arc<Shared<P>>) {
    let mut w = P::lock(&shared.world);
    loop {
        if w.over {
            return;
        }
        let now = w.kernel.now();
        let ready = match w.kernel.next_deadline() {
            Some((at, _)) => at <= now || w.quiescent(),
            None => false,
        };
        if !ready {
            w = P::wait(&shared.cv, w);
            continue;
        }
        if let Some(owner) = w.kernel.fire_next() {
            let root = w.kernel.root();
            w.note(root, format_args!("clock: {owner}'s deadline fires"));
        }
        w.changed();
        drop(w);
        P::notify_all(&shared.cv);
        w = P::lock(&shared.world);
    }
}
