//! What the accept loop does when `accept` fails. Out of file descriptors
//! (EMFILE for the process, ENFILE for the system) the listener must
//! neither spin nor die: a spare descriptor is kept open for that moment;
//! it is closed so that the waiting client can be accepted, answered
//! `421 4.3.2` and closed, then opened again. Otherwise the client would
//! wait in the kernel's backlog with no answer. The log says so (at most
//! once per [`LOG_EVERY`], with the count), and
//! `faxmta_smtp_limits_total{limit="descriptors"}` counts each client
//! turned away.

use crate::config::ListenerConfig;
use crate::metrics::Metrics;
use std::fs::File;
use std::io;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::time::Instant;

/// How often the shortage is logged while it lasts.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// The pause after a failure that turned nobody away (no spin).
const PAUSE: Duration = Duration::from_millis(100);

/// The reply to a client accepted with the spare descriptor.
const REFUSAL: &[u8] = b"421 4.3.2 Error: server out of resources, try again later\r\n";

/// The accept loop's spare descriptor and what it has to report.
pub struct Descriptors {
    spare: Option<File>,
    /// Clients turned away (or left waiting) since the last log line.
    refused: u64,
    last_log: Option<Instant>,
}

fn spare() -> Option<File> {
    File::open("/dev/null").ok()
}

/// Whether `e` says the process or the system has no descriptor left.
pub fn out_of_descriptors(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
}

impl Descriptors {
    pub fn new() -> Self {
        Descriptors {
            spare: spare(),
            refused: 0,
            last_log: None,
        }
    }

    /// Handle a failed `accept` on `socket`.
    pub async fn failed(
        &mut self,
        metrics: &Metrics,
        socket: &TcpListener,
        listener: &ListenerConfig,
        e: io::Error,
    ) {
        if !out_of_descriptors(&e) {
            tracing::warn!(error = %e, "accept failed on {}", listener.addr);
            tokio::time::sleep(PAUSE).await;
            return;
        }
        self.refused += 1;
        let mut turned_away = false;
        if self.spare.take().is_some() {
            // One descriptor is free now: take the client that waits,
            // tell it, and let it go.
            if let Ok(Ok((tcp, _))) = tokio::time::timeout(PAUSE, socket.accept()).await {
                let _ = tcp.try_write(REFUSAL);
                drop(tcp);
                metrics.limits.with_label_values(&["descriptors"]).inc();
                turned_away = true;
            }
            self.spare = spare();
        }
        let now = Instant::now();
        if self
            .last_log
            .is_none_or(|t| now.duration_since(t) >= LOG_EVERY)
        {
            self.last_log = Some(now);
            tracing::warn!(
                sessions = metrics.sessions_in.get(),
                "out of file descriptors on {} ({e}): {} client(s) refused with 421 4.3.2 or left waiting since the last report; raise the open files limit (ulimit -n) or lower [smtp] max_connections",
                listener.addr,
                self.refused
            );
            self.refused = 0;
        }
        if !turned_away || self.spare.is_none() {
            tokio::time::sleep(PAUSE).await;
        }
    }
}
