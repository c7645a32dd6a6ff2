//! faxmta-transports: the [`Transport`] trait and the mechanisms that move
//! a queued message one hop further.
//!
//! A transport receives a [`Job`]: one message, its body, and the
//! recipients that share one next hop. It returns one [`Outcome`] per
//! recipient and never touches the queue: recording outcomes, retrying and
//! reporting are the scheduler's work (DESIGN.md, invariant 3).

pub mod fax;
pub mod local;
pub mod pop3;
pub mod smtp;
mod transport;

pub use transport::{
    BackupMxHop, Credentials, FaxHop, HostPort, Job, JobRecipient, LmtpTarget, NextHop, Outcome,
    RelayHop, Status, Transport,
};
