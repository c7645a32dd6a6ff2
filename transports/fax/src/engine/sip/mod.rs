//! The SIP engine (`engine = "sip"`, `[fax.sip]`): faxmta is itself a SIP
//! user agent that registers to a carrier's trunk or a PBX (or is a trunk
//! peer by IP), places and answers calls, and runs the fax over T.38
//! (UDPTL) or, when the far end refuses T.38, over G.711 audio (RTP).
//!
//! The parts, each with one job:
//! - [`media`]: what the signalling hands the media side of a call (the
//!   agreed stream, a control block) and what comes back; media ports.
//! - [`sdp`]: offers and answers (audio PCMU/PCMA, `m=image … udptl
//!   t38` with its `T38Fax…` attributes).
//! - [`udptl`]: the UDPTL packet codec (T.38 §9.1, Annex A PER framing),
//!   redundancy and FEC, recovery of lost packets.
//! - [`t38_session`]: spandsp's T.38 terminal over a UDPTL socket.
//! - [`rtp`], [`jitter`], [`audio_session`]: spandsp's audio fax modem over
//!   G.711 RTP with a jitter buffer.

pub mod audio_session;
pub mod jitter;
pub mod media;
pub mod rtp;
pub mod sdp;
pub mod t38_session;
pub mod udptl;
