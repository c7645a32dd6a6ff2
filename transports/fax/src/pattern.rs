//! Patterns as the directory, the dial plan and the inbound rules write
//! them: mail addresses (`alice@example.com`, or `*@example.com` for a
//! whole domain) and fax numbers compared as the line presents them. The
//! lowest layer of the fax crate's configuration modules: it uses none of
//! them.

/// Whether `pattern` (an address or `*@domain`) covers `address`; both
/// compared without regard to case.
pub fn address_matches(pattern: &str, address: &str) -> bool {
    match pattern.strip_prefix("*@") {
        Some(domain) => address
            .rsplit_once('@')
            .is_some_and(|(_, d)| d.eq_ignore_ascii_case(domain)),
        None => pattern.eq_ignore_ascii_case(address),
    }
}

/// Whether `pattern` can be a user entry: `local@domain` or `*@domain`.
pub fn valid_address_pattern(pattern: &str) -> bool {
    match pattern.rsplit_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('*')
                && (local == "*" || !local.contains('*'))
                && !pattern.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        None => false,
    }
}

/// A fax number as the line presents it, for comparing: spaces, dashes,
/// dots and brackets dropped.
pub fn number_key(number: &str) -> String {
    number
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
        .collect()
}
