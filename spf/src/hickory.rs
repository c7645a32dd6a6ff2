//! [`Resolver`] over hickory's `TokioResolver`. Names are built from
//! their labels as raw octets, so a target such as `foo:bar/baz.example`
//! or one with `%` from an escaped macro is asked as it is; NXDOMAIN and
//! NODATA are an empty answer, anything else that fails is a
//! [`DnsError`].

use crate::{DnsError, Resolver};
use hickory_resolver::net::NetError;
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use hickory_resolver::TokioResolver;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An absolute name from `name`'s labels.
fn absolute(name: &str) -> Result<Name, DnsError> {
    let name = name.strip_suffix('.').unwrap_or(name);
    Name::from_labels(name.split('.').map(str::as_bytes))
        .map_err(|e| DnsError(format!("{name:?} cannot be asked: {e}")))
}

/// The records of one type, or empty for NXDOMAIN/NODATA.
async fn lookup(
    resolver: &TokioResolver,
    name: Name,
    kind: RecordType,
) -> Result<Vec<RData>, DnsError> {
    match resolver.lookup(name.clone(), kind).await {
        Ok(found) => Ok(found.answers().iter().map(|r| r.data.clone()).collect()),
        Err(e) if empty(&e) => Ok(Vec::new()),
        Err(e) => Err(DnsError(format!("{kind} {name}: {e}"))),
    }
}

fn empty(e: &NetError) -> bool {
    e.is_nx_domain() || e.is_no_records_found()
}

/// A name as text, without the final dot: its labels as they are (no
/// zone-file escapes), so that it can be asked again as it came.
fn text(name: &Name) -> String {
    name.iter()
        .map(String::from_utf8_lossy)
        .collect::<Vec<_>>()
        .join(".")
}

impl Resolver for TokioResolver {
    async fn txt(&self, name: &str) -> Result<Vec<Vec<u8>>, DnsError> {
        let found = lookup(self, absolute(name)?, RecordType::TXT).await?;
        Ok(found
            .into_iter()
            .filter_map(|d| match d {
                RData::TXT(txt) => Some(
                    txt.txt_data
                        .iter()
                        .flat_map(|s| s.iter().copied())
                        .collect(),
                ),
                _ => None,
            })
            .collect())
    }

    async fn a(&self, name: &str) -> Result<Vec<Ipv4Addr>, DnsError> {
        let found = lookup(self, absolute(name)?, RecordType::A).await?;
        Ok(found
            .into_iter()
            .filter_map(|d| match d {
                RData::A(a) => Some(a.0),
                _ => None,
            })
            .collect())
    }

    async fn aaaa(&self, name: &str) -> Result<Vec<Ipv6Addr>, DnsError> {
        let found = lookup(self, absolute(name)?, RecordType::AAAA).await?;
        Ok(found
            .into_iter()
            .filter_map(|d| match d {
                RData::AAAA(a) => Some(a.0),
                _ => None,
            })
            .collect())
    }

    async fn mx(&self, name: &str) -> Result<Vec<String>, DnsError> {
        let found = lookup(self, absolute(name)?, RecordType::MX).await?;
        Ok(found
            .into_iter()
            .filter_map(|d| match d {
                RData::MX(mx) => Some(text(&mx.exchange)),
                _ => None,
            })
            .collect())
    }

    async fn ptr(&self, ip: IpAddr) -> Result<Vec<String>, DnsError> {
        let found = lookup(self, Name::from(ip), RecordType::PTR).await?;
        Ok(found
            .into_iter()
            .filter_map(|d| match d {
                RData::PTR(ptr) => Some(text(&ptr.0)),
                _ => None,
            })
            .collect())
    }
}
