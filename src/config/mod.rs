//! The configuration file: its TOML model, defaults and validation.
//!
//! Every value that can be wrong is checked while the file is parsed, so
//! errors carry the file, line and column (`faxmta check-config`). The
//! reference for every key is docs/configuration.md.

use serde::Deserialize;

use std::path::Path;

pub mod dkim;
mod domains;
mod error;
mod etrn;
pub mod fax;
pub mod policy;
pub mod pop3;
pub mod portal;
mod sections;
pub mod tls_report;
pub mod users;
mod values;
pub use dkim::DkimConfig;
pub use domains::{DomainConfig, DomainKind, SmarthostConfig};
pub use error::ConfigError;
pub use etrn::{valid_node, EtrnClientConfig};
pub use policy::{PolicyConfig, SmtpAuthConfig};
pub use portal::PortalConfig;
pub use sections::*;
pub use tls_report::TlsReportConfig;
pub use values::{parse_host, secret_from_file, Deliver, Duration, HostSpec, OutboundTls, Size};

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Our name in the greeting, EHLO, Received headers and reports.
    #[serde(default = "default_hostname")]
    pub hostname: String,
    /// The process's file creation mask, in octal (`"077"`: the queue,
    /// fax images, Maildirs and keys are for faxmta's user alone).
    #[serde(default = "default_umask")]
    pub umask: String,
    #[serde(default)]
    pub queue: QueueConfig,
    /// `[accounts]`: SMTP AUTH users and API tokens in files or in the
    /// queue's database.
    #[serde(default)]
    pub accounts: AccountsConfig,
    #[serde(default)]
    pub control: ControlConfig,
    #[serde(default, rename = "listener")]
    pub listeners: Vec<ListenerConfig>,
    #[serde(default)]
    pub tls: TlsConfig,
    #[serde(default)]
    pub smtp: SmtpConfig,
    #[serde(default)]
    pub relay: RelayConfig,
    /// `[auth]`: SMTP AUTH on submission listeners.
    #[serde(default)]
    pub auth: SmtpAuthConfig,
    /// `[policy]`: the global deny list and the defaults of the checks.
    #[serde(default)]
    pub policy: PolicyConfig,
    /// `[[dkim]]`: outbound signing keys.
    #[serde(default)]
    pub dkim: Vec<DkimConfig>,
    #[serde(default, rename = "domain")]
    pub domains: Vec<DomainConfig>,
    /// `[smarthost]`: where mail for domains that are not ours goes
    /// instead of their MX.
    pub smarthost: Option<SmarthostConfig>,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub dns: DnsConfig,
    #[serde(default)]
    pub admin: AdminConfig,
    /// `[portal]`: the web portal on the admin listener.
    #[serde(default)]
    pub portal: PortalConfig,
    #[serde(default)]
    pub outbound: OutboundConfig,
    /// `[tls_report]`: TLS reports (RFC 8460) to the domains we send to.
    #[serde(default)]
    pub tls_report: TlsReportConfig,
    /// `[[etrn_client]]`: ETRN sent on a schedule.
    #[serde(default, rename = "etrn_client")]
    pub etrn_clients: Vec<EtrnClientConfig>,
    /// `[fax]`: the fax transport.
    #[serde(default)]
    pub fax: fax::FaxConfig,
    /// `[[pop3]]`: mailboxes the POP3 fax gateway polls.
    #[serde(default)]
    pub pop3: Vec<pop3::Pop3Config>,
}

fn default_umask() -> String {
    "077".into()
}

impl Config {
    /// `umask` as a mode (validated at load: octal, at most 0777).
    pub fn umask_mode(&self) -> u32 {
        u32::from_str_radix(&self.umask, 8).unwrap_or(0o077) & 0o777
    }
}

pub(crate) fn default_hostname() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}

impl Config {
    /// Read, parse and validate a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::at(path, "", None, format!("cannot read: {e}")))?;
        Config::parse(path, &text)
    }

    /// Parse and validate configuration text; `path` is used in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| {
            // toml's message repeats the place in its first line; keep the rest.
            let message = e.message().trim().to_string();
            ConfigError::at(path, text, e.span(), message)
        })?;
        let mut config = config;
        config.validate(path, text)?;
        let src = error::Source { path, text };
        policy::load(&mut config, &src)?;
        fax::load(&mut config, &src)?;
        Ok(config)
    }

    fn validate(&self, path: &Path, text: &str) -> Result<(), ConfigError> {
        // Errors found after parsing point at the first line that names the
        // key (toml's spans do not survive deserialisation into our types).
        let find = |needle: &str| text.find(needle).map(|p| p..p + needle.len());
        let fail =
            |needle: &str, message: String| Err(ConfigError::at(path, text, find(needle), message));

        if self.hostname.trim().is_empty() {
            return fail("hostname", "hostname must not be empty".into());
        }
        if u32::from_str_radix(&self.umask, 8).map_or(true, |m| m > 0o777) {
            return fail(
                "umask",
                format!(
                    "umask {:?} is not an octal mode such as \"077\"",
                    self.umask
                ),
            );
        }
        if self.queue.retry.is_empty() || self.queue.retry.iter().any(|d| d.0 == 0) {
            return fail(
                "retry",
                "queue.retry needs at least one interval, none of them 0".into(),
            );
        }
        if self.queue.lifetime.0 == 0 {
            return fail("lifetime", "queue.lifetime must be more than 0".into());
        }
        if self.queue.destination_concurrency == 0 {
            return fail(
                "destination_concurrency",
                "queue.destination_concurrency must be at least 1".into(),
            );
        }
        if self.queue.backend == QueueBackend::Postgres {
            let Some(url) = &self.queue.url else {
                return fail(
                    "backend",
                    "queue.backend = \"postgres\" needs queue.url (postgres://user@host/dbname)"
                        .into(),
                );
            };
            let mut settings = faxmta_queue::PgSettings::new(url, &self.queue.path);
            settings.tls_ca = self.queue.tls_ca.clone();
            if let Err(e) = settings.config() {
                return fail("url", e.to_string());
            }
            if self.queue.pool_size < 2 {
                return fail("pool_size", "queue.pool_size must be at least 2".into());
            }
        }
        if self.accounts.backend == AccountsBackend::Database
            && self.queue.backend != QueueBackend::Postgres
        {
            return fail(
                "[accounts]",
                "accounts.backend = \"database\" needs the queue on PostgreSQL \
                 (queue.backend = \"postgres\")"
                    .into(),
            );
        }
        if self.queue.lease_time.0 < 3 {
            return fail("lease_time", "queue.lease_time must be at least 3s".into());
        }
        if self.queue.concurrency == 0 {
            return fail("concurrency", "queue.concurrency must be at least 1".into());
        }
        for (key, value) in self.outbound.timeout_keys() {
            if value.0 == 0 {
                return fail(key, format!("outbound.{key} must be more than 0"));
            }
        }
        if self.tls_report.interval.0 == 0 {
            return fail("interval", "tls_report.interval must be more than 0".into());
        }
        if self.dns.timeout.0 == 0 {
            return fail("[dns]", "dns.timeout must be more than 0".into());
        }
        if self.tls.cert.is_some() != self.tls.key.is_some() {
            return fail(
                "[tls]",
                "tls.cert and tls.key go together: give both or neither".into(),
            );
        }
        if self.smtp.max_command_line < 512 {
            return fail(
                "max_command_line",
                "smtp.max_command_line must be at least 512 (RFC 5321 §4.5.3.1.4)".into(),
            );
        }
        if self.smtp.max_data_line != 0 && self.smtp.max_data_line < 1000 {
            return fail(
                "max_data_line",
                "smtp.max_data_line must be 0 (no limit) or at least 1000 (RFC 5321 §4.5.3.1.6)"
                    .into(),
            );
        }
        if self.smtp.stress_threshold > 100 {
            return fail(
                "stress_threshold",
                "smtp.stress_threshold is a percent of max_connections: 0 (never) to 100".into(),
            );
        }
        for (key, value) in [
            ("command_timeout", self.smtp.command_timeout),
            ("data_timeout", self.smtp.data_timeout),
            ("stress_timeout", self.smtp.stress_timeout),
        ] {
            if value.0 == 0 {
                return fail(key, format!("smtp.{key} must be at least 1s"));
            }
        }
        if self.smtp.max_connections == 0 {
            return fail(
                "max_connections",
                "smtp.max_connections must be at least 1".into(),
            );
        }
        // [admin]'s keys, found after its header (smtp has the same names).
        let admin_at = text.find("[admin]").unwrap_or(0);
        let in_admin = |needle: &str, message: String| {
            let at = text[admin_at..]
                .find(needle)
                .map(|p| admin_at + p..admin_at + p + needle.len());
            Err(ConfigError::at(path, text, at, message))
        };
        for (key, value) in [
            ("header_timeout", self.admin.header_timeout),
            ("request_timeout", self.admin.request_timeout),
        ] {
            if value.0 == 0 {
                return in_admin(key, format!("admin.{key} must be at least 1s"));
            }
        }
        if self.admin.max_connections == 0 {
            return in_admin(
                "max_connections",
                "admin.max_connections must be at least 1".into(),
            );
        }
        if self.smtp.max_recipients == 0 {
            return fail(
                "max_recipients",
                "smtp.max_recipients must be at least 1".into(),
            );
        }
        let mut seen = std::collections::HashSet::new();
        for l in &self.listeners {
            if !seen.insert(l.addr) {
                return fail(
                    &l.addr.to_string(),
                    format!("listener {} is configured twice", l.addr),
                );
            }
        }
        etrn::validate(&self.etrn_clients, |needle, message| {
            ConfigError::at(path, text, find(needle), message)
        })?;
        pop3::validate(&self.pop3, |needle, message| {
            ConfigError::at(path, text, find(needle), message)
        })?;
        domains::validate(self, &error::Source { path, text })
    }

    /// The retry policy of the queue.
    pub fn retry_policy(&self) -> faxmta_queue::RetryPolicy {
        faxmta_queue::RetryPolicy {
            steps: self.queue.retry.iter().map(|d| d.0).collect(),
            lifetime: self.queue.lifetime.0,
            jitter: 0.1,
        }
    }
}

#[cfg(test)]
mod tests;
