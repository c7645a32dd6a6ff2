//! The engine's side of SDP: what we offer (audio or T.38, from the
//! settings), what an answer to our offer agreed, and our answer to a
//! far end's offer — over [`super::sdp`].

use super::media::Stream;
use super::settings::{SipSettings, T38Mode};

/// What an offer of ours proposed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfferKind {
    /// G.711 audio (PCMU/PCMA in the settings' order).
    Audio,
    /// T.38 (`m=image … udptl t38`).
    T38,
}

/// The o= session version of our SDP in one dialog: it rises with every
/// new offer or answer we make (RFC 3264 §8).
#[derive(Debug, Default)]
pub struct SessionVersion(pub u64);

/// Our offer of `kind` with media on `port`.
pub fn offer(
    settings: &SipSettings,
    kind: OfferKind,
    port: u16,
    version: &mut SessionVersion,
) -> String {
    let _ = (settings, kind, port, version);
    String::new()
}

/// What the far end's answer to our offer of `kind` agreed.
pub fn read_answer(body: &[u8], kind: OfferKind) -> Result<Stream, String> {
    let _ = (body, kind);
    Err("SDP is not wired yet".into())
}

/// Our answer to the far end's offer, with media on `port`: T.38 when it
/// is offered and the settings allow it, else the first audio law we
/// both have. `Err`: nothing acceptable (the signalling answers 488).
pub fn answer(
    settings: &SipSettings,
    offer: &[u8],
    port: u16,
    version: &mut SessionVersion,
) -> Result<(String, Stream), String> {
    let _ = (offer, port, version, settings.t38 == T38Mode::Off);
    Err("SDP is not wired yet".into())
}
