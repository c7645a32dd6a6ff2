//! faxmta-fax: fax as a transport: a recipient that is a fax number leaves over a fax
//! line instead of SMTP.
//!
//! The pieces, in the order a message meets them:
//! - [`address`]: which recipient addresses are fax numbers (`number@fax
//!   domain`, RFC 3192 `FAX=…`, Exchange `IMCEAFAX-…`, `fax:` URIs);
//! - [`dialplan`]: numbers normalised to E.164 and the outbound rules
//!   (prefixes, blocked patterns) that decide what may be dialled;
//! - [`pattern`]: address and number patterns, the layer below the next
//!   two;
//! - [`directory`]: the fax users and groups, who may send where;
//! - [`render`]: the message becomes pages ([`page::Page`]) and a TIFF
//!   Class F file ([`tiff`]);
//! - [`engine`]: the line: a job goes out, a result comes back; faxes come
//!   in;
//! - [`transport`]: the [`faxmta_transport::Transport`] that ties them together, with
//!   the fax retry rules;
//! - [`live`]: what each fax in flight is doing now (the live board);
//! - [`worker`]: rendering in a child process within memory, CPU and time
//!   limits, so that a hostile document fails its fax, not the server.
//!
//! Rendering, TIFF, the engines, the transport and the worker need the
//! feature `line` (default; [`live`] does not): without it the crate
//! links no C library (spandsp, libtiff) and is what a mail-only faxmta
//! needs to read its configuration and route.

/// Fax addresses are parsed in faxmta-proto (pure, fuzzed alone); the
/// old path stays for callers.
pub use faxmta_proto::fax_address as address;
pub mod dialplan;
pub mod directory;
#[cfg(feature = "line")]
pub mod document;
#[cfg(feature = "line")]
pub mod engine;
pub mod inbound;
pub mod live;
pub mod media;
pub mod page;
pub mod pattern;
#[cfg(feature = "line")]
pub mod pdf;
#[cfg(feature = "line")]
pub mod render;
#[cfg(feature = "line")]
pub mod thumbnail;
#[cfg(feature = "line")]
pub mod tiff;
#[cfg(feature = "line")]
pub mod transport;
#[cfg(feature = "line")]
pub mod worker;
