//! Searching the fax records: [`FaxQuery`] over finished faxes,
//! [`ReceivedQuery`] over received ones, both newest first, filtered, a
//! page at a time. A page ends with a [`Cursor`] when more may follow:
//! the next query passes it back (`after`) and goes on from there,
//! however many records arrived meanwhile (keyset paging: no offset).
//!
//! Every backend orders by (time, key) from the newest, and matches the
//! filters as [`FaxQuery::matches`] and [`ReceivedQuery::matches`] say
//! (the sled backend calls them; the PostgreSQL one says the same in
//! SQL over columns kept from the same functions).

use crate::history::{FaxRecord, ReceivedRecord};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Where a page ended: opaque to callers (a short URL-safe string, see
/// [`Cursor::parse`] and its `Display`), handed back in the next query's
/// `after`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Cursor {
    /// The last record's time.
    pub(crate) at: u64,
    /// The last record's key: `id/recipient` (a finished fax), the key
    /// (a received one).
    pub(crate) key: String,
}

impl Cursor {
    pub(crate) fn new(at: u64, key: impl Into<String>) -> Cursor {
        Cursor {
            at,
            key: key.into(),
        }
    }

    /// The cursor a string made by its `Display` stands for; `None`: not
    /// one (a mangled link).
    pub fn parse(text: &str) -> Option<Cursor> {
        let (at, key) = text.split_once('.')?;
        let at = at.parse().ok()?;
        if key.len() % 2 != 0 {
            return None;
        }
        let bytes = (0..key.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(key.get(i..i + 2)?, 16).ok())
            .collect::<Option<Vec<u8>>>()?;
        Some(Cursor::new(at, String::from_utf8(bytes).ok()?))
    }

    /// The key of a finished fax split in its id and recipient.
    pub(crate) fn id_and_recipient(&self) -> (&str, &str) {
        self.key.split_once('/').unwrap_or((self.key.as_str(), ""))
    }

    /// The sled key it stands for: time (big-endian) and key.
    pub(crate) fn to_key(&self) -> Vec<u8> {
        let mut out = self.at.to_be_bytes().to_vec();
        out.extend_from_slice(self.key.as_bytes());
        out
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.", self.at)?;
        for b in self.key.as_bytes() {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl From<Cursor> for String {
    fn from(c: Cursor) -> String {
        c.to_string()
    }
}

impl TryFrom<String> for Cursor {
    type Error = String;

    fn try_from(text: String) -> Result<Cursor, String> {
        Cursor::parse(&text).ok_or_else(|| format!("not a page cursor: {text:?}"))
    }
}

impl std::str::FromStr for Cursor {
    type Err = String;

    fn from_str(text: &str) -> Result<Cursor, String> {
        Cursor::try_from(text.to_string())
    }
}

/// One page of records, newest first; `next`: where the next page
/// starts, `None` when this is the last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page<T> {
    pub records: Vec<T>,
    pub next: Option<Cursor>,
}

/// A page of finished faxes.
pub type FaxPage = Page<FaxRecord>;
/// A page of received faxes.
pub type ReceivedPage = Page<ReceivedRecord>;

impl<T> Default for Page<T> {
    fn default() -> Page<T> {
        Page {
            records: Vec::new(),
            next: None,
        }
    }
}

/// Which finished faxes ([`crate::QueueStore::fax_history_query`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct FaxQuery {
    /// Only faxes from these envelope senders (any case); `None`: all
    /// (an administrator). An empty list finds nothing.
    pub senders: Option<Vec<String>>,
    /// Only faxes whose sender is in one of these domains (any case),
    /// besides those of `senders`: a domain administrator's view. `None`
    /// with `senders` `None`: every sender.
    #[serde(default)]
    pub domains: Option<Vec<String>>,
    /// Only faxes whose recipient, number, remote CSID or sender holds
    /// this (any case); `None` or empty: all.
    pub text: Option<String>,
    /// Only faxes finished at or after `since` and before `until` (Unix
    /// seconds).
    pub since: Option<u64>,
    pub until: Option<u64>,
    /// At most this many.
    pub limit: usize,
    /// Go on after this cursor (from the previous page).
    pub after: Option<Cursor>,
}

/// Which received faxes ([`crate::QueueStore::received_query`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ReceivedQuery {
    /// Only faxes routed to any of these addresses (any case); `None`:
    /// all. An empty list finds nothing.
    pub recipients: Option<Vec<String>>,
    /// Only faxes routed to an address in one of these domains, besides
    /// those of `recipients` (as [`FaxQuery::domains`]).
    #[serde(default)]
    pub domains: Option<Vec<String>>,
    /// Only faxes whose called or calling number, TSI or a recipient
    /// holds this (any case); `None` or empty: all.
    pub text: Option<String>,
    /// Only faxes received at or after `since` and before `until`.
    pub since: Option<u64>,
    pub until: Option<u64>,
    /// At most this many.
    pub limit: usize,
    /// Go on after this cursor (from the previous page).
    pub after: Option<Cursor>,
}

/// A list of addresses in lower case.
pub(crate) fn lower_all(list: &Option<Vec<String>>) -> Option<Vec<String>> {
    list.as_ref()
        .map(|l| l.iter().map(|s| s.to_lowercase()).collect())
}

/// A search text in lower case; `None` when there is nothing to look for.
/// The domain of an address (after its last `@`), or "".
pub(crate) fn domain_of(address: &str) -> &str {
    address.rsplit_once('@').map(|(_, d)| d).unwrap_or("")
}

pub(crate) fn lower_text(text: &Option<String>) -> Option<String> {
    text.as_deref()
        .filter(|t| !t.is_empty())
        .map(str::to_lowercase)
}

impl FaxQuery {
    /// Whether `record` passes the filters (not the time range nor the
    /// cursor, which the backends take from their keys).
    pub fn matches(&self, record: &FaxRecord) -> bool {
        let sender = record.sender.to_lowercase();
        let (senders, domains) = (lower_all(&self.senders), lower_all(&self.domains));
        let whose = match (&senders, &domains) {
            (None, None) => true,
            _ => {
                senders.as_ref().is_some_and(|s| s.contains(&sender))
                    || domains
                        .as_ref()
                        .is_some_and(|d| d.iter().any(|d| domain_of(&sender) == d))
            }
        };
        whose && lower_text(&self.text).is_none_or(|t| record.search_text().contains(&t))
    }

    /// The cursor after `record`.
    pub(crate) fn cursor(record: &FaxRecord) -> Cursor {
        Cursor::new(
            record.finished,
            format!("{}/{}", record.id, record.recipient),
        )
    }
}

impl ReceivedQuery {
    /// Whether `record` passes the filters (not the time range nor the
    /// cursor).
    pub fn matches(&self, record: &ReceivedRecord) -> bool {
        let mine = record.recipients_lower();
        let (recipients, domains) = (lower_all(&self.recipients), lower_all(&self.domains));
        let whose = match (&recipients, &domains) {
            (None, None) => true,
            _ => {
                recipients
                    .as_ref()
                    .is_some_and(|r| r.iter().any(|a| mine.contains(a)))
                    || domains
                        .as_ref()
                        .is_some_and(|d| mine.iter().any(|a| d.iter().any(|d| domain_of(a) == d)))
            }
        };
        whose && lower_text(&self.text).is_none_or(|t| record.search_text().contains(&t))
    }

    /// The cursor after `record`.
    pub(crate) fn cursor(record: &ReceivedRecord) -> Cursor {
        Cursor::new(record.received_at, record.key.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::Cursor;

    #[test]
    fn a_cursor_survives_its_text_and_a_mangled_one_is_refused() {
        let c = Cursor::new(1_700_000_000, "0ABC/+1555@fax.test");
        let text = c.to_string();
        assert!(text
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '.'));
        assert_eq!(Cursor::parse(&text), Some(c));
        for bad in ["", "12", "x.00", "12.0", "12.zz", "12.ff"] {
            assert_eq!(Cursor::parse(bad), None, "{bad}");
        }
    }
}
