//! The fax user directory: who may send faxes, in which groups, with
//! which station identity — and [`FaxPolicy`], which puts the directory,
//! the dial plan and the outbound rules together to answer the two
//! questions asked of every fax recipient: where does it go
//! ([`FaxPolicy::target`]) and may this sender fax there
//! ([`FaxPolicy::may_fax`]).
//!
//! A user entry is an address (`alice@example.com`) or every address of
//! a domain (`*@example.com`); the exact address wins over the domain.
//! Users belong to groups; outbound rules name users and groups. The
//! station identity (TSI), page header and cover page may be set per user
//! or per group (the user's own, else its first group's that has one,
//! else `[fax]`'s).
//!
//! Who is asking: the envelope sender (MAIL FROM). When it is not in the
//! directory and the session is authenticated, the login name is tried
//! too (a scanner that logs in as `scanner@example.com`). The null sender
//! never faxes: reports must not cost calls.

use super::address::{BadNumber, FaxAddress, Form};
use super::dialplan::{self, Action, DialPlan, Rule, E164};
use super::pattern::{address_matches, number_key, valid_address_pattern};
use serde::Deserialize;
use std::fmt;

/// `[[fax.user]]` (or `[[user]]` in a users file).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaxUser {
    /// `alice@example.com` or `*@example.com`.
    pub address: String,
    /// The sender's name on the cover page.
    pub name: Option<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    /// Station identity (TSI) for this user's faxes, at most 20 characters.
    pub tsi: Option<String>,
    /// The header line printed on each page.
    pub header: Option<String>,
    /// A cover page, or not, whatever `[fax] cover_page` says.
    pub cover_page: Option<bool>,
    /// Fax numbers (DIDs) whose received faxes go to this user (the
    /// directory rule of `[fax.incoming]`), as the line presents them.
    #[serde(default)]
    pub numbers: Vec<String>,
    /// The form this user gets received faxes in (`pdf`, `tiff`); unset:
    /// `[fax.incoming] format`.
    pub incoming_format: Option<crate::inbound::ImageFormat>,
}

/// `[[fax.group]]` (or `[[group]]` in a users file).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaxGroup {
    pub name: String,
    /// What the group is for (documentation only).
    pub description: Option<String>,
    pub tsi: Option<String>,
    pub header: Option<String>,
    pub cover_page: Option<bool>,
    /// Fax numbers (DIDs) whose received faxes go to every member.
    #[serde(default)]
    pub numbers: Vec<String>,
}

/// The users and groups: a users file, or inline in `[fax]`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Directory {
    #[serde(default, rename = "user")]
    pub users: Vec<FaxUser>,
    #[serde(default, rename = "group")]
    pub groups: Vec<FaxGroup>,
}

/// What is wrong in a directory: the message, and a piece of its text to
/// find the line by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryError {
    pub needle: String,
    pub message: String,
}

/// A station identity: at most 20 printable ASCII characters (T.30).
pub fn valid_tsi(tsi: &str) -> bool {
    tsi.len() <= 20 && tsi.bytes().all(|b| (0x20..0x7f).contains(&b))
}

impl Directory {
    /// The addresses that receive faxes sent to `number` (a DID), each
    /// with its `incoming_format`: users who list it in `numbers`, and the
    /// members of groups that do, in directory order, each once. Wildcard
    /// users (`*@domain`) have no mailbox and are left out.
    pub fn users_for_number(
        &self,
        number: &str,
    ) -> Vec<(String, Option<crate::inbound::ImageFormat>)> {
        let key = number_key(number);
        if key.is_empty() {
            return Vec::new();
        }
        let has = |numbers: &[String]| numbers.iter().any(|n| number_key(n) == key);
        let groups: Vec<&str> = self
            .groups
            .iter()
            .filter(|g| has(&g.numbers))
            .map(|g| g.name.as_str())
            .collect();
        let mut out: Vec<(String, Option<crate::inbound::ImageFormat>)> = Vec::new();
        for user in &self.users {
            let member = user
                .groups
                .iter()
                .any(|g| groups.iter().any(|n| n.eq_ignore_ascii_case(g)));
            if (has(&user.numbers) || member)
                && !user.address.starts_with('*')
                && !out
                    .iter()
                    .any(|(a, _)| a.eq_ignore_ascii_case(&user.address))
            {
                out.push((user.address.clone(), user.incoming_format));
            }
        }
        out
    }

    /// Check entries, groups and references.
    pub fn validate(&self) -> Result<(), DirectoryError> {
        let fail = |needle: &str, message: String| {
            Err(DirectoryError {
                needle: format!("\"{needle}\""),
                message,
            })
        };
        let mut names = std::collections::HashSet::new();
        for g in &self.groups {
            if g.name.trim().is_empty() {
                return fail(&g.name, "a fax group needs a name".into());
            }
            if !names.insert(g.name.to_ascii_lowercase()) {
                return fail(&g.name, format!("fax group {} is defined twice", g.name));
            }
            if let Some(t) = g.tsi.as_ref().filter(|t| !valid_tsi(t)) {
                return fail(
                    t,
                    format!(
                        "fax group {}: tsi {t:?} is not at most 20 printable ASCII characters",
                        g.name
                    ),
                );
            }
        }
        let mut seen = std::collections::HashSet::new();
        for u in &self.users {
            if !valid_address_pattern(&u.address) {
                return fail(
                    &u.address,
                    format!("fax user {:?}: expected an address or *@domain", u.address),
                );
            }
            if !seen.insert(u.address.to_ascii_lowercase()) {
                return fail(
                    &u.address,
                    format!("fax user {} is listed twice", u.address),
                );
            }
            if let Some(g) = u
                .groups
                .iter()
                .find(|g| !names.contains(&g.to_ascii_lowercase()))
            {
                return fail(
                    g,
                    format!(
                        "fax user {}: group {g} is not defined ([[fax.group]] name = \"{g}\")",
                        u.address
                    ),
                );
            }
            if let Some(t) = u.tsi.as_ref().filter(|t| !valid_tsi(t)) {
                return fail(
                    t,
                    format!(
                        "fax user {}: tsi {t:?} is not at most 20 printable ASCII characters",
                        u.address
                    ),
                );
            }
        }
        Ok(())
    }

    /// Whether a group of that name exists.
    pub fn has_group(&self, name: &str) -> bool {
        self.groups
            .iter()
            .any(|g| g.name.eq_ignore_ascii_case(name))
    }

    /// The entry for `sender`: its own, else its domain's `*@domain`.
    pub fn lookup(&self, sender: &str) -> Option<FaxSender> {
        let user = self
            .users
            .iter()
            .find(|u| !u.address.starts_with("*@") && address_matches(&u.address, sender))
            .or_else(|| {
                self.users
                    .iter()
                    .find(|u| address_matches(&u.address, sender))
            })?;
        let groups: Vec<&FaxGroup> = user
            .groups
            .iter()
            .filter_map(|n| self.groups.iter().find(|g| g.name.eq_ignore_ascii_case(n)))
            .collect();
        let from_groups =
            |f: fn(&FaxGroup) -> Option<&String>| groups.iter().find_map(|g| f(g)).cloned();
        Some(FaxSender {
            address: sender.to_ascii_lowercase(),
            entry: user.address.clone(),
            name: user.name.clone(),
            groups: user.groups.clone(),
            tsi: user.tsi.clone().or_else(|| from_groups(|g| g.tsi.as_ref())),
            header: user
                .header
                .clone()
                .or_else(|| from_groups(|g| g.header.as_ref())),
            cover_page: user
                .cover_page
                .or_else(|| groups.iter().find_map(|g| g.cover_page)),
        })
    }
}

/// A sender found in the directory, with its settings resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaxSender {
    /// The address it was found by (the envelope sender, or the login),
    /// lower case.
    pub address: String,
    /// The directory entry that matched (`alice@example.com`,
    /// `*@example.com`).
    pub entry: String,
    /// For the cover page.
    pub name: Option<String>,
    pub groups: Vec<String>,
    /// The user's, else its first group's; `None`: `[fax] tsi`.
    pub tsi: Option<String>,
    /// The user's, else its first group's; `None`: `[fax] header`.
    pub header: Option<String>,
    /// The user's, else its first group's; `None`: `[fax] cover_page`.
    pub cover_page: Option<bool>,
}

/// Where a fax recipient goes: what the router returns for it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FaxTarget {
    /// The number in E.164.
    pub number: E164,
    /// What the line dials (prefixes included, extension not).
    pub dial: String,
    /// The T.33 sub-address, sent in the SUB frame.
    pub subaddress: Option<String>,
    /// DTMF after the answer (digits, `*`, `#`, `,` pauses).
    pub extension: Option<String>,
    /// The recipient's name, when the address gave one.
    pub name: Option<String>,
    /// How the address was written.
    pub form: Form,
}

impl FaxTarget {
    /// The scheduler's next hop for it (one call per number).
    pub fn hop(&self) -> faxmta_transport::FaxHop {
        faxmta_transport::FaxHop {
            number: self.number.to_string(),
            dial: self.dial.clone(),
            subaddress: self.subaddress.clone(),
            extension: self.extension.clone(),
            tsi: None,
            header: None,
            cover_page: None,
        }
    }

    /// [`FaxTarget::hop`] with the settings of the `sender` who faxes.
    pub fn hop_for(&self, sender: &FaxSender) -> faxmta_transport::FaxHop {
        faxmta_transport::FaxHop {
            tsi: sender.tsi.clone(),
            header: sender.header.clone(),
            cover_page: sender.cover_page,
            ..self.hop()
        }
    }
}

/// Why a sender may not fax a number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// MAIL FROM:<>.
    NullSender,
    /// Not in the directory.
    Unknown { sender: String },
    /// A deny rule matched.
    Blocked {
        sender: String,
        number: E164,
        rule: String,
    },
}

impl fmt::Display for Refusal {
    /// The text of the `550 5.7.1` reply.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NullSender => f.write_str(
                "<> may not send faxes (the null sender is for reports, which are never faxed)",
            ),
            Refusal::Unknown { sender } => write!(
                f,
                "<{sender}> may not send faxes (not in the fax user directory)"
            ),
            Refusal::Blocked {
                sender,
                number,
                rule,
            } => write!(
                f,
                "Fax to {number} is not allowed for {sender} (rule: {rule})"
            ),
        }
    }
}

/// The dial plan, the outbound rules and the directory together.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FaxPolicy {
    pub plan: DialPlan,
    pub rules: Vec<Rule>,
    pub directory: Directory,
}

impl FaxPolicy {
    /// The number of `address` in E.164 and how it is dialled.
    pub fn target(&self, address: &FaxAddress) -> Result<FaxTarget, BadNumber> {
        let number = self.plan.normalise(&address.number)?;
        Ok(FaxTarget {
            dial: self.dial(&number),
            number,
            subaddress: address.subaddress.clone(),
            extension: address.extension.clone(),
            name: address.name.clone(),
            form: address.form,
        })
    }

    /// What the line dials for `number`.
    pub fn dial(&self, number: &E164) -> String {
        dialplan::dial_string(&self.rules, &self.plan, number)
    }

    /// May `sender` (the envelope sender; `login`: the SMTP AUTH user,
    /// if any) fax `number`? The sender's directory entry, or why not.
    pub fn may_fax(
        &self,
        sender: &str,
        login: Option<&str>,
        number: &E164,
    ) -> Result<FaxSender, Refusal> {
        if sender.is_empty() {
            return Err(Refusal::NullSender);
        }
        let found = self
            .directory
            .lookup(sender)
            .or_else(|| login.and_then(|l| self.directory.lookup(l)))
            .ok_or_else(|| Refusal::Unknown {
                sender: sender.to_string(),
            })?;
        match self.rule_for(&found, number) {
            Some(rule) if rule.action == Action::Deny => Err(Refusal::Blocked {
                sender: sender.to_string(),
                number: number.clone(),
                rule: rule.name.clone(),
            }),
            _ => Ok(found),
        }
    }

    /// The rule that decides for `sender` and `number` (`None`: no rule
    /// matches; allowed).
    pub fn rule_for(&self, sender: &FaxSender, number: &E164) -> Option<&Rule> {
        dialplan::decide(
            &self.rules,
            &self.plan,
            number,
            &sender.address,
            &sender.groups,
        )
    }
}

#[cfg(test)]
mod tests;
