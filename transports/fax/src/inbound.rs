//! Inbound fax routing: who gets a fax that came in on a line.
//!
//! The table follows the fax servers in the research notes (HylaFAX's
//! FaxDispatch, NET SatisFAXtion's DID routing, ixi-UMS's directory):
//!
//! 1. **Direct rules**, in order: a rule matches when its `dnis` pattern
//!    matches the number dialled (DID/DNIS) and its `ani` pattern the
//!    calling number; a pattern left out matches anything. Patterns use
//!    `*` (any run of characters) and `?` (one). A matching rule adds its
//!    destinations and ends the routing, unless it says `continue`.
//! 2. **The directory rule**: the users the fax directory assigns to the
//!    dialled number (`numbers` on a user or group), each in their own
//!    format. Applies when no direct rule ended the routing.
//! 3. **The default rule**: when nothing above gave a destination.
//!
//! Numbers are compared after dropping spaces, dashes, dots and brackets.
//! This module only decides; the daemon delivers.

use crate::directory::number_key;
use serde::Deserialize;
use std::path::PathBuf;

/// The form a received fax is handed on in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ImageFormat {
    /// One PDF page per fax page.
    #[default]
    Pdf,
    /// The TIFF file as received.
    Tiff,
}

impl ImageFormat {
    /// The file extension (`pdf`, `tif`).
    pub fn extension(self) -> &'static str {
        match self {
            ImageFormat::Pdf => "pdf",
            ImageFormat::Tiff => "tif",
        }
    }

    /// The MIME type.
    pub fn media_type(self) -> &'static str {
        match self {
            ImageFormat::Pdf => "application/pdf",
            ImageFormat::Tiff => "image/tiff",
        }
    }
}

/// A direct rule (`[[fax.incoming.rule]]`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DirectRule {
    /// For logs.
    pub name: String,
    /// Pattern for the number dialled; `None`: any.
    pub dnis: Option<String>,
    /// Pattern for the calling number; `None`: any.
    pub ani: Option<String>,
    /// Mail addresses.
    pub to: Vec<String>,
    /// A directory the image is written into.
    pub folder: Option<PathBuf>,
    /// `None`: the table's default format.
    pub format: Option<ImageFormat>,
    /// Go on with the next rules after a match.
    pub continue_: bool,
}

/// The default rule: where unrouted faxes go.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DefaultRule {
    pub to: Vec<String>,
    pub folder: Option<PathBuf>,
}

/// The whole table.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RoutingTable {
    pub rules: Vec<DirectRule>,
    /// Whether the directory rule applies.
    pub directory: bool,
    pub default: DefaultRule,
    /// The format where neither rule nor user names one.
    pub format: ImageFormat,
}

/// Where one copy goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Destination {
    Mail {
        address: String,
        format: ImageFormat,
    },
    Folder {
        path: PathBuf,
        format: ImageFormat,
    },
}

/// The routing decision: destinations and, for logs, which rules matched
/// (rule names, `directory`, `default`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Routed {
    pub destinations: Vec<Destination>,
    pub matched: Vec<String>,
}

/// What the directory says about a number: the users and each one's
/// format (`None`: the table's).
pub type DirectoryLookup<'a> = &'a dyn Fn(&str) -> Vec<(String, Option<ImageFormat>)>;

impl RoutingTable {
    /// Route a fax dialled to `dnis` from `ani` (either may be unknown).
    pub fn route(
        &self,
        dnis: Option<&str>,
        ani: Option<&str>,
        users: DirectoryLookup<'_>,
    ) -> Routed {
        let dnis = dnis.map(number_key).unwrap_or_default();
        let ani = ani.map(number_key).unwrap_or_default();
        let mut out = Routed::default();
        let mut ended = false;
        for rule in &self.rules {
            let matches = |pattern: &Option<String>, number: &str| {
                pattern
                    .as_deref()
                    .is_none_or(|p| wildcard(&number_key(p), number))
            };
            if !matches(&rule.dnis, &dnis) || !matches(&rule.ani, &ani) {
                continue;
            }
            let format = rule.format.unwrap_or(self.format);
            out.add_all(&rule.to, rule.folder.as_ref(), format);
            out.matched.push(rule.name.clone());
            if !rule.continue_ {
                ended = true;
                break;
            }
        }
        if !ended && self.directory && !dnis.is_empty() {
            let found = users(&dnis);
            if !found.is_empty() {
                out.matched.push("directory".into());
            }
            for (address, format) in found {
                out.add(Destination::Mail {
                    address,
                    format: format.unwrap_or(self.format),
                });
            }
        }
        if out.destinations.is_empty() {
            out.add_all(&self.default.to, self.default.folder.as_ref(), self.format);
            out.matched.push("default".into());
        }
        out
    }
}

impl Routed {
    fn add(&mut self, d: Destination) {
        let same = |a: &Destination| match (a, &d) {
            (
                Destination::Mail {
                    address: x,
                    format: f,
                },
                Destination::Mail {
                    address: y,
                    format: g,
                },
            ) => f == g && x.eq_ignore_ascii_case(y),
            (a, d) => a == d,
        };
        if !self.destinations.iter().any(same) {
            self.destinations.push(d);
        }
    }

    fn add_all(&mut self, to: &[String], folder: Option<&PathBuf>, format: ImageFormat) {
        for address in to {
            self.add(Destination::Mail {
                address: address.clone(),
                format,
            });
        }
        if let Some(path) = folder {
            self.add(Destination::Folder {
                path: path.clone(),
                format,
            });
        }
    }
}

/// Whether a pattern (`*` any run, `?` one character) is well formed: not
/// empty, digits, `+`, `#`, `*` and `?` only.
pub fn valid_pattern(pattern: &str) -> bool {
    let key = number_key(pattern);
    !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'+' | b'#' | b'*' | b'?'))
}

/// `*` matches any run (also empty), `?` one character.
pub fn wildcard(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail(address: &str, format: ImageFormat) -> Destination {
        Destination::Mail {
            address: address.into(),
            format,
        }
    }

    fn table() -> RoutingTable {
        RoutingTable {
            rules: vec![
                DirectRule {
                    name: "sales".into(),
                    dnis: Some("200".into()),
                    to: vec!["sales@example.com".into()],
                    format: Some(ImageFormat::Tiff),
                    ..Default::default()
                },
                DirectRule {
                    name: "archive-nanp".into(),
                    ani: Some("+1 555 *".into()),
                    folder: Some("/srv/fax".into()),
                    to: vec!["copy@example.com".into()],
                    continue_: true,
                    ..Default::default()
                },
                DirectRule {
                    name: "support".into(),
                    dnis: Some("3??".into()),
                    to: vec!["support@example.com".into()],
                    ..Default::default()
                },
            ],
            directory: true,
            default: DefaultRule {
                to: vec!["postmaster@example.com".into()],
                folder: None,
            },
            format: ImageFormat::Pdf,
        }
    }

    fn users(number: &str) -> Vec<(String, Option<ImageFormat>)> {
        match number {
            "100" => vec![
                ("alice@example.com".into(), None),
                ("bob@example.com".into(), Some(ImageFormat::Tiff)),
            ],
            "300" => vec![("carol@example.com".into(), None)],
            _ => vec![],
        }
    }

    #[test]
    fn wildcards() {
        assert!(wildcard("*", ""));
        assert!(wildcard("+1555*", "+15550100"));
        assert!(!wildcard("+1555*", "+4930123"));
        assert!(wildcard("1?0", "100"));
        assert!(!wildcard("1?0", "1000"));
        assert!(wildcard("*0*0", "+15550100"));
        assert!(!wildcard("200", "2000"));
        assert!(valid_pattern("+1 555 *"));
        assert!(!valid_pattern("abc"));
        assert!(!valid_pattern(" "));
    }

    #[test]
    fn directory_rule_gives_each_user_their_format() {
        let r = table().route(Some("100"), Some("+4930123"), &users);
        assert_eq!(
            r.destinations,
            [
                mail("alice@example.com", ImageFormat::Pdf),
                mail("bob@example.com", ImageFormat::Tiff)
            ]
        );
        assert_eq!(r.matched, ["directory"]);
    }

    #[test]
    fn a_rule_without_continue_ends_the_routing() {
        // 200 from a NANP caller: "sales" ends it before "archive-nanp".
        let r = table().route(Some("200"), Some("+15551234"), &users);
        assert_eq!(
            r.destinations,
            [mail("sales@example.com", ImageFormat::Tiff)]
        );
        assert_eq!(r.matched, ["sales"]);
    }

    #[test]
    fn continue_adds_a_copy_and_goes_on() {
        let r = table().route(Some("1-0-0"), Some("+1 (555) 1234"), &users);
        assert_eq!(
            r.destinations,
            [
                mail("copy@example.com", ImageFormat::Pdf),
                Destination::Folder {
                    path: "/srv/fax".into(),
                    format: ImageFormat::Pdf
                },
                mail("alice@example.com", ImageFormat::Pdf),
                mail("bob@example.com", ImageFormat::Tiff),
            ]
        );
        assert_eq!(r.matched, ["archive-nanp", "directory"]);
        // "support" (3??) ends the routing before the directory's carol.
        let r = table().route(Some("300"), Some("+15551234"), &users);
        assert_eq!(r.matched, ["archive-nanp", "support"]);
        assert!(!r
            .destinations
            .contains(&mail("carol@example.com", ImageFormat::Pdf)));
    }

    #[test]
    fn unrouted_faxes_take_the_default_rule() {
        let r = table().route(Some("999"), None, &users);
        assert_eq!(
            r.destinations,
            [mail("postmaster@example.com", ImageFormat::Pdf)]
        );
        assert_eq!(r.matched, ["default"]);
        let r = table().route(None, None, &users);
        assert_eq!(r.matched, ["default"]);
        // Without the directory rule, a directory number is unrouted too.
        let t = RoutingTable {
            directory: false,
            ..table()
        };
        assert_eq!(t.route(Some("100"), None, &users).matched, ["default"]);
    }

    #[test]
    fn the_same_copy_is_made_once() {
        let t = RoutingTable {
            rules: vec![DirectRule {
                name: "dup".into(),
                to: vec!["Alice@example.com".into()],
                continue_: true,
                ..Default::default()
            }],
            ..table()
        };
        let r = t.route(Some("100"), None, &users);
        assert_eq!(
            r.destinations,
            [
                mail("Alice@example.com", ImageFormat::Pdf),
                mail("bob@example.com", ImageFormat::Tiff)
            ]
        );
    }
}
