//! Validation of the addressing half of `[fax]`: `[fax.dialplan]`,
//! `[[fax.rule]]` and the fax user directory (inline `[[fax.user]]` /
//! `[[fax.group]]`, or a users file named by `[fax] users`), each error
//! at its line — in the users file's own lines for what is wrong there.

use super::super::error::{ConfigError, Source};
use super::super::Config;
use faxmta_fax::dialplan::{Action, Pattern};
use faxmta_fax::directory::Directory;
use faxmta_fax::pattern;

/// Whether `s` is digits only (empty allowed when `empty`).
fn digits(s: &str, empty: bool) -> bool {
    (empty || !s.is_empty()) && s.bytes().all(|b| b.is_ascii_digit())
}

/// What may be dialled in front of a number: digits, `*`, `#`, and `,`
/// (a pause, e.g. waiting for the outside line's tone).
fn dial_prefix(s: &str) -> bool {
    s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit() || b"*#,".contains(&b))
}

/// Check `[fax.dialplan]` and `[[fax.rule]]`, read the directory, and
/// keep it in the configuration.
pub(in crate::config) fn load(config: &mut Config, src: &Source<'_>) -> Result<(), ConfigError> {
    check_dialplan(config, src)?;
    let directory = read_directory(config, src)?;
    check_rules(config, &directory, src)?;
    config.fax.directory = directory;
    Ok(())
}

fn check_dialplan(config: &Config, src: &Source<'_>) -> Result<(), ConfigError> {
    let p = &config.fax.dialplan;
    let fail = |key: &str, message: String| Err(src.fail(&[key, "[fax.dialplan]"], message));
    if !p.country_code.is_empty()
        && (!digits(&p.country_code, false)
            || p.country_code.len() > 3
            || p.country_code.starts_with('0'))
    {
        return fail(
            "country_code",
            format!(
                "fax dialplan: country_code {:?} must be 1 to 3 digits, not starting with 0 \
                 (\"1\", \"44\", \"49\")",
                p.country_code
            ),
        );
    }
    if !digits(&p.national_prefix, true) || p.national_prefix.len() > 4 {
        return fail(
            "national_prefix",
            format!(
                "fax dialplan: national_prefix {:?} must be up to 4 digits (\"0\"; NANP \"1\"; \
                 none: \"\")",
                p.national_prefix
            ),
        );
    }
    if !digits(&p.international_prefix, false) || p.international_prefix.len() > 4 {
        return fail(
            "international_prefix",
            format!(
                "fax dialplan: international_prefix {:?} must be 1 to 4 digits (\"00\"; NANP \
                 \"011\")",
                p.international_prefix
            ),
        );
    }
    if p.international_prefix == p.national_prefix {
        return fail(
            "international_prefix",
            "fax dialplan: international_prefix and national_prefix must differ".into(),
        );
    }
    if !digits(&p.area_code, true) || p.area_code.len() > 6 {
        return fail(
            "area_code",
            format!(
                "fax dialplan: area_code {:?} must be up to 6 digits",
                p.area_code
            ),
        );
    }
    if let Some(n) = p.national_digits.filter(|n| !(4..=14).contains(n)) {
        return fail(
            "national_digits",
            format!("fax dialplan: national_digits = {n}: expected 4 to 14 (NANP: 10)"),
        );
    }
    if p.country_code.is_empty() {
        for (key, set) in [
            ("area_code", !p.area_code.is_empty()),
            ("national_digits", p.national_digits.is_some()),
        ] {
            if set {
                return fail(key, format!("fax dialplan: {key} needs country_code"));
            }
        }
    }
    if !dial_prefix(&p.outside_line) {
        return fail(
            "outside_line",
            format!(
                "fax dialplan: outside_line {:?} may hold digits, *, # and , (a pause) only",
                p.outside_line
            ),
        );
    }
    Ok(())
}

/// The directory: from the users file, or inline.
fn read_directory(config: &Config, src: &Source<'_>) -> Result<Directory, ConfigError> {
    let fax = &config.fax;
    let Some(path) = &fax.users else {
        let directory = Directory {
            users: fax.inline_users.clone(),
            groups: fax.inline_groups.clone(),
        };
        return match directory.validate() {
            Ok(()) => Ok(directory),
            Err(e) => Err(src.fail(&[e.needle.as_str(), "[[fax."], e.message)),
        };
    };
    let file = path.display().to_string();
    let at = [format!("\"{file}\""), "users".to_string()];
    let at: Vec<&str> = at.iter().map(String::as_str).collect();
    if !fax.inline_users.is_empty() || !fax.inline_groups.is_empty() {
        return Err(src.fail(
            &at,
            format!(
                "[fax] users = {file:?} holds the fax users and groups: [[fax.user]] and \
                 [[fax.group]] may not be given as well"
            ),
        ));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| src.fail(&at, format!("cannot read the fax users file {file}: {e}")))?;
    let directory: Directory = toml::from_str(&text).map_err(|e| {
        let message = format!("fax users file: {}", e.message().trim());
        ConfigError::at(path, &text, e.span(), message)
    })?;
    directory.validate().map_err(|e| {
        let own = Source { path, text: &text };
        own.fail(&[e.needle.as_str()], e.message)
    })?;
    Ok(directory)
}

fn check_rules(
    config: &Config,
    directory: &Directory,
    src: &Source<'_>,
) -> Result<(), ConfigError> {
    let mut names = std::collections::HashSet::new();
    let national = !config.fax.dialplan.country_code.is_empty();
    for rule in &config.fax.rules {
        let quoted = format!("\"{}\"", rule.name);
        let fail = |message: String| Err(src.fail(&[quoted.as_str(), "[[fax.rule]]"], message));
        if rule.name.trim().is_empty() {
            return fail("a [[fax.rule]] needs a name (it is quoted in refusals)".into());
        }
        if !names.insert(rule.name.to_ascii_lowercase()) {
            return fail(format!("fax rule {} is defined twice", rule.name));
        }
        if rule.patterns.is_empty() {
            return fail(format!(
                "fax rule {}: match = [] matches no number (\"*\" matches every one)",
                rule.name
            ));
        }
        if !national
            && rule
                .patterns
                .iter()
                .any(|p| matches!(p, Pattern::International | Pattern::National))
        {
            return fail(format!(
                "fax rule {}: \"international\" and \"national\" need [fax.dialplan] country_code",
                rule.name
            ));
        }
        if let Some(u) = rule
            .users
            .iter()
            .find(|u| !pattern::valid_address_pattern(u))
        {
            return fail(format!(
                "fax rule {}: user {u:?} is neither an address nor *@domain",
                rule.name
            ));
        }
        if let Some(g) = rule.groups.iter().find(|g| !directory.has_group(g)) {
            return fail(format!(
                "fax rule {}: group {g} is not defined in the fax user directory",
                rule.name
            ));
        }
        if let Some(prefix) = &rule.prefix {
            if rule.action != Action::Allow || !rule.for_everyone() {
                return fail(format!(
                    "fax rule {}: prefix is for allow rules without users and groups (the dial \
                     string must not depend on the sender)",
                    rule.name
                ));
            }
            if !dial_prefix(prefix) {
                return fail(format!(
                    "fax rule {}: prefix {prefix:?} may hold digits, *, # and , only",
                    rule.name
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
