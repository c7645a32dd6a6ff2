//! `[tls_report]`: the TLS reports (RFC 8460) faxmta sends to the
//! domains it delivers to, about the TLS sessions it had with them.

use super::Duration;
use serde::Deserialize;
use std::path::PathBuf;

/// `[tls_report]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsReportConfig {
    /// `false`: count nothing, send nothing.
    pub enabled: bool,
    /// The report's `organization-name`; default: `hostname`.
    pub organization: Option<String>,
    /// The report's `contact-info`; default: `postmaster@hostname`.
    pub contact: Option<String>,
    /// The From (and envelope sender) of report mails; default:
    /// `noreply-tls-reports@hostname`.
    pub from: Option<String>,
    /// How often reports go out: `24h` (the default, RFC 8460 §4.1) sends
    /// each UTC day's report just after midnight; a shorter interval
    /// (for tests) sends what was counted so far every so often.
    pub interval: Duration,
    /// Where the counts are kept until they are reported; default:
    /// `tls-report.json` beside the queue directory.
    pub file: Option<PathBuf>,
}

impl Default for TlsReportConfig {
    fn default() -> Self {
        TlsReportConfig {
            enabled: true,
            organization: None,
            contact: None,
            from: None,
            interval: Duration(24 * 3600),
            file: None,
        }
    }
}
