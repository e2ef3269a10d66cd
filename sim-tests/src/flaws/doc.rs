//! The flaw catalogue for people: `model/FLAWS.md` and `harrow flaws`'s list, both rendered
//! from the model's table, with each flaw's scenario described from the scenario itself.

use std::fmt::Write as _;

use harrow_model::wire::Role;
use harrow_model::{Flaw, SpawnMethod};

use super::{FlawCase, case_for};
use crate::scenario::{Behaviour, ChildPlan, Ending, Fault, Scenario};

/// Where the rendered catalogue is committed, from this crate's manifest directory.
pub const DOC_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../model/FLAWS.md");

const INTRO: &str = "\
# The flaw catalogue

<!-- Rendered from model/src/flaw/table.rs by
     `cargo run --release -p harrow -- flaws --markdown > model/FLAWS.md`; do not edit by hand. -->

A model checker that has never failed has not shown that it can. So every hang and race that
tractor (the Python actor runtime harrow learned from) ran into, and every protocol fault
found in harrow itself since, is kept here as a **flaw**: a switch, `harrow_model::Flaw`, that
puts the known-bad behaviour back into the protocol, the driver or the simulated kernel. The shipped protocol runs with every switch off
(`Flaws::NONE`). The real backend never turns one on outside its smoke scenarios of expected
failures.

## How the checkers find each flaw

Each flaw comes with the smallest scenario that shows it and a list of engines that must find
it. For each engine named, the checks run that scenario twice:

- with the flaw switched **on**, the engine must find an execution that breaks one of the
  properties of [PROPERTIES.md](PROPERTIES.md) that the flaw's entry names (a hang counts for
  each of the liveness properties 7 to 11), and print it as a numbered trace (the
  counterexample); finding some other failure does not count;
- with the flaw switched **off**, the same engine over the same scenario must find nothing.

A flaw that an engine stops finding is a regression of that checker, and the test suite fails
on it. The engines are **loom** (every interleaving of the simulated operating system, with a
preemption bound), **shuttle** (sampled schedules of the simulated operating system, random
and PCT) and **explicit** (a breadth-first search over every state of the pure world). Each
flaw's shortest counterexample is also kept in the corpus (`corpus/<engine>/000N-fN-*.json`)
and replayed on every test run.

To run the checks for one flaw, say F9, on every engine named for it:

```
cargo run --release -p harrow -- check --flaw 9
cargo run --release -p harrow -- check --flaw 9 --engine explicit   # one engine
```

`harrow flaws` lists the catalogue in a terminal. Everything on this page comes from one
table in the model, `model/src/flaw/table.rs`: adding a flaw is a new `Flaw` variant (its
switch, and the code it switches), one entry in that table, and then regenerating this page
with `cargo run --release -p harrow -- flaws --markdown > model/FLAWS.md` (a test fails
while the committed page differs from the rendering).
";

/// `model/FLAWS.md`: the introduction, a summary table, then each flaw's postmortem.
pub fn render_markdown() -> String {
    let mut out = String::from(INTRO);
    out.push_str("\n## The flaws\n\n");
    out.push_str("| # | flaw | tractor bug | breaks property | found by |\n");
    out.push_str("|---|---|---|---|---|\n");
    for f in Flaw::ALL {
        let e = f.entry();
        let _ = writeln!(
            out,
            "| [F{n}](#f{n}-{slug}) | {title} | {tractor} | {breaks} | {engines} |",
            n = f.number(),
            slug = e.slug,
            title = e.title,
            tractor = e.tractor,
            breaks = properties(e.breaks),
            engines = engines(f),
        );
    }
    for f in Flaw::ALL {
        out.push('\n');
        out.push_str(&postmortem(&case_for(f)));
    }
    out
}

/// One flaw's section: what goes wrong, the fix, and how it is found.
fn postmortem(case: &FlawCase) -> String {
    let f = case.flaw;
    let e = f.entry();
    let mut out = String::new();
    let _ = writeln!(out, "## F{} {}\n", f.number(), e.slug);
    let _ = writeln!(out, "*{}.*\n", capitalised(e.title));
    let _ = writeln!(out, "- **Tractor bug:** {}.", e.tractor);
    let _ = writeln!(out, "- **What goes wrong:** {}", e.bug);
    let _ = writeln!(out, "- **The fix:** {}", e.fix);
    let _ = writeln!(
        out,
        "- **Breaks:** {} {} of [PROPERTIES.md](PROPERTIES.md).",
        if e.breaks.len() == 1 {
            "property"
        } else {
            "properties"
        },
        properties(e.breaks)
    );
    let _ = writeln!(
        out,
        "- **Found by:** {}, in the scenario `{}`: {}",
        engines(f),
        case.scenario.name,
        scenario_words(&case.scenario)
    );
    let _ = writeln!(
        out,
        "- **Run it:** `cargo run --release -p harrow -- check --flaw {}`",
        f.number()
    );
    out
}

/// `harrow flaws`: one line per flaw, for a terminal.
pub fn render_list() -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<4} {:<29} {:<9} {:<24} scenario",
        "#", "slug", "breaks", "found by"
    );
    for f in Flaw::ALL {
        let e = f.entry();
        let _ = writeln!(
            out,
            "F{:<3} {:<29} {:<9} {:<24} {}",
            f.number(),
            e.slug,
            properties(e.breaks),
            engines(f),
            e.scenario
        );
    }
    out.push_str("\nEach flaw's postmortem: model/FLAWS.md (or `harrow flaws --markdown`).\n");
    out
}

/// `9`, or `8 and 9`, or `3, 8 and 9`.
fn properties(numbers: &[u8]) -> String {
    let words: Vec<String> = numbers.iter().map(u8::to_string).collect();
    match words.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => words.join(""),
    }
}

fn engines(f: Flaw) -> String {
    let names: Vec<&str> = f.entry().engines.iter().map(|e| e.name()).collect();
    names.join(", ")
}

fn capitalised(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A scenario in words: its children, how the body ends, its faults and its changed timeouts.
fn scenario_words(sc: &Scenario) -> String {
    let children: Vec<String> = sc.children.iter().map(child_words).collect();
    let mut words = format!("{}; {}", children.join(", "), ending_words(sc.ending));
    for fault in &sc.faults {
        words.push_str("; ");
        words.push_str(&fault_words(fault, sc.parent_death_signal));
    }
    let default = Scenario::TIMEOUTS;
    if sc.timeouts.kill_grace != default.kill_grace || sc.timeouts.drain != default.drain {
        let _ = write!(
            words,
            "; a kill grace of {:?} and a drain bound of {:?}",
            sc.timeouts.kill_grace, sc.timeouts.drain
        );
    }
    words.push('.');
    words
}

fn child_words(c: &ChildPlan) -> String {
    let article = if c.method == SpawnMethod::Exec {
        "an"
    } else {
        "a"
    };
    let role = match c.role {
        Role::Daemon => "",
        Role::RunToResult => ", run to its result,",
    };
    format!(
        "{article} {} child `{}`{role} that {}",
        c.method,
        c.name,
        behaviour_words(&c.behaviour)
    )
}

fn behaviour_words(b: &Behaviour) -> String {
    match b {
        Behaviour::Serves => "serves".into(),
        Behaviour::Blocks { ms } => format!("does not yield for {ms} ms"),
        Behaviour::BlocksForever => "never yields".into(),
        Behaviour::CrashesBeforeHandshake { code } => {
            format!("exits with code {code} before its handshake")
        }
        Behaviour::CrashesAfterHandshake { code } => {
            format!("exits with code {code} right after its handshake")
        }
        Behaviour::FailsMain { .. } => "returns an error from its main function".into(),
        Behaviour::FailsRequests => "fails every request".into(),
        Behaviour::PanicsInRequests { .. } => "panics in its first request".into(),
        Behaviour::FailsActor { .. } => "fails outside any request".into(),
        Behaviour::ReportsFailureTwice { .. } => {
            "fails outside any request and sends its failure report twice".into()
        }
        Behaviour::LeaksChannel { hold_ms } => {
            format!("lets a helper hold its channel for {hold_ms} ms")
        }
        Behaviour::CrashesInRequest { nth } => {
            format!("answers {nth} requests, then aborts in the next one's handler")
        }
        Behaviour::Works { ms } => {
            format!("works {ms} ms on each request, stopping early when its cancel token says so")
        }
        Behaviour::ClosesChannel => "closes its end of the channel and stops yielding".into(),
        Behaviour::WritesOutOfTurn { message } => {
            format!(
                "writes a {} out of turn, then serves",
                message.message().name()
            )
        }
    }
}

fn ending_words(ending: Ending) -> &'static str {
    match ending {
        Ending::Finish => "the body returns",
        Ending::Fail => "the body fails",
        Ending::Interrupt => "SIGINT reaches the root",
    }
}

fn fault_words(fault: &Fault, parent_death_signal: bool) -> String {
    match fault {
        Fault::SigkillChild { child } => format!("child {child} is killed by SIGKILL"),
        Fault::SigintRoot => "SIGINT reaches the root".into(),
        Fault::ParentDeath if parent_death_signal => "the root dies without tearing down".into(),
        Fault::ParentDeath => {
            "the root dies without tearing down, and no parent-death signal is armed".into()
        }
        Fault::SpawningThreadExits => {
            "the root's spawns come from a worker thread, which exits once they are made".into()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed `model/FLAWS.md` is the rendering of the table, so it cannot drift.
    #[test]
    fn committed_flaws_md_is_the_rendering_of_the_table() {
        let committed = std::fs::read_to_string(DOC_PATH).unwrap_or_default();
        assert!(
            committed == render_markdown(),
            "model/FLAWS.md differs from the flaw table's rendering; regenerate it with\n  \
             cargo run --release -p harrow -- flaws --markdown > model/FLAWS.md"
        );
    }

    #[test]
    fn every_flaw_has_its_section_and_its_command() {
        let md = render_markdown();
        for f in Flaw::ALL {
            assert!(md.contains(&format!("## F{} {}\n", f.number(), f.slug())));
            assert!(md.contains(&format!("check --flaw {}`", f.number())));
        }
    }
}
