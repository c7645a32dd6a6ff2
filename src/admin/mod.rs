//! Administration interfaces: the control socket used by the CLI, and the
//! HTTP listener with Prometheus metrics and the HTTP fax API.

pub mod control;
pub mod fax_api;
pub mod http;
pub mod tokens;
