//! TLS-RPT
