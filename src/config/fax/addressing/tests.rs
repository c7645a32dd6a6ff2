//! Tests of the addressing half of `[fax]`: what parses, and errors at
//! their lines (in faxmta.toml or in the users file).

use crate::config::{Config, ConfigError, DomainKind};
use faxmta_fax::dialplan::E164;
use std::path::Path;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(Path::new("t.toml"), text)
}

const FULL: &str = r#"hostname = "mx.example.test"
[[domain]]
name = "fax.example.test"
kind = "fax"
[fax.dialplan]
country_code = "1"
national_prefix = "1"
international_prefix = "011"
area_code = "555"
national_digits = 10
outside_line = "9"
[[fax.rule]]
name = "premium-rate"
match = ["+1900", "+1976"]
action = "deny"
[[fax.rule]]
name = "no-international"
match = ["international"]
action = "deny"
groups = ["local"]
[[fax.rule]]
name = "toll-free-trunk"
match = ["+1800"]
action = "allow"
prefix = "8"
[[fax.group]]
name = "local"
[[fax.user]]
address = "alice@example.test"
name = "Alice"
[[fax.user]]
address = "*@branch.example.test"
groups = ["local"]
"#;

#[test]
fn a_full_fax_addressing_section() {
    let c = parse(FULL).unwrap();
    assert_eq!(c.domains[0].kind, DomainKind::Fax);
    let p = c.fax.policy();
    assert_eq!(p.rules.len(), 3);
    assert_eq!(p.directory.users.len(), 2);
    let e = |t: &str| E164::parse(t).unwrap();
    assert_eq!(p.dial(&e("+18005551234")), "818005551234");
    assert_eq!(p.dial(&e("+15551234567")), "915551234567");
    assert!(p
        .may_fax("alice@example.test", None, &e("+442079460958"))
        .is_ok());
    assert!(p
        .may_fax("x@branch.example.test", None, &e("+442079460958"))
        .is_err());
    assert!(p
        .may_fax("alice@example.test", None, &e("+19005551234"))
        .is_err());
    // Nothing configured: nobody may fax, and that parses.
    let bare = parse("hostname = \"x\"\n").unwrap();
    let none = bare.fax.policy();
    assert!(none.directory.users.is_empty() && none.rules.is_empty());
    assert_eq!(bare.fax.senders(), crate::config::fax::FaxSenders::Trusted);
}

/// `FULL` with `from` replaced by `to`: the error, whose place and
/// message must be as given.
fn fails(from: &str, to: &str, place: &str, says: &str) {
    assert!(FULL.contains(from), "{from}");
    let e = parse(&FULL.replacen(from, to, 1)).unwrap_err();
    assert_eq!(e.place, place, "{e}");
    assert!(e.message.contains(says), "{e}");
}

#[test]
fn mistakes_are_reported_at_their_line() {
    fails(
        "country_code = \"1\"",
        "country_code = \"01\"",
        ":6:1",
        "country_code",
    );
    fails(
        "international_prefix = \"011\"",
        "international_prefix = \"1\"",
        ":8:1",
        "must differ",
    );
    fails(
        "national_digits = 10",
        "national_digits = 40",
        ":10:1",
        "4 to 14",
    );
    fails(
        "outside_line = \"9\"",
        "outside_line = \"9w\"",
        ":11:1",
        "digits, *, #",
    );
    fails("\"+1976\"", "\"1976\"", ":14:9", "E.164 prefix");
    fails(
        "groups = [\"local\"]",
        "groups = [\"nobody\"]",
        ":17:8",
        "group nobody is not defined",
    );
    fails(
        "action = \"allow\"",
        "action = \"deny\"",
        ":22:8",
        "prefix is for allow rules",
    );
    fails(
        "action = \"deny\"",
        "action = \"maybe\"",
        ":15:10",
        "unknown variant",
    );
    fails(
        "name = \"Alice\"",
        "name = \"Alice\"\ngroups = [\"ghosts\"]",
        ":31:11",
        "group ghosts",
    );
    fails(
        "*@branch.example.test",
        "branch.example.test",
        ":32:11",
        "an address or *@domain",
    );
    fails(
        "kind = \"fax\"",
        "kind = \"fax\"\ndeliver = \"maildir:/m\"",
        ":3:8",
        "not for fax domain",
    );
    fails(
        "name = \"no-international\"",
        "name = \"premium-rate\"",
        ":13:8",
        "defined twice",
    );
    let no_cc = FULL
        .replace("country_code = \"1\"\n", "")
        .replace("area_code = \"555\"\n", "");
    let e = parse(&no_cc).unwrap_err();
    assert!(
        e.message.contains("national_digits needs country_code"),
        "{e}"
    );
}

#[test]
fn a_users_file_with_errors_at_its_own_lines() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("fax-users.toml");
    let config = |users: &Path| {
        format!(
            "hostname = \"x\"\n[fax]\nusers = \"{}\"\n[[fax.rule]]\nname = \"r\"\nmatch = [\"*\"]\n\
             action = \"deny\"\ngroups = [\"night\"]\n",
            users.display()
        )
    };
    std::fs::write(
        &users,
        "# fax users\n[[group]]\nname = \"night\"\ntsi = \"NIGHT SHIFT\"\n\n[[user]]\n\
         address = \"bob@example.test\"\ngroups = [\"night\"]\n",
    )
    .unwrap();
    let c = parse(&config(&users)).unwrap();
    let bob = c.fax.policy().directory.lookup("BOB@example.test").unwrap();
    assert_eq!(bob.tsi.as_deref(), Some("NIGHT SHIFT"));
    // A TOML mistake and a wrong reference, each at the users file's line.
    std::fs::write(
        &users,
        "[[user]]\naddress = \"bob@example.test\"\ngroup = \"x\"\n",
    )
    .unwrap();
    let e = parse(&config(&users)).unwrap_err();
    assert_eq!(
        (e.file.as_str(), e.place.as_str()),
        (users.to_str().unwrap(), ":3:1"),
        "{e}"
    );
    assert!(e.message.contains("unknown field `group`"), "{e}");
    std::fs::write(
        &users,
        "\n\n[[user]]\naddress = \"bob@example.test\"\ngroups = [\"day\"]\n",
    )
    .unwrap();
    let e = parse(&config(&users)).unwrap_err();
    assert_eq!(
        (e.file.as_str(), e.place.as_str()),
        (users.to_str().unwrap(), ":5:11"),
        "{e}"
    );
    // The rule's group must exist in the file.
    std::fs::write(&users, "[[user]]\naddress = \"bob@example.test\"\n").unwrap();
    let e = parse(&config(&users)).unwrap_err();
    assert_eq!(e.file, "t.toml");
    assert!(e.message.contains("group night is not defined"), "{e}");
    // A missing file, and inline users beside a file.
    let e = parse(&config(&dir.path().join("nope.toml"))).unwrap_err();
    assert_eq!(e.place, ":3:9", "{e}");
    assert!(e.message.contains("cannot read the fax users file"), "{e}");
    let both = config(&users) + "[[fax.user]]\naddress = \"a@b.test\"\n";
    let e = parse(&both).unwrap_err();
    assert!(e.message.contains("may not be given as well"), "{e}");
}
