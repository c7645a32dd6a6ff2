//! The MTA-STS policy file (RFC 8461 §3.2) and its MX patterns (§4.1).
//!
//! A policy is `key: value` lines separated by LF or CRLF: `version:
//! STSv1`, `mode: enforce | testing | none`, `max_age: SECONDS` (at most
//! 31557600, larger values are clamped) and one `mx: PATTERN` line per
//! allowed MX host (at least one unless the mode is `none`). Unknown keys
//! are ignored; of a repeated key other than `mx` the first one counts.

use std::fmt;

/// The largest `max_age` honoured: one year (RFC 8461 §3.2).
pub const MAX_AGE_LIMIT: u64 = 31_557_600;

/// What a policy asks of the sender (RFC 8461 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Deliver only to matching MX hosts with a PKIX-valid certificate.
    Enforce,
    /// Deliver anyway, report failures (TLS-RPT).
    Testing,
    /// The domain withdrew its policy.
    None,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Enforce => "enforce",
            Mode::Testing => "testing",
            Mode::None => "none",
        })
    }
}

/// One fetched and parsed policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The `id` of the `_mta-sts` TXT record the policy was fetched for.
    pub id: String,
    pub mode: Mode,
    /// The MX patterns, lower case, without a trailing dot; a wildcard
    /// pattern keeps its leading `*.`.
    pub mx: Vec<String>,
    /// Seconds the policy may be cached, clamped to [`MAX_AGE_LIMIT`].
    pub max_age: u64,
    /// The policy body as fetched (TLS-RPT's `policy-string`).
    pub text: String,
}

impl Policy {
    /// Parse a policy body fetched for the TXT record id `id`.
    pub fn parse(id: &str, body: &str) -> Result<Policy, String> {
        let mut version = None;
        let mut mode = None;
        let mut max_age = None;
        let mut mx = Vec::new();
        for (n, line) in body.split('\n').enumerate() {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.trim().is_empty() {
                continue;
            }
            let (key, value) = line
                .split_once(':')
                .ok_or_else(|| format!("policy line {}: no \"key:\" in {line:?}", n + 1))?;
            let key = key.trim();
            let value = value.trim_matches([' ', '\t']);
            if key.is_empty()
                || !key.starts_with(|c: char| c.is_ascii_alphabetic())
                || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                return Err(format!("policy line {}: bad key {key:?}", n + 1));
            }
            match key {
                "version" if version.is_none() => version = Some(value.to_string()),
                "mode" if mode.is_none() => mode = Some(value.to_string()),
                "max_age" if max_age.is_none() => max_age = Some(value.to_string()),
                "mx" => mx.push(pattern(value)?),
                _ => {} // unknown keys, and repeats of the single ones
            }
        }
        match version.as_deref() {
            Some("STSv1") => {}
            Some(v) => return Err(format!("policy version {v:?} is not STSv1")),
            None => return Err("policy has no version".into()),
        }
        let mode = match mode.as_deref().map(str::to_ascii_lowercase).as_deref() {
            Some("enforce") => Mode::Enforce,
            Some("testing") => Mode::Testing,
            Some("none") => Mode::None,
            Some(other) => {
                return Err(format!(
                    "policy mode {other:?} is not enforce, testing or none"
                ))
            }
            None => return Err("policy has no mode".into()),
        };
        let max_age = match max_age {
            Some(v) if !v.is_empty() && v.len() <= 10 && v.bytes().all(|b| b.is_ascii_digit()) => v
                .parse::<u64>()
                .map_err(|e| format!("policy max_age {v:?}: {e}"))?
                .min(MAX_AGE_LIMIT),
            Some(v) => return Err(format!("policy max_age {v:?} is not 1 to 10 digits")),
            None => return Err("policy has no max_age".into()),
        };
        if mx.is_empty() && mode != Mode::None {
            return Err(format!("policy in mode {mode} has no mx line"));
        }
        Ok(Policy {
            id: id.to_string(),
            mode,
            mx,
            max_age,
            text: body.to_string(),
        })
    }

    /// Whether the MX host `mx_host` is allowed by one of the patterns
    /// (RFC 8461 §4.1): equal ignoring case and a trailing dot, or, for
    /// `*.rest`, exactly one more label in front of `rest`.
    pub fn matches(&self, mx_host: &str) -> bool {
        let host = mx_host.trim_end_matches('.').to_ascii_lowercase();
        if host.is_empty() {
            return false;
        }
        self.mx.iter().any(|p| match p.strip_prefix('*') {
            Some(suffix) => host
                .strip_suffix(suffix)
                .is_some_and(|label| !label.is_empty() && !label.contains('.')),
            None => *p == host,
        })
    }

    /// The policy body's lines, without empty ones (TLS-RPT's
    /// `policy-string`, RFC 8460 §4.4).
    pub fn lines(&self) -> Vec<String> {
        self.text
            .split('\n')
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect()
    }
}

/// An `mx:` value checked and normalised: a host name, or `*.` followed
/// by one (the wildcard only as the whole leftmost label).
fn pattern(value: &str) -> Result<String, String> {
    let p = value.trim_end_matches('.').to_ascii_lowercase();
    let name = p.strip_prefix("*.").unwrap_or(&p);
    let ok = !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if ok {
        Ok(p)
    } else {
        Err(format!(
            "policy mx pattern {value:?} is not a host name or *.host"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.backup.example.com.\r\nmax_age: 604800\r\n";

    #[test]
    fn sts_policy_parses_crlf() {
        let p = Policy::parse("20260101", GOOD).expect("parses");
        assert_eq!(p.id, "20260101");
        assert_eq!(p.mode, Mode::Enforce);
        assert_eq!(p.max_age, 604800);
        assert_eq!(p.mx, vec!["mail.example.com", "*.backup.example.com"]);
        assert_eq!(p.text, GOOD);
        assert_eq!(
            p.lines(),
            vec![
                "version: STSv1",
                "mode: enforce",
                "mx: mail.example.com",
                "mx: *.backup.example.com.",
                "max_age: 604800"
            ]
        );
    }

    #[test]
    fn sts_policy_parses_lf_without_final_newline_and_ignores_unknown_keys() {
        let body = "version: STSv1\nmode:testing\nfoo_bar: whatever: really\nmx:\tMX.Example.COM\nmax_age: 86400";
        let p = Policy::parse("a", body).expect("parses");
        assert_eq!(p.mode, Mode::Testing);
        assert_eq!(p.mx, vec!["mx.example.com"]);
        assert_eq!(p.max_age, 86400);
    }

    #[test]
    fn sts_policy_mode_none_needs_no_mx() {
        let p = Policy::parse("a", "version: STSv1\nmode: none\nmax_age: 10\n").expect("parses");
        assert_eq!(p.mode, Mode::None);
        assert!(p.mx.is_empty());
        assert!(!p.matches("mx.example.com"));
    }

    #[test]
    fn sts_policy_refuses_bad_ones() {
        let cases = [
            (
                "version: STSv2\nmode: enforce\nmx: a.b\nmax_age: 1\n",
                "version",
            ),
            ("mode: enforce\nmx: a.b\nmax_age: 1\n", "no version"),
            (
                "version: STSv1\nmode: strict\nmx: a.b\nmax_age: 1\n",
                "mode",
            ),
            ("version: STSv1\nmx: a.b\nmax_age: 1\n", "no mode"),
            ("version: STSv1\nmode: enforce\nmx: a.b\n", "no max_age"),
            (
                "version: STSv1\nmode: enforce\nmx: a.b\nmax_age: -1\n",
                "max_age",
            ),
            (
                "version: STSv1\nmode: enforce\nmx: a.b\nmax_age: 12345678901\n",
                "max_age",
            ),
            ("version: STSv1\nmode: enforce\nmax_age: 1\n", "no mx"),
            (
                "version: STSv1\nmode: enforce\nmx: mx*.a.b\nmax_age: 1\n",
                "mx pattern",
            ),
            (
                "version: STSv1\nmode: enforce\nmx: a.*.b\nmax_age: 1\n",
                "mx pattern",
            ),
            (
                "version: STSv1\nmode: enforce\nmx: *\nmax_age: 1\n",
                "mx pattern",
            ),
            ("version: STSv1\nmode enforce\nmx: a.b\nmax_age: 1\n", "key"),
            ("<html>\n<body>hello</body>\n", "key"),
        ];
        for (body, why) in cases {
            let e = Policy::parse("a", body).expect_err(body);
            assert!(e.contains(why), "{body:?}: {e} (expected {why})");
        }
    }

    #[test]
    fn sts_policy_max_age_is_clamped_to_a_year() {
        let p = Policy::parse(
            "a",
            "version: STSv1\nmode: enforce\nmx: a.b\nmax_age: 9999999999\n",
        )
        .expect("parses");
        assert_eq!(p.max_age, MAX_AGE_LIMIT);
    }

    #[test]
    fn sts_policy_first_of_repeated_keys_counts() {
        let p = Policy::parse(
            "a",
            "version: STSv1\nmode: testing\nmode: enforce\nmx: a.b\nmax_age: 5\nmax_age: 7\n",
        )
        .expect("parses");
        assert_eq!(p.mode, Mode::Testing);
        assert_eq!(p.max_age, 5);
    }

    #[test]
    fn sts_mx_patterns_match() {
        let p = Policy::parse("a", GOOD).expect("parses");
        // Exact, ignoring case and a trailing dot.
        assert!(p.matches("mail.example.com"));
        assert!(p.matches("MAIL.Example.Com."));
        assert!(!p.matches("mail.example.org"));
        assert!(!p.matches("xmail.example.com"));
        assert!(!p.matches("example.com"));
        // The wildcard stands for exactly one label.
        assert!(p.matches("mx1.backup.example.com"));
        assert!(p.matches("MX1.backup.example.com."));
        assert!(!p.matches("backup.example.com"));
        assert!(!p.matches("a.mx1.backup.example.com"));
        assert!(!p.matches(".backup.example.com"));
        assert!(!p.matches(""));
    }
}
