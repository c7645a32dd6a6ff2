//! DANE authentication of an SMTP server's certificate chain against its
//! TLSA records (RFC 6698, RFC 7671, and RFC 7672 §3 for SMTP).
//!
//! SMTP uses two certificate usages: DANE-EE(3), where the server's own
//! certificate (or its public key) is the record — no name or expiry check,
//! the DNS is the authority — and DANE-TA(2), where a CA certificate the
//! server sends in its chain is the trust anchor, and the chain to it is
//! checked as PKIX would (signatures, validity, the server name being one
//! of the reference identifiers). PKIX-TA(0) and PKIX-EE(1) are unusable
//! for SMTP (RFC 7672 §3.1.3), as are unknown selectors and matching
//! types; a host whose TLSA records are all unusable still gets mandatory
//! (unauthenticated) TLS.

use crate::dnssec::Tlsa;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use sha2::{Digest, Sha256, Sha512};

/// The usable TLSA records of one host and the names a DANE-TA chain may
/// be issued for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaneCheck {
    /// Usable records only (usage 2 or 3, selector 0 or 1, matching 0–2).
    pub records: Vec<Tlsa>,
    /// Reference identifiers for DANE-TA (RFC 7672 §3.2.3): the TLSA base
    /// domain (the MX host name) and the next-hop domain.
    pub names: Vec<String>,
}

impl Tlsa {
    /// Whether SMTP can use this record (RFC 7672 §3.1).
    pub fn usable(&self) -> bool {
        matches!(self.usage, 2 | 3) && self.selector <= 1 && self.matching <= 2
    }

    /// Whether the record matches one certificate (its full DER or its
    /// SubjectPublicKeyInfo, as the selector says, hashed as the matching
    /// type says).
    pub fn matches(&self, cert: &CertificateDer<'_>) -> bool {
        let selected: Vec<u8> = match self.selector {
            0 => cert.as_ref().to_vec(),
            1 => match webpki::EndEntityCert::try_from(cert) {
                Ok(c) => c.subject_public_key_info().as_ref().to_vec(),
                Err(_) => return false,
            },
            _ => return false,
        };
        let digest: Vec<u8> = match self.matching {
            0 => selected,
            1 => Sha256::digest(&selected).to_vec(),
            2 => Sha512::digest(&selected).to_vec(),
            _ => return false,
        };
        digest == self.data
    }
}

impl DaneCheck {
    /// The usable ones of `records` for a host; `None` when none is.
    pub fn new(records: &[Tlsa], names: Vec<String>) -> Option<DaneCheck> {
        let records: Vec<Tlsa> = records.iter().filter(|r| r.usable()).cloned().collect();
        (!records.is_empty()).then_some(DaneCheck { records, names })
    }

    /// Checks the chain the server sent (its certificate first). `Ok`
    /// says which record matched; `Err` why none did.
    pub fn verify(&self, chain: &[CertificateDer<'_>], now: UnixTime) -> Result<String, String> {
        let Some((leaf, rest)) = chain.split_first() else {
            return Err("the server sent no certificate".into());
        };
        if let Some(r) = self
            .records
            .iter()
            .find(|r| r.usage == 3 && r.matches(leaf))
        {
            return Ok(format!("DANE-EE {} {} {}", r.usage, r.selector, r.matching));
        }
        let mut why = Vec::new();
        for r in self.records.iter().filter(|r| r.usage == 2) {
            for (depth, ca) in rest.iter().enumerate() {
                if !r.matches(ca) {
                    continue;
                }
                match self.chain_to(leaf, rest, ca, now) {
                    Ok(name) => {
                        return Ok(format!(
                            "DANE-TA {} {} {} at depth {} for {name}",
                            r.usage,
                            r.selector,
                            r.matching,
                            depth + 1
                        ))
                    }
                    Err(e) => why.push(format!("depth {}: {e}", depth + 1)),
                }
            }
        }
        if why.is_empty() {
            Err("no TLSA record matched the certificate chain".into())
        } else {
            Err(format!(
                "a DANE-TA record matched, but the chain did not verify ({})",
                why.join("; ")
            ))
        }
    }

    /// PKIX path validation of `leaf` up to `anchor` (a certificate the
    /// server sent that a DANE-TA record matched), and the name check.
    fn chain_to(
        &self,
        leaf: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        anchor: &CertificateDer<'_>,
        now: UnixTime,
    ) -> Result<String, String> {
        let ta = webpki::anchor_from_trusted_cert(anchor).map_err(|e| e.to_string())?;
        let anchors = [ta];
        let ee = webpki::EndEntityCert::try_from(leaf).map_err(|e| e.to_string())?;
        ee.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &anchors,
            intermediates,
            now,
            webpki::KeyUsage::server_auth(),
            None,
            None,
        )
        .map_err(|e| e.to_string())?;
        for name in &self.names {
            let Ok(server) = ServerName::try_from(name.as_str()) else {
                continue;
            };
            if ee.verify_is_valid_for_subject_name(&server).is_ok() {
                return Ok(name.clone());
            }
        }
        Err(format!(
            "the certificate is not issued for {}",
            self.names.join(" or ")
        ))
    }

    /// The records in presentation form, for logs and TLS reports.
    pub fn describe(&self) -> Vec<String> {
        self.records.iter().map(|r| r.to_string()).collect()
    }
}

#[cfg(test)]
mod tests;
