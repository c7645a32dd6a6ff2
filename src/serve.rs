//! `faxmta serve`: start every part of the daemon and stop them in order.
//!
//! Start: logging, the queue (recovering what a crash left), TLS, the
//! listeners (bound before anything is delivered, so a busy port fails
//! fast), the control socket, the scheduler, the received-fax loop, the
//! fax image purge, the scheduled ETRN clients and the POP3 fax gateway.
//! Stop on SIGTERM or SIGINT: listeners stop accepting, sessions get the
//! grace period, running deliveries finish or are cut (and simply retried
//! after restart), and the queue is flushed.

use crate::admin::metrics::Metrics;
use crate::admin::{control, http};
use crate::config::{Config, TlsMode};
use crate::etrn;
use crate::router::Router;
use crate::scheduler::{self, Scheduler};
use crate::server;
use faxmta_queue::Store;
use faxmta_transports::local::MaildirTransport;
use faxmta_transports::smtp::{
    Callout, ClientSettings, Dns, LmtpTransport, SmtpSettings, SmtpTransport, Tls,
};
use std::process::ExitCode;
use std::sync::Arc;
use tokio::sync::watch;

/// Set up tracing: `RUST_LOG` wins over `[log] level`.
fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log.level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

pub fn run(config: Config) -> ExitCode {
    init_logging(&config);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("faxmta: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> Result<(), String> {
    server::raise_open_files_limit(&config);
    let config = Arc::new(config);
    let store = Store::open(&config.queue.path).map_err(|e| e.to_string())?;
    tracing::info!(
        "queue {} opened: {} message(s)",
        config.queue.path.display(),
        store.len()
    );

    let needs_tls = config.listeners.iter().any(|l| l.tls != TlsMode::None);
    let tls = if needs_tls {
        Some(server::tls::acceptor(&config)?)
    } else {
        None
    };
    let listeners = server::bind(&config).await?;
    let admin = match config.admin.enabled {
        true => Some(http::bind(config.admin.listen).await?),
        false => None,
    };
    let admin_tls = match config.admin.enabled && config.admin.tls {
        true => Some(server::tls::acceptor(&config)?),
        false => None,
    };
    let metrics = Arc::new(Metrics::new());

    let (stop_tx, stop_rx) = watch::channel(false);
    let router = Arc::new(Router::new(&config));
    let ctx = server::context(
        config.clone(),
        store.clone(),
        router.clone(),
        Arc::new(callout(&config)?),
        tls,
        metrics.clone(),
        stop_rx.clone(),
    )?;

    let fax = crate::fax::build(&config, &metrics)?;
    let settings = scheduler::Settings {
        retry: config.retry_policy(),
        delay_warning: config.queue.delay_warning.0,
        hostname: config.hostname.clone(),
        concurrency: config.queue.concurrency,
        destination_concurrency: config.queue.destination_concurrency,
        fax_reports: fax.reports.clone(),
    };
    let transports = scheduler::Transports {
        local: Arc::new(MaildirTransport),
        smtp: Arc::new(smtp_transport(&config)?),
        lmtp: Arc::new(lmtp_transport(&config)?),
        fax: fax.transport.clone(),
    };
    let scheduler = Scheduler::new(
        store.clone(),
        router.clone(),
        settings,
        transports,
        metrics.clone(),
    );
    let admin_task = admin.map(|listener| {
        tracing::info!(
            "admin listener on {} ({}; /metrics, /fax/send, /fax/status)",
            config.admin.listen,
            if config.admin.tls { "HTTPS" } else { "HTTP" }
        );
        let fax_api = Arc::new(crate::admin::fax_api::Api {
            config: config.clone(),
            router: router.clone(),
            store: store.clone(),
        });
        tokio::spawn(http::serve(
            listener,
            metrics.clone(),
            store.clone(),
            fax_api,
            admin_tls,
            stop_rx.clone(),
        ))
    });
    let grace = config.smtp.shutdown_grace.std();
    let scheduler_task = tokio::spawn(scheduler.run(stop_rx.clone(), grace));
    let control_path = config.control.socket.clone();
    let control_store = store.clone();
    let control_stop = stop_rx.clone();
    let control_fax = fax.simulated.clone();
    let control_task = tokio::spawn(async move {
        control::serve(&control_path, control_store, control_fax, control_stop).await
    });
    let inbound_task = tokio::spawn(crate::fax_inbound::run(
        fax.engine.clone(),
        config.clone(),
        store.clone(),
        metrics.clone(),
        stop_rx.clone(),
    ));
    let retention_task = tokio::spawn(crate::fax_retention::run(
        crate::fax_retention::Retention::from_config(&config),
        store.clone(),
        metrics.clone(),
        stop_rx.clone(),
    ));
    // The handlers exist before the first client is greeted (and before
    // "ready"): a SIGTERM right after the 220 must shut down cleanly, not
    // kill the process.
    let signals = wait_for_signal();
    let server_task = tokio::spawn(server::serve(ctx, listeners));
    let etrn_task = tokio::spawn(etrn::client::scheduled(config.clone(), stop_rx.clone()));
    let pop3_task = tokio::spawn(crate::pop3_gateway::run(
        config.clone(),
        router.clone(),
        store.clone(),
        stop_rx.clone(),
    ));
    tracing::info!(
        "faxmta {} ready as {}",
        env!("CARGO_PKG_VERSION"),
        config.hostname
    );

    signals.await;
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    let _ = server_task.await;
    let _ = etrn_task.await;
    let _ = pop3_task.await;
    let _ = scheduler_task.await;
    let _ = inbound_task.await;
    let _ = retention_task.await;
    if let Some(task) = admin_task {
        let _ = task.await;
    }
    if let Ok(Err(e)) = control_task.await {
        tracing::warn!("{e}");
    }
    store.sync().await.map_err(|e| e.to_string())?;
    tracing::info!("stopped; {} message(s) stay queued", store.len());
    Ok(())
}

/// The client settings of `[outbound]` (SMTP, or LMTP when `lmtp`).
pub(crate) fn client_settings(config: &Config, lmtp: bool) -> Result<ClientSettings, String> {
    let out = &config.outbound;
    Ok(ClientSettings {
        helo: out.helo.clone().unwrap_or_else(|| config.hostname.clone()),
        tls: Tls::new()?,
        timeouts: out.timeouts(),
        lmtp,
        signer: (!lmtp && !config.dkim.is_empty())
            .then(|| std::sync::Arc::new(crate::policy::dkim::DkimSigner::new(config)) as _),
    })
}

/// Local delivery to LMTP servers; host names resolved through `[dns]`.
fn lmtp_transport(config: &Config) -> Result<LmtpTransport, String> {
    let dns = Dns::new(&config.dns.nameservers, config.dns.timeout.std())?;
    Ok(LmtpTransport::new(dns, client_settings(config, true)?))
}

/// Recipient callouts for backup MX domains (`verify = "callout"`), with
/// the resolver and client settings of outbound SMTP.
fn callout(config: &Config) -> Result<Callout, String> {
    let dns = Dns::new(&config.dns.nameservers, config.dns.timeout.std())?;
    Ok(Callout::new(
        dns,
        client_settings(config, false)?,
        config.myself(),
        config.outbound.port,
    ))
}

/// The outbound SMTP transport as `[dns]` and `[outbound]` describe it.
fn smtp_transport(config: &Config) -> Result<SmtpTransport, String> {
    let dns = Dns::new(&config.dns.nameservers, config.dns.timeout.std())?;
    let out = &config.outbound;
    let tls = out.tls.policy();
    Ok(SmtpTransport::new(
        dns,
        SmtpSettings {
            client: client_settings(config, false)?,
            port: out.port,
            tls,
            myself: config.myself(),
            max_received: out.max_received,
            idle_per_host: config.queue.destination_concurrency,
            suspend: out.suspend_time.std(),
        },
    ))
}

/// Install the SIGTERM and SIGINT handlers now; the future ends at the
/// first of them.
fn wait_for_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let handlers = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    );
    async move {
        let (Ok(mut term), Ok(mut int)) = handlers else {
            // Without signal handlers, only Ctrl-C through tokio remains.
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }
}
