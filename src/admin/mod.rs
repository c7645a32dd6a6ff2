//! Administration interfaces: the control socket used by the CLI (and,
//! later, the HTTP listener with /metrics and the queue API).

pub mod control;
