//! Sending TLS reports (RFC 8460): once a UTC day (or every `[tls_report]
//! interval`), the TLS sessions the SMTP transport counted are turned into
//! one report per recipient domain and sent to the `rua` of that domain's
//! `_smtp._tls` TXT record — as a mail through our own queue (`mailto:`,
//! §5.3) or an HTTPS POST (`https:`, §5.4). A domain without the record
//! gets nothing; a report that cannot be sent is logged and dropped (the
//! reports are statistics, best effort).

use crate::config::Config;
use faxmta_queue::{NewMessage, Store};
use faxmta_smtp::tlsrpt::{post_report, report_addresses, report_mail, Recorder};
use faxmta_smtp::{Dns, Tls};
use mail_auth::mta_sts::ReportUri;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

const DAY: u64 = 86_400;

/// Who sends the reports, and as whom.
pub struct Sender {
    pub config: Arc<Config>,
    pub store: Store,
    pub recorder: Arc<Recorder>,
    pub dns: Dns,
    pub tls: Tls,
}

impl Sender {
    fn organization(&self) -> String {
        let c = &self.config;
        c.tls_report
            .organization
            .clone()
            .unwrap_or_else(|| c.hostname.clone())
    }

    fn contact(&self) -> String {
        let c = &self.config;
        c.tls_report
            .contact
            .clone()
            .unwrap_or_else(|| format!("postmaster@{}", c.hostname))
    }

    fn from(&self) -> String {
        let c = &self.config;
        c.tls_report
            .from
            .clone()
            .unwrap_or_else(|| format!("noreply-tls-reports@{}", c.hostname))
    }

    /// Send every report due by `until`; how many went out.
    pub async fn send(&self, until: SystemTime) -> usize {
        let mut sent = 0;
        for (domain, report) in
            self.recorder
                .take_reports(&self.organization(), &self.contact(), until)
        {
            let uris = match report_addresses(self.dns.resolver(), &domain).await {
                Ok(uris) => uris,
                Err(e) => {
                    tracing::warn!("TLS report for {domain} not sent: _smtp._tls lookup: {e}");
                    continue;
                }
            };
            let mut mail_to = Vec::new();
            for uri in uris {
                match uri {
                    ReportUri::Mail(address) => mail_to.push(mailto(&address)),
                    ReportUri::Http(url) => {
                        let tls = self.tls.verifying.clone();
                        match post_report(&url, &report, tls, self.dns.resolver()).await {
                            Ok(()) => {
                                sent += 1;
                                tracing::info!("TLS report for {domain} posted to {url}");
                            }
                            Err(e) => tracing::warn!("TLS report for {domain} to {url}: {e}"),
                        }
                    }
                }
            }
            if mail_to.is_empty() {
                continue;
            }
            match self.enqueue(&report, &domain, &mail_to).await {
                Ok(id) => {
                    sent += 1;
                    tracing::info!(
                        "{id}: TLS report for {domain} queued to {}",
                        mail_to.join(", ")
                    );
                }
                Err(e) => tracing::warn!("TLS report for {domain} not queued: {e}"),
            }
        }
        sent
    }

    async fn enqueue(
        &self,
        report: &mail_auth::report::tlsrpt::TlsReport,
        domain: &str,
        to: &[String],
    ) -> Result<String, String> {
        let from = self.from();
        let hostname = &self.config.hostname;
        let body = report_mail(report, domain, hostname, &from, to)?;
        let message = NewMessage::local(&from, to, hostname, &body);
        crate::server::path::check_message(&message)?;
        let id = self.store.new_id().map_err(|e| e.to_string())?;
        self.store
            .enqueue(id.clone(), message, &body)
            .await
            .map_err(|e| e.to_string())?;
        Ok(id)
    }
}

/// The address of a `mailto:` rua (mail-auth gives it without the
/// scheme; a `!size` limit is dropped).
fn mailto(uri: &str) -> String {
    let address = uri.strip_prefix("mailto:").unwrap_or(uri);
    address.split('!').next().unwrap_or(address).to_string()
}

/// When the next reports go out, and up to when they count: daily just
/// after each UTC midnight, for the day that ended; with a shorter
/// interval, every interval, for everything counted so far.
fn schedule(interval: u64, now: SystemTime) -> (Duration, SystemTime) {
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    if interval >= DAY {
        let midnight = (secs / DAY + 1) * DAY;
        let wait = Duration::from_secs(midnight - secs + 60);
        (wait, UNIX_EPOCH + Duration::from_secs(midnight))
    } else {
        let wait = Duration::from_secs(interval.max(1));
        // The recorder reports whole hours that ended: count the hour now
        // running as ended.
        (wait, now + wait + Duration::from_secs(3600))
    }
}

/// Send reports on schedule until shutdown.
pub async fn run(sender: Sender, mut shutdown: watch::Receiver<bool>) {
    let interval = sender.config.tls_report.interval.0;
    loop {
        let (wait, until) = schedule(interval, SystemTime::now());
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => break,
        }
        sender.send(until).await;
    }
    let _ = sender.recorder.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daily_reports_wait_for_midnight_and_cover_the_day_that_ended() {
        let now = UNIX_EPOCH + Duration::from_secs(10 * DAY + 3600);
        let (wait, until) = schedule(DAY, now);
        assert_eq!(wait, Duration::from_secs(DAY - 3600 + 60));
        assert_eq!(until, UNIX_EPOCH + Duration::from_secs(11 * DAY));
    }

    #[test]
    fn a_short_interval_reports_everything_counted_so_far() {
        let now = UNIX_EPOCH + Duration::from_secs(10 * DAY + 1800);
        let (wait, until) = schedule(5, now);
        assert_eq!(wait, Duration::from_secs(5));
        assert!(until > now + Duration::from_secs(3600));
    }

    #[test]
    fn mailto_addresses_lose_their_scheme_and_size_limit() {
        assert_eq!(mailto("mailto:tlsrpt@x.test"), "tlsrpt@x.test");
        assert_eq!(mailto("tlsrpt@x.test!10m"), "tlsrpt@x.test");
    }
}
