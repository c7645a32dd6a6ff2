//! Recipient addresses that are fax numbers, and `fax:` URIs.
//!
//! Every form below is the same kind of recipient: a number, perhaps with
//! a T.33 sub-address and an extension, that the dial plan (faxmta-fax's
//! `dialplan.rs`) turns into E.164 and a dial string. Pure; faxmta-fax
//! re-exports this module as `faxmta_fax::address`.
//!
//! | form | example | where |
//! |---|---|---|
//! | number at a fax domain | `+1 555 123 4567@fax.example.com` (quoted), `5551234567@…`, `+15551234567x12@…` | fax domains only |
//! | RFC 3192 / RFC 2303 | `FAX=+1-555-123-4567@…`, `FAX=+15551234567/T33S=123@…`, `/FAX=…/@…` | fax domains and our own (local) domains |
//! | Exchange IMCEA | `IMCEAFAX-+2B15551234567@…` for `[FAX:+15551234567]`, `IMCEAFAX-Bob+20Smith+40+2B1555…@…` (name@number) | fax domains and our own (local) domains |
//! | URI (RFC 2806 / RFC 3966) | `fax:+1-555-123-4567;tsub=12`, `tel:+15551234567;ext=22` | headers, the HTTP API and the CLI: [`parse_uri`] |
//!
//! Prefixes (`FAX=`, `IMCEAFAX-`, `T33S=`, `fax:`) are case-insensitive.
//! IMCEA text is decoded (`+HH` is the octet HH, `_` is `/`); in the
//! decoded text a `[FAX:…]` or `FAX:` wrapper is dropped and a name before
//! the last `@` is the recipient's name. An extension is written `x123`,
//! `ext123`, `ext.123`, `;ext=123` or `,,123` (DTMF after pauses; inner
//! commas are kept as pauses). `/KEY=value` qualifiers other than `T33S`
//! (FaxFinder's `/ATTN=…`, `/COVER-PAGE-ENABLED=1`) are kept, not
//! interpreted. What is not a number is refused with a [`BadNumber`] that
//! says why; letters (vanity numbers) are not numbers.

use std::fmt;

/// How a fax recipient was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Form {
    /// `number@fax-domain`.
    Number,
    /// RFC 3192 `FAX=number[/T33S=sub]@domain`.
    Rfc3192,
    /// Exchange's encapsulated `IMCEAFAX-…@domain`.
    Imcea,
    /// A `fax:` (or `tel:`) URI.
    Uri,
}

impl Form {
    /// A word for logs and `faxmta route`.
    pub fn describe(self) -> &'static str {
        match self {
            Form::Number => "number at a fax domain",
            Form::Rfc3192 => "RFC 3192 FAX= address",
            Form::Imcea => "Exchange IMCEAFAX- address",
            Form::Uri => "fax: URI",
        }
    }
}

/// A fax recipient as written: the number not yet normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaxAddress {
    pub form: Form,
    /// The number as written (decoded), separators and all, without the
    /// extension.
    pub number: String,
    /// The T.33 sub-address (`/T33S=`, `;tsub=`): digits.
    pub subaddress: Option<String>,
    /// Digits dialled as DTMF after the call is answered (`x12`, `,,12`,
    /// `;ext=12`): digits, `*`, `#`, and `,` for pauses inside.
    pub extension: Option<String>,
    /// The recipient's name, when the address carries one (IMCEA
    /// name@number).
    pub name: Option<String>,
    /// Other `/KEY=value` qualifiers (URI parameters), key upper-cased,
    /// kept as written.
    pub qualifiers: Vec<(String, String)>,
}

/// Why a text is not a fax number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadNumber(pub String);

impl BadNumber {
    pub fn new(why: impl Into<String>) -> Self {
        BadNumber(why.into())
    }
}

/// The kind of domain a recipient is at, as far as fax forms go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    /// A domain of `kind = "fax"`: every local part is a fax number.
    FaxDomain,
    /// One of our own (local) domains: only the `FAX=` and `IMCEAFAX-`
    /// forms are fax numbers; other local parts are mailboxes.
    OwnDomain,
}

/// Classify a local part. `Ok(None)`: not a fax form (an ordinary
/// mailbox at one of our own domains). `Err`: a fax form, but not a good
/// number (the reply is `550 5.1.3`).
pub fn parse_local_part(local: &str, at: At) -> Result<Option<FaxAddress>, BadNumber> {
    let local = unquote(local);
    let trimmed = local.strip_prefix('/').unwrap_or(&local);
    if let Some(rest) = strip_prefix_ci(trimmed, "FAX=") {
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        return parse_qualified(Form::Rfc3192, rest, None).map(Some);
    }
    if let Some(rest) = strip_prefix_ci(&local, "IMCEAFAX-") {
        return parse_imcea(rest).map(Some);
    }
    match at {
        At::FaxDomain => parse_qualified(Form::Number, &local, None).map(Some),
        At::OwnDomain => Ok(None),
    }
}

/// Parse a `fax:` URI (RFC 2806: `;tsub=`, `;isub=`, `;postd=`; RFC 3966
/// `tel:` with `;ext=` and `;phone-context=`). Percent escapes are
/// decoded; unknown parameters are kept in `qualifiers`. A global
/// `phone-context` (`+CC…`) goes in front of a local number.
pub fn parse_uri(uri: &str) -> Result<FaxAddress, BadNumber> {
    let text = uri.trim();
    let rest = strip_prefix_ci(text, "fax:")
        .or_else(|| strip_prefix_ci(text, "tel:"))
        .ok_or_else(|| BadNumber::new("not a fax: URI (it starts with fax: or tel:)"))?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let text = percent_decode(rest)?;
    let mut parts = text.split(';');
    let mut number = parts.next().unwrap_or_default().trim().to_string();
    let mut address = FaxAddress {
        form: Form::Uri,
        number: String::new(),
        subaddress: None,
        extension: None,
        name: None,
        qualifiers: Vec::new(),
    };
    let mut context = None;
    for param in parts.filter(|p| !p.is_empty()) {
        let (key, value) = param.split_once('=').unwrap_or((param, ""));
        let key = key.trim().to_ascii_lowercase();
        let value = value.trim();
        match key.as_str() {
            "tsub" => set_once(&mut address.subaddress, subaddress(value)?, "tsub")?,
            "ext" | "postd" => set_once(&mut address.extension, extension(value)?, "ext")?,
            "phone-context" => context = Some(value.to_string()),
            _ => address
                .qualifiers
                .push((key.to_ascii_uppercase(), value.to_string())),
        }
    }
    let (bare, ext) = split_extension(&number)?;
    if let Some(ext) = ext {
        set_once(&mut address.extension, ext, "extension")?;
        number = bare;
    }
    if let Some(ctx) = context.filter(|c| c.starts_with('+') && !number.starts_with('+')) {
        number = format!("{ctx}{number}");
    }
    if number.is_empty() {
        return Err(BadNumber::new("the URI has no number"));
    }
    address.number = number;
    Ok(address)
}

/// Parse a bare number as typed on a command line or in an API call
/// (`+1 555 123 4567`, `0201 1234567 x12`) — or a URI when it has the
/// `fax:`/`tel:` scheme.
pub fn parse_text(text: &str) -> Result<FaxAddress, BadNumber> {
    let t = text.trim();
    if strip_prefix_ci(t, "fax:").is_some() || strip_prefix_ci(t, "tel:").is_some() {
        return parse_uri(t);
    }
    parse_qualified(Form::Uri, t, None)
}

/// The decoded IMCEA text after `IMCEAFAX-`.
fn parse_imcea(encoded: &str) -> Result<FaxAddress, BadNumber> {
    let text = imcea_decode(encoded)?;
    let mut text = text.trim();
    if let Some(inner) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        text = inner.trim();
    }
    if let Some(inner) = strip_prefix_ci(text, "FAX:") {
        text = inner.trim();
    }
    let (name, number) = match text.rsplit_once('@') {
        Some((name, number)) => (Some(name.trim()).filter(|n| !n.is_empty()), number),
        None => (None, text),
    };
    parse_qualified(Form::Imcea, number, name.map(str::to_string))
}

/// Decode Exchange's IMCEA encapsulation: `+HH` is the octet HH, `_` is
/// `/`, anything else stands for itself ([MS-OXCMAIL] 2.1.3.1.8).
pub fn imcea_decode(encoded: &str) -> Result<String, BadNumber> {
    let bytes = encoded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                let hex = encoded.get(i + 1..i + 3).and_then(|h| {
                    h.bytes()
                        .all(|b| b.is_ascii_hexdigit())
                        .then(|| u8::from_str_radix(h, 16).ok())
                        .flatten()
                });
                let Some(b) = hex else {
                    return Err(BadNumber::new(format!(
                        "bad IMCEA encoding at {:?}: + must be followed by two hex digits",
                        &encoded[i..]
                    )));
                };
                out.push(b);
                i += 3;
            }
            b'_' => {
                out.push(b'/');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// The inverse of [`imcea_decode`], for tests and `faxmta route`: what
/// Exchange would put in front of `@domain` for `[FAX:text]`.
pub fn imcea_encode(text: &str) -> String {
    let mut out = String::from("IMCEAFAX-");
    for b in text.bytes() {
        match b {
            b'/' => out.push('_'),
            b if b.is_ascii_alphanumeric() || b == b'-' || b == b'=' => out.push(b as char),
            b => out.push_str(&format!("+{b:02X}")),
        }
    }
    out
}

/// `number[/T33S=sub][/KEY=value…]`: after the first, a `/` segment with
/// `=` is a qualifier; one without is part of the number (`/` is a
/// separator in some countries' writing, `0201/123456`).
fn parse_qualified(form: Form, text: &str, name: Option<String>) -> Result<FaxAddress, BadNumber> {
    let mut number = String::new();
    let mut address = FaxAddress {
        form,
        number: String::new(),
        subaddress: None,
        extension: None,
        name,
        qualifiers: Vec::new(),
    };
    for (i, segment) in text.split('/').enumerate() {
        match segment.split_once('=') {
            _ if i == 0 => number.push_str(segment),
            Some((key, value)) => {
                let key = key.trim().to_ascii_uppercase();
                if key == "T33S" {
                    set_once(&mut address.subaddress, subaddress(value)?, "T33S")?;
                } else if key.is_empty() {
                    return Err(BadNumber::new(format!(
                        "empty qualifier name in {segment:?}"
                    )));
                } else {
                    address.qualifiers.push((key, value.to_string()));
                }
            }
            None if address.subaddress.is_some() || !address.qualifiers.is_empty() => {
                if !segment.is_empty() {
                    return Err(BadNumber::new(format!(
                        "{segment:?} after the qualifiers is neither a number nor KEY=value"
                    )));
                }
            }
            None => {
                number.push('/');
                number.push_str(segment);
            }
        }
    }
    let number = number.trim_end_matches('/').trim();
    let (bare, ext) = split_extension(number)?;
    address.extension = ext;
    if bare.is_empty() {
        return Err(BadNumber::new("no number"));
    }
    address.number = bare;
    Ok(address)
}

/// Split `+1555…x12`, `…ext.12`, `…;ext=12`, `…,,12` into the number and
/// its extension.
fn split_extension(text: &str) -> Result<(String, Option<String>), BadNumber> {
    let lower = text.to_ascii_lowercase();
    let at = [";ext=", ";postd=", ","]
        .iter()
        .filter_map(|m| lower.find(m).map(|p| (p, m.len())))
        .chain(letter_marker(&lower))
        .min();
    let Some((pos, len)) = at else {
        return Ok((text.to_string(), None));
    };
    let number = text[..pos].trim().to_string();
    let ext = extension(&text[pos + len..])?;
    Ok((number, Some(ext)))
}

/// Where `x12`, `ext12` or `ext.12` starts (after at least one digit).
fn letter_marker(lower: &str) -> Option<(usize, usize)> {
    let first_digit = lower.find(|c: char| c.is_ascii_digit())?;
    for marker in ["ext.", "ext", "x"] {
        if let Some(p) = lower[first_digit..].find(marker) {
            let p = first_digit + p;
            let after = lower[p + marker.len()..].trim_start();
            if after.starts_with(|c: char| c.is_ascii_digit() || c == '*' || c == '#') {
                return Some((p, marker.len()));
            }
        }
    }
    None
}

/// An extension: digits, `*`, `#`, with `,` pauses inside (leading ones
/// dropped: the engine waits for the answer anyway).
fn extension(text: &str) -> Result<String, BadNumber> {
    let ext = text.trim().trim_start_matches(',').trim();
    if ext.is_empty() {
        return Err(BadNumber::new("an extension marker without digits"));
    }
    if let Some(c) = ext
        .chars()
        .find(|c| !(c.is_ascii_digit() || matches!(c, '*' | '#' | ',')))
    {
        return Err(BadNumber::new(format!(
            "extension {ext:?}: {c:?} is not a digit, * or #"
        )));
    }
    Ok(ext.to_string())
}

/// A T.33 sub-address: 1 to 20 digits.
fn subaddress(text: &str) -> Result<String, BadNumber> {
    let sub = text.trim();
    if sub.is_empty() || sub.len() > 20 || !sub.bytes().all(|b| b.is_ascii_digit()) {
        return Err(BadNumber::new(format!(
            "sub-address {sub:?}: T.33 sub-addresses are 1 to 20 digits"
        )));
    }
    Ok(sub.to_string())
}

fn set_once(slot: &mut Option<String>, value: String, what: &str) -> Result<(), BadNumber> {
    if slot.is_some() {
        return Err(BadNumber::new(format!("{what} is given twice")));
    }
    *slot = Some(value);
    Ok(())
}

fn strip_prefix_ci<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// A quoted local part (`"+1 555 123"`) without its quotes and escapes.
fn unquote(local: &str) -> String {
    match local.strip_prefix('"').and_then(|l| l.strip_suffix('"')) {
        Some(inner) => {
            let mut out = String::with_capacity(inner.len());
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => out.extend(chars.next()),
                    c => out.push(c),
                }
            }
            out
        }
        None => local.to_string(),
    }
}

fn percent_decode(text: &str) -> Result<String, BadNumber> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let b = text
                .get(i + 1..i + 3)
                .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| BadNumber::new("bad %-escape in the URI"))?;
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| BadNumber::new("the URI is not UTF-8 once decoded"))
}

impl fmt::Display for FaxAddress {
    /// The number with its sub-address and extension, as written.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.number)?;
        if let Some(sub) = &self.subaddress {
            write!(f, "/T33S={sub}")?;
        }
        if let Some(ext) = &self.extension {
            write!(f, " ext. {ext}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imcea_round_trip() {
        for text in [
            "+15551234567",
            "+1 (555) 010-0199",
            "Bob@+1555/T33S=7",
            "Zoë@123",
        ] {
            let enc = imcea_encode(text);
            let dec = imcea_decode(enc.strip_prefix("IMCEAFAX-").unwrap()).unwrap();
            assert_eq!(dec, text);
        }
        assert_eq!(
            imcea_encode("+1 (555) 010-0199"),
            "IMCEAFAX-+2B1+20+28555+29+20010-0199"
        );
        for bad in ["+2", "+2G15551234567", "1555+", "+é1"] {
            assert!(imcea_decode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ordinary_local_parts_at_our_domains_are_not_faxes() {
        for local in ["alice", "fax", "faxes=1", "imceafax", "IMCEAEX-_O=ORG_CN=x"] {
            assert_eq!(parse_local_part(local, At::OwnDomain), Ok(None), "{local}");
        }
        let a = parse_local_part("\"+1 555 123 4567\"", At::FaxDomain)
            .unwrap()
            .unwrap();
        assert_eq!(a.number, "+1 555 123 4567");
        let a = parse_local_part("/FAX=+15551234567/T33S=12/ATTN=Bob/", At::OwnDomain)
            .unwrap()
            .unwrap();
        assert_eq!(a.subaddress.as_deref(), Some("12"));
        assert_eq!(a.qualifiers, vec![("ATTN".to_string(), "Bob".to_string())]);
    }

    #[test]
    fn uris_and_typed_numbers() {
        let a = parse_uri("fax:+358.555.1234567;tsub=1234;isub=77").unwrap();
        assert_eq!(a.number, "+358.555.1234567");
        assert_eq!(a.subaddress.as_deref(), Some("1234"));
        assert_eq!(a.qualifiers, vec![("ISUB".to_string(), "77".to_string())]);
        let a = parse_uri("TEL:7042;phone-context=+1-555-123").unwrap();
        assert_eq!(a.number, "+1-555-1237042");
        let a = parse_uri("fax:+1%20555%20123%204567;ext=12").unwrap();
        assert_eq!(
            (a.number.as_str(), a.extension.as_deref()),
            ("+1 555 123 4567", Some("12"))
        );
        assert!(parse_uri("mailto:a@b").is_err());
        assert!(parse_uri("fax:;tsub=1").is_err());
        assert!(parse_uri("fax:+1555%2").is_err());
        let a = parse_text(" 0201 1234567 x 12 ").unwrap();
        assert_eq!(
            (a.number.as_str(), a.extension.as_deref()),
            ("0201 1234567", Some("12"))
        );
        assert_eq!(parse_text("fax:+15551234567").unwrap().form, Form::Uri);
    }
}
