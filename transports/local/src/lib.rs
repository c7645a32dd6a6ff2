//! Local delivery: into Maildir directories on this host.
//!
//! The router decides the mailbox directory of each recipient (from the
//! domain's `deliver` template) and hands it over in
//! [`faxmta_transport::JobRecipient::mailbox`]; this transport only writes files.

mod maildir;

pub use maildir::{deliver_to_maildir, MaildirTransport};
