//! MX resolution (RFC 5321 §5.1, RFC 7505) with hickory-resolver.
//!
//! A domain's MX hosts come back ordered by preference, equal preferences
//! shuffled; a domain without MX records is its own implicit MX; a null MX
//! (`MX 0 .`) and a domain that does not exist are permanent failures;
//! SERVFAIL, timeouts and the like are temporary.

use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::TokioResolver;
use rand::seq::SliceRandom;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// One host to try, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MxHost {
    /// The exchange's name, lower case, without the trailing dot.
    pub name: String,
    pub preference: u16,
    /// True when the domain had no MX records and is used as its own host.
    pub implicit: bool,
}

/// Why a lookup gave no host to try.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    /// `MX 0 .`: the domain accepts no mail (RFC 7505).
    #[error("domain {0} does not accept mail (null MX)")]
    NullMx(String),
    /// NXDOMAIN, or no MX and no address records.
    #[error("{0}")]
    NotFound(String),
    /// SERVFAIL, timeout, refused …: try again later.
    #[error("{0}")]
    Temporary(String),
    /// The answer failed DNSSEC validation (RFC 4035 "bogus"): an attack
    /// or a broken zone; treated as temporary (RFC 7672 §2.1.1).
    #[error("{0}")]
    Bogus(String),
}

impl DnsError {
    pub fn is_permanent(&self) -> bool {
        !matches!(self, DnsError::Temporary(_) | DnsError::Bogus(_))
    }
}

/// The resolver used for mail routing.
#[derive(Clone)]
pub struct Dns {
    resolver: TokioResolver,
    /// The DNSSEC-validating resolver over the same servers, for DANE
    /// (`dnssec.rs`); none until [`Dns::with_dnssec`].
    pub(crate) secure: Option<crate::dnssec::Validating>,
}

impl Dns {
    /// Use `nameservers` (each `IP:port`), or the system's resolver
    /// configuration (/etc/resolv.conf) when the list is empty.
    pub fn new(nameservers: &[SocketAddr], timeout: Duration) -> Result<Dns, String> {
        let resolver = builder(nameservers, timeout)?
            .build()
            .map_err(|e| format!("DNS resolver: {e}"))?;
        Ok(Dns {
            resolver,
            secure: None,
        })
    }

    /// The resolver itself, for other lookups over the same servers (SPF,
    /// DKIM and DMARC records).
    pub fn resolver(&self) -> &TokioResolver {
        &self.resolver
    }

    /// The MX hosts of `domain`, most preferred first.
    pub async fn mx(&self, domain: &str) -> Result<Vec<MxHost>, DnsError> {
        mx_with(&self.resolver, domain)
            .await
            .map(|(hosts, _)| hosts)
    }

    /// The IPv4 and IPv6 addresses of a host.
    pub async fn addresses(&self, host: &str) -> Result<Vec<IpAddr>, DnsError> {
        addresses_with(&self.resolver, host)
            .await
            .map(|(ips, _)| ips)
    }
}

/// A resolver builder over `nameservers` (or the system's configuration)
/// with our options.
pub(crate) fn builder(
    nameservers: &[SocketAddr],
    timeout: Duration,
) -> Result<hickory_resolver::ResolverBuilder<TokioRuntimeProvider>, String> {
    let mut opts = ResolverOpts::default();
    opts.timeout = timeout;
    opts.attempts = 2;
    opts.ndots = 0;
    {
        let builder = if nameservers.is_empty() {
            TokioResolver::builder_tokio().map_err(|e| format!("system DNS configuration: {e}"))?
        } else {
            let servers = nameservers
                .iter()
                .map(|addr| {
                    let mut ns = NameServerConfig::udp_and_tcp(addr.ip());
                    for c in &mut ns.connections {
                        c.port = addr.port();
                    }
                    ns
                })
                .collect();
            TokioResolver::builder_with_config(
                ResolverConfig::from_name_servers(servers),
                TokioRuntimeProvider::default(),
            )
        };
        Ok(builder.with_options(opts))
    }
}

/// The MX hosts of `domain`, most preferred first, through `resolver`;
/// with whether every record of the answer (or the denial) was proven by
/// DNSSEC (always false without validation).
pub(crate) async fn mx_with(
    resolver: &TokioResolver,
    domain: &str,
) -> Result<(Vec<MxHost>, bool), DnsError> {
    let fqdn = fqdn(domain);
    match resolver.lookup(fqdn.as_str(), RecordType::MX).await {
        Ok(lookup) => {
            let secure = all_secure(lookup.answers());
            let mut hosts: Vec<MxHost> = lookup
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::MX(mx) => Some(mx),
                    _ => None,
                })
                .map(|mx| MxHost {
                    name: mx
                        .exchange
                        .to_ascii()
                        .trim_end_matches('.')
                        .to_ascii_lowercase(),
                    preference: mx.preference,
                    implicit: false,
                })
                .collect();
            if hosts.iter().any(|h| h.name.is_empty()) {
                // RFC 7505: a null MX is the only MX of its domain;
                // treat it as null even beside others.
                return Err(DnsError::NullMx(domain.to_string()));
            }
            if hosts.is_empty() {
                return implicit(resolver, domain, secure).await;
            }
            order(&mut hosts);
            Ok((hosts, secure))
        }
        Err(e) if e.is_nx_domain() => Err(DnsError::NotFound(format!(
            "domain {domain} not found (NXDOMAIN)"
        ))),
        Err(e) if e.is_no_records_found() => {
            let secure = denial_secure(e);
            implicit(resolver, domain, secure).await
        }
        Err(e) if is_bogus(&e) => Err(DnsError::Bogus(format!(
            "MX lookup for {domain}: DNSSEC validation failed"
        ))),
        Err(e) => Err(DnsError::Temporary(format!(
            "MX lookup for {domain} failed: {e}"
        ))),
    }
}

/// No MX: the domain itself, if it has an address (RFC 5321 §5.1);
/// secure when the denial of the MX and the addresses both are.
async fn implicit(
    resolver: &TokioResolver,
    domain: &str,
    denial_secure: bool,
) -> Result<(Vec<MxHost>, bool), DnsError> {
    let (_, secure) = addresses_with(resolver, domain).await?;
    Ok((
        vec![MxHost {
            name: domain.to_ascii_lowercase(),
            preference: 0,
            implicit: true,
        }],
        denial_secure && secure,
    ))
}

/// The IPv4 and IPv6 addresses of a host through `resolver`, and whether
/// all of them were proven by DNSSEC.
pub(crate) async fn addresses_with(
    resolver: &TokioResolver,
    host: &str,
) -> Result<(Vec<IpAddr>, bool), DnsError> {
    match resolver.lookup_ip(fqdn(host).as_str()).await {
        Ok(ips) => {
            let secure = all_secure(ips.as_lookup().answers());
            let ips: Vec<IpAddr> = ips.iter().collect();
            if ips.is_empty() {
                Err(no_address(resolver, host).await)
            } else {
                Ok((ips, secure))
            }
        }
        Err(e) if e.is_nx_domain() => Err(DnsError::NotFound(format!(
            "host {host} not found (NXDOMAIN)"
        ))),
        Err(e) if e.is_no_records_found() => Err(no_address(resolver, host).await),
        Err(e) if is_bogus(&e) => Err(DnsError::Bogus(format!(
            "address lookup for {host}: DNSSEC validation failed"
        ))),
        Err(e) => Err(DnsError::Temporary(format!(
            "address lookup for {host} failed: {e}"
        ))),
    }
}

/// Why `host` has no address: none, or a bogus A RRset. `lookup_ip`
/// (A, then AAAA if that fails, for any reason) answers with the AAAA
/// lookup, so a bogus A set would read as "no address", a permanent
/// failure (a domain without MX would bounce); asked for alone, it is a
/// bogus answer, which defers.
async fn no_address(resolver: &TokioResolver, host: &str) -> DnsError {
    match resolver.lookup(fqdn(host).as_str(), RecordType::A).await {
        Err(e) if is_bogus(&e) => DnsError::Bogus(format!(
            "address lookup for {host}: DNSSEC validation failed"
        )),
        _ => DnsError::NotFound(format!("host {host} has no address")),
    }
}

/// Whether every record was proven secure (false for none: nothing proven).
pub(crate) fn all_secure(records: &[hickory_resolver::proto::rr::Record]) -> bool {
    !records.is_empty() && records.iter().all(|r| r.proof.is_secure())
}

/// Whether a "no such record" answer was proven by DNSSEC (its SOA).
pub(crate) fn denial_secure(e: hickory_resolver::net::NetError) -> bool {
    e.into_soa().is_some_and(|soa| soa.proof.is_secure())
}

/// Whether the error is a DNSSEC validation failure (a bogus answer).
pub(crate) fn is_bogus(e: &hickory_resolver::net::NetError) -> bool {
    use hickory_resolver::net::{DnsError as Dns, NetError};
    match e {
        NetError::Dns(Dns::DnssecBogus) => true,
        NetError::Dns(Dns::Nsec { proof, .. }) => proof.is_bogus(),
        _ => false,
    }
}

pub(crate) fn fqdn(name: &str) -> String {
    if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    }
}

/// Sort by preference and shuffle hosts of equal preference (RFC 5321 §5.1).
pub fn order(hosts: &mut [MxHost]) {
    let mut rng = rand::thread_rng();
    hosts.shuffle(&mut rng);
    hosts.sort_by_key(|h| h.preference);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(name: &str, preference: u16) -> MxHost {
        MxHost {
            name: name.into(),
            preference,
            implicit: false,
        }
    }

    #[test]
    fn ordered_by_preference_and_equal_ones_shuffled() {
        let mut seen_first = std::collections::HashSet::new();
        for _ in 0..200 {
            let mut hosts = vec![host("c", 20), host("a", 10), host("b", 10), host("d", 5)];
            order(&mut hosts);
            assert_eq!(hosts[0].name, "d");
            assert_eq!(hosts[3].name, "c");
            seen_first.insert(hosts[1].name.clone());
        }
        assert_eq!(seen_first.len(), 2, "equal preferences are shuffled");
    }
}
