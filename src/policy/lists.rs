//! IP allow- and deny-lists (CIDR, IPv4 and IPv6): the global `[policy]
//! deny`, a listener's `allow` and `deny` (both at connect), and a
//! domain's `allow_from` (at RCPT).

use crate::config::ListenerConfig;
use faxmta_queue::Reply;
use ipnet::IpNet;
use std::net::IpAddr;

/// An IPv4 client seen through an IPv6 socket (`::ffff:a.b.c.d`) is
/// matched as IPv4.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// Whether `ip` is in one of `nets`.
pub fn contains(nets: &[IpNet], ip: IpAddr) -> bool {
    let ip = canonical(ip);
    nets.iter().any(|net| net.contains(&ip))
}

/// Whether a client at `ip` may talk to `listener`: refused (554 5.7.1)
/// when it is in `[policy] deny` or the listener's `deny`, or when the
/// listener has an `allow` list it is not in. A deny entry wins over an
/// allow entry.
pub fn connect(global_deny: &[IpNet], listener: &ListenerConfig, ip: IpAddr) -> Result<(), Reply> {
    let why = if contains(global_deny, ip) {
        "is on the deny list"
    } else if contains(&listener.deny, ip) {
        "is on this listener's deny list"
    } else if !listener.allow.is_empty() && !contains(&listener.allow, ip) {
        "is not on this listener's allow list"
    } else {
        return Ok(());
    };
    Err(Reply::new(
        554,
        "5.7.1",
        format!("Access denied: client [{}] {why}", canonical(ip)),
    ))
}

/// A domain's `allow_from`: empty lets every client send to it.
pub fn allow_from(nets: &[IpNet], ip: IpAddr, address: &str, domain: &str) -> Result<(), Reply> {
    if nets.is_empty() || contains(nets, ip) {
        return Ok(());
    }
    Err(Reply::new(
        550,
        "5.7.1",
        format!(
            "<{address}>: Recipient address rejected: client [{}] may not send mail to {domain}",
            canonical(ip)
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::path::Path;

    fn listener(extra: &str) -> ListenerConfig {
        let text = format!("[[listener]]\naddr = \"127.0.0.1:25\"\nrole = \"mx\"\n{extra}\n");
        Config::parse(Path::new("t.toml"), &text).unwrap().listeners[0].clone()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn deny_wins_and_allow_limits() {
        let l =
            listener("allow = [\"127.0.0.0/24\", \"2001:db8::/32\"]\ndeny = [\"127.0.0.9/32\"]");
        let global: Vec<IpNet> = vec!["192.0.2.0/24".parse().unwrap()];
        assert!(connect(&global, &l, ip("127.0.0.1")).is_ok());
        assert!(connect(&global, &l, ip("::ffff:127.0.0.2")).is_ok());
        assert!(connect(&global, &l, ip("2001:db8::1")).is_ok());
        let e = connect(&global, &l, ip("127.0.0.9")).unwrap_err();
        assert_eq!((e.code, e.status.as_str()), (554, "5.7.1"));
        assert!(e.text.contains("deny list"), "{e}");
        let e = connect(&global, &l, ip("127.0.1.1")).unwrap_err();
        assert!(e.text.contains("not on this listener's allow list"), "{e}");
        let open = listener("");
        assert!(connect(&[], &open, ip("203.0.113.1")).is_ok());
        assert!(connect(&global, &open, ip("192.0.2.7")).is_err());
    }

    #[test]
    fn allow_from_is_all_when_empty() {
        let nets: Vec<IpNet> = vec!["127.0.0.2/32".parse().unwrap()];
        assert!(allow_from(&[], ip("127.0.0.1"), "a@d.test", "d.test").is_ok());
        assert!(allow_from(&nets, ip("127.0.0.2"), "a@d.test", "d.test").is_ok());
        let e = allow_from(&nets, ip("127.0.0.1"), "a@d.test", "d.test").unwrap_err();
        assert_eq!((e.code, e.status.as_str()), (550, "5.7.1"));
    }
}
