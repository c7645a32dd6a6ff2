//! The SIP engine of `[fax.sip]`: its settings made from the
//! configuration (the trunks' password files read here) and the engine
//! started on the server's runtime.

use crate::config::fax::sip::{Codec, EcMode, SipTransport, T38Mode};
use crate::config::Config;
use faxmta_fax::engine::sip::media::{UdptlEc, G711};
use faxmta_fax::engine::sip::settings::{self, SipSettings, Transport, Trunk};
use faxmta_fax::engine::sip::SipEngine;

/// The settings of `[fax.sip]`.
pub fn settings(config: &Config) -> Result<SipSettings, String> {
    let fax = &config.fax;
    let sip = &fax.sip;
    let mut t38_params = faxmta_fax::engine::sip::media::T38Params {
        ec: match sip.t38_ec {
            EcMode::Redundancy => UdptlEc::Redundancy,
            EcMode::Fec => UdptlEc::Fec,
            EcMode::None => UdptlEc::None,
        },
        ..Default::default()
    };
    t38_params.max_datagram = Some(sip.t38_max_datagram);
    let mut trunks = Vec::new();
    for t in &sip.trunks {
        let password = t
            .password_file
            .as_deref()
            .map(|f| {
                crate::config::secret_from_file(
                    &format!("[[fax.sip.trunk]] {:?} password_file", t.name),
                    f,
                )
            })
            .transpose()?;
        let host = t
            .proxy
            .rsplit_once(':')
            .map_or(t.proxy.as_str(), |(h, _)| h)
            .to_string();
        let domain = t.domain.clone().unwrap_or(host);
        trunks.push(Trunk {
            name: t.name.clone(),
            proxy: t.proxy.clone(),
            transport: match t.transport {
                SipTransport::Udp => Transport::Udp,
                SipTransport::Tcp => Transport::Tcp,
            },
            dial: t
                .dial
                .clone()
                .unwrap_or_else(|| format!("sip:{{e164}}@{domain}")),
            domain,
            register: t.register,
            user: t.user.clone(),
            auth_user: t.auth_user.clone(),
            password,
            expires: t.expires.std(),
            caller_id: t.caller_id.clone().unwrap_or_else(|| {
                if t.user.is_empty() {
                    "{tsi}".into()
                } else {
                    "{user}".into()
                }
            }),
            max_calls: t.max_calls,
            peers: t.peers.clone(),
        });
    }
    Ok(SipSettings {
        listen: sip.listen,
        public_address: sip.public_address,
        media_ip: sip.media_ip.unwrap_or(sip.listen.ip()),
        media_ports: sip.media_port_range()?,
        t38: match sip.t38 {
            T38Mode::Reinvite => settings::T38Mode::Reinvite,
            T38Mode::Offer => settings::T38Mode::Offer,
            T38Mode::Off => settings::T38Mode::Off,
        },
        t38_params,
        codecs: sip
            .codecs
            .iter()
            .map(|c| match c {
                Codec::Pcmu => G711::Ulaw,
                Codec::Pcma => G711::Alaw,
            })
            .collect(),
        ring_timeout: sip.ring_timeout.std(),
        received: sip.received.clone(),
        csid: fax.tsi.clone(),
        trunks,
    })
}

/// The SIP engine, started (its UDP port bound, registrations begun).
/// Called from the server's (multi-threaded) runtime.
pub fn engine(config: &Config) -> Result<SipEngine, String> {
    let settings = settings(config)?;
    let handle = tokio::runtime::Handle::try_current()
        .map_err(|_| "[fax] the SIP engine runs in the server only".to_string())?;
    tokio::task::block_in_place(|| handle.block_on(SipEngine::start(settings)))
        .map_err(|e| format!("[fax] SIP engine: {e}"))
}
