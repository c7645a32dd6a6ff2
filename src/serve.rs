//! `faxmta serve`: start every part of the daemon and stop them in order.
//!
//! Start: logging, the queue (recovering what a crash left), TLS, the
//! listeners (bound before anything is delivered, so a busy port fails
//! fast), the control socket, the scheduler, the received-fax loop, the
//! fax image purge, the scheduled ETRN clients and the POP3 fax gateway.
//! Stop on SIGTERM or SIGINT: listeners stop accepting, sessions get the
//! grace period, running deliveries finish or are cut (and simply retried
//! after restart), and the queue is flushed. SIGHUP (and `faxmta
//! reload`) reloads the configuration (src/reload.rs).

use crate::admin::{control, http};
use crate::config::Config;
use crate::etrn;
use crate::metrics::Metrics;
use crate::policy::limits::Limits;
use crate::reload::{self, Reloader};
use crate::router::Router;
use crate::scheduler::Scheduler;
use crate::server;
use faxmta_queue::Store;
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

pub fn run(path: std::path::PathBuf, config: Config) -> ExitCode {
    init_logging(&config);
    set_umask(config.umask_mode());
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
    match runtime.block_on(serve(path, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("faxmta: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(path: std::path::PathBuf, config: Config) -> Result<(), String> {
    server::raise_open_files_limit(&config);
    let config = Arc::new(config);
    let store = crate::queue::open(&config, crate::queue::Opener::Server)?;
    tracing::info!(
        "queue {} opened: {} message(s)",
        crate::queue::describe(&config),
        store.len()
    );

    let listeners = server::bind(&config).await?;
    let control_listener = control::bind(&config.control.socket)?;
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
    let fax = FaxParts::build(&config, &metrics, &store)?;
    let shared = reload::Shared {
        store: store.clone(),
        metrics: metrics.clone(),
        limits: Arc::new(Limits::new(&config)),
        shutdown: stop_rx.clone(),
        fax: fax.transport.clone(),
        fax_first_page: fax.first_page.clone(),
    };
    let parts = reload::build(&config, &shared)?;
    let router = parts.router.clone();
    let (server_tx, server_rx) = watch::channel(parts.server.clone());
    let (added_tx, added_rx) = tokio::sync::mpsc::unbounded_channel();
    let scheduler = Scheduler::new(
        store.clone(),
        router.clone(),
        parts.settings,
        parts.transports,
        metrics.clone(),
    );
    let reloader = Reloader::new(
        path,
        shared,
        config.clone(),
        server_tx,
        added_tx,
        scheduler.clone(),
    );
    let admin_task = admin.map(|listener| {
        tracing::info!(
            "admin listener on {} ({}; /metrics, /restservice/sendfax, /restservice/status)",
            config.admin.listen,
            if config.admin.tls { "HTTPS" } else { "HTTP" }
        );
        let fax_api = Arc::new(crate::admin::fax_api::Api {
            config: config.clone(),
            router: router.clone(),
            store: store.clone(),
            live: fax.live.clone(),
        });
        let portal = Arc::new(crate::portal::Portal {
            server: server_rx.clone(),
            reloader: reloader.clone(),
            sessions: Default::default(),
            live: fax.live.clone(),
            #[cfg(feature = "fax")]
            drafts: Default::default(),
            #[cfg(feature = "fax")]
            preview: Some(fax.preview.clone()),
            #[cfg(feature = "fax")]
            engine: Some(fax.engine.clone()),
        });
        tokio::spawn(http::serve(
            listener,
            metrics.clone(),
            store.clone(),
            fax_api,
            Some(portal),
            admin_tls,
            stop_rx.clone(),
        ))
    });
    let grace = config.smtp.shutdown_grace.std();
    let scheduler_task = tokio::spawn(scheduler.run(stop_rx.clone(), grace));
    let control_access = control::Access {
        uids: config.control.allow_uids.clone(),
        gids: config.control.allow_gids.clone(),
    };
    let control_store = store.clone();
    let control_stop = stop_rx.clone();
    let control_fax = fax.simulated.clone();
    let control_live = fax.live.clone();
    let control_reload: control::ReloadFn = {
        let reloader = reloader.clone();
        Arc::new(move || {
            let reloader = reloader.clone();
            Box::pin(async move { reloader.reload().await })
        })
    };
    let control_task = tokio::spawn(async move {
        control::serve(
            control_listener,
            control_access,
            control_store,
            control_fax,
            control_live,
            Some(control_reload),
            control_stop,
        )
        .await
    });
    #[cfg(feature = "fax")]
    let inbound_task = tokio::spawn(crate::fax::inbound::run(
        fax.engine.clone(),
        // Routing follows reloads: each fax takes the configuration in
        // force when it arrives.
        reloader.config(),
        store.clone(),
        metrics.clone(),
        stop_rx.clone(),
    ));
    // The handlers exist before the first client is greeted (and before
    // "ready"): a SIGTERM right after the 220 must shut down cleanly, not
    // kill the process.
    let mut signals = Signals::install();
    let server_task = tokio::spawn(server::serve(server_rx, listeners, added_rx));
    let mut tasks = Restartable::start(&config, &router, &store, &metrics, &stop_rx);
    tracing::info!(
        "faxmta {} ready as {}",
        env!("CARGO_PKG_VERSION"),
        config.hostname
    );

    let mut configs = reloader.config();
    loop {
        tokio::select! {
            signal = signals.next() => match signal {
                Signal::Stop => break,
                Signal::Reload => {
                    tracing::info!("SIGHUP: reloading the configuration");
                    let _ = reloader.reload().await;
                }
            },
            changed = configs.changed() => {
                if changed.is_err() {
                    break;
                }
                // A reload took effect: the scheduled ETRN clients, the
                // POP3 gateway and the image purge start again on it.
                let config = configs.borrow_and_update().clone();
                tasks.stop().await;
                let router = Arc::new(Router::new(&config));
                tasks = Restartable::start(&config, &router, &store, &metrics, &stop_rx);
            }
        }
    }
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    // Fax calls in progress hang up now (what was confirmed counts), not
    // at the end of the scheduler's grace.
    #[cfg(feature = "fax")]
    fax.engine.shutdown().await;
    let _ = server_task.await;
    tasks.stop().await;
    let _ = scheduler_task.await;
    #[cfg(feature = "fax")]
    let _ = inbound_task.await;
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

/// The sender of TLS reports, if `[tls_report]` is on.
fn tls_report_sender(
    config: &Arc<Config>,
    store: &Store,
) -> Result<Option<crate::reports::tls::Sender>, String> {
    let Some(recorder) = crate::transports::tls_recorder(config)? else {
        return Ok(None);
    };
    Ok(Some(crate::reports::tls::Sender {
        config: config.clone(),
        store: store.clone(),
        recorder,
        dns: faxmta_smtp::Dns::new(&config.dns.nameservers, config.dns.timeout.std())?,
        tls: faxmta_smtp::Tls::with_roots(config.outbound.ca_file.as_deref())?,
    }))
}

/// The tasks a reload starts again on the new configuration: the
/// scheduled ETRN clients, the POP3 fax gateway and the fax image purge.
struct Restartable {
    stop: watch::Sender<bool>,
    tasks: tokio::task::JoinSet<()>,
}

impl Restartable {
    #[cfg_attr(not(feature = "fax"), allow(unused_variables))]
    fn start(
        config: &Arc<Config>,
        router: &Arc<Router>,
        store: &Store,
        metrics: &Arc<Metrics>,
        shutdown: &watch::Receiver<bool>,
    ) -> Restartable {
        let (stop, stopped) = watch::channel(false);
        // Shutdown stops them too.
        let mut down = shutdown.clone();
        let forward = stop.clone();
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(async move {
            let _ = down.wait_for(|d| *d).await;
            let _ = forward.send(true);
        });
        tasks.spawn(etrn::client::scheduled(config.clone(), stopped.clone()));
        match tls_report_sender(config, store) {
            Ok(Some(sender)) => {
                tasks.spawn(crate::reports::tls::run(sender, stopped.clone()));
            }
            Ok(None) => {}
            Err(e) => tracing::warn!("TLS reports are not sent: {e}"),
        }
        #[cfg(feature = "fax")]
        tasks.spawn(crate::fax::pop3_gateway::run(
            config.clone(),
            router.clone(),
            store.clone(),
            stopped.clone(),
        ));
        #[cfg(feature = "fax")]
        tasks.spawn(crate::fax::retention::run(
            crate::fax::retention::Retention::from_config(config),
            store.clone(),
            metrics.clone(),
            stopped,
        ));
        Restartable { stop, tasks }
    }

    /// Stop them and wait for their end.
    async fn stop(&mut self) {
        let _ = self.stop.send(true);
        // The forwarder waits for a shutdown that may never come.
        let mut left = self.tasks.len();
        while left > 1 {
            if self.tasks.join_next().await.is_none() {
                break;
            }
            left -= 1;
        }
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
    }
}

/// What the rest of the server holds of the fax stack; all `None` in a
/// mail-only build (without the feature `fax`).
struct FaxParts {
    /// The fax transport (its engine and lines live as long as the server).
    transport: Option<Arc<dyn faxmta_transport::Transport>>,
    first_page: Option<Arc<crate::scheduler::FirstPage>>,
    /// The engine when it is the simulated one (the control socket's
    /// simulated incoming calls).
    simulated: Option<Arc<control::FaxSimulator>>,
    #[cfg(feature = "fax")]
    engine: Arc<dyn faxmta_fax::engine::FaxEngine>,
    /// The portal's preview.
    #[cfg(feature = "fax")]
    preview: Arc<crate::fax::preview::Previewer>,
    /// What each fax in flight is doing now: the control socket's `fax
    /// status`, the HTTP API's status view (and the web portal) read it.
    /// Empty for good in a mail-only build.
    live: faxmta_fax::live::LiveBoard,
}

impl FaxParts {
    #[cfg(feature = "fax")]
    fn build(config: &Config, metrics: &Arc<Metrics>, store: &Store) -> Result<FaxParts, String> {
        let fax = crate::fax::build(config, metrics, store)?;
        Ok(FaxParts {
            transport: Some(fax.transport),
            first_page: fax.reports.first_page,
            simulated: fax.simulated,
            engine: fax.engine,
            preview: fax.preview,
            live: fax.live,
        })
    }

    #[cfg(not(feature = "fax"))]
    fn build(
        _config: &Config,
        _metrics: &Arc<Metrics>,
        _store: &Store,
    ) -> Result<FaxParts, String> {
        Ok(FaxParts {
            transport: None,
            first_page: None,
            simulated: None,
            live: Default::default(),
        })
    }
}

enum Signal {
    /// SIGTERM or SIGINT: shut down.
    Stop,
    /// SIGHUP: reload.
    Reload,
}

/// The SIGTERM, SIGINT and SIGHUP handlers, installed at once.
struct Signals {
    handlers: Option<(
        tokio::signal::unix::Signal,
        tokio::signal::unix::Signal,
        tokio::signal::unix::Signal,
    )>,
}

impl Signals {
    fn install() -> Signals {
        use tokio::signal::unix::{signal, SignalKind};
        let handlers = match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::hangup()),
        ) {
            (Ok(term), Ok(int), Ok(hup)) => Some((term, int, hup)),
            _ => None,
        };
        Signals { handlers }
    }

    async fn next(&mut self) -> Signal {
        let Some((term, int, hup)) = &mut self.handlers else {
            // Without signal handlers, only Ctrl-C through tokio remains.
            let _ = tokio::signal::ctrl_c().await;
            return Signal::Stop;
        };
        tokio::select! {
            _ = term.recv() => Signal::Stop,
            _ = int.recv() => Signal::Stop,
            _ = hup.recv() => Signal::Reload,
        }
    }
}

/// Set the process's file creation mask (before any thread starts and
/// any file is made).
pub fn set_umask(mode: u32) {
    // SAFETY: umask(2) only sets the calling process's mask.
    unsafe {
        libc::umask(mode as libc::mode_t);
    }
}
