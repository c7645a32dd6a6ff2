//! RFC 7208 through the real binary: every case of the table in
//! spf/tests/table (written from the RFC, section by section) is run as
//! `faxmta check spf --nameserver 127.0.0.1:PORT --json`, against
//! tests/peers/dns.py serving that section's zone. The result, the
//! explanation and the exit status (libspf2 spfquery's) are checked.
//! Nothing leaves 127.0.0.0/8; no configuration file is read.

mod common;
mod peers;

#[path = "../spf/tests/table/mod.rs"]
mod table;

use peers::Dns;
use serde_json::Value;
use std::process::Command;
use table::{Rr, Section};

/// A name in zone-file form: a space in a label as `\032`.
fn owner(name: &str) -> String {
    if name == "*" {
        return "*.".into();
    }
    format!("{}.", name.replace(' ', "\\032"))
}

/// A character-string for dnslib's zone parser: quoted, anything but
/// plain printable ASCII as an octal `\ooo` escape (dnslib's TXT form).
fn quoted(s: &[u8]) -> String {
    let mut out = String::from("\"");
    for &b in s {
        if (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\' {
            out.push(b as char);
        } else {
            out.push_str(&format!("\\{b:03o}"));
        }
    }
    out.push('"');
    out
}

/// The section's zone as a zone file for tests/peers/dns.py.
fn zone_file(section: &Section) -> String {
    let mut z = String::from("$TTL 60\n");
    for rr in section.zone {
        let line = match rr {
            Rr::A(n, a) => format!("{} A {a}", owner(n)),
            Rr::Aaaa(n, a) => format!("{} AAAA {a}", owner(n)),
            Rr::Mx(n, p, x) => format!("{} MX {p} {}", owner(n), owner(x)),
            Rr::Txt(n, t) => format!("{} TXT {}", owner(n), quoted(t.as_bytes())),
            Rr::Strings(n, s) => {
                let strings: Vec<String> = s.iter().map(|s| quoted(s)).collect();
                format!("{} TXT {}", owner(n), strings.join(" "))
            }
            Rr::Ptr(n, t) => format!("{} PTR {}", owner(n), owner(t)),
            Rr::Cname(n, t) => format!("{} CNAME {}", owner(n), owner(t)),
            Rr::Servfail(n) => format!("{} SERVFAIL", owner(n)),
        };
        z.push_str(&line);
        z.push('\n');
    }
    z
}

/// libspf2 spfquery's exit status for a result.
fn exit_status(result: &str) -> i32 {
    match result {
        "neutral" => 1,
        "pass" => 2,
        "fail" => 3,
        "softfail" => 4,
        "none" => 5,
        "temperror" => 6,
        "permerror" => 7,
        other => panic!("no result {other}"),
    }
}

fn run(id: &str) {
    let mut failures = Vec::new();
    for section in table::section(id) {
        let dns = Dns::start(&zone_file(section));
        for case in section.cases {
            let out = Command::new(env!("CARGO_BIN_EXE_faxmta"))
                .args(["check", "spf", "--json", "--timeout", "5", "--nameserver"])
                .arg(format!("127.0.0.1:{}", dns.port))
                .args(["--ip", case.ip, "--helo", case.helo, "--from", case.from])
                .output()
                .unwrap();
            let json: Value = match serde_json::from_slice(&out.stdout) {
                Ok(v) => v,
                Err(_) => {
                    failures.push(format!(
                        "§{} {}: no JSON: {}",
                        section.id,
                        case.name,
                        common::output_text(&out)
                    ));
                    continue;
                }
            };
            let result = json["result"].as_str().unwrap_or("");
            let explanation = json["explanation"].as_str();
            let mut ok = result == case.result;
            if let Some(want) = case.explanation {
                ok &= explanation == want;
            }
            ok &= out.status.code() == Some(exit_status(case.result));
            if !ok {
                failures.push(format!(
                    "§{} {}: want {} {:?} (exit {}), got {json} (exit {:?})",
                    section.id,
                    case.name,
                    case.result,
                    case.explanation.flatten(),
                    exit_status(case.result),
                    out.status.code()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

macro_rules! section_tests {
    ($($name:ident => $id:literal),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                run($id);
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
