//! The entry point of the `spf_record` fuzz target in fuzz/ (cargo-fuzz,
//! libFuzzer), which links this crate alone: arbitrary bytes as an SPF
//! record and as an explanation, with properties that must hold for any
//! input; a panic is a bug. The unit test at the end replays the corpus
//! kept in fuzz/corpus/spf_record/ on the stable toolchain.

use crate::macros::{MacroString, Use, Vars};
use crate::parse::{is_spf_record, Mechanism, Record};

/// An SPF record as a domain publishes it in DNS (crate faxmta-spf): the
/// record parser never panics; a record it accepts is an SPF record
/// (`v=spf1` then a space or the end) of printable ASCII; every
/// domain-spec in it expands, for an IPv4 and an IPv6 client, into
/// printable ASCII; the same bytes as an explanation text parse or not
/// without a panic, and expand likewise.
pub fn spf_record(data: &[u8]) {
    let vars = |ip: &str| Vars {
        sender: "first-second+x@example.test".into(),
        domain: "example.test".into(),
        ip: ip.parse().unwrap_or(std::net::Ipv4Addr::LOCALHOST.into()),
        helo: "mail.example.test".into(),
        receiver: "mx.example.test".into(),
        now: 1_700_000_000,
    };
    let both = [vars("192.0.2.1"), vars("2001:db8::cb01")];
    let printable = |s: &str| s.bytes().all(|b| (0x20..0x7f).contains(&b));
    if let Ok(record) = Record::parse(data) {
        assert!(is_spf_record(data));
        assert!(data.iter().all(|b| (0x20..0x7f).contains(b)));
        let mut specs: Vec<&MacroString> = record.redirect.iter().chain(&record.exp).collect();
        for d in &record.directives {
            match &d.mechanism {
                Mechanism::Include(s) | Mechanism::Exists(s) => specs.push(s),
                Mechanism::A { domain, .. } | Mechanism::Mx { domain, .. } => specs.extend(domain),
                Mechanism::Ptr(domain) => specs.extend(domain),
                Mechanism::All | Mechanism::Ip4(..) | Mechanism::Ip6(..) => {}
            }
        }
        for spec in specs {
            for v in &both {
                assert!(printable(&spec.expand(v, Some("ptr.example.test"))));
            }
        }
    }
    if let Ok(exp) = MacroString::parse(&String::from_utf8_lossy(data), Use::Explanation) {
        for v in &both {
            assert!(printable(&exp.expand(v, None)));
        }
    }
}

#[cfg(test)]
mod tests {
    /// Replay every input kept in fuzz/corpus/spf_record/.
    #[test]
    fn the_fuzz_corpus_still_passes() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/spf_record");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            super::spf_record(&std::fs::read(entry.path()).unwrap());
            n += 1;
        }
        // Some cases of our own.
        super::spf_record(
            b"v=spf1 a:%{L}.%{ir}.%{v}/24//64 exists:%{p}.x.test -all exp=%{d2}.e.test",
        );
        super::spf_record(b"v=spf1 a:%{l99999999999999999999r-+,/_=}.x.test redirect=%%.%_.%-");
        assert!(n > 0, "no corpus in {dir:?}");
        eprintln!("replayed {n} corpus inputs");
    }
}
