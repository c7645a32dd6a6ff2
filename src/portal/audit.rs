//! The audit log: one JSON line per change made through the portal
//! (and per login and logout), appended to `[portal] audit_log` and
//! synced, and the same line in the daemon's log (target `audit`).
//!
//! A line: `{"time":"2026-12-06T13:20:00Z","actor":"boss@example.com",
//! "ip":"127.0.0.1","action":"user.add","object":"carol@example.com",
//! "result":"ok"}`. Passwords and hashes never appear.

use crate::server::ServerContext;
use std::io::Write;
use std::net::IpAddr;

/// Append one entry. A log that cannot be written is reported in the
/// daemon's log (the change itself stands).
pub fn record(
    ctx: &ServerContext,
    actor: &str,
    ip: IpAddr,
    action: &str,
    object: &str,
    result: &str,
) {
    let line = serde_json::json!({
        "time": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        "actor": actor,
        "ip": ip.to_string(),
        "action": action,
        "object": object,
        "result": result,
    })
    .to_string();
    tracing::info!(target: "audit", "{line}");
    let path = &ctx.config.portal.audit_log;
    let written = (|| {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        file.write_all(format!("{line}\n").as_bytes())?;
        file.sync_data()
    })();
    if let Err(e) = written {
        tracing::error!("cannot write the audit log {}: {e}", path.display());
    }
}
