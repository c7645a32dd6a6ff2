//! Reload without restart, as `postfix reload` does: `faxmta reload`
//! (the control socket) and SIGHUP read the configuration file again —
//! with it the SMTP AUTH users file, the fax users, groups and rules, the
//! TLS certificate and the DKIM keys — and put it in force for what
//! starts from then on.
//!
//! - A configuration with an error is refused with its file:line and
//!   the running one stays (nothing is changed unless every part of the
//!   new one could be built, listeners bound included).
//! - Open SMTP sessions finish on the settings they started with; new
//!   connections get the new ones. Listeners added are bound, listeners
//!   removed stop accepting (their sessions finish); a listener that
//!   stays takes its new allow lists, role and TLS mode.
//! - Deliveries that start afterwards use the new domain table, retry
//!   schedule, outbound settings and DKIM keys; running ones finish with
//!   theirs. Queued mail is untouched.
//! - The scheduled ETRN clients, the POP3 fax gateway and the fax image
//!   purge are restarted on the new configuration.
//! - What only a restart changes (the queue, the control socket, the
//!   admin listener, the fax engine and its lines, the scheduler's
//!   concurrency) is kept as it was, and the reload says so in a warning.

use crate::config::{Config, ListenerConfig, TlsMode};
use crate::metrics::Metrics;
use crate::policy::limits::Limits;
use crate::router::Router;
use crate::scheduler::{FaxReports, Scheduler};
use crate::server::{self, ServerContext};
use faxmta_queue::Store;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

/// What every generation of settings shares: built once at start.
pub struct Shared {
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub limits: Arc<Limits>,
    pub shutdown: watch::Receiver<bool>,
    /// The fax transport (its engine and lines are not rebuilt).
    /// `None`: a mail-only build.
    pub fax: Option<Arc<dyn faxmta_transport::Transport>>,
    /// The first-page picture maker of the fax reports.
    pub fax_first_page: Option<Arc<crate::scheduler::FirstPage>>,
}

/// The parts of the server that follow the configuration.
pub struct Reloader {
    path: PathBuf,
    shared: Shared,
    /// The configuration in force; the lock also keeps reloads one at a
    /// time.
    current: tokio::sync::Mutex<Arc<Config>>,
    server: watch::Sender<Arc<ServerContext>>,
    added: mpsc::UnboundedSender<(TcpListener, ListenerConfig)>,
    scheduler: Arc<Scheduler>,
    config: watch::Sender<Arc<Config>>,
}

/// What a reload said: the warnings of a reload that took effect.
pub type Reloaded = Result<Vec<String>, String>;

impl Reloader {
    pub fn new(
        path: PathBuf,
        shared: Shared,
        config: Arc<Config>,
        server: watch::Sender<Arc<ServerContext>>,
        added: mpsc::UnboundedSender<(TcpListener, ListenerConfig)>,
        scheduler: Arc<Scheduler>,
    ) -> Arc<Reloader> {
        Arc::new(Reloader {
            path,
            shared,
            current: tokio::sync::Mutex::new(config.clone()),
            server,
            added,
            scheduler,
            config: watch::channel(config).0,
        })
    }

    /// The configuration file.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// The configuration in force, as it changes.
    pub fn config(&self) -> watch::Receiver<Arc<Config>> {
        self.config.subscribe()
    }

    /// Read the configuration again and put it in force, or refuse it and
    /// keep the running one. One log line either way.
    pub async fn reload(&self) -> Reloaded {
        let mut current = self.current.lock().await;
        let result = self.try_reload(&current).await;
        match &result {
            Ok((config, warnings)) => {
                *current = config.clone();
                for w in warnings {
                    tracing::warn!("reload: {w}");
                }
                tracing::info!(
                    "reloaded {}: {} listener(s), {} domain(s)",
                    self.path.display(),
                    config.listeners.len(),
                    config.domains.len()
                );
            }
            Err(e) => tracing::error!("reload refused, the running configuration stays: {e}"),
        }
        result.map(|(_, warnings)| warnings)
    }

    async fn try_reload(&self, old: &Config) -> Result<(Arc<Config>, Vec<String>), String> {
        let config = Config::load(&self.path).and_then(|mut c| {
            c.read_passwords(&self.path)?;
            Ok(c)
        });
        let config = Arc::new(config.map_err(|e| e.to_string())?);
        let warnings = restart_only(old, &config);
        let parts = build(&config, &self.shared)?;
        // New listeners are bound before anything changes: a port in use
        // refuses the reload.
        let added = server::bind_some(
            config
                .listeners
                .iter()
                .filter(|l| !old.listeners.iter().any(|o| o.addr == l.addr)),
        )
        .await?;
        // In force from here on.
        self.shared.limits.reconfigure(&config);
        self.server.send_replace(parts.server);
        for listener in added {
            let _ = self.added.send(listener);
        }
        self.scheduler
            .reconfigure(parts.router, parts.settings, parts.transports);
        self.config.send_replace(config.clone());
        Ok((config, warnings))
    }
}

/// `faxmta reload`: ask the running server (over the control socket) to
/// reload; its warnings on standard error, failure when it refused or no
/// server runs. A file with an error is still sent to the server (which
/// refuses it and logs why): the control socket is then taken from the
/// file as far as it reads, so the refusal is the server's, with its
/// file:line.
pub fn request(path: &std::path::Path) -> std::process::ExitCode {
    use crate::admin::control::{self, Request, Response};
    use std::process::ExitCode;
    let socket = match Config::load(path) {
        Ok(config) => config.control.socket,
        Err(e) => {
            eprintln!("faxmta: {e}");
            control_socket(path)
        }
    };
    let socket = &socket;
    match control::call(socket, &Request::Reload) {
        Ok(Some(Response::Reloaded { warnings })) => {
            for w in &warnings {
                eprintln!("faxmta: warning: {w}");
            }
            println!("faxmta: reloaded");
            ExitCode::SUCCESS
        }
        Ok(Some(Response::Error(e))) => {
            eprintln!("faxmta: reload refused: {e}");
            ExitCode::FAILURE
        }
        Ok(Some(other)) => {
            eprintln!("faxmta: unexpected answer to reload: {other:?}");
            ExitCode::FAILURE
        }
        Ok(None) => {
            eprintln!(
                "faxmta: no server answers on {}: nothing to reload",
                socket.display()
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("faxmta: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `[control] socket` of a configuration file that does not load: read
/// as plain TOML, or the default when even that fails.
fn control_socket(path: &std::path::Path) -> PathBuf {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| text.parse::<toml::Table>().ok())
        .and_then(|t| t.get("control")?.get("socket")?.as_str().map(PathBuf::from))
        .unwrap_or_else(|| crate::config::ControlConfig::default().socket)
}

/// One generation of what follows the configuration.
pub struct Parts {
    pub router: Arc<Router>,
    pub server: Arc<ServerContext>,
    pub settings: crate::scheduler::Settings,
    pub transports: faxmta_transport::TransportTable,
}

/// Build every part that follows the configuration (certificates, keys
/// and users read now); an error leaves nothing changed.
pub fn build(config: &Arc<Config>, shared: &Shared) -> Result<Parts, String> {
    let needs_tls = config.listeners.iter().any(|l| l.tls != TlsMode::None);
    let tls = match needs_tls {
        true => Some(server::tls::acceptor(config)?),
        false => None,
    };
    let router = Arc::new(Router::new(config));
    let server = server::context(
        server::Settings {
            config: config.clone(),
            router: router.clone(),
            callout: Arc::new(crate::transports::callout(config)?),
            tls,
        },
        shared.store.clone(),
        shared.metrics.clone(),
        shared.shutdown.clone(),
        shared.limits.clone(),
    )?;
    let settings = crate::scheduler::Settings {
        retry: config.retry_policy(),
        delay_warning: config.queue.delay_warning.0,
        hostname: config.hostname.clone(),
        concurrency: config.queue.concurrency,
        destination_concurrency: config.queue.destination_concurrency,
        fax_reports: FaxReports {
            success: config.fax.success_report,
            first_page: shared.fax_first_page.clone(),
        },
        lease: std::time::Duration::from_secs(config.queue.lease_time.0),
        fax_history: {
            let directory = config.fax.policy().directory;
            crate::scheduler::FaxHistory {
                keep: u64::from(config.fax.history_days) * 86_400,
                documents: u64::from(config.fax.documents_days) * 86_400,
                groups: Arc::new(move |sender: &str| {
                    directory
                        .lookup(sender)
                        .map(|u| u.groups)
                        .unwrap_or_default()
                }),
            }
        },
    };
    let transports = crate::transports::table(config, shared.fax.clone())?;
    Ok(Parts {
        router,
        server,
        settings,
        transports,
    })
}

/// The settings only a restart puts in force that differ between `old`
/// and `new`, one warning each.
fn restart_only(old: &Config, new: &Config) -> Vec<String> {
    let (o, n) = (&old.fax, &new.fax);
    // In several tuples: Debug is implemented for tuples of up to 12.
    let fax_engine = |f: &crate::config::fax::FaxConfig| {
        format!(
            "{:?} {:?} {:?}",
            (
                &f.engine,
                f.lines,
                &f.tsi,
                &f.header,
                &f.resolution,
                &f.paper
            ),
            (&f.compression, f.cover_page, &f.unsupported, f.retries),
            (
                &f.retry_interval,
                &f.partial,
                f.report_first_page,
                &f.spool,
                &f.archive,
                &f.simulated,
                &f.spool_engine,
                &f.hylafax,
            )
        )
    };
    let checks = [
        (
            "[queue] path",
            format!("{:?}", old.queue.path) != format!("{:?}", new.queue.path),
        ),
        (
            "[accounts] backend",
            old.accounts.backend != new.accounts.backend,
        ),
        (
            "[queue] backend, url, password_file, pool_size, node and tls_ca",
            format!(
                "{:?}",
                (
                    old.queue.backend,
                    &old.queue.url,
                    &old.queue.password_file,
                    old.queue.pool_size,
                    &old.queue.node,
                    &old.queue.tls_ca
                )
            ) != format!(
                "{:?}",
                (
                    new.queue.backend,
                    &new.queue.url,
                    &new.queue.password_file,
                    new.queue.pool_size,
                    &new.queue.node,
                    &new.queue.tls_ca
                )
            ),
        ),
        (
            "[queue] concurrency and destination_concurrency",
            (old.queue.concurrency, old.queue.destination_concurrency)
                != (new.queue.concurrency, new.queue.destination_concurrency),
        ),
        (
            "[control] socket, allow_uids and allow_gids",
            (
                &old.control.socket,
                &old.control.allow_uids,
                &old.control.allow_gids,
            ) != (
                &new.control.socket,
                &new.control.allow_uids,
                &new.control.allow_gids,
            ),
        ),
        (
            "[auth] max_verifications",
            old.auth.max_verifications != new.auth.max_verifications,
        ),
        (
            "[admin] metrics_token_file",
            old.admin.metrics_token_file != new.admin.metrics_token_file,
        ),
        (
            "[admin] listen, enabled and tls",
            (old.admin.listen, old.admin.enabled, old.admin.tls)
                != (new.admin.listen, new.admin.enabled, new.admin.tls),
        ),
        (
            "[admin] header_timeout, request_timeout and max_connections",
            (
                old.admin.header_timeout,
                old.admin.request_timeout,
                old.admin.max_connections,
            ) != (
                new.admin.header_timeout,
                new.admin.request_timeout,
                new.admin.max_connections,
            ),
        ),
        (
            "[log]",
            format!("{:?}", old.log) != format!("{:?}", new.log),
        ),
        (
            "the fax engine, its lines and the fax document settings",
            fax_engine(o) != fax_engine(n),
        ),
    ];
    checks
        .into_iter()
        .filter(|(_, changed)| *changed)
        .map(|(what, _)| format!("{what} changed: kept as it was until faxmta is restarted"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn parse(text: &str) -> Config {
        Config::parse(Path::new("t.toml"), text).unwrap()
    }

    #[test]
    fn settings_only_a_restart_changes_are_named() {
        let old = parse("[queue]\npath = \"var/a\"\n[fax]\nlines = 2\n");
        let same = parse("[queue]\npath = \"var/a\"\n[fax]\nlines = 2\ntrusted_only = false\n");
        assert!(restart_only(&old, &same).is_empty());
        let new = parse("[queue]\npath = \"var/b\"\n[fax]\nlines = 4\n");
        let warned = restart_only(&old, &new);
        assert_eq!(warned.len(), 2, "{warned:?}");
        assert!(warned[0].starts_with("[queue] path changed"), "{warned:?}");
        assert!(warned[1].starts_with("the fax engine"), "{warned:?}");
        let pg = parse(
            "[queue]\npath = \"var/a\"\nbackend = \"postgres\"\nurl = \"postgres://u@db/q\"\n\
             [fax]\nlines = 2\n",
        );
        let warned = restart_only(&old, &pg);
        assert_eq!(warned.len(), 1, "{warned:?}");
        assert!(
            warned[0].starts_with(
                "[queue] backend, url, password_file, pool_size, node and tls_ca changed"
            ),
            "{warned:?}"
        );
        let accounts = parse(
            "[queue]\npath = \"var/a\"\nbackend = \"postgres\"\nurl = \"postgres://u@db/q\"\n\
             [accounts]\nbackend = \"database\"\n[fax]\nlines = 2\n",
        );
        let warned = restart_only(&pg, &accounts);
        assert_eq!(warned.len(), 1, "{warned:?}");
        assert!(
            warned[0].starts_with("[accounts] backend changed"),
            "{warned:?}"
        );
    }
}
