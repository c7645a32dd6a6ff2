//! Entry points for the fuzz targets in fuzz/ that need the daemon
//! (cargo-fuzz, libFuzzer): the router and relay control, which are built
//! from the configuration. The targets that need only the parsers call
//! faxmta-proto (`faxmta_proto::fuzzing`) or faxmta-spf directly. Each
//! takes arbitrary bytes and checks properties that must hold for any
//! input; a panic is a bug. The unit test at the end replays the corpus
//! kept in fuzz/corpus/, so the findings stay covered on the stable
//! toolchain.
#![doc(hidden)]

use crate::config::Config;
use crate::policy::relay;
use crate::router::{Route, Router};
use faxmta_proto::path;
use std::sync::OnceLock;

fn router() -> &'static Router {
    static ROUTER: OnceLock<Router> = OnceLock::new();
    ROUTER.get_or_init(|| {
        let text = r#"hostname = "mx.example.test"
[[domain]]
name = "example.test"
kind = "local"
deliver = "maildir:/var/mail/{domain}/{user}"
[[domain]]
name = "users.test"
kind = "local"
deliver = "maildir:/var/mail/{domain}/{user}"
users = ["alice", "bob"]
[[domain]]
name = "branch.test"
kind = "relay"
hosts = ["127.0.0.5:25"]
[[domain]]
name = "partner.test"
kind = "backup-mx"
[[domain]]
name = "customer.test"
kind = "etrn"
release_from = ["127.0.0.6/32"]
hosts = ["127.0.0.6"]
[[domain]]
name = "fax.test"
kind = "fax"
[fax.dialplan]
country_code = "1"
national_prefix = "1"
international_prefix = "011"
area_code = "555"
national_digits = 10
outside_line = "9"
[[fax.user]]
address = "*@example.test"
"#;
        match Config::parse(std::path::Path::new("fuzz.toml"), text) {
            Ok(c) => Router::new(&c),
            Err(e) => panic!("the fuzz configuration: {e}"),
        }
    })
}

/// A path as a client writes it (RFC 5321 grammar, faxmta-proto's
/// `path.rs`), then the router and relay control on it, as a client that
/// may not relay and one that may. Properties: a client that may not
/// relay never gets a route that relays; no accepted address in our
/// domains carries a route of its own (`%`, `!`, quoted `@`); a Maildir
/// path never leaves its domain's directory; a fax route is an E.164
/// number and a dial string of digits. (That the path parses to itself,
/// and the fax address forms, are the `address` target's, in
/// faxmta-proto.)
pub fn route(data: &[u8]) {
    let Ok(path) = path::parse(data) else {
        return;
    };
    let address = path.address;
    let router = router();
    let _ = router.resolve(&address);
    for may_relay in [false, true] {
        let Ok(route) = relay::check(router, may_relay, &address) else {
            continue;
        };
        assert!(may_relay || !route.is_relay(), "{address} relayed");
        if !route.is_relay() {
            assert!(!relay::has_routing(&address), "{address} routed");
        }
        if let Route::Fax(target) = &route {
            // A fax route is a number and digits to dial, nothing else.
            let number = target.number.as_str();
            assert!(number.starts_with('+'), "{address}: {number}");
            assert!(number[1..].bytes().all(|b| b.is_ascii_digit()), "{address}");
            assert!(number.len() <= 16, "{address}: {number}");
            assert!(
                target.dial.bytes().all(|b| b.is_ascii_digit() || b == b'+'),
                "{address}: dial {}",
                target.dial
            );
        }
        if let Route::Maildir { mailbox } = &route {
            let base = std::path::Path::new("/var/mail");
            assert!(mailbox.starts_with(base), "{address}: {mailbox:?}");
            assert!(
                mailbox.components().all(|c| matches!(
                    c,
                    std::path::Component::Normal(_) | std::path::Component::RootDir
                )),
                "{address}: {mailbox:?}"
            );
            assert!(mailbox.components().count() == 5, "{address}: {mailbox:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    /// Replay the inputs kept for `route` (its seeds: a quoted `@`, a
    /// source route with `%`, the fax forms) and for `address` (the same
    /// paths, which `route` takes further) in fuzz/corpus/.
    #[test]
    fn the_fuzz_corpus_still_passes() {
        let mut n = 0;
        for target in ["route", "address"] {
            for input in faxmta_proto::fuzzing::corpus(target) {
                super::route(&input);
                n += 1;
            }
        }
        assert!(n > 0, "no corpus in fuzz/corpus/");
        eprintln!("replayed {n} corpus inputs");
    }
}
