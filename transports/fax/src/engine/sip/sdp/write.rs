//! Writing our SDP through sdp-rs's types: the session lines (`o=` with
//! the dialog's [`SessionVersion`], `c=`, `t=0 0`), `m=audio` with its
//! `rtpmap`s, and `m=image … udptl t38` with its `T38…` attributes.

use super::SessionVersion;
use crate::engine::sip::media::{RateManagement, T38Params, UdptlEc, G711};
use sdp_rs::lines::{
    self,
    attribute::Rtpmap,
    common::{Addrtype, Nettype},
    media::{MediaType, ProtoType},
    Attribute,
};
use sdp_rs::{MediaDescription, SessionDescription};
use std::net::IpAddr;

fn addrtype(ip: IpAddr) -> Addrtype {
    if ip.is_ipv4() {
        Addrtype::Ip4
    } else {
        Addrtype::Ip6
    }
}

/// A whole SDP of ours: `o=`/`c=` on `ip`, the next version of `version`.
pub(super) fn session(
    ip: IpAddr,
    version: &mut SessionVersion,
    media: Vec<MediaDescription>,
) -> String {
    let time = sdp_rs::Time {
        active: lines::Active { start: 0, stop: 0 },
        repeat: vec![],
        zone: None,
    };
    let Ok(times) = vec![time].try_into() else {
        unreachable!("a one-element Vec is never empty");
    };
    SessionDescription {
        version: lines::Version::V0,
        origin: lines::Origin {
            username: "faxmta".into(),
            sess_id: version.id.to_string(),
            sess_version: version.take().to_string(),
            nettype: Nettype::In,
            addrtype: addrtype(ip),
            unicast_address: ip,
        },
        session_name: lines::SessionName::new("faxmta".into()),
        session_info: None,
        uri: None,
        emails: vec![],
        phones: vec![],
        connection: Some(lines::Connection {
            nettype: Nettype::In,
            addrtype: addrtype(ip),
            connection_address: ip.into(),
        }),
        bandwidths: vec![],
        times,
        key: None,
        attributes: vec![],
        media_descriptions: media,
    }
    .to_string()
}

pub(super) fn media(
    kind: MediaType,
    port: u16,
    proto: ProtoType,
    fmt: String,
    attrs: Vec<Attribute>,
) -> MediaDescription {
    MediaDescription {
        media: lines::Media {
            media: kind,
            port,
            num_of_ports: None,
            proto,
            fmt,
        },
        info: None,
        connections: vec![],
        bandwidths: vec![],
        key: None,
        attributes: attrs,
    }
}

fn law_name(law: G711) -> &'static str {
    match law {
        G711::Ulaw => "PCMU",
        G711::Alaw => "PCMA",
    }
}

/// `m=audio` with (payload type, law) pairs, 20 ms, sendrecv.
pub(super) fn audio_media(port: u16, formats: &[(u8, G711)]) -> MediaDescription {
    let fmt = formats
        .iter()
        .map(|(pt, _)| pt.to_string())
        .collect::<Vec<_>>()
        .join(" ");
    let mut attrs: Vec<Attribute> = formats
        .iter()
        .map(|(pt, law)| {
            Attribute::Rtpmap(Rtpmap {
                payload_type: u32::from(*pt),
                encoding_name: law_name(*law).into(),
                clock_rate: 8000,
                encoding_params: None,
            })
        })
        .collect();
    attrs.push(Attribute::Ptime(20.0));
    attrs.push(Attribute::Sendrecv);
    media(MediaType::Audio, port, ProtoType::RtpAvp, fmt, attrs)
}

/// `m=image PORT udptl t38` with the `T38…` attributes of `p`.
pub(super) fn t38_media(port: u16, p: &T38Params) -> MediaDescription {
    let kv = |k: &str, v: String| Attribute::Other(k.into(), Some(v));
    let mut attrs = vec![
        kv("T38FaxVersion", p.version.to_string()),
        kv("T38MaxBitRate", p.max_bit_rate.to_string()),
    ];
    if p.fill_bit_removal {
        attrs.push(Attribute::Other("T38FaxFillBitRemoval".into(), None));
    }
    if p.transcoding_mmr {
        attrs.push(Attribute::Other("T38FaxTranscodingMMR".into(), None));
    }
    if p.transcoding_jbig {
        attrs.push(Attribute::Other("T38FaxTranscodingJBIG".into(), None));
    }
    let rm = match p.rate_management {
        RateManagement::LocalTcf => "localTCF",
        RateManagement::TransferredTcf => "transferredTCF",
    };
    attrs.push(kv("T38FaxRateManagement", rm.into()));
    if let Some(n) = p.max_buffer {
        attrs.push(kv("T38FaxMaxBuffer", n.to_string()));
    }
    if let Some(n) = p.max_datagram {
        attrs.push(kv("T38FaxMaxDatagram", n.to_string()));
    }
    match p.ec {
        UdptlEc::None => {}
        UdptlEc::Redundancy => attrs.push(kv("T38FaxUdpEC", "t38UDPRedundancy".into())),
        UdptlEc::Fec => attrs.push(kv("T38FaxUdpEC", "t38UDPFEC".into())),
    }
    media(
        MediaType::Image,
        port,
        ProtoType::Other("udptl".into()),
        "t38".into(),
        attrs,
    )
}
