//! The administrator's operations on queued messages (`faxmta queue
//! hold | release | flush`) and the ETRN release (RFC 1985): they only
//! change when recipients are due. Written once over [`QueueStore`]'s
//! reads and [`QueueStore::update_with`]; a backend's methods call them
//! (or do the same in their own way).

use crate::envelope::{Envelope, Etrn, QueueId, RcptState};
use crate::error::QueueError;
use crate::etrn::{domain_of, EtrnRelease, EtrnStart};
use crate::store::QueueStore;
use crate::time::now_unix;

/// Whether the stored envelope `json` may have a recipient in one of
/// `domains` (lower case): some `@` in it is followed by one of them, in
/// any case. A necessary condition for [`domain_of`] to give one of them
/// (an address's domain follows its last `@`, and a domain name needs no
/// JSON escape), checked on the raw octets so that a flush parses only
/// the envelopes that may concern it.
fn may_concern(json: &[u8], domains: &[String]) -> bool {
    json.iter().enumerate().any(|(i, &b)| {
        b == b'@'
            && domains.iter().any(|d| {
                json.get(i + 1..i + 1 + d.len())
                    .is_some_and(|s| s.eq_ignore_ascii_case(d.as_bytes()))
            })
    })
}

/// The envelopes that may have a recipient in one of `domains` (see
/// [`may_concern`]), read in one pass over the queue: on a long queue one
/// sequential read, not a lookup per message.
fn concerning<'a>(
    store: &'a (impl QueueStore + ?Sized),
    domains: &'a [String],
) -> impl Iterator<Item = Result<Envelope, QueueError>> + 'a {
    store.envelopes_raw().filter_map(move |raw| match raw {
        Ok(raw) if may_concern(&raw.json, domains) => Some(raw.parse()),
        Ok(_) => None,
        Err(e) => Some(Err(e)),
    })
}

/// [`QueueStore::update_with`] with a closure called once.
fn update<F>(
    store: &(impl QueueStore + ?Sized),
    id: &str,
    change: F,
) -> Result<Option<Envelope>, QueueError>
where
    F: FnOnce(&mut Envelope),
{
    let mut change = Some(change);
    store.update_with(id, &mut |env| {
        if let Some(change) = change.take() {
            change(env)
        }
    })
}

/// [`QueueStore::hold`].
pub(crate) fn hold(store: &(impl QueueStore + ?Sized), id: &str) -> Result<bool, QueueError> {
    Ok(update(store, id, |e| e.held = true)?.is_some())
}

/// [`QueueStore::release`].
pub(crate) fn release(store: &(impl QueueStore + ?Sized), id: &str) -> Result<bool, QueueError> {
    let now = now_unix();
    Ok(update(store, id, |e| {
        e.held = false;
        for r in e.recipients.iter_mut().filter(|r| r.state.is_active()) {
            r.next_attempt = now;
        }
    })?
    .is_some())
}

/// [`QueueStore::flush_now`]; `scheduled`: the ids of the messages that
/// are neither held nor finished (from the backend's index), for a flush
/// of all.
pub(crate) fn flush_now(
    store: &(impl QueueStore + ?Sized),
    id: Option<&str>,
    scheduled: impl FnOnce() -> Vec<QueueId>,
) -> Result<usize, QueueError> {
    let now = now_unix();
    let ids: Vec<QueueId> = match id {
        Some(id) => vec![id.to_string()],
        None => scheduled(),
    };
    let mut n = 0;
    for id in ids {
        let changed = update(store, &id, |e| {
            if !e.held {
                for r in e
                    .recipients
                    .iter_mut()
                    .filter(|r| r.state == RcptState::Deferred)
                {
                    r.next_attempt = now;
                }
            }
        })?;
        n += usize::from(changed.is_some_and(|e| !e.held));
    }
    Ok(n)
}

/// [`QueueStore::flush_domain`].
pub(crate) fn flush_domain(
    store: &(impl QueueStore + ?Sized),
    domain: &str,
) -> Result<usize, QueueError> {
    let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    let wanted = |e: &Envelope, i: usize| {
        let r = &e.recipients[i];
        r.state.is_active() && domain_of(&r.address).as_deref() == Some(domain.as_str())
    };
    let now = now_unix();
    let mut n = 0;
    // Only messages with a recipient in the domain are rewritten (and
    // not those the administrator holds).
    let domains = [domain.clone()];
    for env in concerning(store, &domains) {
        let env = env?;
        if env.held || !(0..env.recipients.len()).any(|i| wanted(&env, i)) {
            continue;
        }
        let id = env.id;
        let changed = update(store, &id, |e| {
            if e.held {
                return;
            }
            for i in 0..e.recipients.len() {
                if wanted(e, i) {
                    let r = &mut e.recipients[i];
                    r.next_attempt = now;
                    if r.etrn.is_some() {
                        r.etrn = Some(Etrn::Released);
                    }
                }
            }
        })?;
        n += usize::from(changed.is_some_and(|e| !e.held));
    }
    Ok(n)
}

impl dyn QueueStore {
    /// ETRN (RFC 1985): release the mail waiting for `domains` (each
    /// exactly, any case; the caller picks them):
    /// [`QueueStore::etrn_start`] and then [`EtrnStart::release`], in one
    /// call.
    pub fn release_etrn(&self, domains: &[String]) -> Result<EtrnRelease, QueueError> {
        let start = self.etrn_start(domains);
        let counts = start.counts;
        start.release(self)?;
        Ok(counts)
    }
}

impl EtrnStart {
    /// Make every active recipient in the ETRN's domains due now and
    /// released — a recipient held for ETRN, a deferred one and one not
    /// looked at yet alike — in every message the administrator does not
    /// hold; from then on it is delivered and retried like any other.
    /// Reads only the waiting messages [`QueueStore::etrn_start`] named.
    /// Returns how many messages it released.
    pub fn release(self, store: &dyn QueueStore) -> Result<usize, QueueError> {
        let domains = &self.domains;
        let wanted = |e: &Envelope, i: usize| {
            let r = &e.recipients[i];
            r.state.is_active() && domain_of(&r.address).is_some_and(|d| domains.contains(&d))
        };
        let now = now_unix();
        // Waiting: not due yet, or due but not yet released (the
        // scheduler would hold it rather than deliver it).
        let waiting = |e: &Envelope, i: usize| {
            let r = &e.recipients[i];
            r.next_attempt > now || r.etrn != Some(Etrn::Released)
        };
        let mut n = 0;
        for id in &self.ids {
            let mut released = false;
            update(store, id, |e| {
                if e.held {
                    return;
                }
                for i in 0..e.recipients.len() {
                    if wanted(e, i) && waiting(e, i) {
                        let r = &mut e.recipients[i];
                        r.next_attempt = r.next_attempt.min(now);
                        r.etrn = Some(Etrn::Released);
                        released = true;
                    }
                }
            })?;
            n += usize::from(released);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::may_concern;
    use crate::envelope::{NewMessage, NewRecipient};

    #[test]
    fn the_raw_filter_finds_every_address_in_the_domain() {
        let domains = ["customer.test".to_string()];
        let env = |rcpt: &str| {
            let msg = NewMessage {
                sender: "sender@example.org".into(),
                recipients: vec![NewRecipient::new(rcpt)],
                ..Default::default()
            };
            serde_json::to_vec(&msg.into_envelope("ID".into(), 1, 1)).unwrap()
        };
        for rcpt in [
            "a@customer.test",
            "B@CUSTOMER.Test.",
            "\"odd@local\"@customer.test",
            "x@sub.other@customer.test",
        ] {
            assert!(may_concern(&env(rcpt), &domains), "{rcpt}");
        }
        for rcpt in ["customer.test@other.test", "a@other.test"] {
            assert!(!may_concern(&env(rcpt), &domains), "{rcpt}");
        }
    }
}
