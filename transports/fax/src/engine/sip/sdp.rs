//! SDP offer/answer (RFC 3264) for fax calls, over sdp-rs: an audio
//! stream (PCMU/PCMA, 20 ms) and the T.38 image stream `m=image PORT
//! udptl t38` with its `T38Fax…` attributes (RFC 3362, T.38 Annex D),
//! mapped to and from [`super::media::T38Params`].
//!
//! What the signalling calls:
//! - [`offer_audio`], [`offer_t38`]: our offer (initial INVITE or
//!   re-INVITE); each takes the dialog's [`SessionVersion`], so every new
//!   SDP of ours in a dialog has a higher `o=` version.
//! - [`read_answer`]: the far end's answer to that offer → the
//!   [`Stream`] to run.
//! - [`answer`]: the far end's offer → our answer and the [`Stream`];
//!   [`SdpError::NotAcceptable`] is for a 488.
//! - [`parse`]: what a remote SDP offers, e.g. to see whether a
//!   re-INVITE asks for T.38.
//!
//! sdp-rs parses the `T38…` attributes as `Attribute::Other`; the names
//! are matched without regard to case, as devices spell them variously
//! (`T38MaxBitRate`, `T38maxBitRate`, `T38FaxUdpEc`), and the boolean
//! ones are true by presence, or by a value other than `0`/`false` (some
//! gateways write `T38FaxFillBitRemoval:0`).

use super::media::{AudioParams, RateManagement, Stream, T38Params, T38Stream, UdptlEc, G711};
use sdp_rs::lines::{
    self,
    media::{MediaType, ProtoType},
    Attribute,
};
use sdp_rs::{MediaDescription, SessionDescription};
use std::net::{IpAddr, SocketAddr};

mod lenient;
#[cfg(test)]
mod tests;
mod write;

use write::{audio_media, session, t38_media};

/// Why a remote SDP could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// Not SDP sdp-rs can read (or lines it could not place).
    #[error("malformed SDP: {0}")]
    Malformed(String),
    /// A `T38…` attribute with a value that is not what it should be.
    #[error("bad SDP attribute a={name}:{value}")]
    BadAttribute { name: String, value: String },
    /// A stream with a port but no `c=` line for it, at media or session
    /// level.
    #[error("no connection address (c=) for the {0} stream")]
    NoConnection(&'static str),
    /// Nothing in the offer we can take (the signalling answers 488).
    #[error("no acceptable media in the offer: {0}")]
    NotAcceptable(String),
    /// The answer refused our stream (port 0).
    #[error("the answer refused our {0} stream (port 0)")]
    Refused(&'static str),
    /// The answer has no stream of the kind we offered.
    #[error("the answer has no {0} stream")]
    MissingStream(&'static str),
}

/// The `o=` line's session id and version for one dialog: each SDP we
/// send in it (offer or answer) carries a higher version than the one
/// before (RFC 3264 §8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionVersion {
    id: u64,
    next: u64,
}

impl SessionVersion {
    /// A new session: a random id, and a first version equal to it (as
    /// RFC 4566 suggests, an NTP-like number; any will do).
    pub fn new() -> SessionVersion {
        let id = u64::from(rand::random::<u32>());
        SessionVersion { id, next: id }
    }

    /// The session id (`o=` second field).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The version for the next SDP we send, counted as used.
    fn take(&mut self) -> u64 {
        let v = self.next;
        self.next += 1;
        v
    }
}

impl Default for SessionVersion {
    fn default() -> Self {
        SessionVersion::new()
    }
}

/// What we accept when answering an offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accept {
    /// Our T.38 capabilities (the upper bounds of an answer); `None`:
    /// refuse T.38.
    pub t38: Option<T38Params>,
    /// The G.711 laws we take, most preferred first; empty: refuse audio.
    pub laws: Vec<G711>,
}

impl Default for Accept {
    /// T.38 with [`T38Params::default`], else PCMU, else PCMA.
    fn default() -> Self {
        Accept {
            t38: Some(T38Params::default()),
            laws: vec![G711::Ulaw, G711::Alaw],
        }
    }
}

/// What we offered, to read the answer against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Offered {
    /// An audio offer with these laws.
    Audio(Vec<G711>),
    /// A T.38 offer with these parameters.
    T38(T38Params),
}

/// One payload type of a remote audio stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioFormat {
    pub payload_type: u8,
    /// PCMU or PCMA (by the static number, or by `a=rtpmap` for a
    /// dynamic one); `None` for any other codec.
    pub law: Option<G711>,
}

/// What one `m=` line of a remote SDP is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaKind {
    /// `m=audio … RTP/AVP …`, its formats in the offer's order.
    Audio(Vec<AudioFormat>),
    /// `m=image … udptl t38` with its parameters.
    T38(T38Params),
    /// Anything else (video, SRTP, T.38 over RTP…).
    Other,
}

/// One `m=` line of a remote SDP.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteMedia {
    pub kind: MediaKind,
    /// 0: the stream is refused (or, in an offer, not wanted).
    pub port: u16,
    /// The `c=` address (media level, else session level).
    pub addr: Option<IpAddr>,
    /// The `m=` line itself, to copy (with port 0) when refusing it.
    line: lines::Media,
}

impl RemoteMedia {
    fn remote(&self, what: &'static str) -> Result<SocketAddr, SdpError> {
        let ip = self.addr.ok_or(SdpError::NoConnection(what))?;
        Ok(SocketAddr::new(ip, self.port))
    }
}

/// A parsed remote SDP: its streams in order.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteSdp {
    pub media: Vec<RemoteMedia>,
}

impl RemoteSdp {
    /// Whether it offers T.38 (an `m=image … udptl t38` with a port).
    pub fn offers_t38(&self) -> bool {
        self.media
            .iter()
            .any(|m| m.port != 0 && matches!(m.kind, MediaKind::T38(_)))
    }

    /// Whether it offers PCMU or PCMA audio with a port.
    pub fn offers_g711(&self) -> bool {
        self.media.iter().any(|m| {
            m.port != 0
                && matches!(&m.kind, MediaKind::Audio(f) if f.iter().any(|f| f.law.is_some()))
        })
    }
}

/// Reads a remote SDP. Lines in another order than RFC 4566's, LF line
/// ends, a missing final line end and a host name in `o=` are put right
/// first ([`lenient`]); then every line must be placed by sdp-rs: what
/// it cannot place is an error rather than silently dropped.
pub fn parse(text: &str) -> Result<RemoteSdp, SdpError> {
    let text = lenient::normalize(text)?;
    let (rest, tokens) = sdp_rs::tokenizers::session_description::Tokenizer::tokenize(&text)
        .map_err(|e| SdpError::Malformed(e.to_string()))?;
    if !rest.trim().is_empty() {
        let line = rest.trim_start().lines().next().unwrap_or_default();
        return Err(SdpError::Malformed(format!("unexpected line {line:?}")));
    }
    let sdp =
        SessionDescription::try_from(tokens).map_err(|e| SdpError::Malformed(e.to_string()))?;
    let session_addr = sdp.connection.as_ref().map(|c| c.connection_address.base);
    let media = sdp
        .media_descriptions
        .iter()
        .map(|m| {
            Ok(RemoteMedia {
                kind: media_kind(m)?,
                port: m.media.port,
                addr: m
                    .connections
                    .first()
                    .map(|c| c.connection_address.base)
                    .or(session_addr),
                line: m.media.clone(),
            })
        })
        .collect::<Result<Vec<_>, SdpError>>()?;
    Ok(RemoteSdp { media })
}

fn media_kind(m: &MediaDescription) -> Result<MediaKind, SdpError> {
    match (&m.media.media, &m.media.proto) {
        (MediaType::Audio, ProtoType::RtpAvp) => Ok(MediaKind::Audio(audio_formats(m))),
        (MediaType::Image, ProtoType::Other(proto))
            if proto.eq_ignore_ascii_case("udptl")
                && m.media
                    .fmt
                    .split_whitespace()
                    .any(|f| f.eq_ignore_ascii_case("t38")) =>
        {
            Ok(MediaKind::T38(t38_params(&m.attributes)?))
        }
        _ => Ok(MediaKind::Other),
    }
}

fn audio_formats(m: &MediaDescription) -> Vec<AudioFormat> {
    m.media
        .fmt
        .split_whitespace()
        .filter_map(|f| f.parse::<u8>().ok())
        .map(|pt| {
            let rtpmap = m.attributes.iter().find_map(|a| match a {
                Attribute::Rtpmap(r) if r.payload_type == u32::from(pt) => Some(r),
                _ => None,
            });
            let law = match rtpmap {
                Some(r) if r.clock_rate == 8000 => {
                    if r.encoding_name.eq_ignore_ascii_case("PCMU") {
                        Some(G711::Ulaw)
                    } else if r.encoding_name.eq_ignore_ascii_case("PCMA") {
                        Some(G711::Alaw)
                    } else {
                        None
                    }
                }
                Some(_) => None,
                None => match pt {
                    0 => Some(G711::Ulaw),
                    8 => Some(G711::Alaw),
                    _ => None,
                },
            };
            AudioFormat {
                payload_type: pt,
                law,
            }
        })
        .collect()
}

/// The T.38 parameters of an `m=image` section. Absent ones take the
/// Annex D defaults: version 0, no EC, transferred TCF (the only method
/// over UDP), no fill-bit removal or transcoding; an absent (or 0)
/// bit rate is taken as 14,400 (V.17), and absent buffer/datagram sizes
/// stay unknown.
fn t38_params(attributes: &[Attribute]) -> Result<T38Params, SdpError> {
    let mut p = T38Params {
        version: 0,
        max_bit_rate: 14_400,
        rate_management: RateManagement::TransferredTcf,
        max_buffer: None,
        max_datagram: None,
        ec: UdptlEc::None,
        fill_bit_removal: false,
        transcoding_mmr: false,
        transcoding_jbig: false,
    };
    for a in attributes {
        let Attribute::Other(name, value) = a else {
            continue;
        };
        let value = value.as_deref().map(str::trim);
        let number = |max: u32| -> Result<u32, SdpError> {
            value
                .and_then(|v| v.parse::<u32>().ok())
                .filter(|n| *n <= max)
                .ok_or_else(|| SdpError::BadAttribute {
                    name: name.clone(),
                    value: value.unwrap_or_default().to_string(),
                })
        };
        let flag = !matches!(value, Some(v) if v == "0" || v.eq_ignore_ascii_case("false"));
        match name.to_ascii_lowercase().as_str() {
            // T.38 versions are 0 to 3 so far; a larger one is still a
            // number, and the answer takes the smaller.
            "t38faxversion" => p.version = number(255)? as u8,
            "t38maxbitrate" => {
                let n = number(u32::MAX)?;
                if n != 0 {
                    p.max_bit_rate = n;
                }
            }
            "t38faxmaxbuffer" => p.max_buffer = Some(number(u32::MAX)?),
            "t38faxmaxdatagram" => p.max_datagram = Some(number(u32::MAX)?),
            "t38faxratemanagement" => {
                p.rate_management = match value {
                    Some(v) if v.eq_ignore_ascii_case("localTCF") => RateManagement::LocalTcf,
                    Some(v) if v.eq_ignore_ascii_case("transferredTCF") => {
                        RateManagement::TransferredTcf
                    }
                    _ => {
                        return Err(SdpError::BadAttribute {
                            name: name.clone(),
                            value: value.unwrap_or_default().to_string(),
                        })
                    }
                }
            }
            "t38faxudpec" => {
                p.ec = match value {
                    Some(v) if v.eq_ignore_ascii_case("t38UDPRedundancy") => UdptlEc::Redundancy,
                    Some(v) if v.eq_ignore_ascii_case("t38UDPFEC") => UdptlEc::Fec,
                    // `t38UDPNoEC` and anything unknown: no EC.
                    _ => UdptlEc::None,
                }
            }
            "t38faxfillbitremoval" => p.fill_bit_removal = flag,
            "t38faxtranscodingmmr" => p.transcoding_mmr = flag,
            "t38faxtranscodingjbig" => p.transcoding_jbig = flag,
            _ => {}
        }
    }
    Ok(p)
}

fn ec_rank(ec: UdptlEc) -> u8 {
    match ec {
        UdptlEc::None => 0,
        UdptlEc::Redundancy => 1,
        UdptlEc::Fec => 2,
    }
}

/// The EC both sides can do: FEC only if both do, else redundancy if
/// both do, else none.
fn common_ec(a: UdptlEc, b: UdptlEc) -> UdptlEc {
    if ec_rank(a) <= ec_rank(b) {
        a
    } else {
        b
    }
}

/// The parameters of a T.38 session between `theirs` (the far end's SDP)
/// and `ours` (our limits): version and bit rate the lower, rate
/// management theirs, EC the common one, the booleans only if both; the
/// buffer and datagram sizes stay theirs (what the far end receives, the
/// bounds of what we send).
fn t38_common(theirs: &T38Params, ours: &T38Params) -> T38Params {
    T38Params {
        version: theirs.version.min(ours.version),
        max_bit_rate: theirs.max_bit_rate.min(ours.max_bit_rate),
        rate_management: theirs.rate_management,
        max_buffer: theirs.max_buffer,
        max_datagram: theirs.max_datagram,
        ec: common_ec(theirs.ec, ours.ec),
        fill_bit_removal: theirs.fill_bit_removal && ours.fill_bit_removal,
        transcoding_mmr: theirs.transcoding_mmr && ours.transcoding_mmr,
        transcoding_jbig: theirs.transcoding_jbig && ours.transcoding_jbig,
    }
}

/// An audio offer: RTP on `ip:port` with `laws` (their static payload
/// types, in that order), 20 ms packets.
pub fn offer_audio(ip: IpAddr, port: u16, laws: &[G711], version: &mut SessionVersion) -> String {
    let formats: Vec<(u8, G711)> = laws.iter().map(|l| (l.payload_type(), *l)).collect();
    session(ip, version, vec![audio_media(port, &formats)])
}

/// A T.38 offer: UDPTL on `ip:port` with our parameters `params`.
pub fn offer_t38(
    ip: IpAddr,
    port: u16,
    params: &T38Params,
    version: &mut SessionVersion,
) -> String {
    session(ip, version, vec![t38_media(port, params)])
}

/// Reads the far end's answer to our offer: the stream to run. The
/// first `m=` line answers ours (our offers have one); port 0 there is
/// [`SdpError::Refused`]. For audio, the first of its formats that is a
/// law we offered; for T.38, its parameters within ours (see
/// [`T38Stream`]: buffer and datagram sizes are the far end's).
pub fn read_answer(text: &str, offered: &Offered) -> Result<Stream, SdpError> {
    let sdp = parse(text)?;
    let (what, m) = match offered {
        Offered::Audio(_) => ("audio", sdp.media.first()),
        Offered::T38(_) => ("T.38", sdp.media.first()),
    };
    let m = m.ok_or(SdpError::MissingStream(what))?;
    match (offered, &m.kind) {
        (Offered::Audio(laws), MediaKind::Audio(formats)) => {
            if m.port == 0 {
                return Err(SdpError::Refused(what));
            }
            let (f, law) = formats
                .iter()
                .find_map(|f| f.law.filter(|l| laws.contains(l)).map(|l| (f, l)))
                .ok_or_else(|| {
                    SdpError::NotAcceptable("the answer has no law we offered".into())
                })?;
            Ok(Stream::Audio(AudioParams {
                law,
                payload_type: f.payload_type,
                remote: m.remote(what)?,
            }))
        }
        (Offered::T38(ours), MediaKind::T38(theirs)) => {
            if m.port == 0 {
                return Err(SdpError::Refused(what));
            }
            Ok(Stream::T38(T38Stream {
                params: t38_common(theirs, ours),
                remote: m.remote(what)?,
            }))
        }
        _ if m.port == 0 => Err(SdpError::Refused(what)),
        _ => Err(SdpError::MissingStream(what)),
    }
}

/// Answers the far end's offer with our stream on `ip:port`: T.38 if
/// offered and `accept.t38` is set, else the first law of `accept.laws`
/// the offer has (its payload type, static or dynamic). Every other
/// `m=` line is refused with port 0, as RFC 3264 §6 wants one answer
/// line per offer line. Returns our SDP and the stream to run (for T.38,
/// the answer's parameters with the far end's buffer/datagram sizes).
/// Nothing acceptable: [`SdpError::NotAcceptable`] (a 488).
pub fn answer(
    text: &str,
    ip: IpAddr,
    port: u16,
    accept: &Accept,
    version: &mut SessionVersion,
) -> Result<(String, Stream), SdpError> {
    let sdp = parse(text)?;
    let t38 = accept.t38.as_ref().and_then(|ours| {
        sdp.media
            .iter()
            .enumerate()
            .find_map(|(i, m)| match &m.kind {
                MediaKind::T38(theirs) if m.port != 0 => Some((i, theirs, ours)),
                _ => None,
            })
    });
    let (chosen, ours, stream) = if let Some((i, theirs, ours)) = t38 {
        let stream = Stream::T38(T38Stream {
            params: t38_common(theirs, ours),
            remote: sdp.media[i].remote("T.38")?,
        });
        // Ours in the answer: the common parameters, with our own
        // buffer and datagram sizes.
        let answered = T38Params {
            max_buffer: ours.max_buffer,
            max_datagram: ours.max_datagram,
            ..t38_common(theirs, ours)
        };
        (i, t38_media(port, &answered), stream)
    } else {
        let audio = accept.laws.iter().find_map(|law| {
            sdp.media
                .iter()
                .enumerate()
                .find_map(|(i, m)| match &m.kind {
                    MediaKind::Audio(formats) if m.port != 0 => formats
                        .iter()
                        .find(|f| f.law == Some(*law))
                        .map(|f| (i, f.payload_type, *law)),
                    _ => None,
                })
        });
        let Some((i, pt, law)) = audio else {
            let offered: Vec<String> = sdp
                .media
                .iter()
                .map(|m| format!("{} {}", m.line.media, m.line.fmt))
                .collect();
            return Err(SdpError::NotAcceptable(if offered.is_empty() {
                "no m= line".into()
            } else {
                offered.join(", ")
            }));
        };
        let stream = Stream::Audio(AudioParams {
            law,
            payload_type: pt,
            remote: sdp.media[i].remote("audio")?,
        });
        (i, audio_media(port, &[(pt, law)]), stream)
    };
    let mut ours = Some(ours);
    let media = sdp
        .media
        .iter()
        .enumerate()
        .map(|(i, m)| match ours.take_if(|_| i == chosen) {
            Some(md) => md,
            None => MediaDescription {
                media: lines::Media {
                    port: 0,
                    ..m.line.clone()
                },
                info: None,
                connections: vec![],
                bandwidths: vec![],
                key: None,
                attributes: vec![],
            },
        })
        .collect();
    Ok((session(ip, version, media), stream))
}
