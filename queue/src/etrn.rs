//! ETRN (RFC 1985) as the queue sees it: what an ETRN for some domains
//! finds and releases. A backend answers the first half
//! ([`crate::QueueStore::etrn_start`]: how many messages wait, at once)
//! and [`EtrnStart::release`] does the second, after the answer.

use crate::envelope::{Envelope, Etrn, QueueId};

/// What an ETRN release did, counted in messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EtrnRelease {
    /// Messages with recipients that were waiting (held for ETRN, or
    /// deferred) and are due now.
    pub released: usize,
    /// Messages whose recipients in those domains were due already (being
    /// delivered, e.g. after an earlier ETRN).
    pub in_progress: usize,
}

/// What an ETRN for some domains finds: the messages concerned, each
/// once, with whether it waits (and is now marked as being released by
/// this ETRN) — `false`: on its way already.
pub(crate) type Pending = Vec<(QueueId, bool)>;

/// An ETRN answered but not yet released: see
/// [`crate::QueueStore::etrn_start`].
#[derive(Debug)]
pub struct EtrnStart {
    /// What the answer says: messages waiting, and already on their way.
    pub counts: EtrnRelease,
    pub(crate) domains: Vec<String>,
    pub(crate) ids: Vec<QueueId>,
}

impl EtrnStart {
    /// The start of an ETRN for `domains` (as [`normalise_domains`] gave
    /// them) that found `pending`.
    pub(crate) fn new(domains: Vec<String>, pending: Pending) -> EtrnStart {
        let waiting = pending.iter().filter(|(_, waits)| *waits).count();
        EtrnStart {
            counts: EtrnRelease {
                released: waiting,
                in_progress: pending.len() - waiting,
            },
            domains,
            // Only those: the others are on their way already.
            ids: pending
                .into_iter()
                .filter_map(|(id, waits)| waits.then_some(id))
                .collect(),
        }
    }
}

/// Domains as an ETRN compares them: lower case, no trailing dot.
pub(crate) fn normalise_domains(domains: &[String]) -> Vec<String> {
    domains
        .iter()
        .map(|d| d.trim().trim_end_matches('.').to_ascii_lowercase())
        .collect()
}

/// The domain of an address, lower case, without a trailing dot.
pub(crate) fn domain_of(address: &str) -> Option<String> {
    address
        .rsplit_once('@')
        .map(|(_, d)| d.trim_end_matches('.').to_ascii_lowercase())
}

/// A message's marks: `(domain, some recipient there is held)`, one per
/// domain, lower case — what the ETRN index of a backend keeps of it.
pub(crate) type Marks = Vec<(String, bool)>;

/// The marks of recipients given as `(address, etrn, active)`.
pub(crate) fn marks<'a>(rcpts: impl Iterator<Item = (&'a str, Option<Etrn>, bool)>) -> Marks {
    let mut out: Marks = Vec::new();
    for (address, etrn, active) in rcpts {
        let (Some(etrn), true) = (etrn, active) else {
            continue;
        };
        let Some(domain) = domain_of(address) else {
            continue;
        };
        let held = etrn == Etrn::Held;
        match out.iter_mut().find(|(d, _)| *d == domain) {
            Some((_, h)) => *h |= held,
            None => out.push((domain, held)),
        }
    }
    out
}

/// The marks of an envelope (none while the administrator holds it:
/// ETRN does not release such a message).
pub(crate) fn envelope_marks(env: &Envelope) -> Marks {
    if env.held {
        return Vec::new();
    }
    marks(
        env.recipients
            .iter()
            .map(|r| (r.address.as_str(), r.etrn, r.state.is_active())),
    )
}
