//! faxmta: a mail transfer agent in which fax is one more transport.
//!
//! This crate is the daemon and its command line; it wires the queue
//! (crate faxmta-queue) and the transports (crate faxmta-transports)
//! together with the SMTP server, the router and the scheduler.

mod config;
mod reports;

fn main() {}
