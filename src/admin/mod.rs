//! Administration interfaces: the control socket used by the CLI, and the
//! HTTP listener with Prometheus metrics.

pub mod control;
pub mod http;
pub mod metrics;
