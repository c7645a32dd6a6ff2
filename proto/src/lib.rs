//! faxmta-proto: the protocol of faxmta without I/O — the parsers and
//! types that read what clients and servers send, and prepare what we
//! send, with no sockets, no async runtime and no storage.
//!
//! Everything here is a function of its input, so the fuzz targets
//! (`fuzz/`) link this crate alone, as smtp-proto's own do, and the
//! daemon, the queue and the transports share one definition:
//!
//! - [`path`]: `MAIL FROM`/`RCPT TO` command lines and the RFC 5321 path
//!   grammar of their addresses;
//! - [`data`]: the DATA body reader (end of data, dot-unstuffing, size,
//!   line-length and bare CR/LF rules);
//! - [`body`]: a stored message made ready for the wire (8BITMIME
//!   downgrade, CRLF line ends, dot-stuffing);
//! - [`reply`]: [`Reply`], the SMTP-style reply every transport reports
//!   in, and the parser of a server's reply lines;
//! - [`command`]: the check every outbound command line passes before it
//!   is written;
//! - [`fax_address`]: recipient addresses that are fax numbers, and
//!   `fax:`/`tel:` URIs.

pub mod body;
pub mod command;
pub mod data;
pub mod fax_address;
#[doc(hidden)]
pub mod fuzzing;
pub mod path;
pub mod reply;

pub use data::BareNewline;
pub use reply::Reply;
