//! The SIP engine (`engine = "sip"`, `[fax.sip]`): faxmta is itself a SIP
//! user agent that registers to a carrier's trunk or a PBX (or is a trunk
//! peer by IP), places and answers calls, and runs the fax over T.38
//! (UDPTL) or, when the far end refuses T.38, over G.711 audio (RTP).
//!
//! The parts, each with one job:
//! - [`settings`]: what `[fax.sip]` gives the engine (trunks in order).
//! - [`ua`]: the SIP user agent (rsipstack): transports, registrations,
//!   incoming requests sorted.
//! - [`call_out`], [`call_in`]: one outgoing or incoming fax call, from
//!   INVITE to BYE; [`outcome`]: SIP and T.30 ends as fax results.
//! - [`negotiate`] and [`session`]: our SDP, and the media session of
//!   the agreed stream on a blocking thread, switched to T.38 by re-INVITE.
//! - [`media`]: what the signalling hands the media side of a call (the
//!   agreed stream, a control block) and what comes back; media ports.
//! - [`sdp`]: offers and answers (audio PCMU/PCMA, `m=image … udptl
//!   t38` with its `T38Fax…` attributes).
//! - [`udptl`]: the UDPTL packet codec (T.38 §9.1, Annex A PER framing),
//!   redundancy and FEC, recovery of lost packets.
//! - [`t38_session`]: spandsp's T.38 terminal over a UDPTL socket.
//! - [`rtp`], [`jitter`], [`audio_session`]: spandsp's audio fax modem over
//!   G.711 RTP with a jitter buffer.

pub mod audio_session;
pub mod call_in;
pub mod call_out;
pub mod jitter;
pub mod media;
pub mod negotiate;
pub mod outcome;
pub mod rtp;
pub mod sdp;
pub mod session;
pub mod settings;
pub mod t38_session;
pub mod ua;
pub mod udptl;

use super::{FaxEngine, ReceivedFax, SendRequest, SendResult, TrunkReport};
use settings::SipSettings;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, Mutex, Semaphore};
use ua::{NewCall, Ua};

/// Counters of one trunk, for the metrics.
#[derive(Debug, Default)]
pub struct TrunkStats {
    pub name: String,
    /// Calls placed and received over it.
    pub calls_out: AtomicU64,
    pub calls_in: AtomicU64,
    /// Calls now.
    pub busy: AtomicUsize,
    /// Outgoing calls that did not send every page, by cause
    /// (`busy`, `no-answer`, `no-fax-tone`, `partial`, `rejected`,
    /// `error`).
    pub failures: std::sync::Mutex<std::collections::BTreeMap<&'static str, u64>>,
    /// Pages sent and received over it.
    pub pages: AtomicU64,
    /// Milliseconds of calls on it.
    pub line_ms: AtomicU64,
    max_calls: usize,
}

impl TrunkStats {
    fn fail(&self, cause: &'static str) {
        if let Ok(mut f) = self.failures.lock() {
            *f.entry(cause).or_default() += 1;
        }
    }
}

/// A call slot on a trunk, counted until dropped.
struct Slot<'a>(&'a TrunkStats);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::SeqCst);
    }
}

impl TrunkStats {
    fn try_slot(&self) -> Option<Slot<'_>> {
        let taken = self
            .busy
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| {
                (b < self.max_calls).then_some(b + 1)
            })
            .is_ok();
        taken.then_some(Slot(self))
    }
}

/// The SIP engine. See the module documentation.
pub struct SipEngine {
    settings: Arc<SipSettings>,
    ua: Arc<Ua>,
    /// Every trunk's calls together: a send waits here for any free one.
    lines: Arc<Semaphore>,
    total: usize,
    trunks: Arc<Vec<TrunkStats>>,
    received: Mutex<mpsc::Receiver<ReceivedFax>>,
}

impl SipEngine {
    /// Starts the user agent (our SIP transports, the registrations) and
    /// the answering of incoming calls. Faxes received and not
    /// acknowledged before the last stop are handed out again first.
    pub async fn start(settings: SipSettings) -> Result<SipEngine, ua::UaError> {
        let settings = Arc::new(settings);
        // New calls waiting to be taken (each is taken at once by a task
        // of its own): a burst of INVITEs beyond this is refused 503.
        let (calls_tx, mut calls_rx) = mpsc::channel::<NewCall>(1024);
        let ua = Arc::new(Ua::start(&settings, calls_tx).await?);
        let trunks: Arc<Vec<TrunkStats>> = Arc::new(
            settings
                .trunks
                .iter()
                .map(|t| TrunkStats {
                    name: t.name.clone(),
                    max_calls: t.max_calls,
                    ..TrunkStats::default()
                })
                .collect(),
        );
        let total = settings.trunks.iter().map(|t| t.max_calls).sum::<usize>();
        let (fax_tx, fax_rx) = mpsc::channel(64);
        for fax in super::handover::pending(&settings.received) {
            if fax_tx.try_send(fax).is_err() {
                break;
            }
        }
        {
            let (settings, trunks) = (settings.clone(), trunks.clone());
            tokio::spawn(async move {
                while let Some(call) = calls_rx.recv().await {
                    let (settings, trunks, out) =
                        (settings.clone(), trunks.clone(), fax_tx.clone());
                    let registered = settings
                        .trunks
                        .iter()
                        .any(|t| t.name == call.trunk && t.register);
                    tokio::spawn(async move {
                        let index = trunks.iter().position(|t| t.name == call.trunk);
                        let stats = index.map(|i| &trunks[i]);
                        let slot = stats.and_then(TrunkStats::try_slot);
                        if let Some(s) = stats {
                            s.calls_in.fetch_add(1, Ordering::SeqCst);
                        }
                        if slot.is_none() {
                            tracing::warn!(trunk = %call.trunk, "incoming call refused (486): every line of the trunk is busy");
                            call.dialog
                                .reject(Some(rsipstack::sip::StatusCode::BusyHere), None)
                                .ok();
                            return;
                        }
                        let started = std::time::Instant::now();
                        let pages = call_in::take(&settings, registered, call, out).await;
                        if let Some(s) = stats {
                            s.line_ms
                                .fetch_add(started.elapsed().as_millis() as u64, Ordering::SeqCst);
                            s.pages.fetch_add(u64::from(pages), Ordering::SeqCst);
                        }
                        drop(slot);
                    });
                }
            });
        }
        Ok(SipEngine {
            settings,
            ua,
            lines: Arc::new(Semaphore::new(total)),
            total,
            trunks,
            received: Mutex::new(fax_rx),
        })
    }

    /// Each trunk's counters.
    pub fn trunk_stats(&self) -> &[TrunkStats] {
        &self.trunks
    }

    /// Whether the trunk named `name` holds a registration now.
    pub fn registered(&self, name: &str) -> bool {
        self.ua
            .registered
            .iter()
            .any(|(n, f)| n == name && f.load(Ordering::SeqCst))
    }
}

#[async_trait::async_trait]
impl FaxEngine for SipEngine {
    fn name(&self) -> &'static str {
        "sip"
    }

    fn lines(&self) -> usize {
        self.total
    }

    fn lines_busy(&self) -> usize {
        self.trunks
            .iter()
            .map(|t| t.busy.load(Ordering::SeqCst))
            .sum()
    }

    fn trunks(&self) -> Vec<TrunkReport> {
        self.settings
            .trunks
            .iter()
            .zip(self.trunks.iter())
            .map(|(trunk, s)| TrunkReport {
                name: s.name.clone(),
                calls_out: s.calls_out.load(Ordering::SeqCst),
                calls_in: s.calls_in.load(Ordering::SeqCst),
                busy: s.busy.load(Ordering::SeqCst),
                max_calls: s.max_calls,
                failures: s
                    .failures
                    .lock()
                    .map(|f| f.iter().map(|(k, v)| (*k, *v)).collect())
                    .unwrap_or_default(),
                pages: s.pages.load(Ordering::SeqCst),
                line_seconds: s.line_ms.load(Ordering::SeqCst) as f64 / 1000.0,
                registered: trunk.register.then(|| self.registered(&trunk.name)),
            })
            .collect()
    }

    async fn send(&self, request: SendRequest) -> SendResult {
        if let Err(e) = request.check(None) {
            return SendResult::Error {
                reason: e,
                retry: false,
            };
        }
        let Ok(_line) = self.lines.acquire().await else {
            return SendResult::Error {
                reason: "the fax engine has stopped".into(),
                retry: true,
            };
        };
        let mut last = None;
        for (trunk, stats) in self.settings.trunks.iter().zip(self.trunks.iter()) {
            let Some(slot) = stats.try_slot() else {
                continue;
            };
            stats.calls_out.fetch_add(1, Ordering::SeqCst);
            let started = std::time::Instant::now();
            let placed = call_out::place(&self.ua, &self.settings, trunk, &request).await;
            let took = started.elapsed();
            drop(slot);
            stats
                .line_ms
                .fetch_add(took.as_millis() as u64, Ordering::SeqCst);
            let (word, pages) = match &placed.result {
                SendResult::Sent { pages, .. } => ("sent", *pages),
                SendResult::Busy { .. } => ("busy", 0),
                SendResult::NoAnswer { .. } => ("no-answer", 0),
                SendResult::NoFaxTone => ("no-fax-tone", 0),
                SendResult::Partial { pages_sent, .. } => ("partial", *pages_sent),
                SendResult::Error { .. } if placed.failover => ("rejected", 0),
                SendResult::Error { .. } => ("error", 0),
            };
            stats.pages.fetch_add(u64::from(pages), Ordering::SeqCst);
            if word != "sent" {
                stats.fail(word);
            }
            tracing::info!(
                job = %request.job_id,
                trunk = %trunk.name,
                number = %request.dial,
                status = word,
                pages,
                delay = took.as_secs_f64(),
                "fax call over SIP: {}",
                placed.detail
            );
            if !placed.failover {
                return placed.result;
            }
            last = Some(placed.result);
        }
        last.unwrap_or(SendResult::Error {
            reason: "every SIP trunk's lines are busy".into(),
            retry: true,
        })
    }

    async fn receive(&self) -> Option<ReceivedFax> {
        self.received.lock().await.recv().await
    }

    async fn acknowledge(&self, fax: &ReceivedFax) {
        super::handover::remove(fax);
    }

    /// Hangs up every call (BYE, or CANCEL while ringing) and waits a
    /// little for them to end: outgoing ones report the pages confirmed,
    /// incoming ones write their partial fax's record.
    async fn shutdown(&self) {
        self.ua.calls.cancel();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while self.lines_busy() > 0 && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}
#[cfg(test)]
mod tests;
