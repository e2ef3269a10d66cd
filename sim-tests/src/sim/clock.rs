//! The clock thread: moves time when nothing else can happen, fires due deadlines, and
//! reports a hang.

use std::format;
use std::string::String;
use std::vec::Vec;

use super::world::{Shared, SimWorld};
use crate::platform::Platform;

/// The clock's body: until the scenario is over, fire deadlines one at a time.
///
/// A deadline already due fires at whatever point the scheduler runs the clock, racing with
/// everything else. Time moves forward to the next deadline only when every other thread is
/// asleep and has seen the latest change: as on an idle machine, nothing is left to run
/// before the timer, so a thread that is merely slow to be scheduled cannot make a bounded
/// wait look unbounded. When every thread is asleep and no deadline is pending, nothing can
/// ever happen again: that is a hang. The clock records it with the trace and ends the
/// scenario, so every engine reports hangs the same readable way.
pub fn clock_thread<P: Platform>(shared: P::Arc<Shared<P>>) {
    let mut w = P::lock(&shared.world);
    loop {
        if w.over {
            return;
        }
        let now = w.kernel.now();
        let next = w.kernel.next_deadline();
        let quiet = w.quiescent();
        match next {
            Some((at, _)) if at <= now || quiet => {
                if let Some(owner) = w.kernel.fire_next() {
                    let root = w.kernel.root();
                    w.note(root, format_args!("clock: {owner}'s deadline fires"));
                }
            }
            None if quiet => {
                let why = hang_report(&w);
                let root = w.kernel.root();
                w.note(root, format_args!("HANG: {why}"));
                w.hung = Some(why);
                w.over = true;
            }
            _ => {
                w = P::wait(&shared.clock_cv, w);
                continue;
            }
        }
        w.changed();
        drop(w);
        P::notify_all(&shared.cv);
        w = P::lock(&shared.world);
    }
}

/// Who was waiting when everything stopped.
fn hang_report(w: &SimWorld) -> String {
    let live: Vec<String> = w
        .kernel
        .live_processes()
        .iter()
        .map(|p| format!("{p}"))
        .collect();
    format!(
        "every thread is blocked and no deadline is pending ({} threads; live processes: {})",
        w.participants(),
        if live.is_empty() {
            "none".into()
        } else {
            live.join(", ")
        }
    )
}
