//! Unit tests of directory.rs.

use super::*;

fn user(address: &str, groups: &[&str]) -> FaxUser {
    FaxUser {
        address: address.into(),
        name: None,
        groups: groups.iter().map(|g| g.to_string()).collect(),
        tsi: None,
        header: None,
        cover_page: None,
        numbers: vec![],
        incoming_format: None,
    }
}

fn group(name: &str) -> FaxGroup {
    FaxGroup {
        name: name.into(),
        description: None,
        tsi: None,
        header: None,
        cover_page: None,
        numbers: vec![],
    }
}

fn policy() -> FaxPolicy {
    let directory = Directory {
        users: vec![
            FaxUser {
                name: Some("Alice Example".into()),
                tsi: Some("ALICE".into()),
                ..user("alice@example.com", &["staff"])
            },
            user("*@example.com", &["local", "staff"]),
            user("scanner@example.com", &[]),
        ],
        groups: vec![
            FaxGroup {
                tsi: Some("+1 555 0100".into()),
                header: Some("Example Corp".into()),
                ..group("staff")
            },
            FaxGroup {
                cover_page: Some(false),
                ..group("local")
            },
        ],
    };
    directory.validate().unwrap();
    let rules: Vec<Rule> = vec![
        Rule {
            name: "premium-rate".into(),
            patterns: vec!["+1900".parse().unwrap()],
            action: Action::Deny,
            users: vec![],
            groups: vec![],
            prefix: None,
        },
        Rule {
            name: "no-international".into(),
            patterns: vec!["international".parse().unwrap()],
            action: Action::Deny,
            users: vec![],
            groups: vec!["local".into()],
            prefix: None,
        },
    ];
    FaxPolicy {
        plan: DialPlan {
            country_code: "1".into(),
            national_prefix: "1".into(),
            international_prefix: "011".into(),
            national_digits: Some(10),
            ..DialPlan::default()
        },
        rules,
        directory,
    }
}

#[test]
fn who_may_fax_where() {
    let p = policy();
    let e = |t: &str| E164::parse(t).unwrap();
    let alice = p
        .may_fax("Alice@Example.com", None, &e("+15551234567"))
        .unwrap();
    assert_eq!(alice.entry, "alice@example.com");
    assert_eq!(alice.name.as_deref(), Some("Alice Example"));
    assert_eq!(alice.tsi.as_deref(), Some("ALICE"), "the user's own");
    assert_eq!(alice.header.as_deref(), Some("Example Corp"), "its group's");
    assert!(p
        .may_fax("alice@example.com", None, &e("+442079460958"))
        .is_ok());
    let bob = p
        .may_fax("bob@example.com", None, &e("+15551234567"))
        .unwrap();
    assert_eq!(bob.entry, "*@example.com");
    assert_eq!(bob.cover_page, Some(false));
    assert_eq!(
        bob.tsi.as_deref(),
        Some("+1 555 0100"),
        "the first group with one"
    );
    let blocked = p
        .may_fax("bob@example.com", None, &e("+442079460958"))
        .unwrap_err();
    assert_eq!(
        blocked.to_string(),
        "Fax to +442079460958 is not allowed for bob@example.com (rule: no-international)"
    );
    let premium = p
        .may_fax("alice@example.com", None, &e("+19005551234"))
        .unwrap_err();
    assert!(
        premium.to_string().contains("(rule: premium-rate)"),
        "{premium}"
    );
    let unknown = p
        .may_fax("eve@evil.test", None, &e("+15551234567"))
        .unwrap_err();
    assert_eq!(
        unknown.to_string(),
        "<eve@evil.test> may not send faxes (not in the fax user directory)"
    );
    // Logged in as a directory user, sending as another address.
    let by_login = p
        .may_fax(
            "noreply@other.test",
            Some("scanner@example.com"),
            &e("+15551234567"),
        )
        .unwrap();
    assert_eq!(by_login.entry, "scanner@example.com");
    assert_eq!(
        p.may_fax("", Some("scanner@example.com"), &e("+15551234567")),
        Err(Refusal::NullSender)
    );
}

#[test]
fn directory_mistakes_are_named() {
    let bad = |users: Vec<FaxUser>, groups: Vec<FaxGroup>| {
        Directory { users, groups }.validate().unwrap_err()
    };
    let e = bad(vec![user("a@b.test", &["nope"])], vec![]);
    assert_eq!(e.needle, "\"nope\"");
    assert!(
        e.message.contains("group nope is not defined"),
        "{}",
        e.message
    );
    let e = bad(vec![user("alice", &[])], vec![]);
    assert!(e.message.contains("an address or *@domain"));
    let e = bad(vec![user("a@b.test", &[]), user("A@b.test", &[])], vec![]);
    assert!(e.message.contains("twice"));
    let long = FaxGroup {
        tsi: Some("much too long for a fax tsi".into()),
        ..group("g")
    };
    let e = bad(vec![], vec![long]);
    assert!(e.message.contains("20 printable"));
    let e = bad(vec![], vec![group("g"), group("G")]);
    assert!(e.message.contains("defined twice"));
    assert!(!valid_address_pattern("a*b@x.test"));
    assert!(!valid_address_pattern("*@*.test"));
    assert!(valid_address_pattern("*@x.test"));
}

#[test]
fn numbers_find_users_and_group_members() {
    let directory = Directory {
        users: vec![
            FaxUser {
                numbers: vec!["+1 555-0100".into()],
                ..user("alice@example.com", &[])
            },
            user("bob@example.com", &["sales"]),
            user("carol@example.com", &[]),
            user("*@example.com", &["sales"]),
        ],
        groups: vec![FaxGroup {
            numbers: vec!["200".into(), "+15550100".into()],
            ..group("Sales")
        }],
    };
    let addresses = |n: &str| -> Vec<String> {
        directory
            .users_for_number(n)
            .into_iter()
            .map(|(a, _)| a)
            .collect()
    };
    assert_eq!(
        addresses("+15550100"),
        ["alice@example.com", "bob@example.com"]
    );
    assert_eq!(addresses("200"), ["bob@example.com"]);
    assert!(directory.users_for_number("201").is_empty());
    assert!(directory.users_for_number("").is_empty());
}
