//! Getting a queued message ready for the wire: the pure work (8BITMIME
//! downgrade, CRLF line ends, dot-stuffing) is faxmta-proto's `body.rs`;
//! this takes the body type from the queue's envelope.

pub(crate) use faxmta_proto::body::base64;
use faxmta_proto::body::Signer;
pub use faxmta_proto::body::{stuff, Prepared};
use faxmta_queue::BodyType;

/// Prepare `body`, declared as `declared`, for a server that does
/// (`peer_8bit`) or does not offer 8BITMIME, DKIM-signed by `signer` when
/// given (see [`faxmta_proto::body::prepare_body`]). `Err` says why the
/// message cannot be sent there.
pub fn prepare_body(
    body: &[u8],
    declared: BodyType,
    peer_8bit: bool,
    signer: Option<&dyn Signer>,
) -> Result<Prepared, String> {
    faxmta_proto::body::prepare_body(body, declared != BodyType::SevenBit, peer_8bit, signer)
}
