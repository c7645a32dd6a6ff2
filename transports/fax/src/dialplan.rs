//! The dial plan: fax numbers normalised to E.164, the outbound rules
//! that say who may dial what, and the dial string the line dials.
//!
//! **Normalising** a number as written ([`DialPlan::normalise`]):
//! separators (space, `-`, `.`, `(`, `)`, `/`) are dropped; letters
//! (vanity numbers) and other characters are refused; then
//! 1. `+…`: already international;
//! 2. the international prefix (`00`, `011`): replaced by `+`;
//! 3. the national prefix (`0`, NANP `1`) followed by a national number
//!    (of `national_digits` digits, when that is set): the prefix is
//!    replaced by `+` and the country code;
//! 4. exactly `national_digits` digits (NANP: 10): a national number;
//! 5. other digits: the `area_code` goes in front (a local number); without
//!    an area code, they are national when the plan has no national
//!    prefix, and refused otherwise.
//!
//! The result has 7 to 15 digits (E.164 allows 15) and does not start
//! with `+0`; with `national_digits`, a number in our own country has that
//! many after the country code. Numbers other than `+…` need
//! `country_code`.
//!
//! **Dialling** an E.164 number ([`DialPlan::dial`]): a number in our own
//! country is dialled as the national prefix and the national number, any
//! other as the international prefix and all its digits; in front of
//! either comes the outside-line prefix (`9`) — or, for numbers matched by
//! an outbound rule with a `prefix`, that rule's prefix instead.
//!
//! **Outbound rules** ([`Rule`], [`decide`]) are tried in order; the
//! first whose pattern matches the number and that applies to the sender
//! (all senders, or the listed users and groups) decides: allow or deny.
//! No rule matches: allowed. Patterns: `*` (every number), `+1900` (a
//! prefix of the E.164 number; a trailing `*` is allowed), `international`
//! (not our country code) and `national` (our country code).

use super::address::BadNumber;
use serde::Deserialize;
use std::fmt;

/// A number in E.164 form: `+` and 7 to 15 digits, not starting with 0.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct E164(String);

/// Fewest digits accepted: the shortest numbers in use (+290 XXXX, Saint
/// Helena) have 7; fewer is a typo.
pub const MIN_DIGITS: usize = 7;
/// Most digits E.164 allows.
pub const MAX_DIGITS: usize = 15;

impl E164 {
    /// From digits (no `+`, no separators).
    pub fn from_digits(digits: &str) -> Result<E164, BadNumber> {
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(BadNumber::new(format!("{digits:?} is not all digits")));
        }
        if digits.starts_with('0') {
            return Err(BadNumber::new(format!(
                "+{digits}: no country code starts with 0"
            )));
        }
        if digits.len() > MAX_DIGITS {
            return Err(BadNumber::new(format!(
                "+{digits} has {} digits: an international number has at most {MAX_DIGITS} \
                 digits (E.164)",
                digits.len()
            )));
        }
        if digits.len() < MIN_DIGITS {
            return Err(BadNumber::new(format!(
                "+{digits} has {} digits: too short for a telephone number (at least \
                 {MIN_DIGITS} with the country code)",
                digits.len()
            )));
        }
        Ok(E164(format!("+{digits}")))
    }

    /// Parse `+` and digits exactly (no separators): a stored number.
    pub fn parse(text: &str) -> Result<E164, BadNumber> {
        match text.strip_prefix('+') {
            Some(digits) => E164::from_digits(digits),
            None => Err(BadNumber::new(format!("{text:?} does not start with +"))),
        }
    }

    /// `+15551234567`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `15551234567`.
    pub fn digits(&self) -> &str {
        &self.0[1..]
    }
}

impl fmt::Display for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `[fax.dialplan]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DialPlan {
    /// Our country code (`1`, `44`, `49`); empty: only international
    /// numbers (`+…` or with the international prefix) are accepted.
    pub country_code: String,
    /// What is dialled before a national number (`0`; NANP: `1`; none:
    /// empty).
    pub national_prefix: String,
    /// What is dialled before an international number (`00`; NANP: `011`).
    pub international_prefix: String,
    /// Put in front of a local number (digits without any prefix).
    pub area_code: String,
    /// Digits without a prefix and of this length are national numbers
    /// (NANP: 10); absent: none are.
    pub national_digits: Option<usize>,
    /// Dialled before every number to reach an outside line (`9`).
    pub outside_line: String,
}

impl Default for DialPlan {
    fn default() -> Self {
        DialPlan {
            country_code: String::new(),
            national_prefix: "0".into(),
            international_prefix: "00".into(),
            area_code: String::new(),
            national_digits: None,
            outside_line: String::new(),
        }
    }
}

impl DialPlan {
    /// The number as written → E.164, or why it is not a number.
    pub fn normalise(&self, written: &str) -> Result<E164, BadNumber> {
        let number = self.to_e164(written)?;
        match self.national_digits {
            Some(n) if self.is_national(&number) => {
                let national = &number.digits()[self.country_code.len()..];
                if national.len() != n {
                    return Err(BadNumber::new(format!(
                        "{number}: national numbers of +{} have {n} digits, not {}",
                        self.country_code,
                        national.len()
                    )));
                }
                Ok(number)
            }
            _ => Ok(number),
        }
    }

    fn to_e164(&self, written: &str) -> Result<E164, BadNumber> {
        let mut digits = String::new();
        let mut plus = false;
        for c in written.trim().chars() {
            match c {
                '0'..='9' => digits.push(c),
                '+' if digits.is_empty() && !plus => plus = true,
                ' ' | '-' | '.' | '(' | ')' | '/' | '\t' => {}
                '+' => {
                    return Err(BadNumber::new(format!(
                        "{written:?}: + may only start the number"
                    )))
                }
                c if c.is_alphabetic() => {
                    return Err(BadNumber::new(format!(
                        "{written:?}: letters are not accepted (spell a vanity number out in \
                         digits)"
                    )))
                }
                c => {
                    return Err(BadNumber::new(format!(
                        "{written:?}: {c:?} is neither a digit nor a separator"
                    )))
                }
            }
        }
        if digits.is_empty() {
            return Err(BadNumber::new(format!("{written:?} has no digits")));
        }
        if plus {
            return E164::from_digits(&digits);
        }
        let intl = &self.international_prefix;
        if !intl.is_empty() && digits.starts_with(intl.as_str()) {
            return E164::from_digits(&digits[intl.len()..]);
        }
        let cc = &self.country_code;
        if cc.is_empty() {
            return Err(BadNumber::new(format!(
                "{written:?} is not in international form (+CC…) and the dial plan has no \
                 country_code"
            )));
        }
        let national = |n: &str| E164::from_digits(&format!("{cc}{n}"));
        let np = &self.national_prefix;
        if let Some(rest) = digits.strip_prefix(np.as_str()).filter(|_| !np.is_empty()) {
            if rest.is_empty() {
                return Err(BadNumber::new(format!("{written:?} is only a prefix")));
            }
            // NANP: 1 + 10 digits is national; 1234567 is a local number.
            if self.national_digits.is_none_or(|n| n == rest.len()) {
                return national(rest);
            }
        }
        if self.national_digits == Some(digits.len()) {
            return national(&digits);
        }
        if !self.area_code.is_empty() {
            return national(&format!("{}{digits}", self.area_code));
        }
        if np.is_empty() {
            return national(&digits);
        }
        Err(BadNumber::new(format!(
            "{written:?} is a local number and the dial plan has no area_code (write it as \
             +{cc}… or with the national prefix {np})"
        )))
    }

    /// Whether `number` is in our own country.
    pub fn is_national(&self, number: &E164) -> bool {
        !self.country_code.is_empty() && number.digits().starts_with(&self.country_code)
    }

    /// What the line dials for `number`, with `prefix` (an outbound rule's)
    /// instead of the outside-line prefix when given.
    pub fn dial(&self, number: &E164, prefix: Option<&str>) -> String {
        let outside = prefix.unwrap_or(&self.outside_line);
        if self.is_national(number) {
            let national = &number.digits()[self.country_code.len()..];
            format!("{outside}{}{national}", self.national_prefix)
        } else {
            format!("{outside}{}{}", self.international_prefix, number.digits())
        }
    }
}

/// A pattern of an outbound rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    /// `*`: every number.
    Any,
    /// `+1900`: E.164 numbers starting with these digits.
    Prefix(String),
    /// `international`: numbers outside our country code.
    International,
    /// `national`: numbers in our country code.
    National,
}

impl std::str::FromStr for Pattern {
    type Err = String;

    fn from_str(s: &str) -> Result<Pattern, String> {
        let t = s.trim();
        match t.to_ascii_lowercase().as_str() {
            "*" => return Ok(Pattern::Any),
            "international" => return Ok(Pattern::International),
            "national" => return Ok(Pattern::National),
            _ => {}
        }
        let digits = t
            .strip_prefix('+')
            .map(|d| d.strip_suffix('*').unwrap_or(d))
            .filter(|d| !d.is_empty() && d.len() <= MAX_DIGITS)
            .filter(|d| d.bytes().all(|b| b.is_ascii_digit()));
        match digits {
            Some(d) => Ok(Pattern::Prefix(d.to_string())),
            None => Err(format!(
                "fax rule pattern {s:?}: expected \"*\", \"international\", \"national\" or an \
                 E.164 prefix such as \"+1900\""
            )),
        }
    }
}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::Any => f.write_str("*"),
            Pattern::Prefix(d) => write!(f, "+{d}"),
            Pattern::International => f.write_str("international"),
            Pattern::National => f.write_str("national"),
        }
    }
}

impl Pattern {
    pub fn matches(&self, number: &E164, plan: &DialPlan) -> bool {
        match self {
            Pattern::Any => true,
            Pattern::Prefix(d) => number.digits().starts_with(d.as_str()),
            Pattern::International => !plan.is_national(number),
            Pattern::National => plan.is_national(number),
        }
    }
}

/// What a rule does with the numbers it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Allow,
    Deny,
}

/// `[[fax.rule]]`: an outbound rule.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Named in refusals (`rule: premium-rate`) and `faxmta route`.
    pub name: String,
    /// The numbers it matches (any of them).
    #[serde(rename = "match")]
    pub patterns: Vec<Pattern>,
    pub action: Action,
    /// The senders it applies to: addresses and `*@domain`. With `groups`
    /// empty too: every sender.
    #[serde(default)]
    pub users: Vec<String>,
    /// The fax user groups it applies to.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Dialled instead of the outside-line prefix for the numbers it
    /// matches (only for `allow` rules that apply to every sender: the
    /// dial string never depends on the sender).
    pub prefix: Option<String>,
}

impl Rule {
    /// Whether the rule applies to every sender.
    pub fn for_everyone(&self) -> bool {
        self.users.is_empty() && self.groups.is_empty()
    }

    /// Whether it matches the number.
    pub fn matches(&self, number: &E164, plan: &DialPlan) -> bool {
        self.patterns.iter().any(|p| p.matches(number, plan))
    }

    /// Whether it applies to `sender` (lower case), a member of `groups`.
    pub fn applies_to(&self, sender: &str, groups: &[String]) -> bool {
        self.for_everyone()
            || self
                .users
                .iter()
                .any(|u| super::directory::address_matches(u, sender))
            || self
                .groups
                .iter()
                .any(|g| groups.iter().any(|m| m.eq_ignore_ascii_case(g)))
    }

    /// Who it applies to, in words.
    pub fn scope(&self) -> String {
        if self.for_everyone() {
            return "every sender".into();
        }
        let mut who: Vec<String> = self.users.clone();
        who.extend(self.groups.iter().map(|g| format!("group {g}")));
        who.join(", ")
    }
}

/// The first rule that matches `number` and applies to `sender` in
/// `groups`; `None`: no rule matches (allowed).
pub fn decide<'a>(
    rules: &'a [Rule],
    plan: &DialPlan,
    number: &E164,
    sender: &str,
    groups: &[String],
) -> Option<&'a Rule> {
    rules
        .iter()
        .find(|r| r.matches(number, plan) && r.applies_to(sender, groups))
}

/// The dial string of `number` under `plan` and the rules' prefixes: the
/// first rule with a `prefix` that matches the number gives it.
pub fn dial_string(rules: &[Rule], plan: &DialPlan, number: &E164) -> String {
    let prefix = rules
        .iter()
        .filter(|r| r.prefix.is_some())
        .find(|r| r.matches(number, plan))
        .and_then(|r| r.prefix.as_deref());
    plan.dial(number, prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nanp() -> DialPlan {
        DialPlan {
            country_code: "1".into(),
            national_prefix: "1".into(),
            international_prefix: "011".into(),
            area_code: "555".into(),
            national_digits: Some(10),
            outside_line: "9".into(),
        }
    }

    fn germany() -> DialPlan {
        DialPlan {
            country_code: "49".into(),
            area_code: "30".into(),
            ..DialPlan::default()
        }
    }

    #[test]
    fn normalise_each_way_of_writing() {
        let us = nanp();
        let n = |p: &DialPlan, t: &str| p.normalise(t).map(|e| e.to_string());
        assert_eq!(n(&us, "+1 (555) 123-4567").unwrap(), "+15551234567");
        assert_eq!(n(&us, "1-555-123-4567").unwrap(), "+15551234567");
        assert_eq!(n(&us, "555.123.4567").unwrap(), "+15551234567");
        assert_eq!(n(&us, "123-4567").unwrap(), "+15551234567");
        assert_eq!(n(&us, "011 44 20 7946 0958").unwrap(), "+442079460958");
        let de = germany();
        assert_eq!(n(&de, "030 1234567").unwrap(), "+49301234567");
        assert_eq!(n(&de, "0201/1234567").unwrap(), "+492011234567");
        assert_eq!(n(&de, "1234567").unwrap(), "+49301234567");
        assert_eq!(n(&de, "0033 1 23 45 67 89").unwrap(), "+33123456789");
        let bare = DialPlan::default();
        assert!(n(&bare, "0301234567")
            .unwrap_err()
            .0
            .contains("no country_code"));
        assert_eq!(n(&bare, "+49 30 1234567").unwrap(), "+49301234567");
        let no_area = DialPlan {
            area_code: String::new(),
            ..germany()
        };
        assert!(n(&no_area, "1234567")
            .unwrap_err()
            .0
            .contains("no area_code"));
        let closed = DialPlan {
            country_code: "45".into(),
            national_prefix: String::new(),
            ..DialPlan::default()
        };
        assert_eq!(n(&closed, "33 12 34 56").unwrap(), "+4533123456");
    }

    #[test]
    fn bad_numbers_say_why() {
        let us = nanp();
        let why = |t: &str| us.normalise(t).unwrap_err().0;
        assert!(
            why("1-800-FLOWERS").contains("letters"),
            "{}",
            why("1-800-FLOWERS")
        );
        assert!(why("+1234567890123456").contains("at most 15"));
        assert!(why("+0441234567").contains("country code"));
        assert!(why("+1 555").contains("too short"));
        assert!(why("").contains("no digits"));
        assert!(why("555+1234").contains("+ may only start"));
        assert!(why("555_1234").contains("neither a digit"));
        assert!(why("1").contains("only a prefix"));
        assert!(germany()
            .normalise("0")
            .unwrap_err()
            .0
            .contains("only a prefix"));
        assert_eq!(E164::parse("+15551234567").unwrap().digits(), "15551234567");
        assert!(E164::parse("15551234567").is_err());
    }

    #[test]
    fn dial_strings() {
        let us = nanp();
        let e = |t: &str| E164::parse(t).unwrap();
        assert_eq!(us.dial(&e("+15551234567"), None), "915551234567");
        assert_eq!(us.dial(&e("+442079460958"), None), "9011442079460958");
        assert_eq!(us.dial(&e("+15551234567"), Some("")), "15551234567");
        let de = germany();
        assert_eq!(de.dial(&e("+49301234567"), None), "0301234567");
        assert_eq!(de.dial(&e("+15551234567"), None), "0015551234567");
        let rules = vec![Rule {
            name: "tie-line".into(),
            patterns: vec!["+4930".parse().unwrap()],
            action: Action::Allow,
            users: vec![],
            groups: vec![],
            prefix: Some("8".into()),
        }];
        assert_eq!(dial_string(&rules, &de, &e("+49301234567")), "80301234567");
        assert_eq!(dial_string(&rules, &de, &e("+49401234567")), "0401234567");
    }

    #[test]
    fn first_matching_rule_that_applies_decides() {
        let us = nanp();
        let rule = |name: &str, pat: &[&str], action, users: &[&str], groups: &[&str]| Rule {
            name: name.into(),
            patterns: pat.iter().map(|p| p.parse().unwrap()).collect(),
            action,
            users: users.iter().map(|s| s.to_string()).collect(),
            groups: groups.iter().map(|s| s.to_string()).collect(),
            prefix: None,
        };
        let rules = vec![
            rule("boss", &["*"], Action::Allow, &["boss@example.com"], &[]),
            rule("premium-rate", &["+1900", "+1976*"], Action::Deny, &[], &[]),
            rule(
                "no-international",
                &["international"],
                Action::Deny,
                &[],
                &["local"],
            ),
            rule(
                "interns",
                &["national"],
                Action::Deny,
                &["*@interns.example.com"],
                &[],
            ),
        ];
        let e = |t: &str| E164::parse(t).unwrap();
        let name = |n: &str, s: &str, g: &[&str]| {
            let g: Vec<String> = g.iter().map(|s| s.to_string()).collect();
            decide(&rules, &us, &e(n), s, &g).map(|r| r.name.clone())
        };
        assert_eq!(
            name("+19005551234", "a@example.com", &[]).unwrap(),
            "premium-rate"
        );
        assert_eq!(
            name("+19765551234", "a@example.com", &[]).unwrap(),
            "premium-rate"
        );
        assert_eq!(
            name("+19005551234", "boss@example.com", &[]).unwrap(),
            "boss"
        );
        assert_eq!(
            name("+442079460958", "a@example.com", &["LOCAL"]).unwrap(),
            "no-international"
        );
        assert_eq!(name("+442079460958", "a@example.com", &["staff"]), None);
        assert_eq!(
            name("+15551234567", "x@interns.example.com", &[]).unwrap(),
            "interns"
        );
        assert_eq!(name("+15551234567", "a@example.com", &["local"]), None);
        for bad in ["1900", "+", "+19a", "premium", "+1234567890123456"] {
            assert!(bad.parse::<Pattern>().is_err(), "{bad}");
        }
    }
}
