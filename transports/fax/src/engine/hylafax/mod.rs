//! The `hylafax` engine: a HylaFAX server does the calls; we are one of
//! its clients, over hfaxd's client-server protocol ([`protocol`], port
//! 4559).
//!
//! - **Send.** One connection: `USER` (and `PASS`, `ADMIN` when
//!   configured), `TYPE I`, `FORM TIFF`, `STOT` of the TIFF-F document, `JNEW`, `JPARM`
//!   FROMUSER, LASTTIME (`job_timeout`), MAXDIALS 1 and MAXTRIES 1 (our
//!   queue does the retries, so HylaFAX must report a busy line instead of
//!   redialling), DIALSTRING, TSI, PAGERANGE (when resending from a later
//!   page), NOTIFY NONE, DOCUMENT, then `JSUBM`. Then the job is polled
//!   every `poll_interval` (`JOB id` + `JPARM`, a new connection each
//!   time) until its state is DONE or FAILED, and mapped ([`status`]);
//!   each look is shown on the live board (waiting for a modem, dialling
//!   while ACTIVE with no page confirmed, then the page after `NPAGES`).
//!   No end within `job_timeout` (or the send abandoned, as on shutdown):
//!   the job is killed (`JKILL`) and the send is an error to retry.
//! - **Receive.** Every `poll_interval`, `LIST recvq` (with our `RCVFMT`);
//!   each complete fax is fetched (`RETR recvq/NAME`) into `received`.
//!   Once its mails are queued (acknowledged) it is deleted on the
//!   server (`DELE`; that needs the rights — an `ADMIN` password or an
//!   owner); until then it is not fetched again by this run, but is by
//!   the next (nothing is lost in a crash). One that cannot be deleted
//!   is noted in `received/.hylafax-taken` and not fetched again; a name
//!   gone from the receive queue is pruned from that list ([`recvq`]).
//! - `lines` bounds the jobs we have at the server at once.

use super::lines::Lines;
use super::{FaxEngine, ReceivedFax, Reception, SendRequest, SendResult};
use protocol::{quote, Client, ProtocolError};
use status::JobStatus;
use std::collections::{HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

pub mod protocol;
mod recvq;
pub mod status;

/// The settings of the HylaFAX engine (`[fax.hylafax]`).
#[derive(Debug, Clone)]
pub struct HylafaxSettings {
    /// Jobs at the server at once (`[fax] lines`); at least 1.
    pub lines: usize,
    /// hfaxd's host and port (4559).
    pub host: String,
    pub port: u16,
    pub user: String,
    /// Sent when hfaxd asks for one (331).
    pub password: Option<String>,
    /// Sent with `ADMIN` after login when set (needed to take received
    /// faxes that are not public).
    pub admin_password: Option<String>,
    /// How often jobs and the receive queue are looked at.
    pub poll_interval: Duration,
    /// How long a job may take from submission.
    pub job_timeout: Duration,
    /// Each network read, write or connect.
    pub io_timeout: Duration,
    /// Where received faxes are written.
    pub received: PathBuf,
}

impl Default for HylafaxSettings {
    fn default() -> Self {
        HylafaxSettings {
            lines: 2,
            host: "127.0.0.1".into(),
            port: 4559,
            user: "faxmta".into(),
            password: None,
            admin_password: None,
            poll_interval: Duration::from_secs(5),
            job_timeout: Duration::from_secs(3600),
            io_timeout: Duration::from_secs(30),
            received: PathBuf::from("var/fax/inbound"),
        }
    }
}

/// Errors of the HylaFAX engine.
#[derive(Debug, thiserror::Error)]
pub enum HylafaxError {
    #[error("[fax.hylafax] {0}")]
    Settings(String),
    #[error("hfaxd: {0}")]
    Protocol(#[from] ProtocolError),
    #[error("{0}")]
    Other(String),
}

/// The HylaFAX engine. See the module documentation.
pub struct HylafaxEngine {
    settings: Arc<HylafaxSettings>,
    lines: Lines,
    receiving: tokio::sync::Mutex<()>,
    taken: Mutex<VecDeque<ReceivedFax>>,
    /// The `recvq` files handed out and not yet acknowledged.
    handed: Mutex<HashSet<String>>,
}

impl HylafaxEngine {
    pub fn new(settings: HylafaxSettings) -> Result<HylafaxEngine, HylafaxError> {
        if settings.lines == 0 {
            return Err(HylafaxError::Settings(
                "[fax] lines must be at least 1".into(),
            ));
        }
        for (name, d) in [
            ("poll_interval", settings.poll_interval),
            ("job_timeout", settings.job_timeout),
            ("io_timeout", settings.io_timeout),
        ] {
            if d.is_zero() {
                return Err(HylafaxError::Settings(format!(
                    "{name} must be more than 0"
                )));
            }
        }
        if settings.user.is_empty() || settings.user.contains(char::is_whitespace) {
            return Err(HylafaxError::Settings(format!(
                "user {:?} is not a user name",
                settings.user
            )));
        }
        std::fs::create_dir_all(&settings.received).map_err(|e| {
            HylafaxError::Settings(format!("cannot make {:?}: {e}", settings.received))
        })?;
        Ok(HylafaxEngine {
            lines: Lines::new(settings.lines),
            receiving: tokio::sync::Mutex::new(()),
            taken: Mutex::default(),
            handed: Mutex::default(),
            settings: Arc::new(settings),
        })
    }

    pub fn settings(&self) -> &HylafaxSettings {
        &self.settings
    }

    /// A logged-in connection.
    async fn connect(settings: &HylafaxSettings) -> Result<Client, HylafaxError> {
        let mut c = Client::connect(&settings.host, settings.port, settings.io_timeout).await?;
        c.login(
            &settings.user,
            settings.password.as_deref(),
            settings.admin_password.as_deref(),
        )
        .await?;
        Ok(c)
    }

    /// Submits the job and returns its HylaFAX job id.
    pub async fn submit(&self, request: &SendRequest) -> Result<u32, HylafaxError> {
        let mut guard = KillOnDrop {
            settings: self.settings.clone(),
            id: None,
        };
        let id = self.submit_guarded(request, &mut guard).await?;
        guard.id = None;
        Ok(id)
    }

    /// [`HylafaxEngine::submit`] with `guard` armed as soon as the job
    /// has an id (JNEW), before it is submitted: a send dropped at any
    /// point after that kills the job, even one dropped while JSUBM's
    /// reply is on its way (faxq has the job by then).
    async fn submit_guarded(
        &self,
        request: &SendRequest,
        guard: &mut KillOnDrop,
    ) -> Result<u32, HylafaxError> {
        request.check(None).map_err(HylafaxError::Other)?;
        let document = tokio::fs::read(&request.document).await.map_err(|e| {
            HylafaxError::Other(format!(
                "cannot read the document {:?}: {e}",
                request.document
            ))
        })?;
        let s = &self.settings;
        let mut c = Self::connect(s).await?;
        c.expect("TYPE I", &[200]).await?;
        c.expect("FORM TIFF", &[200]).await?;
        let file = c.store_temp(&document).await?;
        let reply = c.expect("JNEW", &[200]).await?;
        let id = protocol::parse_jobid(reply.text())
            .ok_or_else(|| HylafaxError::Other(format!("JNEW: no job id in {reply}")))?;
        guard.id = Some(id);
        let mut params = vec![
            format!("FROMUSER {}", quote(&s.user)),
            format!("LASTTIME {}", status::lasttime(s.job_timeout)),
            "MAXDIALS 1".to_owned(),
            "MAXTRIES 1".to_owned(),
            format!("DIALSTRING {}", quote(&dial_string(request))),
            "NOTIFY NONE".to_owned(),
        ];
        if let Some(sub) = &request.subaddress {
            // T.33 routing at the far end (sendfax's `number#subaddress`).
            params.push(format!("SUBADDR {}", quote(sub)));
        }
        if !request.tsi.trim().is_empty() {
            params.push(format!("TSI {}", quote(request.tsi.trim())));
        }
        if request.first_page > 1 {
            params.push(format!(
                "PAGERANGE {}",
                quote(&format!("{}-{}", request.first_page, request.pages))
            ));
        }
        params.push(format!("JOBINFO {}", quote(&request.job_id)));
        params.push(format!("DOCUMENT {}", quote(&file)));
        for p in params {
            c.expect(&format!("JPARM {p}"), &[200, 213]).await?;
        }
        c.expect("JSUBM", &[200]).await?;
        c.quit().await;
        tracing::info!(job = %request.job_id, hylafax_job = id, dial = %request.dial, "fax job submitted to HylaFAX");
        Ok(id)
    }

    /// The job's state now.
    pub async fn status(&self, id: u32) -> Result<JobStatus, HylafaxError> {
        let mut c = Self::connect(&self.settings).await?;
        c.expect(&format!("JOB {id}"), &[200]).await?;
        let reply = c.expect("JPARM", &[217]).await?;
        c.quit().await;
        JobStatus::parse(id, &reply.lines).map_err(HylafaxError::Other)
    }

    /// Kills the job (`JKILL`; a job already finished is left as it is).
    pub async fn cancel(&self, id: u32) -> Result<(), HylafaxError> {
        kill(&self.settings, id).await
    }

    /// Follows the job until it finishes or `job_timeout` passes; `guard`
    /// kills it if the send is dropped meanwhile.
    async fn follow(&self, id: u32, request: &SendRequest, mut guard: KillOnDrop) -> SendResult {
        let started = Instant::now();
        request.report_with(
            crate::live::LiveState::WaitingForLine,
            &format!("HylaFAX job {id}"),
        );
        loop {
            tokio::time::sleep(self.settings.poll_interval).await;
            let last_error = match self.status(id).await {
                Ok(job) => {
                    job.report(request);
                    if let Some(result) = job.outcome(started.elapsed()) {
                        guard.id = None;
                        tracing::info!(job = %request.job_id, hylafax_job = id, status = %job.status, "HylaFAX job finished");
                        return result;
                    }
                    None
                }
                Err(e) => {
                    tracing::warn!(job = %request.job_id, hylafax_job = id, "HylaFAX job status: {e}");
                    Some(e.to_string())
                }
            };
            if started.elapsed() >= self.settings.job_timeout {
                guard.id = None;
                let killed = match kill(&self.settings, id).await {
                    Ok(()) => "killed".to_owned(),
                    Err(e) => format!("could not be killed: {e}"),
                };
                let why = last_error
                    .map(|e| format!(" (last: {e})"))
                    .unwrap_or_default();
                return SendResult::Error {
                    reason: format!(
                        "HylaFAX job {id} did not end within {:?}; it {killed}{why}",
                        self.settings.job_timeout
                    ),
                    retry: true,
                };
            }
        }
    }
}

/// `JKILL id`: 200 when killed, and a job already finished is fine too.
async fn kill(settings: &HylafaxSettings, id: u32) -> Result<(), HylafaxError> {
    let mut c = HylafaxEngine::connect(settings).await?;
    let reply = c.command(&format!("JKILL {id}")).await?;
    c.quit().await;
    if reply.positive() || reply.text().to_ascii_lowercase().contains("done") {
        tracing::info!(hylafax_job = id, "HylaFAX job killed");
        Ok(())
    } else {
        Err(HylafaxError::Other(format!(
            "JKILL {id}: the server replied {reply}"
        )))
    }
}

/// Kills a job whose send was abandoned (its future dropped).
struct KillOnDrop {
    settings: Arc<HylafaxSettings>,
    id: Option<u32>,
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let Some(id) = self.id.take() else { return };
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let settings = self.settings.clone();
            handle.spawn(async move {
                if let Err(e) = kill(&settings, id).await {
                    tracing::warn!(hylafax_job = id, "abandoned HylaFAX job: {e}");
                }
            });
        }
    }
}

#[async_trait::async_trait]
impl FaxEngine for HylafaxEngine {
    fn name(&self) -> &'static str {
        "hylafax"
    }

    fn lines(&self) -> usize {
        self.settings.lines
    }

    fn lines_busy(&self) -> usize {
        self.lines.busy()
    }

    async fn send(&self, request: SendRequest) -> SendResult {
        if let Err(reason) = request.check(None) {
            return SendResult::Error {
                reason,
                retry: false,
            };
        }
        let Some(_line) = self.lines.take().await else {
            return SendResult::Error {
                reason: "the fax engine has stopped".into(),
                retry: true,
            };
        };
        let mut guard = KillOnDrop {
            settings: self.settings.clone(),
            id: None,
        };
        match self.submit_guarded(&request, &mut guard).await {
            Ok(id) => self.follow(id, &request, guard).await,
            Err(e) => SendResult::Error {
                reason: format!("submitting the fax to HylaFAX: {e}"),
                retry: true,
            },
        }
    }

    /// Polls the receive queue. Cancel-safe: a fax fetched by a call that
    /// was dropped is handed out by the next one.
    async fn receive(&self) -> Option<ReceivedFax> {
        let _one = self.receiving.lock().await;
        loop {
            if let Some(fax) = self
                .taken
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pop_front()
            {
                return Some(fax);
            }
            let skip = self
                .handed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            match recvq::take(&self.settings, &skip).await {
                Ok(faxes) if !faxes.is_empty() => {
                    self.handed
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .extend(faxes.iter().filter_map(|f| f.source.clone()));
                    self.taken
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .extend(faxes);
                    continue;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("HylaFAX receive queue: {e}"),
            }
            tokio::time::sleep(self.settings.poll_interval).await;
        }
    }

    /// Deletes the fax on the server (or notes it as taken).
    async fn acknowledge(&self, fax: &ReceivedFax) {
        let Some(file) = &fax.source else { return };
        recvq::acknowledge(&self.settings, file).await;
        self.handed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(file);
    }
}

/// A received fax from a `RCVFMT` line (see [`recvq`]).
fn received(path: PathBuf, info: &recvq::RecvInfo) -> ReceivedFax {
    ReceivedFax {
        document: path,
        pages: info.pages,
        remote_tsi: info.tsi.clone(),
        caller: Some(info.caller.clone()).filter(|s| !s.is_empty()),
        called: Some(info.subaddress.clone()).filter(|s| !s.is_empty()),
        duration: info.duration,
        status: if info.pages == 0 {
            Reception::Failed {
                reason: Some(info.error.clone())
                    .filter(|e| !e.is_empty())
                    .unwrap_or_else(|| "no pages received".into()),
            }
        } else if info.error.is_empty() {
            Reception::Complete
        } else {
            Reception::Partial {
                reason: info.error.clone(),
            }
        },
        received_at: SystemTime::now(),
        bad_rows: None,
        source: Some(info.file.clone()),
    }
}

/// What HylaFAX dials: the number, then for an extension two pauses
/// (`,`, about two seconds each in the modem's ATD string) and the
/// digits as DTMF — HylaFAX passes `,` through its dial string rules to
/// the modem, where it is the usual pause before post-dial digits.
pub fn dial_string(request: &SendRequest) -> String {
    match request.extension.as_deref() {
        Some(ext) => format!("{},,{ext}", request.dial.trim()),
        None => request.dial.trim().to_owned(),
    }
}
