//! The transports of the daemon, built from the configuration: the one
//! place that says which transport carries which kind of next hop
//! ([`table`]), and the client settings they share with the callouts and
//! the ETRN client. A new transport is a crate (or module) and one
//! `register` line here.

use crate::config::Config;
use faxmta_smtp::sts::Sts;
use faxmta_smtp::tlsrpt::Recorder;
use faxmta_smtp::{Callout, ClientSettings, Dns, LmtpTransport, SmtpSettings, SmtpTransport, Tls};
use faxmta_transport::{HopKind, Transport, TransportTable};
use std::sync::Arc;

/// Every transport, by the kind of next hop it carries; `fax`: the fax
/// transport (built once at start: it owns the lines), none in a
/// mail-only build.
pub fn table(config: &Config, fax: Option<Arc<dyn Transport>>) -> Result<TransportTable, String> {
    let mut table = TransportTable::new();
    table
        .register(HopKind::Local, Arc::new(faxmta_local::MaildirTransport))
        .register(HopKind::Smtp, Arc::new(smtp_transport(config)?))
        .register(HopKind::Lmtp, Arc::new(lmtp_transport(config)?));
    if let Some(fax) = fax {
        table.register(HopKind::Fax, fax);
    }
    Ok(table)
}

/// The client settings of `[outbound]` (SMTP, or LMTP when `lmtp`).
pub fn client_settings(config: &Config, lmtp: bool) -> Result<ClientSettings, String> {
    let out = &config.outbound;
    Ok(ClientSettings {
        helo: out.helo.clone().unwrap_or_else(|| config.hostname.clone()),
        tls: Tls::with_roots(config.outbound.ca_file.as_deref())?,
        timeouts: out.timeouts(),
        lmtp,
        signer: (!lmtp && !config.dkim.is_empty())
            .then(|| std::sync::Arc::new(crate::policy::dkim::DkimSigner::new(config)) as _),
    })
}

/// Local delivery to LMTP servers; host names resolved through `[dns]`.
pub fn lmtp_transport(config: &Config) -> Result<LmtpTransport, String> {
    let dns = Dns::new(&config.dns.nameservers, config.dns.timeout.std())?;
    Ok(LmtpTransport::new(dns, client_settings(config, true)?))
}

/// Recipient callouts for backup MX domains (`verify = "callout"`), with
/// the resolver and client settings of outbound SMTP.
pub fn callout(config: &Config) -> Result<Callout, String> {
    let dns = Dns::new(&config.dns.nameservers, config.dns.timeout.std())?;
    Ok(Callout::new(
        dns,
        client_settings(config, false)?,
        config.myself(),
        config.outbound.port,
    ))
}

/// The resolver of outbound SMTP: `[dns]`, with DNSSEC validation for
/// DANE (anchored at `[dns] dnssec_trust_anchor`, else the root keys).
pub fn outbound_dns(config: &Config) -> Result<Dns, String> {
    let (servers, timeout) = (&config.dns.nameservers, config.dns.timeout.std());
    Dns::new(servers, timeout)?.with_dnssec(
        servers,
        timeout,
        config.dns.dnssec_trust_anchor.as_deref(),
    )
}

/// The MTA-STS policy cache: one per process, kept across reloads (its
/// policies and its file outlive a transport); `None` when `[outbound]
/// mta_sts = false`. `persist`: the server keeps policies in
/// `mta_sts_cache`; a command-line tool (`faxmta route`) reads that file,
/// so it plans with the policies delivery uses, but does not write it.
pub fn mta_sts(config: &Config, dns: &Dns, persist: bool) -> Result<Option<Arc<Sts>>, String> {
    static SHARED: std::sync::OnceLock<Arc<Sts>> = std::sync::OnceLock::new();
    let out = &config.outbound;
    if !out.mta_sts {
        return Ok(None);
    }
    let make = || -> Result<Arc<Sts>, String> {
        let tls = Tls::with_roots(out.ca_file.as_deref())?;
        let file = out
            .mta_sts_cache
            .clone()
            .unwrap_or_else(|| beside_queue(config, "mta-sts.json"));
        let sts = Sts::new(
            dns.resolver().clone(),
            tls.verifying,
            out.mta_sts_port,
            Some(file),
        );
        Ok(Arc::new(if persist { sts } else { sts.read_only() }))
    };
    if !persist {
        return make().map(Some);
    }
    if let Some(sts) = SHARED.get() {
        return Ok(Some(sts.clone()));
    }
    let sts = make()?;
    Ok(Some(SHARED.get_or_init(|| sts).clone()))
}

/// Beside the queue directory: where the server keeps `name`.
fn beside_queue(config: &Config, name: &str) -> std::path::PathBuf {
    let queue = &config.queue.path;
    queue
        .parent()
        .map(|p| p.join(name))
        .unwrap_or_else(|| queue.join(name))
}

/// The counts of TLS sessions for TLS reports: one per process, kept
/// across reloads; `None` when `[tls_report] enabled = false`.
pub fn tls_recorder(config: &Config) -> Result<Option<Arc<Recorder>>, String> {
    static SHARED: std::sync::OnceLock<Arc<Recorder>> = std::sync::OnceLock::new();
    if !config.tls_report.enabled {
        return Ok(None);
    }
    if let Some(r) = SHARED.get() {
        return Ok(Some(r.clone()));
    }
    let file = config
        .tls_report
        .file
        .clone()
        .unwrap_or_else(|| beside_queue(config, "tls-report.json"));
    let recorder = Arc::new(Recorder::open(file)?);
    Ok(Some(SHARED.get_or_init(|| recorder).clone()))
}

/// The outbound SMTP transport as `[dns]` and `[outbound]` describe it.
pub fn smtp_transport(config: &Config) -> Result<SmtpTransport, String> {
    let dns = outbound_dns(config)?;
    let out = &config.outbound;
    let sts = mta_sts(config, &dns, true)?;
    Ok(SmtpTransport::new(
        dns,
        SmtpSettings {
            client: client_settings(config, false)?,
            port: out.port,
            security: out.security(),
            sts,
            tls_reports: tls_recorder(config)?,
            myself: config.myself(),
            max_received: out.max_received,
            idle_per_host: config.queue.destination_concurrency,
            suspend: out.suspend_time.std(),
        },
    ))
}
