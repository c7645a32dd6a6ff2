//! A call's media from the signalling's side: the fax job of our end, the
//! media session of the agreed stream running on a blocking thread, and
//! the switch from audio to T.38 when a re-INVITE agrees it (T.38 Annex
//! D): the audio session is stopped and a T.38 one starts on the same
//! port, T.30 starting afresh (the switch comes before T.30 has got
//! past its tones).

use super::media::{Control, MediaEnd, Stream};
use super::{audio_session, t38_session};
use crate::engine::spandsp::modem::{Job, Setup};
use std::ffi::CStr;
use std::net::UdpSocket;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::task::JoinHandle;

/// What our end does in the call, owned (the media thread makes a
/// [`Setup`] of it).
#[derive(Debug, Clone)]
pub struct FaxJob {
    /// We placed the call (CNG) or answered it (CED).
    pub calling: bool,
    /// Our identity: TSI when sending, CSID when receiving.
    pub ident: String,
    pub work: Work,
    /// Digits played as DTMF over audio once the call is answered, before
    /// the fax starts (an extension behind a PBX).
    pub dtmf: Option<String>,
}

/// Send pages or receive them.
#[derive(Debug, Clone)]
pub enum Work {
    Send {
        file: PathBuf,
        first: u32,
        header: Option<String>,
    },
    Receive {
        file: PathBuf,
    },
}

impl FaxJob {
    fn with_setup<R>(&self, tag: &'static CStr, f: impl FnOnce(&Setup<'_>) -> R) -> R {
        let job = match &self.work {
            Work::Send {
                file,
                first,
                header,
            } => Job::Send {
                file,
                first: *first,
                last: None,
                header: header.as_deref(),
            },
            Work::Receive { file } => Job::Receive { file },
        };
        f(&Setup {
            calling: self.calling,
            ident: &self.ident,
            tag,
            job,
        })
    }
}

/// Runs the fax over `stream` on this thread until T.30 ends or `control`
/// stops it.
fn run(
    stream: &Stream,
    socket: UdpSocket,
    job: &FaxJob,
    control: &Control,
) -> Result<MediaEnd, String> {
    match stream {
        Stream::T38(t38) => job
            .with_setup(c"sip-t38", |setup| {
                t38_session::run(socket, t38, setup, control)
            })
            .map_err(|e| format!("T.38 session: {e}")),
        Stream::Audio(audio) => job
            .with_setup(c"sip-audio", |setup| {
                let options = audio_session::Options {
                    dtmf: job.dtmf.clone(),
                    ..Default::default()
                };
                audio_session::run_with(socket, audio, setup, control, &options)
            })
            .map_err(|e| format!("audio session: {e}")),
    }
}

/// A media session running on a blocking thread.
struct Running {
    control: Arc<Control>,
    handle: JoinHandle<Result<MediaEnd, String>>,
}

impl Drop for MediaCall {
    /// A call given up (its future dropped) stops its media thread.
    fn drop(&mut self) {
        if let Some(running) = &self.running {
            running.control.stop();
        }
    }
}

/// The media of one call: its port, its job and the session running now.
pub struct MediaCall {
    socket: UdpSocket,
    job: Arc<FaxJob>,
    running: Option<Running>,
    /// The stream agreed last.
    pub stream: Option<Stream>,
    /// Pages confirmed by sessions stopped for a switch (none in
    /// practice: the switch comes before the first page).
    earlier_pages: u32,
    /// Pages last reported by [`MediaCall::progress`].
    reported: u32,
    /// The o= version of the SDP we send in this call.
    pub version: super::sdp::SessionVersion,
}

impl MediaCall {
    pub fn new(socket: UdpSocket, job: FaxJob) -> MediaCall {
        MediaCall {
            socket,
            job: Arc::new(job),
            running: None,
            stream: None,
            earlier_pages: 0,
            reported: 0,
            version: super::sdp::SessionVersion::new(),
        }
    }

    /// The local media port (for our SDP).
    pub fn port(&self) -> u16 {
        self.socket.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// Starts the fax over `stream`, stopping the session running now
    /// first.
    pub async fn start(&mut self, stream: Stream) -> Result<(), String> {
        if let Some(end) = self.stop().await {
            self.earlier_pages += end.stats.pages_tx.max(end.stats.pages_rx);
        }
        let socket = self
            .socket
            .try_clone()
            .map_err(|e| format!("media socket: {e}"))?;
        let control = Arc::new(Control::default());
        let job = self.job.clone();
        let (thread_control, thread_stream) = (control.clone(), stream.clone());
        let handle =
            tokio::task::spawn_blocking(move || run(&thread_stream, socket, &job, &thread_control));
        self.running = Some(Running { control, handle });
        self.stream = Some(stream);
        Ok(())
    }

    /// Whether a session is running.
    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// Waits for the running session to end by itself; pending forever
    /// when none runs (for `select!`).
    pub async fn finished(&mut self) -> Result<MediaEnd, String> {
        let Some(running) = self.running.as_mut() else {
            return std::future::pending().await;
        };
        let result = (&mut running.handle).await;
        self.running = None;
        result.map_err(|e| format!("media thread: {e}"))?
    }

    /// Stops the running session (hang-up or switch) and waits for it;
    /// what it had done, if it ran.
    pub async fn stop(&mut self) -> Option<MediaEnd> {
        let running = self.running.take()?;
        running.control.stop();
        match running.handle.await {
            Ok(Ok(end)) => Some(end),
            Ok(Err(e)) => {
                tracing::warn!("{e}");
                None
            }
            Err(e) => {
                tracing::warn!("media thread: {e}");
                None
            }
        }
    }

    /// The pages confirmed so far, when more than last asked.
    pub fn progress(&mut self) -> Option<u32> {
        let now = self.pages();
        (now > self.reported).then(|| {
            self.reported = now;
            now
        })
    }

    /// The far end hung up: T.30 may be ending right now (a receiver
    /// hangs up on our DCN, before our side's phase E), so the session
    /// gets a moment to end by itself before it is stopped.
    pub async fn hung_up(&mut self) -> Option<MediaEnd> {
        const GRACE: std::time::Duration = std::time::Duration::from_secs(3);
        self.running.as_ref()?;
        match tokio::time::timeout(GRACE, self.finished()).await {
            Ok(Ok(end)) => Some(end),
            Ok(Err(e)) => {
                tracing::warn!("{e}");
                None
            }
            Err(_) => self.stop().await,
        }
    }

    /// Whether the running session's T.30 reached phase B (pages are
    /// under way).
    pub fn negotiated(&self) -> bool {
        self.running
            .as_ref()
            .is_some_and(|r| r.control.negotiated())
    }

    /// Pages confirmed so far in this call (the running session's too).
    pub fn pages(&self) -> u32 {
        self.earlier_pages + self.running.as_ref().map_or(0, |r| r.control.pages())
    }
}
