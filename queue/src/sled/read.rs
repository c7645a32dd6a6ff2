//! The sled store's reads: envelopes and bodies, the whole queue as a
//! stream, and what the in-memory index answers — the schedule, the
//! counts, ETRN's first half — and the leases, kept beside it.

use super::segments::{is_lost, Loc};
use super::SledStore;
use crate::envelope::{Envelope, QueueId};
use crate::error::QueueError;
use crate::etrn::{normalise_domains, EtrnStart};
use crate::listing::{RawEnvelope, RawEnvelopes};
use crate::lock::lock;
use crate::store::{Lease, QueueCounts};
use crate::time::now_unix;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

impl SledStore {
    /// The envelope of a message.
    pub(super) fn get(&self, id: &str) -> Result<Option<Envelope>, QueueError> {
        let found = self
            .handles()?
            .envelopes
            .get(id.as_bytes())
            .map_err(|e| self.sled_error(e))?;
        match found {
            Some(v) => serde_json::from_slice(&v)
                .map(Some)
                .map_err(|source| QueueError::Corrupt {
                    id: id.to_string(),
                    source,
                }),
            None => Ok(None),
        }
    }

    /// The stored octets of a message: the header fields the receiver
    /// put above it ([`Envelope::head`]), then its body file.
    pub(super) fn body(&self, id: &str) -> Result<Option<Vec<u8>>, QueueError> {
        // A message no longer queued has no body, even while its file
        // waits for its removal to be synced (or a move out of its
        // segment, `evict.rs`, to see it gone).
        let head = match self.get(id)? {
            Some(env) => env.head,
            None => return Ok(None),
        };
        let at = self
            .handles()?
            .body_at
            .get(id.as_bytes())
            .map_err(|e| self.sled_error(e))?;
        if let Some(loc) = at.as_deref().and_then(Loc::decode) {
            let mut data = head.into_bytes();
            let body = self
                .inner
                .shared
                .segments
                .read(loc)
                .map_err(|source| QueueError::File {
                    path: self.files().dir.clone(),
                    source,
                });
            return match body {
                Ok(body) => {
                    data.extend_from_slice(&body);
                    Ok(Some(data))
                }
                // Its segment is gone, cut short or its octets changed
                // (removed or damaged behind the store's back): the body
                // is lost.
                Err(QueueError::File { source, path }) if is_lost(&source) => {
                    tracing::error!(
                        "{id}: its body is missing from its segment in {}: {source}",
                        path.display()
                    );
                    Ok(None)
                }
                Err(e) => Err(e),
            };
        }
        let path = self.files().path(id);
        let read = std::fs::File::open(&path).and_then(|mut f| {
            use std::io::Read;
            let len = f.metadata()?.len() as usize;
            let mut data = Vec::with_capacity(head.len() + len);
            data.extend_from_slice(head.as_bytes());
            f.read_to_end(&mut data)?;
            Ok(data)
        });
        match read {
            Ok(data) => Ok(Some(data)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(QueueError::File { path, source }),
        }
    }

    /// Every envelope as stored, read lazily from the database.
    pub(super) fn envelopes_raw(&self) -> RawEnvelopes<'_> {
        let (iter, failed) = match self.handles() {
            Ok(db) => (Some(db.envelopes.iter()), None),
            Err(e) => (None, Some(Err(e))),
        };
        Box::new(
            failed
                .into_iter()
                .chain(iter.into_iter().flatten().map(|item| {
                    let (key, value) = item.map_err(|e| self.sled_error(e))?;
                    Ok(RawEnvelope {
                        id: String::from_utf8_lossy(&key).into_owned(),
                        json: value.to_vec(),
                    })
                })),
        )
    }

    /// The first half of an ETRN, from the in-memory index: the messages
    /// concerned, each with whether it waits — a recipient there still
    /// held, or the message not due before now (released once, deferred
    /// since) — and is not being released by an earlier ETRN already;
    /// those that wait are marked as being released.
    pub(super) fn etrn_start(&self, domains: &[String]) -> EtrnStart {
        let domains = normalise_domains(domains);
        let now = now_unix();
        let mut index = lock(&self.inner.shared.index);
        let mut pending = index.etrn.pending(&domains);
        for (id, waits) in &mut pending {
            *waits =
                !index.etrn.releasing(id) && (*waits || index.due_of(id).is_some_and(|t| t > now));
            if *waits {
                index.etrn.start_release(id);
            }
        }
        drop(index);
        EtrnStart::new(domains, pending)
    }

    /// Ids of the messages in the schedule index (every message that is
    /// neither held nor finished).
    pub(super) fn scheduled(&self) -> Vec<QueueId> {
        lock(&self.inner.shared.index).scheduled()
    }

    /// Move a message's next attempt in the schedule index only.
    pub(super) fn postpone(&self, id: &str, due: u64) -> bool {
        let mut index = lock(&self.inner.shared.index);
        let scheduled = index.due_of(id).is_some();
        if scheduled {
            index.set(id, Some(due));
        }
        scheduled
    }

    pub(super) fn due(&self, now: u64, limit: usize) -> Vec<QueueId> {
        lock(&self.inner.shared.index).due(now, limit)
    }

    pub(super) fn next_due(&self) -> Option<u64> {
        lock(&self.inner.shared.index).next_due()
    }

    pub(super) fn counts(&self, now: u64) -> QueueCounts {
        let index = lock(&self.inner.shared.index);
        let (scheduled, due) = index.scheduled_and_due(now);
        QueueCounts {
            due,
            waiting: scheduled - due,
            held: index.messages().saturating_sub(scheduled),
        }
    }

    /// Number of messages in the queue (counted in memory: sled's own
    /// count reads the whole tree).
    pub(super) fn len(&self) -> usize {
        lock(&self.inner.shared.index).messages()
    }

    /// Lease up to `limit` due messages no unexpired lease holds.
    pub(super) fn lease_due(&self, now: u64, limit: usize, ttl: Duration) -> Vec<Lease> {
        if limit == 0 {
            return Vec::new();
        }
        let at = Instant::now();
        let mut leases = lock(&self.inner.leases);
        leases.retain(|_, (_, until)| *until > at);
        let mut out = Vec::new();
        // Leased ones are passed over: ask for as many more as are leased.
        let candidates = lock(&self.inner.shared.index).due(now, limit + leases.len());
        for id in candidates {
            if out.len() == limit {
                break;
            }
            if leases.contains_key(&id) {
                continue;
            }
            let token = self.inner.last_token.fetch_add(1, Ordering::Relaxed) + 1;
            leases.insert(id.clone(), (token, at + ttl));
            out.push(Lease::new(id, token));
        }
        out
    }

    /// Extend a lease still held.
    pub(super) fn renew_lease(&self, lease: &Lease, ttl: Duration) -> bool {
        match lock(&self.inner.leases).get_mut(lease.id()) {
            Some((token, until)) if *token == lease.token() => {
                *until = Instant::now() + ttl;
                true
            }
            _ => false,
        }
    }

    /// Give a lease back (if it is still this one).
    pub(super) fn end_lease(&self, lease: Lease) {
        let mut leases = lock(&self.inner.leases);
        if leases
            .get(lease.id())
            .is_some_and(|(token, _)| *token == lease.token())
        {
            leases.remove(lease.id());
        }
    }
}
