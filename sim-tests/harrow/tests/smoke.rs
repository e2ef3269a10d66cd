//! tractor's scenarios for real: each scenario of `harrow::smoke` under each spawn
//! method it applies to, as its own test.
//!
//! The custom harness (`common`) runs every test on the main thread, one at a time, and
//! after each asserts that no child process and no descriptor leaked. This binary is also
//! re-executed: as an `Exec` child or a fork server (`harrow_real::init` serves those) and as
//! the "parent" process of the scenarios that kill or interrupt a parent
//! (`smoke::run_parent_role`).

#[path = "../../../real/tests/common/mod.rs"]
mod common;

use std::process::ExitCode;

use common::{Test, live_children, open_fds};
use harrow::smoke::{self, Verdict};
use harrow_real::SpawnMethod::{self, Exec, Fork, ForkServer, Thread};

fn main() -> ExitCode {
    harrow_real::init(smoke::registry());
    if let Some(code) = smoke::run_parent_role() {
        return code;
    }
    common::main(TESTS)
}

/// Panics with the scenario's failure; prints its summary otherwise.
fn expect(verdict: Verdict) {
    match verdict {
        Ok(summary) => println!("  {summary}"),
        Err(failure) => panic!("{failure}"),
    }
}

/// One test per line: `test_name => "scenario-name", Method;`. Also lists the pairs, so a
/// test can check that every scenario runs under every method it applies to.
macro_rules! scenario_tests {
    ($($(#[$doc:meta])* $test:ident => $scenario:literal, $method:expr;)*) => {
        $(
            $(#[$doc])*
            fn $test() {
                let s = smoke::find($scenario).expect("a scenario of that name");
                expect((s.run)($method));
            }
        )*
        /// Every (scenario, method) pair the tests above run.
        const PAIRS: &[(&str, SpawnMethod)] = &[$(($scenario, $method),)*];
        /// The tests, in order, with the catalogue and /proc checks last.
        const TESTS: &[Test] = &[
            $(Test { name: stringify!($test), run: $test },)*
            Test {
                name: "bug_a_long_lived_nursery_refuses_spawns_past_max_children_ever_held",
                run: bug_a_long_lived_nursery_refuses_spawns_past_max_children_ever_held,
            },
            Test {
                name: "fork_service_nursery_scaled_down_stays_flat",
                run: fork_service_nursery_scaled_down_stays_flat,
            },
            Test {
                name: "every_scenario_runs_under_every_method_it_applies_to",
                run: every_scenario_runs_under_every_method_it_applies_to,
            },
            Test {
                name: "nursery_work_leaves_no_child_and_no_fd_in_proc",
                run: nursery_work_leaves_no_child_and_no_fd_in_proc,
            },
            Test {
                name: "a_short_soak_gains_no_descriptor_zombie_thread_or_memory",
                run: a_short_soak_gains_no_descriptor_zombie_thread_or_memory,
            },
        ];
    };
}

scenario_tests! {
    fork_happy_teardown => "happy-teardown", Fork;
    fork_server_happy_teardown => "happy-teardown", ForkServer;
    exec_happy_teardown => "happy-teardown", Exec;
    thread_happy_teardown => "happy-teardown", Thread;

    fork_serve_crash_stuck_answers_fails_all_and_kills => "serve-crash-stuck", Fork;
    fork_server_serve_crash_stuck_answers_fails_all_and_kills => "serve-crash-stuck", ForkServer;
    exec_serve_crash_stuck_answers_fails_all_and_kills => "serve-crash-stuck", Exec;

    fork_large_payloads_echo_and_over_the_limit_is_typed => "large-payloads", Fork;
    fork_server_large_payloads_echo_and_over_the_limit_is_typed => "large-payloads", ForkServer;
    exec_large_payloads_echo_and_over_the_limit_is_typed => "large-payloads", Exec;
    thread_large_payloads_echo_and_over_the_limit_is_typed => "large-payloads", Thread;

    fork_long_lived_nursery_holds_no_fd_for_a_finished_child => "long-lived-nursery", Fork;
    fork_server_long_lived_nursery_holds_no_fd_for_a_finished_child
        => "long-lived-nursery", ForkServer;
    exec_long_lived_nursery_holds_no_fd_for_a_finished_child => "long-lived-nursery", Exec;
    thread_long_lived_nursery_holds_no_fd_for_a_finished_child => "long-lived-nursery", Thread;

    fork_huge_length_then_silence_is_typed_and_bounded => "hostile-huge-length", Fork;
    fork_server_huge_length_then_silence_is_typed_and_bounded => "hostile-huge-length", ForkServer;
    exec_huge_length_then_silence_is_typed_and_bounded => "hostile-huge-length", Exec;

    fork_unknown_reply_flood_is_typed_and_bounded => "hostile-unknown-replies", Fork;
    fork_server_unknown_reply_flood_is_typed_and_bounded => "hostile-unknown-replies", ForkServer;
    exec_unknown_reply_flood_is_typed_and_bounded => "hostile-unknown-replies", Exec;

    fork_second_handshake_is_typed => "hostile-second-handshake", Fork;
    fork_server_second_handshake_is_typed => "hostile-second-handshake", ForkServer;
    exec_second_handshake_is_typed => "hostile-second-handshake", Exec;

    fork_failed_flood_is_one_error_and_bounded => "hostile-failed-flood", Fork;
    fork_server_failed_flood_is_one_error_and_bounded => "hostile-failed-flood", ForkServer;
    exec_failed_flood_is_one_error_and_bounded => "hostile-failed-flood", Exec;

    fork_half_frame_then_exit_is_typed => "hostile-half-frame", Fork;
    fork_server_half_frame_then_exit_is_typed => "hostile-half-frame", ForkServer;
    exec_half_frame_then_exit_is_typed => "hostile-half-frame", Exec;

    fork_spawn_until_the_fd_limit_refuses_is_typed_and_clean => "fd-limit-until-refused", Fork;
    fork_server_spawn_until_the_fd_limit_refuses_is_typed_and_clean
        => "fd-limit-until-refused", ForkServer;
    exec_spawn_until_the_fd_limit_refuses_is_typed_and_clean => "fd-limit-until-refused", Exec;
    thread_spawn_until_the_fd_limit_refuses_is_typed_and_clean
        => "fd-limit-until-refused", Thread;

    fork_spawn_under_fd_pressure_fails_typed_and_harms_no_sibling => "fd-pressure", Fork;
    /// With the descriptor limit at the open count, the fork server's reply arrived with its
    /// two descriptors cut off (`MSG_CTRUNC`); the client took that for a broken stream,
    /// closed its control socket, and the server SIGKILLed every served sibling, which the
    /// report then showed as a made-up `Exited(-1)`. Fixed: the frame's bytes did arrive, so
    /// the stream is intact; the client kills and reaps the child it cannot hold and fails
    /// that one spawn with an error naming descriptors, and a reap that cannot happen is
    /// reported as such, never as a status.
    bug_forkserver_fd_pressure_kills_siblings => "fd-pressure", ForkServer;
    /// Under fd pressure `/proc/self/task` cannot be opened; `situation()` turned that into
    /// `usize::MAX` threads, and Fork was refused because "this process has
    /// 18446744073709551615 threads". Fixed: the situation carries the count or why it could
    /// not be taken, and Fork is refused with "could not count this process's threads: out
    /// of file descriptors" and what to do.
    bug_thread_count_failure_reads_as_huge_count => "thread-count-unreadable", Fork;
    exec_spawn_under_fd_pressure_fails_typed_and_harms_no_sibling => "fd-pressure", Exec;
    thread_spawn_under_fd_pressure_fails_typed_and_harms_no_sibling => "fd-pressure", Thread;

    fork_request_timeout_fails_on_time_and_drops_the_late_reply => "request-timeout", Fork;
    fork_server_request_timeout_fails_on_time_and_drops_the_late_reply
        => "request-timeout", ForkServer;
    exec_request_timeout_fails_on_time_and_drops_the_late_reply => "request-timeout", Exec;
    thread_request_timeout_fails_on_time_and_drops_the_late_reply => "request-timeout", Thread;

    fork_never_yields_is_killed => "never-yields", Fork;
    fork_server_never_yields_is_killed => "never-yields", ForkServer;
    exec_never_yields_is_killed => "never-yields", Exec;
    thread_never_yields_is_abandoned => "never-yields", Thread;

    fork_multierror_25_all_reported => "multierror-25", Fork;
    fork_server_multierror_25_all_reported => "multierror-25", ForkServer;
    exec_multierror_25_all_reported => "multierror-25", Exec;
    thread_multierror_25_all_reported => "multierror-25", Thread;

    fork_cancel_with_grandchild_sleeping_leaves_no_grandchild
        => "cancel-grandchild-sleeping", Fork;
    fork_server_cancel_with_grandchild_sleeping_leaves_no_grandchild
        => "cancel-grandchild-sleeping", ForkServer;
    exec_cancel_with_grandchild_sleeping_leaves_no_grandchild
        => "cancel-grandchild-sleeping", Exec;
    thread_cancel_with_grandchild_sleeping_leaves_no_grandchild
        => "cancel-grandchild-sleeping", Thread;

    fork_middle_killed_leaves_no_grandchild
        => "cancel-grandchild-sleeping-middle-killed", Fork;
    fork_server_middle_killed_leaves_no_grandchild
        => "cancel-grandchild-sleeping-middle-killed", ForkServer;
    exec_middle_killed_leaves_no_grandchild
        => "cancel-grandchild-sleeping-middle-killed", Exec;

    fork_boot_death_is_a_boot_failure => "boot-dies", Fork;
    fork_server_boot_death_is_a_boot_failure => "boot-dies", ForkServer;
    exec_boot_death_is_a_boot_failure => "boot-dies", Exec;
    thread_boot_panic_is_a_boot_failure => "boot-dies", Thread;

    fork_parent_sigkilled_leaves_no_child => "parent-sigkilled", Fork;
    fork_server_parent_sigkilled_leaves_no_child => "parent-sigkilled", ForkServer;
    exec_parent_sigkilled_leaves_no_child => "parent-sigkilled", Exec;

    fork_sigint_during_teardown_is_prompt => "sigint-during-teardown", Fork;
    fork_server_sigint_during_teardown_is_prompt => "sigint-during-teardown", ForkServer;
    exec_sigint_during_teardown_is_prompt => "sigint-during-teardown", Exec;
    thread_sigint_during_teardown_is_prompt => "sigint-during-teardown", Thread;

    fork_killed_child_leaves_the_registry => "killed-not-in-registry", Fork;
    fork_server_killed_child_leaves_the_registry => "killed-not-in-registry", ForkServer;
    exec_killed_child_leaves_the_registry => "killed-not-in-registry", Exec;
    thread_abandoned_child_leaves_the_registry => "killed-not-in-registry", Thread;

    fork_malformed_frame_is_a_typed_error => "malformed-frame", Fork;
    fork_server_malformed_frame_is_a_typed_error => "malformed-frame", ForkServer;
    exec_malformed_frame_is_a_typed_error => "malformed-frame", Exec;

    fork_refused_when_multithreaded_names_fork_server => "fork-refused-multithreaded", Fork;
    fork_without_scrub_loses_the_sibling_eof => "lost-eof-unscrubbed", Fork;
}

/// The tests above cover exactly the catalogue: every scenario, every method it lists.
/// `service-nursery` scaled down to fit the suite: the same flatness asserted over
/// [`smoke::SERVICE_SCALED`] children instead of 100,000.
fn fork_service_nursery_scaled_down_stays_flat() {
    expect(smoke::service_nursery_of(Fork, smoke::SERVICE_SCALED));
}

/// `Limits::max_children` counted every child a nursery had ever spawned, so a nursery of
/// at most 2 refused its third spawn although it held no child (and a default one its
/// 4,097th): a long-lived service nursery died of its history. It counts live children
/// now: a stopped child is retired. Its handle then gets `AlreadyFinished`, never another
/// child's.
fn bug_a_long_lived_nursery_refuses_spawns_past_max_children_ever_held() {
    expect(smoke::spawns_past_max_children_ever_held(Fork));
}

/// Scenarios the suite runs scaled down, by their own test above.
const SCALED_PAIRS: &[(&str, SpawnMethod)] = &[("service-nursery", Fork)];

fn every_scenario_runs_under_every_method_it_applies_to() {
    let mut expected: Vec<(&str, SpawnMethod)> = smoke::SCENARIOS
        .iter()
        .flat_map(|s| s.methods.iter().map(move |&m| (s.name, m)))
        .collect();
    let mut covered = PAIRS.to_vec();
    covered.extend_from_slice(SCALED_PAIRS);
    expected.sort();
    covered.sort();
    assert_eq!(covered, expected);
}

/// The acceptance check, explicitly: after nursery work by every method (children that
/// exit, are killed, abandoned, fail during boot), `/proc` shows no child of this process,
/// live or zombie, and the same open descriptors as before. (The harness checks the same
/// after every test.)
fn nursery_work_leaves_no_child_and_no_fd_in_proc() {
    let fds_before = open_fds();
    assert!(live_children().is_empty(), "children before the work");
    for method in [Fork, ForkServer, Exec, Thread] {
        expect(smoke::happy_teardown(method));
        expect(smoke::never_yields(method));
        expect(smoke::boot_dies(method));
    }
    expect(smoke::malformed_frame(Fork));
    let children = live_children();
    assert!(children.is_empty(), "children left in /proc: {children:?}");
    assert_eq!(open_fds(), fds_before, "descriptors before and after");
}

/// `harrow soak`, short: 150 cycles of each run (fresh nurseries, one long-lived nursery)
/// for each process method; nothing the process holds grows between the first window and
/// the end. Cycle times are printed, not asserted: speed is the bench's and the full
/// soak's to judge.
fn a_short_soak_gains_no_descriptor_zombie_thread_or_memory() {
    let opts = harrow::soak::SoakOptions {
        cycles: 150,
        methods: vec![Fork, ForkServer, Exec],
        long_lived: true,
        time_limit: std::time::Duration::from_secs(60),
        progress: false,
    };
    let runs = harrow::soak::run(&opts);
    print!("{}", harrow::soak::render(&runs));
    for r in &runs {
        assert!(
            r.error.is_none() && r.done == r.asked,
            "{}: {:?}",
            r.label,
            r.problems()
        );
        assert!(
            r.growth().is_empty(),
            "{}: {}",
            r.label,
            r.growth().join("; ")
        );
    }
}
