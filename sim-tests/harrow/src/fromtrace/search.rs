//! The pure world's choices that reproduce a trace: a depth-first search over the world's
//! schedules of the inferred scenario, keeping only those whose parent gives each child the
//! trace's commands and hears from it the trace's events, each in the trace's order, and
//! preferring at each step the choice that does the trace's next step.

use std::collections::HashSet;

use harrow_model::ChildId;
use harrow_sim::scenario::Scenario;
use harrow_sim::world::{Choice, State, World};

use super::seen::{Reader, Seen};

/// The most world states the search visits; past it, it gives up and says how far it got.
pub(super) const MAX_STATES: usize = 200_000;

/// What the search must reproduce: each child's commands, and (if asked) each child's
/// events, as two streams per child, each in the trace's order. A command and an event are
/// not ordered against each other: a wait may report several events at once, and the
/// driver's commands for all of them follow, where the world delivers them one by one.
#[derive(Debug)]
pub(super) struct Target {
    /// The streams, by [`stream`] number.
    streams: Vec<Vec<Seen>>,
    /// For each stream's step, its place in the trace's order.
    place: Vec<Vec<usize>>,
    /// Whether events (messages, end-of-file, exits) must match too, or only commands.
    with_events: bool,
}

/// The stream of a child's step: its commands', or its events'.
fn stream(c: ChildId, s: &Seen) -> usize {
    2 * c.0 as usize + usize::from(s.is_command())
}

impl Target {
    /// The steps of `seen` (commands only, unless `with_events`).
    pub(super) fn new(seen: &[(ChildId, Seen)], with_events: bool) -> Target {
        let n = seen
            .iter()
            .map(|(c, _)| 2 * c.0 as usize + 2)
            .max()
            .unwrap_or(0);
        let mut t = Target {
            streams: vec![Vec::new(); n],
            place: vec![Vec::new(); n],
            with_events,
        };
        for (k, (c, s)) in seen.iter().enumerate() {
            if with_events || s.is_command() {
                t.streams[stream(*c, s)].push(s.clone());
                t.place[stream(*c, s)].push(k);
            }
        }
        t
    }

    /// How many steps it has.
    pub(super) fn len(&self) -> usize {
        self.streams.iter().map(Vec::len).sum()
    }

    /// Advances `pos` over `seen` if each step is the next of its stream; `None` if one is
    /// not.
    fn advance(&self, pos: &[usize], seen: &[(ChildId, Seen)]) -> Option<Vec<usize>> {
        let mut pos = pos.to_vec();
        for (c, s) in seen {
            if !self.with_events && !s.is_command() {
                continue;
            }
            let i = stream(*c, s);
            if self.streams.get(i)?.get(pos[i])? != s {
                return None;
            }
            pos[i] += 1;
        }
        Some(pos)
    }

    /// The stream whose next step comes first in the trace's order.
    fn next_stream(&self, pos: &[usize]) -> Option<usize> {
        (0..pos.len())
            .filter_map(|i| self.place[i].get(pos[i]).map(|&k| (k, i)))
            .min()
            .map(|(_, i)| i)
    }

    /// The steps not reached at `pos`, stream by stream.
    pub(super) fn missing(&self, pos: &[usize]) -> String {
        (0..pos.len())
            .filter_map(|i| {
                let next = self.streams[i].get(pos[i])?;
                let what = if i % 2 == 1 { "command" } else { "event" };
                Some(format!(
                    "child#{}'s {what} {} of {}: `{next}`",
                    i / 2,
                    pos[i] + 1,
                    self.streams[i].len()
                ))
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// A schedule found, or how far the search got.
pub(super) type Found = Result<Vec<Choice>, String>;

/// A node of the search: a world state, how far into each child's steps it is, and the
/// choices that led there.
struct Node {
    st: State,
    pos: Vec<usize>,
    path: Vec<Choice>,
}

/// Searches the world of `sc` for a schedule whose parent does `target`, to the end of the
/// run; else says what the furthest schedule could not do.
pub(super) fn search(sc: &Scenario, target: &Target) -> Found {
    let start = Node {
        st: World::new(sc).into_state(),
        pos: vec![0; target.streams.len()],
        path: Vec::new(),
    };
    let mut stack = vec![start];
    let mut visited: HashSet<(State, Vec<usize>)> = HashSet::new();
    let mut best: (usize, Vec<usize>) = (0, vec![0; target.streams.len()]);
    let max_frame = harrow_model::wire::DEFAULT_MAX_FRAME;
    while let Some(node) = stack.pop() {
        if !visited.insert((node.st.clone(), node.pos.clone())) {
            continue;
        }
        if visited.len() > MAX_STATES {
            return Err(format!(
                "no schedule found within {MAX_STATES} world states; the furthest stops before {}",
                target.missing(&best.1)
            ));
        }
        let done: usize = node.pos.iter().sum();
        if done > best.0 {
            best = (done, node.pos.clone());
        }
        let world = World::resume(sc, node.st.clone());
        if world.is_finished() {
            if done == target.len() {
                return Ok(node.path);
            }
            continue;
        }
        let mut next: Vec<(u8, Node)> = world
            .enabled()
            .into_iter()
            .filter_map(|c| step(sc, &node, c, target, max_frame))
            .collect();
        // Popped first: the choice that did the trace's next step, then silent ones.
        next.sort_by_key(|(rank, _)| std::cmp::Reverse(*rank));
        stack.extend(next.into_iter().map(|(_, n)| n));
    }
    Err(format!(
        "every schedule of the world departs from the trace; the furthest stops before {}",
        target.missing(&best.1)
    ))
}

/// Takes `c` from `node`: the node it leads to, ranked (0: it did the trace's next step,
/// 1: it did nothing the parent shows, 2: it did a later step); `None` if what its parent
/// did departs from the trace.
fn step(
    sc: &Scenario,
    node: &Node,
    c: Choice,
    target: &Target,
    max_frame: u32,
) -> Option<(u8, Node)> {
    let mut world = World::resume(sc, node.st.clone()).logged();
    world.apply(c);
    let mut reader = Reader::new(max_frame);
    for rec in world.take_log() {
        reader.read(&rec).ok()?;
    }
    let pos = target.advance(&node.pos, &reader.seen)?;
    let wanted = target.next_stream(&node.pos);
    let rank = match pos.iter().zip(&node.pos).position(|(a, b)| a != b) {
        None => 1,
        Some(i) if Some(i) == wanted => 0,
        Some(_) => 2,
    };
    let mut path = node.path.clone();
    path.push(c);
    Some((
        rank,
        Node {
            st: world.into_state(),
            pos,
            path,
        },
    ))
}
