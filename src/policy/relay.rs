//! Relay control: which recipients a client may hand us.
//!
//! Recipients in our own domains (local, relay, backup-mx, etrn, fax) are
//! taken from anyone; any other domain — a remote domain, a `smarthost`
//! domain — only from clients that may relay: authenticated users (SMTP
//! AUTH) and the networks in `[relay] allow`. The default allows nobody.
//! (Fax recipients then need a sender the fax user directory allows:
//! src/server/session/fax.rs. `FAX=…@` a domain that is not ours is an
//! ordinary remote address.)
//!
//! Address tricks never reach another destination. The path parser
//! (src/server/path.rs) drops source routes (`@us:u@d` is `u@d`, which is
//! then checked as itself) and keeps the quotes of a quoted local part;
//! here:
//! - an address literal (`u@[192.0.2.1]`) is refused: we route by domain
//!   name only;
//! - a local part with sender-specified routing — `%` (the percent hack),
//!   `!` (a bang path) or `@` (a quoted `"u@d"`) — is refused in our own
//!   domains, whoever asks: we would deliver it to a mailbox of that odd
//!   name, or hand it to a host behind us that might honour the route.
//!   To a remote domain it goes, as written, only from a client that may
//!   relay anyway (the domain after the last `@` is its destination).

use crate::router::{Route, Router};
use faxmta_queue::Reply;

/// Whether the local part of `address` carries a route of its own (`%`,
/// `!`, or an `@` inside quotes).
pub fn has_routing(address: &str) -> bool {
    match address.rsplit_once('@') {
        Some((local, _)) => local.contains(['%', '!', '@']),
        None => false,
    }
}

fn routing(address: &str) -> Reply {
    Reply::new(
        550,
        "5.7.1",
        format!(
            "<{address}>: Recipient address rejected: sender-specified routing (%, ! or @ in the local part) is not accepted"
        ),
    )
}

/// The route of one RCPT, or the reply that refuses it. `may_relay`: the
/// client is authenticated or in `[relay] allow`.
pub fn check(router: &Router, may_relay: bool, address: &str) -> Result<Route, Reply> {
    if let Some((_, domain)) = address.rsplit_once('@') {
        if domain.starts_with('[') {
            return Err(Reply::new(
                550,
                "5.7.1",
                format!(
                    "<{address}>: Recipient address rejected: mail to an address literal is not accepted here"
                ),
            ));
        }
    }
    let route = match router.resolve(address) {
        // Routing characters in our own domains: refused as such, before
        // whether the user exists.
        Ok(route) if has_routing(address) && !route.is_relay() => Err(routing(address)),
        Err(_) if has_routing(address) => Err(routing(address)),
        other => other,
    }?;
    if route.is_relay() && !may_relay {
        return Err(Reply::new(
            554,
            "5.7.1",
            format!("<{address}>: Relay access denied"),
        ));
    }
    Ok(route)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::path::Path;

    fn router() -> Router {
        let text = "hostname = \"mx.example.test\"\n\
            [[domain]]\nname = \"example.test\"\nkind = \"local\"\ndeliver = \"maildir:/m/{user}\"\n\
            [[domain]]\nname = \"branch.test\"\nkind = \"relay\"\nhosts = [\"127.0.0.5\"]\n";
        Router::new(&Config::parse(Path::new("t.toml"), text).unwrap())
    }

    #[test]
    fn tricks_never_leave_for_another_destination() {
        let r = router();
        for may_relay in [false, true] {
            for trick in [
                "u%elsewhere.org@example.test",
                "elsewhere.org!u@example.test",
                "\"u@elsewhere.org\"@example.test",
                "u%elsewhere.org@branch.test",
                "\"u@elsewhere.org\"@branch.test",
                "u@[192.0.2.1]",
                "u%elsewhere.org@[127.0.0.1]",
            ] {
                let e = check(&r, may_relay, trick).unwrap_err();
                assert_eq!((e.code, e.status.as_str()), (550, "5.7.1"), "{trick}");
            }
        }
        // Plain remote addresses: only for clients that may relay.
        assert_eq!(check(&r, false, "u@elsewhere.org").unwrap_err().code, 554);
        assert!(check(&r, true, "u@elsewhere.org").unwrap().is_relay());
        // A percent in a remote domain's local part is that domain's own
        // business: relayed to it, for clients that may relay only.
        assert_eq!(check(&r, false, "u%x@elsewhere.org").unwrap_err().code, 554);
        assert_eq!(
            check(&r, true, "u%x@elsewhere.org").unwrap(),
            Route::Remote {
                domain: "elsewhere.org".into()
            }
        );
        assert!(check(&r, false, "alice@example.test").is_ok());
        assert!(matches!(
            check(&r, false, "a@branch.test"),
            Ok(Route::Relay { .. })
        ));
        assert!(has_routing("\"a@b\"@c"));
        assert!(!has_routing("a.b+c@d"));
    }
}
