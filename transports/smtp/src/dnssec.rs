//! DNSSEC-validated lookups for DANE (RFC 7672 §2.1): MX, address and
//! TLSA records through a second resolver over the same name servers that
//! validates every answer itself (hickory's validator, trust anchored at
//! the IANA root keys or at a configured anchor file), and reports each
//! answer as secure, insecure (provably unsigned) or bogus (an error).
//!
//! We validate ourselves rather than trust the AD bit of the resolver: an
//! AD bit is only as good as the path to the resolver that set it, and
//! faxmta's resolver may be anywhere `[dns] nameservers` says.
//!
//! Whether validation works at all is probed (a validated DNSKEY lookup of
//! the anchor's zone) and remembered for a while: behind a resolver that
//! strips signatures every answer would be bogus, and all mail would wait.
//! Like Postfix's `dnssec_probe`, a failed probe logs a warning and DANE
//! is not applied until a later probe succeeds.

use crate::mx::{addresses_with, denial_secure, fqdn, is_bogus, mx_with, Dns, DnsError, MxHost};
use hickory_resolver::proto::dnssec::TrustAnchors;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::TokioResolver;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a probe's answer is believed.
const PROBE_FOR: Duration = Duration::from_secs(600);

/// The validating resolver and what its probe found.
#[derive(Clone)]
pub(crate) struct Validating {
    resolver: TokioResolver,
    /// The zone whose DNSKEY set is probed: the anchor's owner.
    anchor_zone: String,
    probe: Arc<Mutex<Option<(Instant, bool)>>>,
}

/// One TLSA record (RFC 6698 §2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tlsa {
    pub usage: u8,
    pub selector: u8,
    pub matching: u8,
    pub data: Vec<u8>,
}

impl std::fmt::Display for Tlsa {
    /// Presentation form: `3 1 1 ED6C…`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {} ", self.usage, self.selector, self.matching)?;
        for b in &self.data {
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

/// What a TLSA lookup for a host found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsaAnswer {
    /// Records proven by DNSSEC.
    Secure(Vec<Tlsa>),
    /// No records, or records that are not proven (unsigned zone): the
    /// host is not a DANE host.
    None { secure_denial: bool },
}

impl Dns {
    /// Validate DNSSEC for DANE lookups, anchored at the IANA root keys,
    /// or at the DNSKEY records in `anchor` (every key of the zone: KSK
    /// and ZSK, in zone-file form).
    pub fn with_dnssec(
        mut self,
        nameservers: &[SocketAddr],
        timeout: Duration,
        anchor: Option<&Path>,
    ) -> Result<Dns, String> {
        let (anchors, zone) = match anchor {
            Some(path) => {
                let anchors = TrustAnchors::from_file(path)
                    .map_err(|e| format!("[dns] dnssec_trust_anchor {}: {e}", path.display()))?;
                (anchors, anchor_zone(path)?)
            }
            None => (TrustAnchors::default(), ".".to_string()),
        };
        let resolver = crate::mx::builder(nameservers, timeout)?
            .with_trust_anchor(Arc::new(anchors))
            .build()
            .map_err(|e| format!("DNSSEC resolver: {e}"))?;
        self.secure = Some(Validating {
            resolver,
            anchor_zone: zone,
            probe: Arc::new(Mutex::new(None)),
        });
        Ok(self)
    }

    /// Whether DNSSEC validation is set up and works (probed at most every
    /// ten minutes). A failed probe logs a warning.
    pub async fn dnssec_ready(&self) -> bool {
        let Some(v) = &self.secure else {
            return false;
        };
        if let Some((at, ok)) = *v.probe.lock().unwrap_or_else(|e| e.into_inner()) {
            if at.elapsed() < PROBE_FOR {
                return ok;
            }
        }
        let answer = v
            .resolver
            .lookup(fqdn(&v.anchor_zone).as_str(), RecordType::DNSKEY)
            .await;
        let ok = match &answer {
            Ok(lookup) => lookup.answers().iter().any(|r| r.proof.is_secure()),
            Err(_) => false,
        };
        if !ok {
            let why = match answer {
                Ok(_) => "the answer was not proven secure".to_string(),
                Err(e) => e.to_string(),
            };
            tracing::warn!(
                "DNSSEC validation is not available (probe of {} DNSKEY: {why}); \
                 DANE is not applied until it is",
                v.anchor_zone
            );
        }
        *v.probe.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), ok));
        ok
    }

    fn validating(&self) -> Result<&TokioResolver, DnsError> {
        self.secure
            .as_ref()
            .map(|v| &v.resolver)
            .ok_or_else(|| DnsError::Temporary("DNSSEC validation is not set up".into()))
    }

    /// The MX hosts of `domain` with whether the MX RRset (or its proven
    /// absence and the domain's addresses) is DNSSEC-secure.
    pub async fn mx_secure(&self, domain: &str) -> Result<(Vec<MxHost>, bool), DnsError> {
        mx_with(self.validating()?, domain).await
    }

    /// A host's addresses with whether they are DNSSEC-secure.
    pub async fn addresses_secure(&self, host: &str) -> Result<(Vec<IpAddr>, bool), DnsError> {
        addresses_with(self.validating()?, host).await
    }

    /// The TLSA records of `host` (RFC 7672 §2.2.2): where its address is
    /// reached through a DNSSEC-secure CNAME chain, those of the chain's
    /// target first, and those of `host` itself if the target has none.
    /// A bogus answer or a failed lookup is an error: the host must not
    /// be used.
    pub async fn tlsa(&self, host: &str, port: u16) -> Result<TlsaAnswer, DnsError> {
        if let Some(target) = self.secure_cname_target(host).await {
            if let found @ TlsaAnswer::Secure(_) = self.tlsa_at(&target, port).await? {
                return Ok(found);
            }
        }
        self.tlsa_at(host, port).await
    }

    /// The name `host`'s CNAME chain ends at, when its address lookup
    /// (answered from the cache: the addresses were just looked up)
    /// follows one and every link of it is DNSSEC-secure.
    async fn secure_cname_target(&self, host: &str) -> Option<String> {
        let resolver = self.validating().ok()?;
        for rtype in [RecordType::A, RecordType::AAAA] {
            let Ok(lookup) = resolver.lookup(fqdn(host).as_str(), rtype).await else {
                continue;
            };
            let answers = lookup.answers();
            let chain: Vec<_> = answers
                .iter()
                .filter(|r| matches!(r.data, RData::CNAME(_)))
                .collect();
            if chain.is_empty() || !chain.iter().all(|r| r.proof.is_secure()) {
                return None;
            }
            let target = answers.iter().find(|r| r.record_type() == rtype)?;
            return Some(
                target
                    .name
                    .to_string()
                    .trim_end_matches('.')
                    .to_ascii_lowercase(),
            );
        }
        None
    }

    /// The TLSA records of `_port._tcp.host`.
    async fn tlsa_at(&self, host: &str, port: u16) -> Result<TlsaAnswer, DnsError> {
        let name = format!("_{port}._tcp.{}", fqdn(host));
        match self
            .validating()?
            .lookup(name.as_str(), RecordType::TLSA)
            .await
        {
            Ok(lookup) => {
                let answers = lookup.answers();
                let records: Vec<Tlsa> = answers
                    .iter()
                    .filter_map(|r| match &r.data {
                        RData::TLSA(t) => Some(Tlsa {
                            usage: t.cert_usage.into(),
                            selector: t.selector.into(),
                            matching: t.matching.into(),
                            data: t.cert_data.clone(),
                        }),
                        _ => None,
                    })
                    .collect();
                let tlsa_secure = answers
                    .iter()
                    .filter(|r| matches!(r.data, RData::TLSA(_)))
                    .all(|r| r.proof.is_secure());
                if records.is_empty() {
                    Ok(TlsaAnswer::None {
                        secure_denial: false,
                    })
                } else if tlsa_secure {
                    Ok(TlsaAnswer::Secure(records))
                } else {
                    Ok(TlsaAnswer::None {
                        secure_denial: false,
                    })
                }
            }
            Err(e) if e.is_no_records_found() => Ok(TlsaAnswer::None {
                secure_denial: denial_secure(e),
            }),
            Err(e) if is_bogus(&e) => Err(DnsError::Bogus(format!(
                "TLSA lookup for {name}: DNSSEC validation failed"
            ))),
            Err(e) => Err(DnsError::Temporary(format!(
                "TLSA lookup for {name} failed: {e}"
            ))),
        }
    }
}

/// The owner name of the first DNSKEY in an anchor file.
fn anchor_zone(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("[dns] dnssec_trust_anchor {}: {e}", path.display()))?;
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with(';'))
        .find(|l| {
            l.split_whitespace()
                .any(|w| w.eq_ignore_ascii_case("DNSKEY"))
        })
        .and_then(|l| l.split_whitespace().next())
        .map(|owner| owner.to_ascii_lowercase())
        .ok_or_else(|| {
            format!(
                "[dns] dnssec_trust_anchor {}: no DNSKEY record in it",
                path.display()
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_anchor_zone_is_the_owner_of_its_first_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("anchor.key");
        std::fs::write(
            &path,
            "; made by ldns-keygen\ntest.\tIN\tDNSKEY\t257 3 13 AbCd==\n",
        )
        .unwrap();
        assert_eq!(anchor_zone(&path).unwrap(), "test.");
        std::fs::write(&path, "; nothing\n").unwrap();
        assert!(anchor_zone(&path).unwrap_err().contains("no DNSKEY"));
    }

    #[test]
    fn tlsa_records_print_in_presentation_form() {
        let t = Tlsa {
            usage: 3,
            selector: 1,
            matching: 1,
            data: vec![0xed, 0x6c, 0x0f],
        };
        assert_eq!(t.to_string(), "3 1 1 ED6C0F");
    }
}
