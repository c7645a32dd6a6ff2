//! Rendering in a child process, within limits. A hostile document can
//! make a decoder allocate without bound (a 4 MB PDF whose stream inflates
//! to 4 GiB aborts the process on the failed allocation: no
//! `catch_unwind` catches that) or loop: so each document is rendered by a
//! worker — the faxmta binary started again with a hidden subcommand
//! ([`RenderWorker::program`]) — under `RLIMIT_AS` (memory) and
//! `RLIMIT_CPU` (CPU time), with a wall-clock deadline, in its own process
//! group (ghostscript, run by the worker, inherits the limits and is
//! killed with it). At most [`Limits::concurrency`] workers run at once
//! (renders happen before a line is taken, so without this a queue of
//! big pictures would take as many gigabytes as the scheduler's
//! concurrency).
//!
//! The protocol, on the worker's standard streams: the parent writes one
//! line of JSON ([`Request`]) and then the message's octets; the worker
//! writes `part DESCRIPTION` before each part it starts decoding and ends
//! with `done JSON` ([`Answer`]). When the worker dies (a signal, a
//! limit) or passes the deadline, the last `part` line names the document
//! that did it. A limit passed fails the fax with that name (a permanent
//! failure of the message, reported to the sender, never a crash of the
//! server); another death (a signal: a decoder bug, the system's OOM
//! killer) is [`RenderFailure::Crashed`]: tried again, and the transport
//! quarantines the message after `render_crash_limit` of them.

use super::document::{page_png, DocumentMaker};
use super::page::Compression;
use super::render::{self, RenderOptions};
use super::transport::RenderFailure;
use serde::{Deserialize, Serialize};
use std::ffi::OsString;
use std::io::{BufRead, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The bounds of one render.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Address space of the worker, in bytes (`RLIMIT_AS`).
    pub memory: u64,
    /// CPU time of the worker (`RLIMIT_CPU`, whole seconds, at least 1).
    pub cpu: Duration,
    /// Wall-clock time before the worker is killed.
    pub wall: Duration,
    /// Workers at once, in all (at least 1).
    pub concurrency: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory: 1 << 30,
            cpu: Duration::from_secs(60),
            wall: Duration::from_secs(120),
            concurrency: 2,
        }
    }
}

/// What the worker makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Task {
    /// The TIFF-F document of a fax.
    Document,
    /// The first page as a half-size PNG (for reports).
    FirstPagePng,
}

/// The first line the worker reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Request {
    pub task: Task,
    pub options: RenderOptions,
    pub compression: Compression,
    /// The number on the cover page.
    pub number: String,
    /// The cover page switched on or off for this sender (`None`: as in
    /// `options`).
    pub cover_page: Option<bool>,
    /// The TIFF's ImageDescription.
    pub description: Option<String>,
    /// Where the worker writes what it made.
    pub output: PathBuf,
}

/// The worker's last line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Answer {
    /// Written to `output`: this many pages.
    Pages(u32),
    /// The message cannot be faxed: why.
    Message(String),
    /// Our trouble (the output cannot be written): why.
    Local(String),
}

/// How a worker that gave no answer ended.
enum Death {
    Limit(String),
    Crash(String),
}

/// Starts workers and waits for them, within [`Limits`].
pub struct RenderWorker {
    /// The program and its arguments that run [`serve`] (the faxmta
    /// binary and its hidden `fax render-worker` subcommand).
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub limits: Limits,
    slots: Slots,
}

/// A counting semaphore for blocking threads.
struct Slots {
    free: Mutex<usize>,
    freed: Condvar,
}

struct Slot<'a>(&'a Slots);

impl Slots {
    fn take(&self) -> Slot<'_> {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        while *free == 0 {
            free = self.freed.wait(free).unwrap_or_else(|e| e.into_inner());
        }
        *free -= 1;
        Slot(self)
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.0.freed.notify_one();
    }
}

impl RenderWorker {
    pub fn new(program: PathBuf, args: Vec<OsString>, limits: Limits) -> Arc<RenderWorker> {
        Arc::new(RenderWorker {
            program,
            args,
            slots: Slots {
                free: Mutex::new(limits.concurrency.max(1)),
                freed: Condvar::new(),
            },
            limits,
        })
    }

    /// Render `message` as `request` says, in a worker (blocking: call
    /// from a blocking thread). Waits for a free slot first.
    pub fn run(&self, request: &Request, message: &[u8]) -> Result<u32, RenderFailure> {
        let _slot = self.slots.take();
        let started = Instant::now();
        let mut line = serde_json::to_vec(request)
            .map_err(|e| RenderFailure::Local(format!("the render request: {e}")))?;
        line.push(b'\n');
        let mut child = Command::new(&self.program)
            .args(&self.args)
            .arg(format!("--memory={}", self.limits.memory))
            .arg(format!("--cpu={}", self.limits.cpu.as_secs().max(1)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|e| {
                RenderFailure::Local(format!(
                    "cannot start the render worker {}: {e}",
                    self.program.display()
                ))
            })?;
        let pid = child.id();
        // Feed, read and collect on threads: the deadline is watched here.
        let mut stdin = child.stdin.take();
        let message = message.to_vec();
        let feeder = std::thread::spawn(move || {
            if let Some(stdin) = stdin.as_mut() {
                // A worker that died early closes the pipe: not our error.
                let _ = stdin
                    .write_all(&line)
                    .and_then(|_| stdin.write_all(&message));
            }
        });
        let stdout = child.stdout.take();
        let reader = std::thread::spawn(move || {
            let mut lines = Vec::new();
            if let Some(out) = stdout {
                for l in std::io::BufReader::new(out).lines() {
                    match l {
                        Ok(l) => lines.push(l),
                        Err(_) => break,
                    }
                }
            }
            lines
        });
        let stderr = child.stderr.take();
        let errors = std::thread::spawn(move || {
            let mut text = Vec::new();
            if let Some(err) = stderr {
                let _ = err.take(64 * 1024).read_to_end(&mut text);
            }
            String::from_utf8_lossy(&text).into_owned()
        });
        let deadline = started + self.limits.wall;
        let mut overtime = false;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Ok(status),
                Ok(None) if Instant::now() >= deadline => {
                    overtime = true;
                    kill_group(pid);
                    break child.wait();
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Err(e) => {
                    kill_group(pid);
                    let _ = child.wait();
                    break Err(e);
                }
            }
        };
        // Whatever a worker that died started dies with it (a worker that
        // ended well has waited for its own children).
        if !matches!(&status, Ok(s) if s.success()) {
            kill_group(pid);
        }
        let _ = feeder.join();
        let lines = reader.join().unwrap_or_default();
        let errors = errors.join().unwrap_or_default();
        let status = status.map_err(|e| RenderFailure::Local(format!("the render worker: {e}")))?;
        let part = lines
            .iter()
            .rev()
            .find_map(|l| l.strip_prefix("part "))
            .unwrap_or("the message")
            .to_owned();
        let answer = lines
            .iter()
            .rev()
            .find_map(|l| l.strip_prefix("done "))
            .and_then(|json| serde_json::from_str::<Answer>(json).ok());
        match (answer, overtime) {
            (Some(Answer::Pages(n)), false) if status.success() => Ok(n),
            (Some(Answer::Message(why)), false) => Err(RenderFailure::Message(why)),
            (Some(Answer::Local(why)), false) => Err(RenderFailure::Local(why)),
            _ => {
                let death = self.why_it_died(status, overtime, &errors, started.elapsed());
                let (why, limit) = match &death {
                    Death::Limit(why) => (why, true),
                    Death::Crash(why) => (why, false),
                };
                tracing::warn!(
                    part = %part,
                    "the render worker (pid {pid}) ended without a result: {why}"
                );
                let text = format!("{part}: cannot be faxed: {why}");
                Err(if limit {
                    RenderFailure::Message(text)
                } else {
                    RenderFailure::Crashed(text)
                })
            }
        }
    }

    /// A worker's death in words: a limit it passed (the document's
    /// doing, every time), or another crash.
    fn why_it_died(
        &self,
        status: std::process::ExitStatus,
        overtime: bool,
        errors: &str,
        elapsed: Duration,
    ) -> Death {
        let l = &self.limits;
        if overtime {
            return Death::Limit(format!(
                "rendering it took longer than the limit of {}s",
                l.wall.as_secs()
            ));
        }
        // Rust's allocation failure says so on stderr before it aborts.
        if errors.contains("memory allocation of") || errors.contains("out of memory") {
            return Death::Limit(format!(
                "rendering it needs more than the limit of {} MB of memory",
                l.memory >> 20
            ));
        }
        let cpu = || {
            Death::Limit(format!(
                "rendering it took more than the limit of {}s of CPU time",
                l.cpu.as_secs().max(1)
            ))
        };
        match status.signal() {
            Some(libc::SIGXCPU) => cpu(),
            // The hard CPU limit, a few seconds after the soft one.
            Some(libc::SIGKILL) if elapsed >= l.cpu => cpu(),
            Some(sig) => Death::Crash(format!("the renderer crashed on it (signal {sig})")),
            None => Death::Crash(format!(
                "the renderer failed on it (exit status {})",
                status.code().unwrap_or(-1)
            )),
        }
    }

    /// The TIFF-F document of `message` at `path`: its page count.
    pub fn document(
        &self,
        maker: &DocumentMaker,
        message: &[u8],
        number: &str,
        cover_page: Option<bool>,
        description: Option<String>,
        path: &Path,
    ) -> Result<u32, RenderFailure> {
        let request = Request {
            task: Task::Document,
            options: maker.options.clone(),
            compression: maker.compression,
            number: number.to_owned(),
            cover_page,
            description,
            output: path.to_owned(),
        };
        self.run(&request, message)
    }

    /// The first page of `message` as a half-size PNG, made in a worker
    /// (in `dir`, removed after); `None` when it cannot be made.
    pub fn first_page_png(
        &self,
        maker: &DocumentMaker,
        message: &[u8],
        dir: &Path,
    ) -> Option<Vec<u8>> {
        let file = tempfile::Builder::new()
            .prefix("first-page-")
            .suffix(".png")
            .tempfile_in(dir)
            .ok()?;
        let request = Request {
            task: Task::FirstPagePng,
            options: maker.options.clone(),
            compression: maker.compression,
            number: String::new(),
            cover_page: None,
            description: None,
            output: file.path().to_owned(),
        };
        self.run(&request, message).ok()?;
        std::fs::read(file.path()).ok()
    }
}

fn kill_group(pid: u32) {
    if let Ok(pid) = i32::try_from(pid) {
        // SAFETY: a signal to the process group we made (process_group(0)
        // made the worker its leader); a group gone already is ESRCH.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
}

/// Sets this process's limits: `memory` bytes of address space and `cpu`
/// seconds of CPU time (soft; the hard CPU limit a little later, so the
/// soft one's SIGXCPU comes first).
pub fn apply_limits(memory: u64, cpu: u64) -> std::io::Result<()> {
    let set = |resource, soft: u64, hard: u64| {
        let limit = libc::rlimit {
            rlim_cur: soft as libc::rlim_t,
            rlim_max: hard as libc::rlim_t,
        };
        // SAFETY: setrlimit reads the struct we pass.
        if unsafe { libc::setrlimit(resource, &limit) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    };
    set(libc::RLIMIT_AS, memory, memory)?;
    set(libc::RLIMIT_CPU, cpu.max(1), cpu.max(1) + 5)?;
    // A dump of a gigabyte helps nobody.
    set(libc::RLIMIT_CORE, 0, 0)
}

/// The worker's side (the hidden `fax render-worker`): limits already
/// applied; reads the request and the message from standard input, says
/// each part on standard output before decoding it, and ends with the
/// answer. Returns the exit code.
pub fn serve() -> i32 {
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut first = String::new();
    if let Err(e) = input.read_line(&mut first) {
        eprintln!("render worker: cannot read the request: {e}");
        return 2;
    }
    let request: Request = match serde_json::from_str(&first) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("render worker: a bad request: {e}");
            return 2;
        }
    };
    let mut message = Vec::new();
    if let Err(e) = input.read_to_end(&mut message) {
        eprintln!("render worker: cannot read the message: {e}");
        return 2;
    }
    // For the tests: a worker that dies without a verdict, as a decoder
    // bug would.
    if std::env::var("FAXMTA_FAILPOINT").is_ok_and(|f| f == "render-worker-crash") {
        say_part("the failpoint");
        std::process::abort();
    }
    render::set_progress(say_part);
    let maker = DocumentMaker {
        options: request.options.clone(),
        compression: request.compression,
    };
    let answer = match request.task {
        Task::Document => maker
            .write_document(
                &message,
                &request.number,
                request.cover_page,
                request.description.clone(),
                &request.output,
            )
            .map_or_else(
                |e| match e {
                    RenderFailure::Message(m) | RenderFailure::Crashed(m) => Answer::Message(m),
                    RenderFailure::Local(m) => Answer::Local(m),
                },
                Answer::Pages,
            ),
        Task::FirstPagePng => match maker.pages(&message, "") {
            Ok(pages) => match pages.first().and_then(page_png) {
                Some(png) => match std::fs::write(&request.output, png) {
                    Ok(()) => Answer::Pages(1),
                    Err(e) => Answer::Local(format!("{}: {e}", request.output.display())),
                },
                None => Answer::Message("no first page".into()),
            },
            Err(e) => Answer::Message(e),
        },
    };
    let json = serde_json::to_string(&answer).unwrap_or_else(|_| "null".into());
    let mut out = std::io::stdout().lock();
    if writeln!(out, "done {json}")
        .and_then(|_| out.flush())
        .is_err()
    {
        return 2;
    }
    0
}

/// The progress hook: the part about to be decoded, flushed at once (the
/// next thing may be the end of this process).
fn say_part(part: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "part {}", part.replace(['\r', '\n'], " "));
    let _ = out.flush();
}

/// The server's renderer: [`DocumentMaker`]'s options, each render in a
/// worker.
pub struct WorkerRenderer {
    pub maker: DocumentMaker,
    pub worker: Arc<RenderWorker>,
}

impl super::transport::Renderer for WorkerRenderer {
    fn render(
        &self,
        message: &[u8],
        envelope: &faxmta_queue::Envelope,
        hop: &faxmta_transport::FaxHop,
        path: &Path,
    ) -> Result<u32, RenderFailure> {
        let description = Some(format!("{} to {}", envelope.id, hop.number));
        self.worker.document(
            &self.maker,
            message,
            &hop.number,
            hop.cover_page,
            description,
            path,
        )
    }
}

#[cfg(test)]
mod tests;
