//! The value types of the configuration file and their parsing: durations
//! (`30s`, `5m`, `4h`, `5d`), sizes (`35M`), domain names, delivery
//! targets and the outbound TLS setting. Parse errors become TOML errors,
//! so they carry the file's line.

use faxmta_transport::{HostPort, LmtpTarget};
use serde::{de, Deserialize, Deserializer};
use std::fmt;
use std::path::PathBuf;

/// A duration written as `30s`, `5m`, `4h`, `5d`, `1w` or plain seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Duration(pub u64);

impl Duration {
    pub fn std(self) -> std::time::Duration {
        std::time::Duration::from_secs(self.0)
    }
}

/// Parse `30s`, `5m`, `4h`, `5d`, `1w` or a number of seconds.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| {
        format!("invalid duration {text:?}: expected a number with s, m, h, d or w")
    })?;
    let mult = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => {
            return Err(format!(
                "invalid duration {text:?}: unit must be s, m, h, d or w"
            ))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("duration {text:?} is too large"))
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration such as \"30s\", \"5m\", \"4h\" or \"5d\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
                u64::try_from(v)
                    .map(Duration)
                    .map_err(|_| E::custom("a duration cannot be negative"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
                parse_duration(v).map(Duration).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// A size in octets written as `35M`, `512K`, `1G` or a plain number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size(pub u64);

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Size;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a size such as 10485760, \"512K\", \"35M\" or \"1G\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Size, E> {
                u64::try_from(v)
                    .map(Size)
                    .map_err(|_| E::custom("a size cannot be negative"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Size, E> {
                let t = v.trim();
                let (num, mult) = match t.chars().last() {
                    Some('K' | 'k') => (&t[..t.len() - 1], 1024),
                    Some('M' | 'm') => (&t[..t.len() - 1], 1024 * 1024),
                    Some('G' | 'g') => (&t[..t.len() - 1], 1024 * 1024 * 1024),
                    _ => (t, 1),
                };
                num.trim()
                    .parse::<u64>()
                    .ok()
                    .and_then(|n| n.checked_mul(mult))
                    .map(Size)
                    .ok_or_else(|| {
                        E::custom(format!(
                            "invalid size {v:?}: expected a number with K, M or G"
                        ))
                    })
            }
        }
        d.deserialize_any(V)
    }
}

/// A domain name, checked and lower-cased.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DomainName(pub String);

impl<'de> Deserialize<'de> for DomainName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let lower = s.trim().trim_end_matches('.').to_ascii_lowercase();
        let valid = !lower.is_empty()
            && lower.len() <= 253
            && lower.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if valid {
            Ok(DomainName(lower))
        } else {
            Err(de::Error::custom(format!("invalid domain name {s:?}")))
        }
    }
}

/// Where a local domain's mail goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deliver {
    /// A Maildir path template; `{domain}` and `{user}` are filled in.
    Maildir(String),
    /// An LMTP server: `lmtp:HOST:PORT` or `lmtp:unix:PATH`.
    Lmtp(LmtpTarget),
}

/// Parse a `deliver` value: `maildir:PATH`, `lmtp:HOST:PORT` (a host
/// name, an IPv4 address or `[IPv6]`) or `lmtp:unix:PATH`.
pub fn parse_deliver(text: &str) -> Result<Deliver, String> {
    match text.split_once(':') {
        Some(("maildir", path)) if !path.is_empty() => Ok(Deliver::Maildir(path.to_string())),
        Some(("lmtp", rest)) => parse_lmtp(rest).map(Deliver::Lmtp),
        _ => Err(format!(
            "invalid deliver {text:?}: expected \"maildir:PATH\" (PATH may use {{domain}} and \
             {{user}}), \"lmtp:HOST:PORT\" or \"lmtp:unix:PATH\""
        )),
    }
}

/// The part of `lmtp:…` after the colon.
fn parse_lmtp(text: &str) -> Result<LmtpTarget, String> {
    if let Some(path) = text.strip_prefix("unix:") {
        // sockaddr_un holds 108 octets, the final NUL included.
        if path.is_empty() || path.len() > 107 || path.contains('\0') {
            return Err(format!(
                "invalid deliver \"lmtp:{text}\": expected \"lmtp:unix:PATH\" with the path of \
                 the server's socket (at most 107 octets)"
            ));
        }
        return Ok(LmtpTarget::Unix(PathBuf::from(path)));
    }
    // LMTP has no well-known port (RFC 2033 §5: never 25): it must be given.
    let has_port = match text.strip_prefix('[') {
        Some(rest) => rest.contains("]:"),
        None => text.contains(':'),
    };
    let host = parse_host(text).ok().filter(|_| has_port).ok_or_else(|| {
        format!(
            "invalid deliver \"lmtp:{text}\": expected \"lmtp:HOST:PORT\" (a host name, an \
             IPv4 address or [IPv6], and the port) or \"lmtp:unix:PATH\""
        )
    })?;
    Ok(LmtpTarget::Tcp(HostPort {
        name: host.name,
        port: host.port,
    }))
}

impl<'de> Deserialize<'de> for Deliver {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_deliver(&s).map_err(de::Error::custom)
    }
}

/// A relay host: `host`, `host:port`, `IP:port` or `[IPv6]:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSpec {
    pub name: String,
    pub port: u16,
}

/// Parse a relay host; the port defaults to 25.
pub fn parse_host(text: &str) -> Result<HostSpec, String> {
    let t = text.trim();
    let bad = || format!("invalid host {text:?}: expected host, host:port or [IPv6]:port");
    let (name, port) = if let Some(rest) = t.strip_prefix('[') {
        let (ip, after) = rest.split_once(']').ok_or_else(bad)?;
        ip.parse::<std::net::Ipv6Addr>().map_err(|_| bad())?;
        match after.strip_prefix(':') {
            Some(p) => (ip, p.parse().map_err(|_| bad())?),
            None if after.is_empty() => (ip, 25),
            None => return Err(bad()),
        }
    } else {
        match t.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h, p.parse().map_err(|_| bad())?),
            Some(_) => return Err(bad()),
            None => (t, 25),
        }
    };
    let valid_name = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'));
    if !valid_name || port == 0 {
        return Err(bad());
    }
    Ok(HostSpec {
        name: name.to_ascii_lowercase(),
        port,
    })
}

impl<'de> Deserialize<'de> for HostSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_host(&s).map_err(de::Error::custom)
    }
}

/// TLS for outbound SMTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OutboundTls {
    /// Never STARTTLS.
    Off,
    /// STARTTLS when offered, any certificate (recorded and logged).
    #[default]
    Opportunistic,
    /// STARTTLS must succeed, any certificate.
    Required,
    /// STARTTLS must succeed and the certificate must verify.
    Verify,
    /// DANE required: signed MX and TLSA records, a matching certificate.
    Dane,
}

impl OutboundTls {
    /// The transport's policy for this setting.
    pub fn policy(self) -> faxmta_smtp::TlsPolicy {
        use faxmta_smtp::TlsPolicy;
        match self {
            OutboundTls::Off => TlsPolicy::Off,
            OutboundTls::Opportunistic => TlsPolicy::Opportunistic,
            OutboundTls::Required => TlsPolicy::Required,
            OutboundTls::Verify => TlsPolicy::Verify,
            OutboundTls::Dane => TlsPolicy::Dane,
        }
    }
}

/// The secret kept in `file` (a password): its first line, without the
/// line end. `key` names the setting in the errors: the file cannot be
/// read, or its first line is empty.
pub fn secret_from_file(key: &str, file: &std::path::Path) -> Result<String, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("{key} {}: cannot read it: {e}", file.display()))?;
    let line = text.lines().next().unwrap_or("").trim_end_matches('\r');
    if line.is_empty() {
        return Err(format!("{key} {}: the first line is empty", file.display()));
    }
    Ok(line.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("90"), Ok(90));
        assert_eq!(parse_duration("5m"), Ok(300));
        assert_eq!(parse_duration("1w"), Ok(604_800));
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn relay_hosts() {
        let h = |s: &str| parse_host(s).map(|h| (h.name, h.port));
        assert_eq!(h("mail.Example.com"), Ok(("mail.example.com".into(), 25)));
        assert_eq!(h("127.0.0.3:2525"), Ok(("127.0.0.3".into(), 2525)));
        assert_eq!(h("[::1]:26"), Ok(("::1".into(), 26)));
        assert_eq!(h("[::1]"), Ok(("::1".into(), 25)));
        for bad in ["", "host:", "host:x", "[::1", "::1:25", "a b:25", "host:0"] {
            assert!(h(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn deliver_targets() {
        let tcp = |name: &str, port| {
            Ok(Deliver::Lmtp(LmtpTarget::Tcp(HostPort {
                name: name.into(),
                port,
            })))
        };
        assert_eq!(
            parse_deliver("maildir:/m/{user}"),
            Ok(Deliver::Maildir("/m/{user}".into()))
        );
        assert_eq!(
            parse_deliver("lmtp:Mail.Example.com:24"),
            tcp("mail.example.com", 24)
        );
        assert_eq!(parse_deliver("lmtp:127.0.0.5:2424"), tcp("127.0.0.5", 2424));
        assert_eq!(parse_deliver("lmtp:[::1]:24"), tcp("::1", 24));
        assert_eq!(
            parse_deliver("lmtp:unix:/var/run/dovecot/lmtp"),
            Ok(Deliver::Lmtp(LmtpTarget::Unix(
                "/var/run/dovecot/lmtp".into()
            )))
        );
        let long = format!("lmtp:unix:/{}", "x".repeat(107));
        for bad in [
            "maildir:",
            "mbox:/x",
            "lmtp:",
            "lmtp:host",
            "lmtp:[::1]",
            "lmtp:::1:24",
            "lmtp:host:0",
            "lmtp:host:x",
            "lmtp:unix:",
            long.as_str(),
        ] {
            assert!(parse_deliver(bad).is_err(), "{bad}");
        }
    }
}
