//! `[portal]`: the web portal on the admin listener (src/portal): who
//! administers what, how long a login lasts, where changes are logged.

use super::Duration;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// `[portal]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PortalConfig {
    /// `false`: no portal (the admin listener serves the API alone).
    pub enabled: bool,
    /// Users (SMTP AUTH names) who administer everything.
    pub admins: Vec<String>,
    /// Users who administer one or more domains: the users, fax numbers
    /// and queue of those domains. `{ "example.com" = ["boss@example.com"] }`.
    pub domain_admins: BTreeMap<String, Vec<String>>,
    /// A login ends after this long without a request.
    pub session_idle: Duration,
    /// A login ends after this long whatever happens.
    pub session_lifetime: Duration,
    /// The audit log: one JSON line per change made through the portal
    /// (who, from where, what, the result).
    pub audit_log: PathBuf,
}

impl Default for PortalConfig {
    fn default() -> Self {
        PortalConfig {
            enabled: true,
            admins: Vec::new(),
            domain_admins: BTreeMap::new(),
            session_idle: Duration(30 * 60),
            session_lifetime: Duration(12 * 3600),
            audit_log: PathBuf::from("var/portal-audit.log"),
        }
    }
}

impl PortalConfig {
    /// Whether `user` administers everything.
    pub fn is_admin(&self, user: &str) -> bool {
        self.admins.iter().any(|a| a.eq_ignore_ascii_case(user))
    }

    /// The domains `user` administers (lower case); empty for others.
    pub fn admin_domains(&self, user: &str) -> Vec<String> {
        self.domain_admins
            .iter()
            .filter(|(_, users)| users.iter().any(|u| u.eq_ignore_ascii_case(user)))
            .map(|(d, _)| d.trim_end_matches('.').to_ascii_lowercase())
            .collect()
    }
}
