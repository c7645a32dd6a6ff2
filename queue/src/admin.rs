//! The administrator's operations on queued messages (`faxmta queue
//! hold | release | flush`): they only change when recipients are due.

use crate::envelope::{Envelope, QueueId, RcptState};
use crate::store::{QueueError, Store};
use crate::time::now_unix;

/// The domain of an address, lower case, without a trailing dot.
fn domain_of(address: &str) -> Option<String> {
    address
        .rsplit_once('@')
        .map(|(_, d)| d.trim_end_matches('.').to_ascii_lowercase())
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
    /// held — `postqueue -s`, for a backup MX whose primary is back.
    /// Returns how many messages were rescheduled.
    pub fn flush_domain(&self, domain: &str) -> Result<usize, QueueError> {
        let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
        let wanted = |e: &Envelope, i: usize| {
            let r = &e.recipients[i];
            r.state.is_active() && domain_of(&r.address).as_deref() == Some(domain.as_str())
        };
        let now = now_unix();
        let mut n = 0;
        // The schedule index holds every message that is neither held nor
        // finished; only those with a recipient in the domain are rewritten.
        for id in self.scheduled() {
            let Some(env) = self.get(&id)? else { continue };
            if env.held || !(0..env.recipients.len()).any(|i| wanted(&env, i)) {
                continue;
            }
            let changed = self.update(&id, |e| {
                if e.held {
                    return;
                }
                for i in 0..e.recipients.len() {
                    if wanted(e, i) {
                        e.recipients[i].next_attempt = now;
                    }
                }
            })?;
            n += usize::from(changed.is_some_and(|e| !e.held));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use crate::envelope::{NewMessage, NewRecipient, RcptState};
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
}
