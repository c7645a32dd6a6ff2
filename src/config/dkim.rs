//! The DKIM signing keys of the configuration: `[[dkim]]` entries, their
//! key files read and checked when the configuration is loaded, and
//! mail-auth's signing key made from one. The signer (src/policy/dkim.rs)
//! and `faxmta dkim keygen` use these; nothing here depends on them.

use super::error::{ConfigError, Source};
use super::values::DomainName;
use mail_auth::common::crypto::{DkimKey, Ed25519Key, RsaKey, Sha256};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer};
use serde::Deserialize;
use std::path::PathBuf;

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
    /// Filled from `key` by `Config::parse` ([`load`]).
    #[serde(skip)]
    pub loaded: Option<DkimKeyDer>,
}

/// Read a PEM private key and tell its kind (RSA or Ed25519). `Err` says
/// what is wrong with it.
pub fn read_dkim_key(path: &std::path::Path) -> Result<DkimKeyDer, String> {
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
    let loaded = if pkcs8 && Ed25519Key::from_pkcs8_der(&der).is_ok() {
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
    signing_key(&loaded)
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

/// mail-auth's key for a loaded key file.
pub fn signing_key(key: &DkimKeyDer) -> Result<DkimKey, String> {
    match key.kind {
        DkimKeyKind::Ed25519 => Ed25519Key::from_pkcs8_der(&key.der)
            .map(DkimKey::from)
            .map_err(|e| e.to_string()),
        DkimKeyKind::Rsa => {
            let der = if key.pkcs8 {
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.der.as_slice()))
            } else {
                PrivateKeyDer::Pkcs1(PrivatePkcs1KeyDer::from(key.der.as_slice()))
            };
            RsaKey::<Sha256>::from_key_der(der)
                .map(DkimKey::from)
                .map_err(|e| e.to_string())
        }
    }
}

/// Validate `[[dkim]]` and read each key file.
pub(super) fn load(dkim: &mut [DkimConfig], src: &Source<'_>) -> Result<(), ConfigError> {
    let mut seen = std::collections::HashSet::new();
    for d in dkim.iter_mut() {
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
    fn selectors() {
        assert!(valid_selector("s1"));
        assert!(valid_selector("2024-01.mail"));
        for bad in ["", "a..b", "a b", "a/b"] {
            assert!(!valid_selector(bad), "{bad}");
        }
    }
}
