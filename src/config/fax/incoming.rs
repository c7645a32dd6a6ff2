//! `[fax.incoming]`: what happens to faxes that come in on a line — the
//! incoming routing table (`[[fax.incoming.rule]]`, the directory rule,
//! the default rule), the mail they become, the "Incoming Failed" notice,
//! and how long received images are kept.

// A mail-only build (without the feature `fax`) reads these settings
// but has nothing that uses them.
#![cfg_attr(not(feature = "fax"), allow(dead_code))]

use super::super::error::{ConfigError, Source};
use super::super::Config;
use faxmta_fax::inbound::{self, DefaultRule, DirectRule, ImageFormat, RoutingTable};
use serde::Deserialize;
use std::path::PathBuf;

/// The shortest retention, in days.
pub const MIN_RETENTION_DAYS: u32 = 7;

/// `[fax.incoming]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IncomingConfig {
    /// The sender of the mails (`fax-daemon@<hostname>` when unset).
    pub from: Option<String>,
    /// The form of the fax in the mail or folder where neither the rule
    /// nor the user names one.
    pub format: ImageFormat,
    /// The directory rule: faxes to a number go to the fax users (and
    /// group members) that list it in `numbers`.
    pub directory: bool,
    /// The default rule: where faxes no rule routes go.
    pub default_to: Vec<String>,
    /// The default rule may also (or instead) write them into a folder.
    pub default_folder: Option<PathBuf>,
    /// Who gets the "Incoming Failed" notice when the number has no users
    /// (empty: `default_to`).
    pub failed_to: Vec<String>,
    /// Where received images are kept (moved there from the engine's
    /// directory); unset: where the engine writes them.
    pub store: Option<PathBuf>,
    /// Days received images (and the archive of sent faxes) are kept; at
    /// least 7.
    pub retention_days: u32,
    /// Delete a received image as soon as every mail carrying it has left
    /// the queue; after 7 days at the latest.
    pub zero_retention: bool,
    /// `[[fax.incoming.rule]]`: direct rules, in order.
    #[serde(rename = "rule")]
    pub rules: Vec<IncomingRule>,
}

impl Default for IncomingConfig {
    fn default() -> Self {
        IncomingConfig {
            from: None,
            format: ImageFormat::Pdf,
            directory: true,
            default_to: Vec::new(),
            default_folder: None,
            failed_to: Vec::new(),
            store: None,
            retention_days: 90,
            zero_retention: false,
            rules: Vec::new(),
        }
    }
}

/// `[[fax.incoming.rule]]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncomingRule {
    /// For logs (default: `rule N`).
    pub name: Option<String>,
    /// The number dialled (DID/DNIS), a pattern with `*` and `?`.
    pub did: Option<String>,
    /// Same as `did`.
    pub dnis: Option<String>,
    /// The calling number (ANI / caller id), a pattern.
    pub ani: Option<String>,
    /// Mail addresses (users, any mailbox, an SMTP printer).
    #[serde(default)]
    pub to: Vec<String>,
    /// A directory the image is written into.
    pub folder: Option<PathBuf>,
    pub format: Option<ImageFormat>,
    /// Go on with the next rules after this one matched.
    #[serde(default, rename = "continue")]
    pub continue_: bool,
}

impl IncomingConfig {
    /// The routing table these settings describe.
    pub fn table(&self) -> RoutingTable {
        RoutingTable {
            rules: self
                .rules
                .iter()
                .enumerate()
                .map(|(i, r)| DirectRule {
                    name: r.name.clone().unwrap_or_else(|| format!("rule {}", i + 1)),
                    dnis: r.did.clone().or_else(|| r.dnis.clone()),
                    ani: r.ani.clone(),
                    to: r.to.clone(),
                    folder: r.folder.clone(),
                    format: r.format,
                    continue_: r.continue_,
                })
                .collect(),
            directory: self.directory,
            default: DefaultRule {
                to: self.default_to.clone(),
                folder: self.default_folder.clone(),
            },
            format: self.format,
        }
    }

    /// The sender of received-fax mails and notices.
    pub fn sender(&self, hostname: &str) -> String {
        self.from
            .clone()
            .unwrap_or_else(|| format!("fax-daemon@{hostname}"))
    }
}

fn address_ok(a: &str) -> bool {
    match a.rsplit_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !a.chars().any(|c| c.is_whitespace() || c == '<' || c == '>')
        }
        None => false,
    }
}

/// Check `[fax.incoming]`, each error at its line.
pub(in crate::config) fn check(config: &Config, src: &Source<'_>) -> Result<(), ConfigError> {
    let inc = &config.fax.incoming;
    let fail = |key: &str, message: String| Err(src.fail(&[key, "[fax.incoming]"], message));
    if inc.retention_days < MIN_RETENTION_DAYS {
        return fail(
            "retention_days",
            format!(
                "fax incoming: retention_days = {}: at least {MIN_RETENTION_DAYS} days",
                inc.retention_days
            ),
        );
    }
    if let Some(from) = inc.from.as_deref().filter(|f| !address_ok(f)) {
        return fail(
            "from",
            format!("fax incoming: from {from:?} is not a mail address"),
        );
    }
    for (key, list) in [
        ("default_to", &inc.default_to),
        ("failed_to", &inc.failed_to),
    ] {
        if let Some(bad) = list.iter().find(|a| !address_ok(a)) {
            return fail(
                key,
                format!("fax incoming: {key}: {bad:?} is not a mail address"),
            );
        }
    }
    for (i, rule) in inc.rules.iter().enumerate() {
        let n = i + 1;
        let fail = |key: &str, message: String| {
            let needle = rule
                .name
                .as_deref()
                .or(rule.did.as_deref())
                .or(rule.dnis.as_deref())
                .or(rule.ani.as_deref())
                .unwrap_or("[[fax.incoming.rule]]");
            Err(src.fail(&[needle, key, "[[fax.incoming.rule]]"], message))
        };
        if rule.did.is_some() && rule.dnis.is_some() {
            return fail(
                "dnis",
                format!("fax incoming rule {n}: did and dnis are the same; give one"),
            );
        }
        for (key, pattern) in [("did", &rule.did), ("dnis", &rule.dnis), ("ani", &rule.ani)] {
            if let Some(p) = pattern.as_deref().filter(|p| !inbound::valid_pattern(p)) {
                return fail(
                    key,
                    format!(
                        "fax incoming rule {n}: {key} {p:?}: digits, +, #, and the wildcards * and ? only"
                    ),
                );
            }
        }
        if rule.to.is_empty() && rule.folder.is_none() {
            return fail(
                "to",
                format!("fax incoming rule {n}: needs `to` or `folder`"),
            );
        }
        if let Some(bad) = rule.to.iter().find(|a| !address_ok(a)) {
            return fail(
                "to",
                format!("fax incoming rule {n}: {bad:?} is not a mail address"),
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn parse(extra: &str) -> Result<Config, ConfigError> {
        Config::parse(
            Path::new("test.toml"),
            &format!("hostname = \"mx.example.test\"\n{extra}"),
        )
    }

    #[test]
    fn defaults_and_the_table() {
        let c = parse("").unwrap();
        let inc = &c.fax.incoming;
        assert_eq!(inc.retention_days, 90);
        assert!(!inc.zero_retention && inc.directory);
        assert_eq!(inc.sender("mx.example.test"), "fax-daemon@mx.example.test");
        let c = parse(
            "[fax.incoming]\nfrom = \"fax@example.test\"\nformat = \"tiff\"\n\
             default_to = [\"postmaster@example.test\"]\n\
             [[fax.incoming.rule]]\ndid = \"2??\"\nani = \"+1555*\"\nto = [\"a@example.test\"]\n\
             continue = true\n\
             [[fax.incoming.rule]]\nname = \"archive\"\ndnis = \"*\"\nfolder = \"/srv/fax\"\n\
             format = \"pdf\"\n",
        )
        .unwrap();
        let t = c.fax.incoming.table();
        assert_eq!(t.format, ImageFormat::Tiff);
        assert_eq!(t.rules.len(), 2);
        assert_eq!(t.rules[0].name, "rule 1");
        assert_eq!(t.rules[0].dnis.as_deref(), Some("2??"));
        assert!(t.rules[0].continue_);
        assert_eq!(t.rules[1].format, Some(ImageFormat::Pdf));
        assert_eq!(t.default.to, ["postmaster@example.test"]);
        assert_eq!(c.fax.incoming.sender("x"), "fax@example.test");
    }

    #[test]
    fn mistakes_are_named_at_their_line() {
        let e = parse("[fax.incoming]\nretention_days = 6\n").unwrap_err();
        assert!(e.message.contains("at least 7"), "{e}");
        assert!(e.place.contains(":3:"), "{}", e.place);
        let e = parse("[[fax.incoming.rule]]\ndid = \"100\"\n").unwrap_err();
        assert!(e.message.contains("needs `to` or `folder`"), "{e}");
        let e = parse("[[fax.incoming.rule]]\ndid = \"1x0\"\nto = [\"a@b.test\"]\n").unwrap_err();
        assert!(e.message.contains("wildcards"), "{e}");
        let e = parse("[[fax.incoming.rule]]\ndid = \"1\"\ndnis = \"1\"\nto = [\"a@b.test\"]\n")
            .unwrap_err();
        assert!(e.message.contains("give one"), "{e}");
        let e = parse("[[fax.incoming.rule]]\nani = \"1\"\nto = [\"nobody\"]\n").unwrap_err();
        assert!(e.message.contains("not a mail address"), "{e}");
        let e = parse("[fax.incoming]\ndefault_to = [\"x\"]\n").unwrap_err();
        assert!(e.message.contains("default_to"), "{e}");
        let e = parse("[fax.incoming]\nformat = \"png\"\n").unwrap_err();
        assert!(e.message.contains("png"), "{e}");
        // numbers on users parse.
        let c = parse(
            "[[fax.user]]\naddress = \"alice@example.test\"\nnumbers = [\"100\"]\n\
             incoming_format = \"tiff\"\n",
        )
        .unwrap();
        assert_eq!(
            c.fax.policy().directory.users_for_number("100"),
            [("alice@example.test".to_string(), Some(ImageFormat::Tiff))]
        );
    }
}
