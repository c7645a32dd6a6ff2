//! check_host() (RFC 7208 §4): initial processing, record lookup and
//! selection, evaluation of the mechanisms (§5) and modifiers (§6), the
//! explanation of a fail, and the processing limits of §4.6.4: at most
//! 10 DNS-querying terms per check (include, a, mx, ptr, exists,
//! redirect), at most 2 void lookups, at most 10 MX names per `mx` (more
//! is a permerror) and 10 PTR names per `ptr` or `%{p}` (the rest are
//! ignored).

use crate::macros::{MacroString, Use, Vars};
use crate::parse::{is_spf_record, is_toplabel, Mechanism, Qualifier, Record};
use crate::{Outcome, Request, Resolver, SpfResult};
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// DNS-querying mechanisms and modifiers per check (§4.6.4).
pub const MAX_LOOKUPS: u32 = 10;
/// Void lookups per check (§4.6.4: "SHOULD", default two).
pub const MAX_VOID_LOOKUPS: u32 = 2;
/// MX names looked at by one `mx`; PTR names by one `ptr` or `%{p}`.
pub const MAX_NAMES: usize = 10;
/// The whole check (§4.6.4: "at least 20 seconds").
pub const TIME_LIMIT: Duration = Duration::from_secs(20);

/// Check `request` over `dns` (RFC 7208 §4).
pub async fn check<R: Resolver>(dns: &R, request: &Request) -> Outcome {
    let ip = match request.ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(request.ip, IpAddr::V4),
        v4 => v4,
    };
    let mut eval = Eval {
        dns,
        ip,
        sender: request.sender.clone(),
        helo: request.helo.clone(),
        receiver: request.receiver.clone(),
        now: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        lookups: 0,
        voids: 0,
    };
    let domain = request.domain().to_string();
    let verdict =
        match tokio::time::timeout(TIME_LIMIT, eval.check_host(domain.clone(), true)).await {
            Ok(v) => v,
            Err(_) => Verdict::error(
                SpfResult::TempError,
                format!("the SPF check of {domain} took more than {TIME_LIMIT:?}"),
            ),
        };
    Outcome {
        result: verdict.result,
        explanation: verdict.explanation,
        reason: verdict.reason,
        mechanism: verdict.mechanism,
        lookups: eval.lookups,
        void_lookups: eval.voids,
    }
}

/// The result of one check_host() level.
struct Verdict {
    result: SpfResult,
    explanation: Option<String>,
    reason: Option<String>,
    mechanism: Option<String>,
}

impl Verdict {
    fn error(result: SpfResult, reason: String) -> Verdict {
        Verdict {
            result,
            explanation: None,
            reason: Some(reason),
            mechanism: None,
        }
    }
}

/// Why evaluation stopped before a mechanism matched.
enum Stop {
    Temp(String),
    Perm(String),
}

impl Stop {
    fn verdict(self) -> Verdict {
        match self {
            Stop::Temp(why) => Verdict::error(SpfResult::TempError, why),
            Stop::Perm(why) => Verdict::error(SpfResult::PermError, why),
        }
    }
}

/// One check in progress: the request and the counters it shares with
/// every include and redirect.
struct Eval<'r, R> {
    dns: &'r R,
    ip: IpAddr,
    sender: String,
    helo: String,
    receiver: String,
    now: u64,
    lookups: u32,
    voids: u32,
}

type Boxed<'s, T> = Pin<Box<dyn Future<Output = T> + Send + 's>>;

impl<R: Resolver> Eval<'_, R> {
    /// check_host() for `domain`; `explain`: look up the explanation of
    /// a fail (not for an include's record, §6.2).
    fn check_host(&mut self, domain: String, explain: bool) -> Boxed<'_, Verdict> {
        Box::pin(async move {
            match self.evaluate(&domain, explain).await {
                Ok(v) => v,
                Err(stop) => stop.verdict(),
            }
        })
    }

    async fn evaluate(&mut self, domain: &str, explain: bool) -> Result<Verdict, Stop> {
        // §4.3: a malformed domain is "none", without a lookup.
        if let Err(why) = valid_domain(domain) {
            return Ok(Verdict::error(SpfResult::None, why));
        }
        let domain = domain.strip_suffix('.').unwrap_or(domain);
        // §4.4, §4.5.
        let txts = self.dns.txt(domain).await.map_err(|e| {
            Stop::Temp(format!(
                "DNS lookup of the SPF record of {domain} failed: {e}"
            ))
        })?;
        let mut spf: Vec<&Vec<u8>> = txts.iter().filter(|t| is_spf_record(t)).collect();
        let text = match spf.len() {
            // The plain case of none: no reason beyond the result.
            0 => {
                return Ok(Verdict {
                    result: SpfResult::None,
                    explanation: None,
                    reason: None,
                    mechanism: None,
                })
            }
            1 => spf.remove(0),
            n => {
                return Err(Stop::Perm(format!(
                    "{domain} publishes {n} SPF records (RFC 7208 section 4.5 allows one)"
                )))
            }
        };
        let record = Record::parse(text).map_err(|e| {
            Stop::Perm(format!(
                "the SPF record of {domain} has a syntax error: {e}"
            ))
        })?;
        let vars = Vars {
            sender: self.sender.clone(),
            domain: domain.to_string(),
            ip: self.ip,
            helo: self.helo.clone(),
            receiver: self.receiver.clone(),
            now: self.now,
        };
        // §4.6.2: the first mechanism that matches decides.
        for directive in &record.directives {
            if directive.mechanism.queries_dns() {
                self.count_lookup()?;
            }
            if self.matches(&directive.mechanism, &vars).await? {
                let result = match directive.qualifier {
                    Qualifier::Pass => SpfResult::Pass,
                    Qualifier::Fail => SpfResult::Fail,
                    Qualifier::SoftFail => SpfResult::SoftFail,
                    Qualifier::Neutral => SpfResult::Neutral,
                };
                let explanation = match (result, &record.exp) {
                    (SpfResult::Fail, Some(exp)) if explain => self.explain(exp, &vars).await,
                    _ => None,
                };
                return Ok(Verdict {
                    result,
                    explanation,
                    reason: None,
                    mechanism: Some(directive.text.clone()),
                });
            }
        }
        // §6.1: redirect when nothing matched (never after "all").
        if let Some(redirect) = &record.redirect {
            self.count_lookup()?;
            let target = self.target(redirect, &vars).await?;
            let v = self.check_host(target.clone(), explain).await;
            if v.result == SpfResult::None {
                return Err(Stop::Perm(format!(
                    "redirect={target}: {}",
                    v.reason
                        .unwrap_or_else(|| format!("{target} publishes no SPF record"))
                )));
            }
            return Ok(v);
        }
        // §4.7.
        Ok(Verdict {
            result: SpfResult::Neutral,
            explanation: None,
            reason: None,
            mechanism: None,
        })
    }

    fn count_lookup(&mut self) -> Result<(), Stop> {
        self.lookups += 1;
        if self.lookups > MAX_LOOKUPS {
            return Err(Stop::Perm(format!(
                "more than {MAX_LOOKUPS} DNS-querying mechanisms and modifiers \
                 (RFC 7208 section 4.6.4)"
            )));
        }
        Ok(())
    }

    /// A lookup answered NXDOMAIN or no records (§4.6.4).
    fn count_void(&mut self) -> Result<(), Stop> {
        self.voids += 1;
        if self.voids > MAX_VOID_LOOKUPS {
            return Err(Stop::Perm(format!(
                "more than {MAX_VOID_LOOKUPS} void DNS lookups (RFC 7208 section 4.6.4)"
            )));
        }
        Ok(())
    }

    /// Whether `mechanism` matches (§5).
    async fn matches(&mut self, mechanism: &Mechanism, vars: &Vars) -> Result<bool, Stop> {
        match mechanism {
            Mechanism::All => Ok(true),
            Mechanism::Ip4(net, len) => Ok(in_network(self.ip, IpAddr::V4(*net), *len)),
            Mechanism::Ip6(net, len) => Ok(in_network(self.ip, IpAddr::V6(*net), *len)),
            Mechanism::Include(spec) => {
                let target = self.target(spec, vars).await?;
                let v = self.check_host(target.clone(), false).await;
                let why = |v: Verdict| v.reason.unwrap_or_default();
                match v.result {
                    SpfResult::Pass => Ok(true),
                    SpfResult::Fail | SpfResult::SoftFail | SpfResult::Neutral => Ok(false),
                    SpfResult::TempError => Err(Stop::Temp(why(v))),
                    SpfResult::PermError => Err(Stop::Perm(why(v))),
                    SpfResult::None => Err(Stop::Perm(format!(
                        "include:{target}: {}",
                        v.reason
                            .unwrap_or_else(|| format!("{target} publishes no SPF record"))
                    ))),
                }
            }
            Mechanism::A {
                domain,
                cidr4,
                cidr6,
            } => {
                let target = self.target_or_domain(domain.as_ref(), vars).await?;
                let addrs = self.addresses(&target).await?;
                if addrs.is_empty() {
                    self.count_void()?;
                }
                Ok(addrs.iter().any(|a| self.in_dual(*a, *cidr4, *cidr6)))
            }
            Mechanism::Mx {
                domain,
                cidr4,
                cidr6,
            } => {
                let target = self.target_or_domain(domain.as_ref(), vars).await?;
                let names = self
                    .dns
                    .mx(&target)
                    .await
                    .map_err(|e| Stop::Temp(format!("MX lookup of {target} failed: {e}")))?;
                if names.is_empty() {
                    self.count_void()?;
                }
                if names.len() > MAX_NAMES {
                    return Err(Stop::Perm(format!(
                        "{target} has {} MX records (RFC 7208 section 4.6.4 allows {MAX_NAMES})",
                        names.len()
                    )));
                }
                for name in names.iter().filter(|n| !n.is_empty()) {
                    let addrs = self.addresses(name).await?;
                    if addrs.iter().any(|a| self.in_dual(*a, *cidr4, *cidr6)) {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Mechanism::Ptr(domain) => {
                let target = self.target_or_domain(domain.as_ref(), vars).await?;
                let names = self.validated_names(true).await?;
                let target = target.to_ascii_lowercase();
                Ok(names.iter().any(|n| {
                    let n = n.to_ascii_lowercase();
                    n == target || n.ends_with(&format!(".{target}"))
                }))
            }
            Mechanism::Exists(spec) => {
                let target = self.target(spec, vars).await?;
                // §5.7: an A lookup, whatever the client's address family.
                let addrs = self
                    .dns
                    .a(&target)
                    .await
                    .map_err(|e| Stop::Temp(format!("A lookup of {target} failed: {e}")))?;
                if addrs.is_empty() {
                    self.count_void()?;
                }
                Ok(!addrs.is_empty())
            }
        }
    }

    /// The A (IPv4 client) or AAAA (IPv6 client) records of `name`.
    async fn addresses(&self, name: &str) -> Result<Vec<IpAddr>, Stop> {
        let found = match self.ip {
            IpAddr::V4(_) => self
                .dns
                .a(name)
                .await
                .map(|v| v.into_iter().map(IpAddr::V4).collect()),
            IpAddr::V6(_) => self
                .dns
                .aaaa(name)
                .await
                .map(|v| v.into_iter().map(IpAddr::V6).collect()),
        };
        found.map_err(|e| Stop::Temp(format!("address lookup of {name} failed: {e}")))
    }

    /// `addr` covers the client under the prefix length of its family.
    fn in_dual(&self, addr: IpAddr, cidr4: u8, cidr6: u8) -> bool {
        let len = if addr.is_ipv4() { cidr4 } else { cidr6 };
        in_network(self.ip, addr, len)
    }

    /// The client's validated names (§5.5): the PTR names (at most 10)
    /// whose addresses include the client. A failed PTR lookup gives
    /// none; a failed address lookup skips that name. `count`: whether an
    /// empty PTR answer is a void lookup (for `ptr`, not for `%{p}`).
    async fn validated_names(&mut self, count: bool) -> Result<Vec<String>, Stop> {
        let Ok(names) = self.dns.ptr(self.ip).await else {
            return Ok(Vec::new());
        };
        if names.is_empty() && count {
            self.count_void()?;
        }
        let mut valid = Vec::new();
        for name in names.into_iter().take(MAX_NAMES) {
            let name = name.trim_end_matches('.').to_string();
            if name.is_empty() {
                continue;
            }
            if let Ok(addrs) = self.addresses(&name).await {
                if addrs.contains(&self.ip) {
                    valid.push(name);
                }
            }
        }
        Ok(valid)
    }

    /// `%{p}` (§7.3): the validated name that is `<domain>`, else one
    /// under it, else any; "unknown" when there is none.
    async fn p_macro(&mut self, domain: &str) -> String {
        let names = self.validated_names(false).await.unwrap_or_default();
        let domain = domain.to_ascii_lowercase();
        let lower = |n: &String| n.to_ascii_lowercase();
        names
            .iter()
            .find(|n| lower(n) == domain)
            .or_else(|| {
                names
                    .iter()
                    .find(|n| lower(n).ends_with(&format!(".{domain}")))
            })
            .or(names.first())
            .cloned()
            .unwrap_or_else(|| "unknown".to_string())
    }

    async fn target_or_domain(
        &mut self,
        spec: Option<&MacroString>,
        vars: &Vars,
    ) -> Result<String, Stop> {
        match spec {
            Some(spec) => self.target(spec, vars).await,
            None => Ok(vars.domain.clone()),
        }
    }

    /// A domain-spec expanded into the name to look up (§4.8, §7.3):
    /// without its final dot, cut to 253 octets by dropping labels from
    /// the left; a name with an empty label or a label over 63 octets
    /// cannot be looked up and is a permerror.
    async fn target(&mut self, spec: &MacroString, vars: &Vars) -> Result<String, Stop> {
        let p = match spec.uses_ptr() {
            true => Some(self.p_macro(&vars.domain).await),
            false => None,
        };
        let expanded = spec.expand(vars, p.as_deref());
        let mut name = expanded.strip_suffix('.').unwrap_or(&expanded);
        while name.len() > 253 {
            match name.split_once('.') {
                Some((_, rest)) => name = rest,
                None => break,
            }
        }
        let bad = name.is_empty()
            || name.len() > 253
            || name.split('.').any(|l| l.is_empty() || l.len() > 63);
        if bad {
            return Err(Stop::Perm(format!(
                "{expanded:?} is not a domain name that can be looked up (RFC 7208 section 4.8)"
            )));
        }
        Ok(name.to_string())
    }

    /// The explanation of a fail (§6.2): the single TXT record at the
    /// `exp=` target, expanded; none when anything is wrong with it.
    async fn explain(&mut self, spec: &MacroString, vars: &Vars) -> Option<String> {
        let target = self.target(spec, vars).await.ok()?;
        let txts = self.dns.txt(&target).await.ok()?;
        let [txt] = txts.as_slice() else {
            return None;
        };
        if txt.iter().any(|&b| !(0x20..=0x7e).contains(&b)) {
            return None;
        }
        let text = std::str::from_utf8(txt).ok()?;
        let exp = MacroString::parse(text, Use::Explanation).ok()?;
        let p = match exp.uses_ptr() {
            true => Some(self.p_macro(&vars.domain).await),
            false => None,
        };
        Some(exp.expand(vars, p.as_deref()))
    }
}

/// §4.3: a domain check_host() can start from: labels of 1 to 63 visible
/// ASCII characters, at least two, at most 253 octets, a top label that
/// is not numeric (an address literal is no domain).
fn valid_domain(domain: &str) -> Result<(), String> {
    let name = domain.strip_suffix('.').unwrap_or(domain);
    let labels: Vec<&str> = name.split('.').collect();
    let ok = name.len() <= 253
        && labels.len() >= 2
        && labels
            .iter()
            .all(|l| !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_graphic()))
        && labels.last().is_some_and(|l| is_toplabel(l));
    match ok {
        true => Ok(()),
        false => Err(format!(
            "{domain:?} is not a domain name that SPF can check (RFC 7208 section 4.3)"
        )),
    }
}

/// Whether `ip` is in `net`/`len` (same family only).
fn in_network(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(ip), IpAddr::V4(net)) => {
            let mask = u32::MAX
                .checked_shl(32u32.saturating_sub(u32::from(len)))
                .unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) => {
            let mask = u128::MAX
                .checked_shl(128u32.saturating_sub(u32::from(len)))
                .unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(in_network(ip("1.2.3.4"), ip("1.1.1.1"), 0));
        assert!(in_network(ip("1.2.3.4"), ip("1.2.3.5"), 24));
        assert!(!in_network(ip("1.2.3.4"), ip("1.2.3.5"), 32));
        assert!(in_network(
            ip("cafe:babe:8000::1"),
            ip("cafe:babe:8000::"),
            33
        ));
        assert!(!in_network(ip("1.1.1.1"), ip("::1.1.1.1"), 0));
        assert!(!in_network(ip("::1.1.1.1"), ip("1.1.1.1"), 0));
    }

    #[test]
    fn section_4_3_domains() {
        for good in ["example.com", "a.b.example.com.", "foo:bar/baz.example.com"] {
            assert!(valid_domain(good).is_ok(), "{good}");
        }
        let long = format!("{}.example.com", "a".repeat(64));
        for bad in [
            "",
            "A2345678",
            "[1.2.3.5]",
            "A...example.com",
            long.as_str(),
            "1.2.3.4",
            "example.com..",
        ] {
            assert!(valid_domain(bad).is_err(), "{bad}");
        }
    }
}
