//! The administrator's operations on queued messages (`faxmta queue
//! hold | release | flush`) and the ETRN release (RFC 1985): they only
//! change when recipients are due.

use crate::envelope::{Envelope, Etrn, QueueId, RcptState};
use crate::etrn_index::domain_of;
use crate::store::{QueueError, Store};
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

impl Store {
    /// The envelopes that may have a recipient in one of `domains` (see
    /// [`may_concern`]), read in one pass over the queue: on a long queue
    /// one sequential read, not a lookup per message.
    fn concerning<'a>(
        &'a self,
        domains: &'a [String],
    ) -> impl Iterator<Item = Result<Envelope, QueueError>> + 'a {
        self.envelopes_raw().filter_map(move |raw| match raw {
            Ok(raw) if may_concern(&raw.json, domains) => Some(raw.parse()),
            Ok(_) => None,
            Err(e) => Some(Err(e)),
        })
    }
}

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

impl Store {
    /// Hold a message: it stays queued but is not delivered.
    pub fn hold(&self, id: &str) -> Result<bool, QueueError> {
        Ok(self.update(id, |e| e.held = true)?.is_some())
    }

    /// Release a held message; its active recipients become due now.
    pub fn release(&self, id: &str) -> Result<bool, QueueError> {
        let now = now_unix();
        Ok(self
            .update(id, |e| {
                e.held = false;
                for r in e.recipients.iter_mut().filter(|r| r.state.is_active()) {
                    r.next_attempt = now;
                }
            })?
            .is_some())
    }

    /// Make the active recipients of one message (or of all messages that
    /// are not held) due now, like `postqueue -f`. Returns how many
    /// messages were rescheduled.
    pub fn flush_now(&self, id: Option<&str>) -> Result<usize, QueueError> {
        let now = now_unix();
        let ids: Vec<QueueId> = match id {
            Some(id) => vec![id.to_string()],
            None => self.scheduled(),
        };
        let mut n = 0;
        for id in ids {
            let changed = self.update(&id, |e| {
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

    /// Make every active recipient in `domain` (exactly that domain, any
    /// case; not its subdomains) due now, in every message that is not
    /// held — `postqueue -s`, for a backup MX whose primary is back; a
    /// recipient held for ETRN is released. Returns how many messages
    /// were rescheduled.
    pub fn flush_domain(&self, domain: &str) -> Result<usize, QueueError> {
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
        for env in self.concerning(&domains) {
            let env = env?;
            if env.held || !(0..env.recipients.len()).any(|i| wanted(&env, i)) {
                continue;
            }
            let id = env.id;
            let changed = self.update(&id, |e| {
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

    /// ETRN (RFC 1985): release the mail waiting for `domains` (each
    /// exactly, any case; the caller picks them): [`Store::etrn_start`]
    /// and then [`EtrnStart::release`], in one call.
    pub fn release_etrn(&self, domains: &[String]) -> Result<EtrnRelease, QueueError> {
        let start = self.etrn_start(domains);
        let counts = start.counts;
        start.release(self)?;
        Ok(counts)
    }

    /// The first half of an ETRN, at once from the in-memory index: what
    /// waits for `domains` and how many messages that is — enough for
    /// the answer. The release itself ([`EtrnStart::release`]) can run
    /// after the answer, in the background.
    pub fn etrn_start(&self, domains: &[String]) -> EtrnStart {
        let domains: Vec<String> = domains
            .iter()
            .map(|d| d.trim().trim_end_matches('.').to_ascii_lowercase())
            .collect();
        let pending = self.etrn_claim(&domains, now_unix());
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

/// An ETRN answered but not yet released: see [`Store::etrn_start`].
#[derive(Debug)]
pub struct EtrnStart {
    /// What the answer says: messages waiting, and already on their way.
    pub counts: EtrnRelease,
    domains: Vec<String>,
    ids: Vec<QueueId>,
}

impl EtrnStart {
    /// Make every active recipient in the ETRN's domains due now and
    /// released — a recipient held for ETRN, a deferred one and one not
    /// looked at yet alike — in every message the administrator does not
    /// hold; from then on it is delivered and retried like any other.
    /// Reads only the waiting messages the index named. Returns how many
    /// messages it released.
    pub fn release(self, store: &Store) -> Result<usize, QueueError> {
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
            store.update(id, |e| {
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
    use super::{may_concern, EtrnRelease};
    use crate::envelope::{Etrn, NewMessage, NewRecipient, RcptState};
    use crate::store::{QueueCounts, Store};
    use crate::time::now_unix;

    fn message(rcpts: &[&str]) -> NewMessage {
        NewMessage {
            sender: "sender@example.org".into(),
            recipients: rcpts.iter().map(|r| NewRecipient::new(*r)).collect(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn hold_release_and_flush() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let id = store.new_id().unwrap();
        store
            .enqueue(id.clone(), message(&["a@x"]), b"x")
            .await
            .unwrap();
        assert!(store.hold(&id).unwrap());
        assert!(store.due(u64::MAX, 10).is_empty());
        assert_eq!(
            store.counts(now_unix()),
            QueueCounts {
                due: 0,
                waiting: 0,
                held: 1
            }
        );
        assert_eq!(store.flush_now(None).unwrap(), 0);
        assert!(store.release(&id).unwrap());
        assert_eq!(store.due(now_unix(), 10), vec![id.clone()]);
        store
            .update(&id, |e| {
                e.recipients[0].state = RcptState::Deferred;
                e.recipients[0].next_attempt = now_unix() + 3600;
            })
            .unwrap();
        assert!(store.due(now_unix(), 10).is_empty());
        assert_eq!(store.flush_now(None).unwrap(), 1);
        assert_eq!(store.due(now_unix(), 10), vec![id.clone()]);
        assert!(store.remove(&id).unwrap());
        assert!(!store.remove(&id).unwrap());
        assert!(!store.hold(&id).unwrap());
    }

    #[tokio::test]
    async fn flush_by_domain_wakes_only_that_domain_and_not_held_mail() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let later = now_unix() + 3600;
        let mut ids = Vec::new();
        for rcpts in [
            &["a@partner.test", "b@other.test"][..],
            &["c@other.test"][..],
            &["d@Partner.TEST"][..],
            &["e@sub.partner.test"][..],
        ] {
            let id = store.new_id().unwrap();
            store
                .enqueue(id.clone(), message(rcpts), b"x")
                .await
                .unwrap();
            store
                .update(&id, |e| {
                    for r in &mut e.recipients {
                        r.state = RcptState::Deferred;
                        r.next_attempt = later;
                    }
                })
                .unwrap();
            ids.push(id);
        }
        assert!(store.hold(&ids[2]).unwrap());
        assert_eq!(store.flush_domain("PARTNER.test.").unwrap(), 1);
        let next = |id: &str, i: usize| store.get(id).unwrap().unwrap().recipients[i].next_attempt;
        assert!(next(&ids[0], 0) <= now_unix(), "partner.test is due now");
        assert_eq!(
            next(&ids[0], 1),
            later,
            "other.test in the same message waits"
        );
        assert_eq!(next(&ids[1], 0), later);
        assert_eq!(next(&ids[2], 0), later, "held messages are left alone");
        assert_eq!(next(&ids[3], 0), later, "subdomains are not included");
        assert_eq!(store.due(now_unix(), 10), vec![ids[0].clone()]);
        assert_eq!(store.flush_domain("nothing.test").unwrap(), 0);
    }

    #[tokio::test]
    async fn etrn_releases_its_domains_only_and_counts_messages() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let expiry = now_unix() + 86_400;
        let mut ids = Vec::new();
        for rcpts in [
            &["a@customer.test", "b@other.test"][..],
            &["c@Customer.TEST"][..],
            &["d@sub.customer.test"][..],
            &["e@customer.test"][..],
        ] {
            let id = store.new_id().unwrap();
            let msg = NewMessage {
                recipients: rcpts
                    .iter()
                    .map(|r| NewRecipient {
                        etrn: Some(Etrn::Held),
                        ..NewRecipient::new(*r)
                    })
                    .collect(),
                ..message(&[])
            };
            store.enqueue(id.clone(), msg, b"x").await.unwrap();
            store
                .update(&id, |e| {
                    for r in &mut e.recipients {
                        r.next_attempt = expiry;
                    }
                })
                .unwrap();
            ids.push(id);
        }
        assert!(store.hold(&ids[3]).unwrap());
        let got = store.release_etrn(&["CUSTOMER.test.".into()]).unwrap();
        assert_eq!(
            got,
            EtrnRelease {
                released: 2,
                in_progress: 0
            }
        );
        let rcpt = |id: &str, i: usize| store.get(id).unwrap().unwrap().recipients[i].clone();
        assert!(rcpt(&ids[0], 0).next_attempt <= now_unix());
        assert_eq!(rcpt(&ids[0], 0).etrn, Some(Etrn::Released));
        assert_eq!(rcpt(&ids[0], 1).next_attempt, expiry, "other.test waits");
        assert_eq!(rcpt(&ids[0], 1).etrn, Some(Etrn::Held));
        assert!(rcpt(&ids[1], 0).next_attempt <= now_unix());
        assert_eq!(rcpt(&ids[2], 0).next_attempt, expiry, "not subdomains");
        assert_eq!(rcpt(&ids[3], 0).next_attempt, expiry, "held by the admin");
        // Asked again before delivery: already under way.
        let again = store.release_etrn(&["customer.test".into()]).unwrap();
        assert_eq!((again.released, again.in_progress), (0, 2));
        let none = store.release_etrn(&["nothing.test".into()]).unwrap();
        assert_eq!(none, EtrnRelease::default());
        // The administrator's flush releases ETRN mail too.
        assert_eq!(store.flush_domain("sub.customer.test").unwrap(), 1);
        assert_eq!(rcpt(&ids[2], 0).etrn, Some(Etrn::Released));
    }

    #[tokio::test]
    async fn etrn_is_answered_from_the_index_before_the_release_and_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut ids = Vec::new();
        {
            let store = Store::open(dir.path()).unwrap();
            for rcpt in ["a@customer.test", "b@customer.test", "c@other.test"] {
                let id = store.new_id().unwrap();
                let msg = NewMessage {
                    recipients: vec![NewRecipient {
                        etrn: Some(Etrn::Held),
                        ..NewRecipient::new(rcpt)
                    }],
                    ..message(&[])
                };
                store.enqueue(id.clone(), msg, b"x").await.unwrap();
                ids.push(id);
            }
            store.sync().await.unwrap();
        }
        // The index is built again when the queue is opened.
        let store = Store::open(dir.path()).unwrap();
        let held = |id: &str| store.get(id).unwrap().unwrap().recipients[0].etrn;
        let start = store.etrn_start(&["Customer.Test".into()]);
        assert_eq!(
            start.counts,
            EtrnRelease {
                released: 2,
                in_progress: 0
            }
        );
        // Answered, nothing released yet: the envelopes still say held.
        assert_eq!(held(&ids[0]), Some(Etrn::Held));
        // A second ETRN meanwhile finds them under way.
        let again = store.etrn_start(&["customer.test".into()]);
        assert_eq!((again.counts.released, again.counts.in_progress), (0, 2));
        assert_eq!(start.release(&store).unwrap(), 2);
        assert_eq!(again.release(&store).unwrap(), 0);
        assert_eq!(held(&ids[0]), Some(Etrn::Released));
        assert_eq!(held(&ids[1]), Some(Etrn::Released));
        assert_eq!(held(&ids[2]), Some(Etrn::Held), "other.test waits");
        // Delivered: out of the index.
        for id in &ids[..2] {
            store
                .update(id, |e| e.recipients[0].state = RcptState::Delivered)
                .unwrap();
        }
        let after = store.etrn_start(&["customer.test".into()]);
        assert_eq!(after.counts, EtrnRelease::default());
    }

    #[test]
    fn the_raw_filter_finds_every_address_in_the_domain() {
        let domains = ["customer.test".to_string()];
        let env = |rcpt: &str| {
            let msg = message(&[rcpt]);
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

    #[tokio::test]
    async fn etrn_releases_addresses_in_any_case_and_form() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let later = now_unix() + 3600;
        let mut ids = Vec::new();
        for rcpt in [
            "A@Customer.TEST.",
            "b@customer.test",
            "customer.test@other.test",
        ] {
            let id = store.new_id().unwrap();
            store
                .enqueue(id.clone(), message(&[rcpt]), b"x")
                .await
                .unwrap();
            store
                .update(&id, |e| {
                    e.recipients[0].etrn = Some(Etrn::Held);
                    e.recipients[0].next_attempt = later;
                })
                .unwrap();
            ids.push(id);
        }
        let got = store.release_etrn(&["customer.test".into()]).unwrap();
        assert_eq!(got.released, 2);
        let mut due = store.due(now_unix(), 10);
        due.sort();
        assert_eq!(due, vec![ids[0].clone(), ids[1].clone()]);
        assert_eq!(store.flush_domain("CUSTOMER.test").unwrap(), 2);
    }
}
