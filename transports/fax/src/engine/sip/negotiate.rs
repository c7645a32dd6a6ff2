//! The engine's side of SDP: what we offer (audio or T.38, from the
//! settings), what an answer to our offer agreed, and our answer to a
//! far end's offer — over [`super::sdp`].

use super::media::Stream;
use super::sdp::{self, Accept, Offered};
use super::settings::{SipSettings, T38Mode};

pub use super::sdp::SessionVersion;

/// What an offer of ours proposed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfferKind {
    /// G.711 audio (PCMU/PCMA in the settings' order).
    Audio,
    /// T.38 (`m=image … udptl t38`).
    T38,
}

fn offered(settings: &SipSettings, kind: OfferKind) -> Offered {
    match kind {
        OfferKind::Audio => Offered::Audio(settings.codecs.clone()),
        OfferKind::T38 => Offered::T38(settings.t38_params.clone()),
    }
}

/// Our offer of `kind` with media on `port`.
pub fn offer(
    settings: &SipSettings,
    kind: OfferKind,
    port: u16,
    version: &mut SessionVersion,
) -> String {
    match kind {
        OfferKind::Audio => sdp::offer_audio(settings.media_ip, port, &settings.codecs, version),
        OfferKind::T38 => sdp::offer_t38(settings.media_ip, port, &settings.t38_params, version),
    }
}

/// What the far end's answer to our offer of `kind` agreed.
pub fn read_answer(settings: &SipSettings, body: &[u8], kind: OfferKind) -> Result<Stream, String> {
    let text = std::str::from_utf8(body).map_err(|_| "the SDP is not UTF-8".to_string())?;
    sdp::read_answer(text, &offered(settings, kind)).map_err(|e| e.to_string())
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
    let text = std::str::from_utf8(offer).map_err(|_| "the SDP is not UTF-8".to_string())?;
    let accept = Accept {
        t38: (settings.t38 != T38Mode::Off).then(|| settings.t38_params.clone()),
        laws: settings.codecs.clone(),
    };
    sdp::answer(text, settings.media_ip, port, &accept, version).map_err(|e| e.to_string())
}
