//! The command line's subcommands beside `serve`: each a module, each
//! printing for people and exiting with a status scripts can test.
//!
//! - [`queue`]: `faxmta queue …` (mailq / postsuper);
//! - [`fax`]: `faxmta fax send|status|render|incoming` (sendfax / faxstat);
//! - [`explain`]: `faxmta route ADDRESS`;
//! - [`auth`]: `faxmta check spf`, `faxmta dkim keygen`;
//! - [`user`]: `faxmta user …` (the SMTP AUTH users file);
//! - [`token`]: `faxmta token …` (the HTTP fax API's tokens).

pub mod auth;
pub mod explain;
pub mod fax;
pub mod queue;
pub mod token;
pub mod user;
