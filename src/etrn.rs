//! ETRN (RFC 1985), both sides.
//!
//! The server side (here): a client asks us to start delivering the mail
//! we hold for a domain of kind `etrn`. `ETRN domain` names one domain,
//! `ETRN @domain` the domain and its subdomains, and `ETRN #queue` a queue
//! — which, as Postfix does, is taken as a domain name. Only a client in
//! a domain's `release_from` releases it; the release makes the domain's
//! waiting recipients due now (`release_etrn` of the queue), and the scheduler
//! delivers them like any other mail from then on. Mail that arrives
//! later is held again, until the next ETRN (like Postfix's flush).
//!
//! The client side (`etrn/client.rs`): `faxmta etrn` and the daemon's
//! scheduled `[[etrn_client]]`s.

pub mod client;

use crate::config::valid_node;
use crate::router::{EtrnRoute, Router};
use faxmta_queue::{EtrnRelease, Reply, Store};
use std::net::IpAddr;

/// What an ETRN argument asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// Exactly this domain (`domain`, or `#queue` taken as a domain).
    Domain(String),
    /// This domain and its subdomains (`@domain`).
    WithSubdomains(String),
}

impl Node {
    /// Parse an ETRN argument; `None` when it is no domain name.
    pub fn parse(arg: &str) -> Option<Node> {
        if !valid_node(arg) {
            return None;
        }
        let lower = arg.to_ascii_lowercase();
        let bare = |d: &str| d.trim_end_matches('.').to_string();
        Some(match lower.strip_prefix('@') {
            Some(d) => Node::WithSubdomains(bare(d)),
            None => Node::Domain(bare(lower.strip_prefix('#').unwrap_or(&lower))),
        })
    }

    /// Whether `domain` (lower case) is covered.
    pub fn covers(&self, domain: &str) -> bool {
        match self {
            Node::Domain(d) => domain == d,
            Node::WithSubdomains(d) => {
                domain == d
                    || domain
                        .strip_suffix(d.as_str())
                        .is_some_and(|head| head.ends_with('.'))
            }
        }
    }
}

/// The ETRN domains `node` covers, and of those the ones `client` may
/// release; or the RFC 1985 refusal.
fn allowed<'a>(
    router: &'a Router,
    client: IpAddr,
    arg: &str,
    node: &Node,
) -> Result<Vec<&'a EtrnRoute>, Reply> {
    let covered: Vec<&EtrnRoute> = router
        .etrn_domains()
        .filter(|e| node.covers(&e.domain))
        .collect();
    if covered.is_empty() {
        return Err(Reply::new(
            459,
            "4.7.1",
            format!("Node {arg} not allowed: no mail is held for it here"),
        ));
    }
    let mine: Vec<&EtrnRoute> = covered
        .into_iter()
        .filter(|e| e.may_release(client))
        .collect();
    if mine.is_empty() {
        return Err(Reply::new(
            459,
            "4.7.1",
            format!("Node {arg} not allowed: client {client} may not release it"),
        ));
    }
    Ok(mine)
}

/// Answer `ETRN arg` from `client`: release what it may, and say so in
/// RFC 1985's words. We always know how many messages were waiting, so
/// the answer is 253 (with the count), 252 (its mail is being delivered
/// already, after an earlier ETRN) or 251 (nothing waiting) — never the
/// count-less 250.
pub async fn release(router: &Router, store: &Store, client: IpAddr, arg: &str) -> Reply {
    let Some(node) = Node::parse(arg) else {
        return Reply::new(
            501,
            "5.5.4",
            "Syntax: ETRN domain, ETRN @domain or ETRN #queue",
        );
    };
    let domains: Vec<String> = match allowed(router, client, arg, &node) {
        Ok(routes) => routes.iter().map(|e| e.domain.clone()).collect(),
        Err(reply) => return reply,
    };
    let unable = |e: String| {
        tracing::error!("ETRN {arg}: cannot release: {e}");
        Reply::new(
            458,
            "4.3.0",
            format!("Unable to queue messages for node {arg}"),
        )
    };
    // The answer comes at once from the queue's in-memory index; the
    // messages are released after it, in the background (RFC 1985's 253
    // says the delivery "started"). A crash before the release is on
    // disk leaves the mail held, as before the ETRN: the client asks
    // again, nothing is lost.
    if store.is_broken() {
        return unable("the queue is being reopened after a write error".into());
    }
    let start = store.etrn_start(&domains);
    let result = start.counts;
    if result == EtrnRelease::default() {
        return Reply::new(
            251,
            "2.0.0",
            format!("OK, no messages waiting for node {arg}"),
        );
    }
    let queue = store.clone();
    let (node, names) = (arg.to_string(), domains.join(", "));
    let release = tokio::task::spawn_blocking(move || start.release(&*queue));
    let queue = store.clone();
    tokio::spawn(async move {
        let done = match release.await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return tracing::error!("ETRN {node}: cannot release: {e}"),
            Err(e) => return tracing::error!("ETRN {node}: cannot release: {e}"),
        };
        if let Err(e) = queue.sync().await {
            tracing::warn!("ETRN {node}: release not synced: {e}");
        }
        tracing::info!("ETRN {node}: {done} message(s) released for {names}");
    });
    if result.released > 0 {
        Reply::new(
            253,
            "2.0.0",
            format!(
                "OK, {} pending messages for node {arg} started",
                result.released
            ),
        )
    } else if result.in_progress > 0 {
        Reply::new(
            252,
            "2.0.0",
            format!("OK, pending messages for node {arg} started"),
        )
    } else {
        Reply::new(
            251,
            "2.0.0",
            format!("OK, no messages waiting for node {arg}"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use faxmta_queue::{Etrn, NewMessage, NewRecipient};
    use std::path::Path;

    #[test]
    fn nodes_and_what_they_cover() {
        let d = |s: &str| Some(Node::Domain(s.into()));
        assert_eq!(Node::parse("Customer.Test."), d("customer.test"));
        assert_eq!(Node::parse("#customer.test"), d("customer.test"));
        assert_eq!(
            Node::parse("@Customer.test"),
            Some(Node::WithSubdomains("customer.test".into()))
        );
        for bad in ["", "@", "#", "a b", "x@y", "a..b"] {
            assert_eq!(Node::parse(bad), None, "{bad}");
        }
        let at = Node::parse("@customer.test").unwrap();
        assert!(at.covers("customer.test") && at.covers("branch.customer.test"));
        assert!(!at.covers("othercustomer.test") && !at.covers("test"));
        let one = Node::parse("customer.test").unwrap();
        assert!(one.covers("customer.test") && !one.covers("branch.customer.test"));
    }

    #[tokio::test]
    async fn replies_follow_rfc_1985() {
        let config = Config::parse(
            Path::new("t.toml"),
            "[[domain]]\nname = \"customer.test\"\nkind = \"etrn\"\n\
             release_from = [\"192.0.2.0/24\"]\nhosts = [\"127.0.0.3\"]\n\
             [[domain]]\nname = \"branch.customer.test\"\nkind = \"etrn\"\n\
             release_from = [\"198.51.100.0/24\"]\n",
        )
        .unwrap();
        let router = Router::new(&config);
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (router, store) = (&router, &store);
        let ask = |client: &'static str, arg: &'static str| {
            release(router, store, client.parse().unwrap(), arg)
        };

        assert_eq!(ask("192.0.2.1", "bad name").await.code, 501);
        let r = ask("192.0.2.1", "elsewhere.test").await;
        assert_eq!((r.code, r.status.as_str()), (459, "4.7.1"), "{r}");
        let r = ask("203.0.113.1", "customer.test").await;
        assert_eq!(r.code, 459, "{r}");
        assert!(r.text.contains("may not release it"), "{r}");
        let r = ask("192.0.2.1", "customer.test").await;
        assert_eq!(
            r.to_string(),
            "251 2.0.0 OK, no messages waiting for node customer.test"
        );

        for rcpt in ["a@customer.test", "b@branch.customer.test"] {
            let msg = NewMessage {
                recipients: vec![NewRecipient {
                    etrn: Some(Etrn::Held),
                    ..NewRecipient::new(rcpt)
                }],
                ..Default::default()
            };
            let id = store.new_id().unwrap();
            store.enqueue(id, msg, b"x").await.unwrap();
        }
        // @customer.test covers both, but this client may release only one.
        let r = ask("192.0.2.1", "@customer.test").await;
        assert_eq!(
            r.to_string(),
            "253 2.0.0 OK, 1 pending messages for node @customer.test started"
        );
        let r = ask("192.0.2.1", "#customer.test").await;
        assert_eq!(r.code, 252, "already under way: {r}");
        let r = ask("198.51.100.7", "@customer.test").await;
        assert_eq!(r.code, 253, "{r}");
    }
}
