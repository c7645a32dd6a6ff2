//! The SIP engine's settings, as the daemon's `[fax.sip]` gives them: our
//! SIP and media addresses, T.38 and audio preferences, and the trunks
//! tried in order for each call.

use super::media::{T38Params, G711};
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

/// How T.38 is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum T38Mode {
    /// Calls start as audio; the answering side (us, when we receive)
    /// switches them to T.38 by re-INVITE (T.38 Annex D), and a re-INVITE
    /// to T.38 from the far end is accepted.
    Reinvite,
    /// Outgoing calls offer T.38 at once (audio again when refused with
    /// 488/415); incoming ones behave as with `Reinvite`.
    Offer,
    /// G.711 audio only: T.38 offers are refused.
    Off,
}

/// The SIP transport of a trunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// A SIP trunk, PBX or gateway.
#[derive(Debug, Clone)]
pub struct Trunk {
    /// Its name in logs and metrics.
    pub name: String,
    /// Where requests go: `HOST:PORT`.
    pub proxy: String,
    pub transport: Transport,
    /// The SIP domain of the account (AOR and From host).
    pub domain: String,
    /// Register `sip:user@domain` at the proxy.
    pub register: bool,
    /// The account: AOR user and, unless `auth_user`, the digest user.
    pub user: String,
    pub auth_user: Option<String>,
    pub password: Option<String>,
    /// Registration lifetime asked for.
    pub expires: Duration,
    /// The Request-URI template: `{e164}` (the number as E.164, `+` and
    /// digits) or `{number}` (the dial string of the dial plan).
    pub dial: String,
    /// The From user template: `{tsi}`, `{user}`.
    pub caller_id: String,
    /// Calls at once over this trunk.
    pub max_calls: usize,
    /// Source addresses allowed to call us over this trunk (the proxy's
    /// own address is added when it is an IP).
    pub peers: Vec<IpAddr>,
}

impl Trunk {
    /// The Request-URI for the number `e164` whose dial string is `dial`.
    pub fn request_uri(&self, e164: &str, dial: &str) -> String {
        self.dial.replace("{e164}", e164).replace("{number}", dial)
    }

    /// The From user for a call with station identity `tsi`: the template
    /// with `{tsi}` (its digits and `+`) and `{user}` filled; the account
    /// when that leaves nothing.
    pub fn caller(&self, tsi: &str) -> String {
        let digits: String = tsi
            .chars()
            .filter(|c| c.is_ascii_digit() || *c == '+')
            .collect();
        let user = self
            .caller_id
            .replace("{tsi}", &digits)
            .replace("{user}", &self.user);
        if user.is_empty() {
            if self.user.is_empty() {
                "faxmta".into()
            } else {
                self.user.clone()
            }
        } else {
            user
        }
    }
}

/// Everything the SIP engine needs.
#[derive(Debug, Clone)]
pub struct SipSettings {
    /// Our SIP address (UDP; TCP too when a trunk uses it).
    pub listen: SocketAddr,
    /// The address in Contact/Via when not `listen` (NAT).
    pub public_address: Option<SocketAddr>,
    /// Where our media is received.
    pub media_ip: IpAddr,
    /// Media ports (one even port per call).
    pub media_ports: RangeInclusive<u16>,
    pub t38: T38Mode,
    /// What we offer and accept for T.38.
    pub t38_params: T38Params,
    /// Audio laws in our order of preference.
    pub codecs: Vec<G711>,
    /// How long an outgoing call may ring.
    pub ring_timeout: Duration,
    /// Where received faxes are written (`NAME.tif` and its record).
    pub received: PathBuf,
    /// Our CSID when we answer.
    pub csid: String,
    /// Tried in order for each outgoing call.
    pub trunks: Vec<Trunk>,
}
