//! The RFC 7208 table (tests/table/) evaluated over an in-memory
//! resolver that answers as tests/peers/dns.py does: the records of the
//! name and type, a CNAME followed, SERVFAIL for a failing name, and an
//! empty answer (NXDOMAIN or NODATA) otherwise. One test per section.

mod table;

use faxmta_spf::{check, DnsError, Request, Resolver};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use table::{Case, Rr, Section};

struct Zone(&'static [Rr]);

impl Zone {
    fn lookup<T>(&self, name: &str, pick: impl Fn(&Rr) -> Option<T>) -> Result<Vec<T>, DnsError> {
        let mut name = name.trim_end_matches('.').to_ascii_lowercase();
        for _ in 0..8 {
            let fails = self.0.iter().any(
                |r| matches!(r, Rr::Servfail(n) if *n == "*" || n.eq_ignore_ascii_case(&name)),
            );
            if fails {
                return Err(DnsError(format!("SERVFAIL for {name}")));
            }
            let own: Vec<&Rr> = self
                .0
                .iter()
                .filter(|r| r.owner().eq_ignore_ascii_case(&name))
                .collect();
            let found: Vec<T> = own.iter().filter_map(|r| pick(r)).collect();
            if !found.is_empty() {
                return Ok(found);
            }
            match own.iter().find_map(|r| match r {
                Rr::Cname(_, target) => Some(target.to_ascii_lowercase()),
                _ => None,
            }) {
                Some(target) => name = target,
                None => return Ok(Vec::new()),
            }
        }
        Err(DnsError("CNAME loop".into()))
    }
}

impl Resolver for Zone {
    async fn txt(&self, name: &str) -> Result<Vec<Vec<u8>>, DnsError> {
        self.lookup(name, |r| match r {
            Rr::Txt(_, t) => Some(t.as_bytes().to_vec()),
            Rr::Strings(_, s) => Some(s.concat()),
            _ => None,
        })
    }

    async fn a(&self, name: &str) -> Result<Vec<Ipv4Addr>, DnsError> {
        self.lookup(name, |r| match r {
            Rr::A(_, a) => a.parse().ok(),
            _ => None,
        })
    }

    async fn aaaa(&self, name: &str) -> Result<Vec<Ipv6Addr>, DnsError> {
        self.lookup(name, |r| match r {
            Rr::Aaaa(_, a) => a.parse().ok(),
            _ => None,
        })
    }

    async fn mx(&self, name: &str) -> Result<Vec<String>, DnsError> {
        self.lookup(name, |r| match r {
            Rr::Mx(_, _, x) => Some(x.to_string()),
            _ => None,
        })
    }

    async fn ptr(&self, ip: IpAddr) -> Result<Vec<String>, DnsError> {
        let name = match ip {
            IpAddr::V4(v4) => {
                let o = v4.octets();
                format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0])
            }
            IpAddr::V6(_) => {
                let mut nibbles: Vec<String> = faxmta_spf::macros::dotted(ip)
                    .split('.')
                    .map(String::from)
                    .collect();
                nibbles.reverse();
                format!("{}.ip6.arpa", nibbles.join("."))
            }
        };
        self.lookup(&name, |r| match r {
            Rr::Ptr(_, target) => Some(target.to_string()),
            _ => None,
        })
    }
}

/// The request `faxmta check spf` makes of a case.
fn request(case: &Case) -> Request {
    let ip: IpAddr = case.ip.parse().unwrap();
    if case.from.is_empty() {
        Request::helo(ip, case.helo, "mx.receiver.test")
    } else {
        Request::mail_from(ip, case.from, case.helo, "mx.receiver.test")
    }
}

async fn run(id: &str) {
    let mut failures = Vec::new();
    for section in table::section(id) {
        let zone = Zone(section.zone);
        for case in section.cases {
            let out = check(&zone, &request(case)).await;
            let mut ok = out.result.as_str() == case.result;
            if let Some(want) = case.explanation {
                ok &= out.explanation.as_deref() == want;
            }
            if !ok {
                failures.push(format!(
                    "§{} {}: want {} {:?}, got {} {:?} ({:?})",
                    section.id,
                    case.name,
                    case.result,
                    case.explanation.flatten(),
                    out.result.as_str(),
                    out.explanation,
                    out.reason.or(out.mechanism)
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Records of the table, mutated (bytes changed, cut, SPF's special
/// characters put in), parsed and evaluated: no panic, whatever the
/// record; a record that parses is evaluated to some result.
#[tokio::test]
async fn mutated_records_never_panic() {
    let mut seeds: Vec<Vec<u8>> = Vec::new();
    for s in table::sections() {
        for rr in s.zone {
            match rr {
                Rr::Txt(_, t) => seeds.push(t.as_bytes().to_vec()),
                Rr::Strings(_, parts) => seeds.push(parts.concat()),
                _ => {}
            }
        }
    }
    let special = b"%{}/:=.-_+,~?! 0123456789abcdlrshipvtcLRSHIPV\x80\t";
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut parsed = 0;
    for round in 0..20_000 {
        let mut rec = seeds[round % seeds.len()].clone();
        for _ in 0..(next() % 4 + 1) {
            let at = (next() as usize) % (rec.len() + 1);
            match next() % 3 {
                0 => rec.insert(at, special[(next() as usize) % special.len()]),
                1 if at < rec.len() => {
                    rec.remove(at);
                }
                _ => rec.truncate(at.max(6)),
            }
        }
        if faxmta_spf::parse::Record::parse(&rec).is_err() {
            continue;
        }
        parsed += 1;
        if round % 20 != 0 {
            continue;
        }
        // Evaluate it as the only record of the zone.
        let text: &'static str =
            Box::leak(String::from_utf8_lossy(&rec).into_owned().into_boxed_str());
        let zone: &'static [Rr] = Box::leak(Box::new([Rr::Txt("fuzz.example.test", text)]));
        let request = Request::mail_from(
            "192.0.2.1".parse().unwrap(),
            "first-second@fuzz.example.test",
            "mail.example.test",
            "mx.receiver.test",
        );
        let out = check(&Zone(zone), &request).await;
        assert!(!out.result.as_str().is_empty());
    }
    assert!(parsed > 1000, "only {parsed} mutated records parsed");
}

/// §4.6.4: what a check reports of the limits it used.
#[tokio::test]
async fn lookups_and_void_lookups_are_counted() {
    let section = table::section("4.6.4")[0];
    let zone = Zone(section.zone);
    let ip = "192.0.2.1".parse().unwrap();
    let count = |from: &str| {
        let request = Request::mail_from(ip, from, "mail.example.test", "mx.receiver.test");
        let zone = &zone;
        async move {
            let out = check(zone, &request).await;
            (out.lookups, out.void_lookups)
        }
    };
    // a mx a mx a mx a mx a ptr: ten terms, the ptr (no PTR record) void.
    assert_eq!(count("u@ten.example.test").await, (10, 1));
    assert_eq!(count("u@void2.example.test").await, (2, 2));
    // The exp= lookup of a fail is neither.
    assert_eq!(count("u@expvoid.example.test").await, (2, 2));
    // The eleventh term stops the check.
    assert_eq!(count("u@eleven.example.test").await.0, 11);
}

/// Every section of the table has its test below.
#[test]
fn every_section_is_tested() {
    let tested = [
        "4.3", "4.4", "4.5", "4.6", "4.6.4", "4.7", "4.8", "5.1", "5.2", "5.3", "5.4", "5.5",
        "5.6", "5.7", "6.1", "6.2", "7.1", "7.2", "7.3",
    ];
    let sections: Vec<&Section> = table::sections();
    for s in &sections {
        assert!(tested.contains(&s.id), "section {} has no test", s.id);
    }
}

macro_rules! section_tests {
    ($($name:ident => $id:literal),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                run($id).await;
            }
        )*
    };
}

section_tests! {
    section_4_3_initial_processing => "4.3",
    section_4_4_record_lookup => "4.4",
    section_4_5_selecting_records => "4.5",
    section_4_6_record_evaluation => "4.6",
    section_4_6_4_dns_lookup_limits => "4.6.4",
    section_4_7_default_result => "4.7",
    section_4_8_domain_specification => "4.8",
    section_5_1_all => "5.1",
    section_5_2_include => "5.2",
    section_5_3_a => "5.3",
    section_5_4_mx => "5.4",
    section_5_5_ptr => "5.5",
    section_5_6_ip4_ip6 => "5.6",
    section_5_7_exists => "5.7",
    section_6_1_redirect => "6.1",
    section_6_2_exp => "6.2",
    section_7_1_macro_grammar => "7.1",
    section_7_2_macro_letters => "7.2",
    section_7_3_transformers => "7.3",
}
