//! The inbound policy part of the configuration: `[policy]` (the global
//! deny list and the defaults of the SPF, DKIM and DMARC checks), the
//! settings a `[[listener]]` or `[[domain]]` may override, and `[auth]`
//! (SMTP AUTH); `[[dkim]]` is src/config/dkim.rs.

use super::error::{ConfigError, Source};
use super::Config;
use ipnet::IpNet;
use serde::Deserialize;
use std::path::PathBuf;

/// What SPF does (`spf = …`); ordered from the mildest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum SpfMode {
    /// No check.
    #[default]
    Off,
    /// Check and record the result in the headers; refuse nothing.
    Tag,
    /// Refuse `fail` (550 5.7.23); `softfail`, `permerror` as set; a
    /// `temperror` gets 451 4.4.3.
    RejectFail,
}

/// What an SPF `softfail` gets under `spf = "reject-fail"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SoftfailMode {
    /// Accepted (the headers record it).
    #[default]
    Accept,
    /// Accepted and marked `X-Spam-Flag: YES`.
    Tag,
    /// Refused with 550 5.7.23.
    Reject,
}

/// What an SPF `permerror` (a broken record) gets under `spf = "reject-fail"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PermerrorMode {
    #[default]
    Accept,
    /// Refused with 550 5.7.24.
    Reject,
}

/// Inbound DKIM verification (`dkim = …`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DkimMode {
    #[default]
    Off,
    /// Verify signatures, record the results in Authentication-Results.
    Verify,
}

/// DMARC evaluation of inbound mail (`dmarc = …`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DmarcMode {
    #[default]
    Off,
    /// Evaluate and record the result; refuse nothing.
    Tag,
    /// As tag, and a failure under the domain's `p=reject` gets 550 5.7.1
    /// after the data.
    Reject,
}

/// The SPF settings that apply to one recipient. The strictest of two is
/// taken value by value ([`SpfPolicy::strictest`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SpfPolicy {
    pub spf: SpfMode,
    pub softfail: SoftfailMode,
    pub permerror: PermerrorMode,
}

impl SpfPolicy {
    pub fn strictest(self, other: SpfPolicy) -> SpfPolicy {
        SpfPolicy {
            spf: self.spf.max(other.spf),
            softfail: self.softfail.max(other.softfail),
            permerror: self.permerror.max(other.permerror),
        }
    }
}

/// `[policy]`: the global deny list, and the defaults of every listener.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// Client networks refused at connect (554 5.7.1) on every listener.
    pub deny: Vec<IpNet>,
    pub spf: SpfMode,
    pub softfail: SoftfailMode,
    pub permerror: PermerrorMode,
    pub dkim: DkimMode,
    pub dmarc: DmarcMode,
}

/// What one listener does, with `[policy]`'s defaults filled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerChecks {
    pub spf: SpfPolicy,
    pub dkim: DkimMode,
    pub dmarc: DmarcMode,
}

impl PolicyConfig {
    /// A listener's checks: its own keys, else `[policy]`'s.
    pub fn for_listener(&self, l: &super::ListenerConfig) -> ListenerChecks {
        ListenerChecks {
            spf: SpfPolicy {
                spf: l.spf.unwrap_or(self.spf),
                softfail: l.softfail.unwrap_or(self.softfail),
                permerror: l.permerror.unwrap_or(self.permerror),
            },
            dkim: l.dkim.unwrap_or(self.dkim),
            dmarc: l.dmarc.unwrap_or(self.dmarc),
        }
    }
}

/// `[auth]`: SMTP AUTH (RFC 4954) on submission listeners, after TLS.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpAuthConfig {
    /// The users: `NAME:ARGON2-HASH[:SENDERS]` lines (`faxmta user add`).
    /// Absent: no AUTH.
    pub users_file: Option<PathBuf>,
    /// An authenticated user may use any envelope sender.
    pub any_sender: bool,
    /// Failed AUTH attempts from one client address within
    /// `failure_window` before it gets 421 4.7.0.
    pub max_failures: u32,
    /// The n-th failure from a client address within `failure_window` is
    /// answered after n times this.
    pub failure_delay: super::Duration,
    /// How long a failure counts against its client address.
    pub failure_window: super::Duration,
    /// Passwords verified at once at most, over all sessions (each
    /// argon2 verification takes ~19 MiB of memory for a moment).
    pub max_verifications: usize,
}

impl Default for SmtpAuthConfig {
    fn default() -> Self {
        SmtpAuthConfig {
            users_file: None,
            any_sender: false,
            max_failures: 5,
            failure_delay: super::Duration(1),
            failure_window: super::Duration(15 * 60),
            max_verifications: 4,
        }
    }
}

/// Check the users file of `[auth]` (a missing one is empty: `faxmta
/// user add` makes it), then validate `[[dkim]]` and read each key file.
pub(super) fn load(config: &mut Config, src: &Source<'_>) -> Result<(), ConfigError> {
    if let Some(path) = &config.auth.users_file {
        if let Err(e) = super::users::load(path) {
            let at = format!("\"{}\"", path.display());
            return Err(src.fail(&[&at, "users_file"], e));
        }
    }
    if config.auth.max_failures == 0 {
        return Err(src.fail(
            &["max_failures"],
            "auth.max_failures must be at least 1".into(),
        ));
    }
    super::dkim::load(&mut config.dkim, src)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_strictest_policy_wins_value_by_value() {
        let mild = SpfPolicy {
            spf: SpfMode::Tag,
            softfail: SoftfailMode::Tag,
            permerror: PermerrorMode::Reject,
        };
        let strict = SpfPolicy {
            spf: SpfMode::RejectFail,
            softfail: SoftfailMode::Reject,
            permerror: PermerrorMode::Accept,
        };
        let s = mild.strictest(strict);
        assert_eq!(s.spf, SpfMode::RejectFail);
        assert_eq!(s.softfail, SoftfailMode::Reject);
        assert_eq!(s.permerror, PermerrorMode::Reject);
        assert_eq!(SpfPolicy::default().strictest(mild), mild);
    }
}
