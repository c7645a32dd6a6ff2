//! SDP offer/answer (RFC 3264) for fax calls, over sdp-rs: an audio
//! stream (PCMU/PCMA, 20 ms) and the T.38 image stream `m=image PORT
//! udptl t38` with its `T38Fax…` attributes (RFC 3362, T.38 Annex D),
//! mapped to and from [`super::media::T38Params`].
