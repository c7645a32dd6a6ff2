//! `[fax.sip]` and its `[[fax.sip.trunk]]`s: faxmta as a SIP user agent
//! (`engine = "sip"`) — where it listens, its media, T.38, and the
//! trunks or PBXs it calls through and takes calls from.

use super::super::values::Duration;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;

/// `[fax.sip]`
#[cfg_attr(not(feature = "fax"), allow(dead_code))]
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SipConfig {
    /// Our SIP address: UDP, and TCP too when a trunk uses TCP.
    pub listen: SocketAddr,
    /// The address put in Contact and Via when it differs from `listen`
    /// (a public address in front of NAT).
    pub public_address: Option<SocketAddr>,
    /// The address of our media (RTP, UDPTL); default: `listen`'s, which
    /// must then not be the unspecified address.
    pub media_ip: Option<std::net::IpAddr>,
    /// The UDP ports for media, `"FIRST-LAST"`; one even port per call.
    pub media_ports: String,
    /// T.38: `"reinvite"` (calls start as audio, then switch to T.38 by
    /// re-INVITE, T.38 Annex D: we ask when we answer, and accept when
    /// asked), `"offer"` (offer T.38 at once, audio when refused) or
    /// `"off"` (G.711 audio only).
    pub t38: T38Mode,
    /// UDPTL error correction we offer: `"redundancy"`, `"fec"`, `"none"`.
    pub t38_ec: EcMode,
    /// The largest UDPTL datagram we accept (`T38FaxMaxDatagram`).
    pub t38_max_datagram: u32,
    /// The audio codecs, in our order of preference: `"pcmu"`, `"pcma"`.
    pub codecs: Vec<Codec>,
    /// How long an outgoing call may ring before it counts as no answer.
    pub ring_timeout: Duration,
    /// Where received faxes are written.
    pub received: PathBuf,
    /// `[[fax.sip.trunk]]`: tried in order for each call (failover).
    #[serde(rename = "trunk")]
    pub trunks: Vec<TrunkConfig>,
}

impl Default for SipConfig {
    fn default() -> Self {
        SipConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 5060)),
            public_address: None,
            media_ip: None,
            media_ports: "40000-40999".into(),
            t38: T38Mode::Reinvite,
            t38_ec: EcMode::Redundancy,
            t38_max_datagram: 400,
            codecs: vec![Codec::Pcmu, Codec::Pcma],
            ring_timeout: Duration(60),
            received: PathBuf::from("var/fax/inbound"),
            trunks: Vec::new(),
        }
    }
}

/// `[fax.sip] t38`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum T38Mode {
    Reinvite,
    Offer,
    Off,
}

/// `[fax.sip] t38_ec`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EcMode {
    Redundancy,
    Fec,
    None,
}

/// `[fax.sip] codecs`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Codec {
    Pcmu,
    Pcma,
}

/// `[fax.sip.trunk] transport`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SipTransport {
    #[default]
    Udp,
    Tcp,
}

/// `[[fax.sip.trunk]]`: a carrier's SIP trunk, a PBX, or a T.38 gateway.
#[cfg_attr(not(feature = "fax"), allow(dead_code))]
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrunkConfig {
    /// Its name in logs and metrics.
    pub name: String,
    /// Where our requests go (registrar and outbound proxy): `IP:PORT` or
    /// `HOST:PORT`.
    pub proxy: String,
    #[serde(default)]
    pub transport: SipTransport,
    /// The SIP domain of our account (AOR `sip:USER@DOMAIN`, From of our
    /// calls); default: the proxy's host.
    pub domain: Option<String>,
    /// Register `sip:USER@DOMAIN` at the proxy with digest authentication
    /// (else: a trunk peer by IP).
    #[serde(default)]
    pub register: bool,
    /// The account (AOR user, and the digest user unless `auth_user`).
    #[serde(default)]
    pub user: String,
    pub auth_user: Option<String>,
    /// A file whose first line is the password (digest authentication of
    /// REGISTER and INVITE).
    pub password_file: Option<PathBuf>,
    /// The registration lifetime asked for.
    #[serde(default = "default_expires")]
    pub expires: Duration,
    /// The Request-URI of an outgoing call: `{e164}` is the number as
    /// E.164 (`+` and digits), `{number}` its dial string (the dial
    /// plan's prefixes); default `sip:{e164}@DOMAIN`.
    pub dial: Option<String>,
    /// The user part of From (our caller id): `{tsi}` is the sender's
    /// station identity (digits and `+` of it), `{user}` the account;
    /// default `{user}`, or `{tsi}` when there is no account.
    pub caller_id: Option<String>,
    /// Calls at once over this trunk.
    #[serde(default = "default_max_calls")]
    pub max_calls: usize,
    /// Addresses allowed to call us over this trunk without a
    /// registration (the carrier's signalling IPs); the proxy's own
    /// address always is.
    #[serde(default)]
    pub peers: Vec<std::net::IpAddr>,
}

fn default_expires() -> Duration {
    Duration(300)
}

fn default_max_calls() -> usize {
    2
}

impl SipConfig {
    /// The media port range, `FIRST-LAST`.
    pub fn media_port_range(&self) -> Result<std::ops::RangeInclusive<u16>, String> {
        let bad = || {
            format!(
                "[fax.sip] media_ports {:?}: not FIRST-LAST (two port numbers, FIRST < LAST)",
                self.media_ports
            )
        };
        let (a, b) = self.media_ports.split_once('-').ok_or_else(bad)?;
        let (a, b): (u16, u16) = (
            a.trim().parse().map_err(|_| bad())?,
            b.trim().parse().map_err(|_| bad())?,
        );
        if a == 0 || a >= b {
            return Err(bad());
        }
        Ok(a..=b)
    }

    /// What a configuration with `engine = "sip"` must have; `None` when
    /// it is sound.
    pub fn check(&self) -> Result<(), String> {
        self.media_port_range()?;
        if self.trunks.is_empty() {
            return Err(
                "[fax.sip]: no [[fax.sip.trunk]]: the SIP engine has nowhere to call".into(),
            );
        }
        if self.media_ip.is_none() && self.listen.ip().is_unspecified() {
            return Err(format!(
                "[fax.sip] listen {} is the unspecified address: set media_ip to the address the far end sends media to",
                self.listen
            ));
        }
        if self.codecs.is_empty() && self.t38 != T38Mode::Offer {
            return Err("[fax.sip] codecs: empty, and T.38 is not offered first".into());
        }
        let mut names = std::collections::HashSet::new();
        for t in &self.trunks {
            let at = format!("[[fax.sip.trunk]] {:?}", t.name);
            if t.name.is_empty() || !names.insert(t.name.as_str()) {
                return Err(format!("{at}: every trunk needs its own name"));
            }
            if t.max_calls == 0 {
                return Err(format!("{at}: max_calls must be at least 1"));
            }
            if t.register && (t.user.is_empty() || t.password_file.is_none()) {
                return Err(format!(
                    "{at}: register = true needs user and password_file"
                ));
            }
            if t.register && t.expires.0 < 30 {
                return Err(format!("{at}: expires must be at least 30s"));
            }
            if let Some(dial) = &t.dial {
                if !(dial.contains("{number}") || dial.contains("{e164}"))
                    || !(dial.starts_with("sip:") || dial.starts_with("sips:"))
                {
                    return Err(format!(
                        "{at}: dial {dial:?} must be a sip: URI with {{e164}} or {{number}} in it"
                    ));
                }
            }
            if t.proxy
                .rsplit_once(':')
                .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
            {
                return Err(format!("{at}: proxy {:?} must be HOST:PORT", t.proxy));
            }
        }
        Ok(())
    }
}
