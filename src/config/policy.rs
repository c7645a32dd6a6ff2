//! The inbound policy part of the configuration: `[policy]` (the global
//! deny list and the defaults of the SPF, DKIM and DMARC checks), the
//! settings a `[[listener]]` or `[[domain]]` may override, and `[[dkim]]`
//! (the outbound signing keys, read when the configuration is loaded).

use super::values::DomainName;
use super::{Config, ConfigError};
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

/// The kind of a DKIM signing key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DkimKeyKind {
    /// rsa-sha256
    Rsa,
    /// ed25519-sha256 (RFC 8463)
    Ed25519,
}

/// A private key read from a `[[dkim]]` key file: DER (PKCS#1 for RSA, or
/// PKCS#8). Never printed (`Debug` hides it).
#[derive(Clone)]
pub struct DkimKeyDer {
    pub kind: DkimKeyKind,
    /// `true`: PKCS#8; `false`: PKCS#1 (RSA only).
    pub pkcs8: bool,
    pub der: Vec<u8>,
}

impl std::fmt::Debug for DkimKeyDer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DkimKeyDer({:?}, <redacted>)", self.kind)
    }
}

/// `[[dkim]]`: sign outbound mail whose From domain is `domain`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DkimConfig {
    pub domain: DomainName,
    pub selector: String,
    /// PEM private key (`faxmta dkim keygen` writes one).
    pub key: PathBuf,
    /// Filled from `key` by [`Config::parse`].
    #[serde(skip)]
    pub loaded: Option<DkimKeyDer>,
}

/// Read a PEM private key and tell its kind (RSA or Ed25519). `Err` says
/// what is wrong with it.
pub fn read_dkim_key(path: &std::path::Path) -> Result<DkimKeyDer, String> {
    use rustls_pki_types::PrivateKeyDer;
    let file = path.display();
    let text = std::fs::read(path).map_err(|e| format!("cannot read DKIM key {file}: {e}"))?;
    let key = rustls_pemfile::private_key(&mut text.as_slice())
        .map_err(|e| format!("DKIM key {file}: {e}"))?
        .ok_or_else(|| format!("DKIM key {file}: no PEM private key in it"))?;
    let (der, pkcs8) = match &key {
        PrivateKeyDer::Pkcs1(k) => (k.secret_pkcs1_der().to_vec(), false),
        PrivateKeyDer::Pkcs8(k) => (k.secret_pkcs8_der().to_vec(), true),
        _ => {
            return Err(format!(
                "DKIM key {file}: expected an RSA or Ed25519 key (PKCS#1 or PKCS#8 PEM)"
            ))
        }
    };
    let loaded = if pkcs8 && mail_auth::common::crypto::Ed25519Key::from_pkcs8_der(&der).is_ok() {
        DkimKeyDer {
            kind: DkimKeyKind::Ed25519,
            pkcs8,
            der,
        }
    } else {
        DkimKeyDer {
            kind: DkimKeyKind::Rsa,
            pkcs8,
            der,
        }
    };
    crate::policy::dkim::signing_key(&loaded)
        .map_err(|e| format!("DKIM key {file}: not a usable RSA or Ed25519 key: {e}"))?;
    Ok(loaded)
}

/// Whether `s` can be a DKIM selector (dot-separated labels).
fn valid_selector(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}

/// Validate `[[dkim]]` and read each key file; check the users file of
/// `[auth]` (a missing one is empty: `faxmta user add` makes it).
pub(super) fn load(
    config: &mut Config,
    src: &super::domains::Source<'_>,
) -> Result<(), ConfigError> {
    if let Some(path) = &config.auth.users_file {
        if let Err(e) = crate::policy::users::load(path) {
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
    let mut seen = std::collections::HashSet::new();
    for d in &mut config.dkim {
        let at_domain = format!("\"{}\"", d.domain.0);
        if !seen.insert(d.domain.0.clone()) {
            return Err(src.fail(
                &[&at_domain],
                format!("[[dkim]] for domain {} is configured twice", d.domain.0),
            ));
        }
        if !valid_selector(&d.selector) {
            let at = format!("\"{}\"", d.selector);
            return Err(src.fail(
                &[&at, "selector"],
                format!("[[dkim]] selector {:?}: expected letters, digits, - and _ in dot-separated labels", d.selector),
            ));
        }
        let file = d.key.display().to_string();
        let at = format!("\"{file}\"");
        d.loaded = Some(read_dkim_key(&d.key).map_err(|e| src.fail(&[&at, "key"], e))?);
    }
    Ok(())
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

    #[test]
    fn selectors() {
        assert!(valid_selector("s1"));
        assert!(valid_selector("2024-01.mail"));
        for bad in ["", "a..b", "a b", "a/b"] {
            assert!(!valid_selector(bad), "{bad}");
        }
    }
}
