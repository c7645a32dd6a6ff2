//! The transports of a running server, one per kind of next hop: the
//! scheduler looks a job's transport up here by [`NextHop::kind`], so a
//! new transport is one module and one [`TransportTable::register`] line
//! in the daemon's wiring.

use crate::{NextHop, Transport};
use std::collections::HashMap;
use std::sync::Arc;

/// The kinds of next hop; each is served by one transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HopKind {
    /// Local mailboxes (Maildir).
    Local,
    /// SMTP: MX delivery, relay-to-host, smart host, backup MX.
    Smtp,
    /// An LMTP server.
    Lmtp,
    /// A fax line.
    Fax,
}

impl HopKind {
    /// The name in logs and metrics labels.
    pub fn name(self) -> &'static str {
        match self {
            HopKind::Local => "local",
            HopKind::Smtp => "smtp",
            HopKind::Lmtp => "lmtp",
            HopKind::Fax => "fax",
        }
    }
}

impl NextHop {
    /// Which kind of transport carries this hop.
    pub fn kind(&self) -> HopKind {
        match self {
            NextHop::Local => HopKind::Local,
            NextHop::Mx { .. } | NextHop::Relay(_) | NextHop::BackupMx(_) => HopKind::Smtp,
            NextHop::Lmtp(_) => HopKind::Lmtp,
            NextHop::Fax(_) => HopKind::Fax,
        }
    }
}

/// The transports by kind of next hop.
#[derive(Clone, Default)]
pub struct TransportTable {
    by_kind: HashMap<HopKind, Arc<dyn Transport>>,
}

impl TransportTable {
    /// An empty table.
    pub fn new() -> TransportTable {
        TransportTable::default()
    }

    /// `transport` carries every hop of `kind` (replacing one registered
    /// before).
    pub fn register(&mut self, kind: HopKind, transport: Arc<dyn Transport>) -> &mut Self {
        self.by_kind.insert(kind, transport);
        self
    }

    /// The transport for `hop`; `None` when none is registered for its
    /// kind (a build without that transport).
    pub fn for_hop(&self, hop: &NextHop) -> Option<&Arc<dyn Transport>> {
        self.by_kind.get(&hop.kind())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Job, Outcome};

    struct Named(&'static str);

    #[async_trait::async_trait]
    impl Transport for Named {
        fn name(&self) -> &'static str {
            self.0
        }
        async fn deliver(&self, _job: Job<'_>) -> Vec<Outcome> {
            Vec::new()
        }
    }

    #[test]
    fn hops_find_the_transport_of_their_kind() {
        let mut table = TransportTable::new();
        table
            .register(HopKind::Smtp, Arc::new(Named("smtp")))
            .register(HopKind::Local, Arc::new(Named("local")));
        let mx = NextHop::Mx {
            domain: "example.com".into(),
        };
        assert_eq!(table.for_hop(&mx).map(|t| t.name()), Some("smtp"));
        assert_eq!(
            table.for_hop(&NextHop::Local).map(|t| t.name()),
            Some("local")
        );
        let lmtp = NextHop::Lmtp(crate::LmtpTarget::Unix("/run/lmtp".into()));
        assert!(
            table.for_hop(&lmtp).is_none(),
            "nothing registered for LMTP"
        );
    }
}
