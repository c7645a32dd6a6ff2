//! The ETRN index: for each domain, the messages with a recipient there
//! that waits for (or was released by) ETRN (RFC 1985), kept in memory
//! beside the schedule index.
//!
//! It lets an ETRN be answered at once with its count — without reading
//! the queue — and lets the release read only the messages concerned.
//! A message is in the index under a domain while it has an active
//! recipient in that domain whose `etrn` mark is set; the entry says
//! whether one of them is still held.

use crate::envelope::QueueId;
use crate::etrn::Pending;
pub(crate) use crate::etrn::{envelope_marks, marks, Marks};
use std::collections::{HashMap, HashSet};

#[derive(Default)]
pub(crate) struct EtrnIndex {
    by_domain: HashMap<String, HashMap<QueueId, bool>>,
    of: HashMap<QueueId, Marks>,
    /// Messages an ETRN answered for and has yet to release: a second
    /// ETRN meanwhile finds them under way, not waiting. A message
    /// leaves the set at its next change.
    releasing: HashSet<QueueId>,
}

impl EtrnIndex {
    /// Replace what the index holds for `id` (empty: nothing).
    pub fn set(&mut self, id: &str, marks: Marks) {
        self.releasing.remove(id);
        if marks.is_empty() && !self.of.contains_key(id) {
            return;
        }
        if let Some(old) = self.of.remove(id) {
            for (domain, _) in old {
                if let Some(ids) = self.by_domain.get_mut(&domain) {
                    ids.remove(id);
                    if ids.is_empty() {
                        self.by_domain.remove(&domain);
                    }
                }
            }
        }
        if marks.is_empty() {
            return;
        }
        for (domain, held) in &marks {
            self.by_domain
                .entry(domain.clone())
                .or_default()
                .insert(id.to_string(), *held);
        }
        self.of.insert(id.to_string(), marks);
    }

    /// Whether an ETRN answered for `id` and has yet to release it.
    pub fn releasing(&self, id: &str) -> bool {
        self.releasing.contains(id)
    }

    /// An ETRN answered for `id`: it is being released.
    pub fn start_release(&mut self, id: &str) {
        self.releasing.insert(id.to_string());
    }

    /// The messages concerned by an ETRN for `domains` (lower case).
    pub fn pending(&self, domains: &[String]) -> Pending {
        let mut seen: HashMap<&str, bool> = HashMap::new();
        for d in domains {
            for (id, held) in self.by_domain.get(d).into_iter().flatten() {
                *seen.entry(id.as_str()).or_default() |= *held;
            }
        }
        seen.into_iter()
            .map(|(id, held)| (id.to_string(), held))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::Etrn;

    #[test]
    fn domains_collect_their_messages_and_forget_them() {
        let mut index = EtrnIndex::default();
        let m = |list: &[(&str, Option<Etrn>, bool)]| {
            marks(list.iter().map(|(a, e, act)| (*a, *e, *act)))
        };
        index.set(
            "A",
            m(&[
                ("x@Customer.Test.", Some(Etrn::Held), true),
                ("y@customer.test", Some(Etrn::Released), true),
                ("z@other.test", Some(Etrn::Released), true),
                ("w@plain.test", None, true),
                ("v@gone.test", Some(Etrn::Held), false),
            ]),
        );
        index.set("B", m(&[("q@customer.test", Some(Etrn::Released), true)]));
        let sorted = |mut p: Pending| {
            p.sort();
            p
        };
        let p = sorted(index.pending(&["customer.test".into()]));
        assert_eq!(p, vec![("A".to_string(), true), ("B".to_string(), false)]);
        let both = sorted(index.pending(&["customer.test".into(), "other.test".into()]));
        assert_eq!(both, p);
        assert!(index.pending(&["plain.test".into()]).is_empty());
        assert!(index.pending(&["gone.test".into()]).is_empty());

        // A released, then finished: gone from the index.
        index.set("A", m(&[("x@customer.test", Some(Etrn::Released), true)]));
        assert!(index
            .pending(&["customer.test".into()])
            .iter()
            .all(|(_, held)| !held));
        assert!(index.pending(&["other.test".into()]).is_empty());
        index.set("A", Vec::new());
        index.set("B", Vec::new());
        assert!(index.by_domain.is_empty() && index.of.is_empty());
    }
}
