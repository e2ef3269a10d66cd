//! The trace writer, and the traced operating systems of a nursery and of a child.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::ops::{Deref, DerefMut};
use std::path::PathBuf;
use std::sync::OnceLock;

use harrow_model::actor::Actor;
use harrow_model::child::ChildRuntime;
use harrow_model::driver::{
    BlockingChildOs, ChildEvent, ChildExit, ChildOs, Os, OsEvent, WaitError,
};
use harrow_model::supervisor::SupervisorConfig;
#[cfg(feature = "tokio")]
use harrow_model::trace::TracedChildEvent;
use harrow_model::trace::{Hex, Record, VERSION};
use harrow_model::{ChildId, ExitStatus, Situation, SpawnMethod, Timestamp};
use serde::Serialize;

use super::{DEFAULT_MAX_BYTES, DIR_VAR, MAX_BYTES_VAR};
use crate::os::RealOs;

/// The folder, in the trace directory, of the children's traces: a run may have many
/// thousands, the nurseries' stay in view.
const CHILDREN: &str = "children";
/// The smallest trace bound accepted: room for a header and a few steps.
const MIN_MAX_BYTES: u64 = 4096;
/// How many processes of one pid (reused during a long run) may write traces to one
/// directory before the next is refused.
const MAX_SUFFIX: u32 = 1000;

/// Where traces go and how large each may grow.
#[derive(Debug)]
struct Settings {
    dir: PathBuf,
    max_bytes: u64,
}

/// The settings, read from the environment once per process (a forked child inherits them).
static SETTINGS: OnceLock<Result<Option<Settings>, String>> = OnceLock::new();

fn settings() -> Result<Option<&'static Settings>, String> {
    match SETTINGS.get_or_init(read_settings) {
        Ok(s) => Ok(s.as_ref()),
        Err(e) => Err(e.clone()),
    }
}

fn read_settings() -> Result<Option<Settings>, String> {
    let Some(dir) = std::env::var_os(DIR_VAR).filter(|d| !d.is_empty()) else {
        return Ok(None);
    };
    let max_bytes = match std::env::var(MAX_BYTES_VAR) {
        Err(std::env::VarError::NotPresent) => DEFAULT_MAX_BYTES,
        Err(std::env::VarError::NotUnicode(v)) => {
            return Err(format!(
                "{MAX_BYTES_VAR}={v:?} is not a number of bytes: set it to one, or unset it"
            ));
        }
        Ok(v) => v
            .parse::<u64>()
            .ok()
            .filter(|n| *n >= MIN_MAX_BYTES)
            .ok_or_else(|| {
                format!(
                    "{MAX_BYTES_VAR}=`{v}` is not a number of bytes of at least {MIN_MAX_BYTES}: \
                 set it to one, or unset it"
                )
            })?,
    };
    let dir = PathBuf::from(dir);
    std::fs::create_dir_all(dir.join(CHILDREN)).map_err(|e| {
        format!(
            "{DIR_VAR}={}: cannot create that directory ({e}): name a writable one, or unset it",
            dir.display()
        )
    })?;
    Ok(Some(Settings { dir, max_bytes }))
}

/// `CLOCK_MONOTONIC` in nanoseconds: one clock for every process of the machine.
fn monotonic() -> u64 {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(ts.tv_nsec).unwrap_or(0)
}

/// A line as written: the record is borrowed, not copied.
#[derive(Serialize)]
struct LineRef<'a> {
    t: u64,
    #[serde(flatten)]
    rec: &'a Record,
}

/// One trace file. Each line is written as it happens, in one write, so a process that is
/// killed loses at most the step it was recording.
struct Sink {
    file: File,
    path: PathBuf,
    written: u64,
    limit: u64,
    line: Vec<u8>,
    /// False once the limit was reached or a write failed: nothing more is written.
    open: bool,
}

impl Sink {
    /// A new trace `<stem>.ndjson` in the trace directory (`<stem>-<k>.ndjson` if a process
    /// of a reused pid took the name already).
    fn create(settings: &Settings, folder: &str, stem: &str) -> Result<Sink, String> {
        let dir = settings.dir.join(folder);
        for k in 0..MAX_SUFFIX {
            let name = match k {
                0 => format!("{stem}.ndjson"),
                _ => format!("{stem}-{k}.ndjson"),
            };
            let path = dir.join(name);
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => {
                    return Ok(Sink {
                        file,
                        path,
                        written: 0,
                        limit: settings.max_bytes,
                        line: Vec::with_capacity(256),
                        open: true,
                    });
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                Err(e) => return Err(format!("cannot create the trace {}: {e}", path.display())),
            }
        }
        Err(format!(
            "{MAX_SUFFIX} traces named {stem} already exist in {}: empty that directory",
            dir.display()
        ))
    }

    /// Writes one line; the one that would pass the limit is replaced by a final
    /// [`Record::Truncated`].
    fn write(&mut self, rec: &Record) {
        if !self.open {
            return;
        }
        self.fill(rec);
        if self.written + self.line.len() as u64 > self.limit {
            self.open = false;
            self.fill(&Record::Truncated { limit: self.limit });
        }
        match self.file.write_all(&self.line) {
            Ok(()) => self.written += self.line.len() as u64,
            Err(e) => {
                self.open = false;
                eprintln!(
                    "harrow: the trace {} cannot be written ({e}): nothing more goes to it",
                    self.path.display()
                );
            }
        }
    }

    fn fill(&mut self, rec: &Record) {
        self.line.clear();
        let line = LineRef {
            t: monotonic(),
            rec,
        };
        serde_json::to_writer(&mut self.line, &line).expect("a trace record always serializes");
        self.line.push(b'\n');
    }
}

/// The operating system a nursery's driver runs over: [`RealOs`], with every call and what
/// it returned written to the nursery's trace when tracing is on.
pub(crate) struct Traced {
    os: RealOs,
    sink: Option<Sink>,
}

/// The operating system a nursery's driver runs over.
pub(crate) type LoopOs = Traced;

/// `os` for the nursery numbered `nursery` of this process, traced if tracing is on.
pub(crate) fn wrap(
    mut os: RealOs,
    config: &SupervisorConfig,
    nursery: u64,
) -> Result<Traced, String> {
    let Some(settings) = settings()? else {
        return Ok(Traced { os, sink: None });
    };
    let pid = std::process::id();
    let mut sink = Sink::create(settings, ".", &format!("nursery-{pid}-{nursery}"))?;
    let now = os.now();
    let epoch = monotonic().saturating_sub(now.as_nanos());
    sink.write(&Record::Open {
        version: VERSION,
        pid,
        epoch,
        config: *config,
    });
    Ok(Traced {
        os,
        sink: Some(sink),
    })
}

impl Traced {
    /// Records a step of the nursery's user, if tracing is on (`rec` is not called if not).
    pub(crate) fn note(&mut self, rec: impl FnOnce() -> Record) {
        if let Some(sink) = self.sink.as_mut() {
            sink.write(&rec());
        }
    }
}

impl fmt::Debug for Traced {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.sink.as_ref().map(|s| s.path.display());
        write!(f, "Traced {{ os: {:?}, trace: {path:?} }}", self.os)
    }
}

impl Deref for Traced {
    type Target = RealOs;
    fn deref(&self) -> &RealOs {
        &self.os
    }
}

impl DerefMut for Traced {
    fn deref_mut(&mut self) -> &mut RealOs {
        &mut self.os
    }
}

impl Os for Traced {
    fn now(&mut self) -> Timestamp {
        let now = self.os.now();
        self.note(|| Record::Now { now });
        now
    }

    fn situation(&mut self) -> Situation {
        let situation = self.os.situation();
        self.note(|| Record::Situation { situation });
        situation
    }

    fn launch(&mut self, child: ChildId, actor: &str, method: SpawnMethod) -> Result<(), String> {
        let result = self.os.launch(child, actor, method);
        if let Some(sink) = self.sink.as_mut() {
            sink.write(&Record::Launch {
                child,
                actor: actor.into(),
                method,
                result: result.clone(),
                pid: self.os.pid(child).and_then(|p| u32::try_from(p).ok()),
            });
        }
        result
    }

    fn send(&mut self, child: ChildId, frame: &[u8]) {
        self.os.send(child, frame);
        self.note(|| Record::Send {
            child,
            frame: Hex(frame.to_vec()),
        });
    }

    fn close(&mut self, child: ChildId) {
        self.os.close(child);
        self.note(|| Record::Close { child });
    }

    fn kill(&mut self, child: ChildId) {
        self.os.kill(child);
        self.note(|| Record::Kill { child });
    }

    fn abandon(&mut self, child: ChildId) {
        self.os.abandon(child);
        self.note(|| Record::Abandon { child });
    }

    fn reap(&mut self, child: ChildId) -> Result<ExitStatus, String> {
        let result = self.os.reap(child);
        self.note(|| Record::Reap {
            child,
            result: result.clone(),
        });
        result
    }

    fn retire(&mut self, child: ChildId) {
        self.os.retire(child);
        self.note(|| Record::Retire { child });
    }

    fn wait(
        &mut self,
        deadline: Option<Timestamp>,
        out: &mut Vec<OsEvent>,
    ) -> Result<(), WaitError> {
        let from = out.len();
        let waited = self.os.wait(deadline, out);
        if let Some(sink) = self.sink.as_mut() {
            sink.write(&Record::Wait {
                deadline,
                events: out[from..].iter().map(Into::into).collect(),
                now: self.os.now(),
                failed: waited.as_ref().err().map(ToString::to_string),
            });
        }
        waited
    }
}

/// A child's operating system, with what it sent and was told written to its trace.
struct TracedChild<'o, C> {
    os: &'o mut C,
    sink: Sink,
}

impl<C: ChildOs> TracedChild<'_, C> {
    fn note_events(&mut self, events: &[ChildEvent]) {
        self.sink.write(&Record::ChildEvents {
            events: events.iter().map(Into::into).collect(),
        });
    }
}

impl<C: BlockingChildOs> BlockingChildOs for TracedChild<'_, C> {
    fn wait(&mut self, out: &mut Vec<ChildEvent>) {
        let from = out.len();
        self.os.wait(out);
        self.note_events(&out[from..]);
    }
}

impl<C: ChildOs> ChildOs for TracedChild<'_, C> {
    fn send(&mut self, frame: &[u8]) {
        self.os.send(frame);
        self.sink.write(&Record::ChildSend {
            frame: Hex(frame.to_vec()),
        });
    }

    fn poll(&mut self, out: &mut Vec<ChildEvent>) {
        let from = out.len();
        self.os.poll(out);
        if out.len() > from {
            self.note_events(&out[from..]);
        }
    }

    fn alive(&mut self) -> bool {
        self.os.alive()
    }

    fn catch_panic<R>(code: impl FnOnce() -> R) -> Result<R, String> {
        C::catch_panic(code)
    }
}

/// The trace of a child running `actor`, if tracing is on; a child that cannot write one
/// says so on its standard error and runs untraced (it has nobody to return an error to).
/// With tracing off it names no file (no formatting, no system call).
fn child_sink(actor: &str) -> Option<Sink> {
    let created = settings().and_then(|s| {
        s.map(|s| {
            let stem = format!(
                "child-{}-{}",
                std::process::id(),
                rustix::thread::gettid().as_raw_nonzero()
            );
            Sink::create(s, CHILDREN, &stem)
        })
        .transpose()
    });
    match created {
        Ok(sink) => sink,
        Err(e) => {
            eprintln!("harrow: the child running `{actor}` is not traced: {e}");
            None
        }
    }
}

/// The trace of a child running `actor`, begun with its header, if tracing is on.
fn child_trace(actor: &str) -> Option<Sink> {
    let mut sink = child_sink(actor)?;
    sink.write(&Record::ChildStart {
        version: VERSION,
        pid: std::process::id(),
        actor: actor.into(),
    });
    Some(sink)
}

/// The trace of an async child's loop, which runs over no [`ChildOs`]: what it read and
/// sent, and its exit code, each recorded only if tracing is on.
#[cfg(feature = "tokio")]
pub(crate) struct ChildTrace(Option<Sink>);

#[cfg(feature = "tokio")]
impl ChildTrace {
    /// Opens the trace of a child running `actor`, if tracing is on.
    pub(crate) fn open(actor: &str) -> ChildTrace {
        ChildTrace(child_trace(actor))
    }

    /// Records a frame the child sent (`frame` is not called if tracing is off).
    pub(crate) fn sent(&mut self, frame: impl FnOnce() -> Vec<u8>) {
        if let Some(sink) = self.0.as_mut() {
            sink.write(&Record::ChildSend {
                frame: Hex(frame()),
            });
        }
    }

    /// Records what the child's loop read (`event` is not called if tracing is off).
    pub(crate) fn read(&mut self, event: impl FnOnce() -> TracedChildEvent) {
        if let Some(sink) = self.0.as_mut() {
            sink.write(&Record::ChildEvents {
                events: vec![event()],
            });
        }
    }

    /// Records the exit code the child's loop ends with, before its channel closes.
    pub(crate) fn exit(&mut self, code: i32) {
        if let Some(sink) = self.0.as_mut() {
            sink.write(&Record::ChildExit { code });
        }
    }
}

/// Runs a child's loop ([`harrow_model::driver::run_child`]), traced if tracing is on.
pub(crate) fn run_child<C: BlockingChildOs>(
    os: &mut C,
    actor: &mut Actor,
    runtime: ChildRuntime,
    max_frame: u32,
    name: &str,
) -> ChildExit {
    let Some(sink) = child_trace(name) else {
        return harrow_model::driver::run_child(os, actor, runtime, max_frame);
    };
    let mut traced = TracedChild { os, sink };
    let exit = harrow_model::driver::run_child(&mut traced, actor, runtime, max_frame);
    let code = match exit {
        ChildExit::Code(code) => code,
        ChildExit::Killed => harrow_model::exit::KILLED,
    };
    // Before the caller drops the channel: the parent's end-of-file comes after this line.
    traced.sink.write(&Record::ChildExit { code });
    exit
}
