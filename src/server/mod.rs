//! The inbound SMTP server: listeners, one task per connection, and an
//! orderly shutdown (stop accepting, let sessions finish within the grace
//! period, then cut them; nothing acknowledged is lost because a message
//! is acknowledged only once it is on disk).

mod accept;
mod conn;
/// The DATA body reader (pure, in faxmta-proto).
pub use faxmta_proto::data;
pub mod path;
mod received;
mod rlimit;
mod session;
pub mod tls;

use crate::config::{AccountsBackend, Config, ListenerConfig, TlsMode};
use crate::metrics::Metrics;
use crate::policy::limits::Limits;
use crate::policy::spf::Authenticator;
use crate::policy::users::UserDb;
use crate::policy::Policy;
use crate::router::Router;
use conn::{Conn, Stream};
use faxmta_queue::Store;
use faxmta_smtp::Callout;
pub use rlimit::raise_open_files_limit;
use session::{Session, TlsInfo};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

/// What every session shares.
pub struct ServerContext {
    pub config: Arc<Config>,
    pub store: Store,
    pub router: Arc<Router>,
    pub policy: Arc<Policy>,
    /// Recipient callouts for backup MX domains.
    pub callout: Arc<Callout>,
    /// SPF, DKIM and DMARC checks (`None`: the resolver could not be made;
    /// no check runs).
    pub auth: Option<Arc<Authenticator>>,
    pub tls: Option<TlsAcceptor>,
    pub metrics: Arc<Metrics>,
    pub shutdown: watch::Receiver<bool>,
    /// Connection and AUTH failure limits.
    pub limits: Arc<Limits>,
    /// The users of SMTP AUTH (`None`: no `[auth] users_file`, no AUTH).
    pub users: Option<UserDb>,
}

impl ServerContext {
    pub fn shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }
}

/// Bind every configured listener (before anything else starts, so a
/// port in use is reported at once).
pub async fn bind(config: &Config) -> Result<Vec<(TcpListener, ListenerConfig)>, String> {
    bind_some(config.listeners.iter()).await
}

/// Bind the listeners of `listeners`, all or none.
pub async fn bind_some<'a>(
    listeners: impl Iterator<Item = &'a ListenerConfig>,
) -> Result<Vec<(TcpListener, ListenerConfig)>, String> {
    let mut bound = Vec::new();
    for l in listeners {
        let socket = TcpListener::bind(l.addr)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", l.addr))?;
        tracing::info!("listening on {} ({:?}, TLS {:?})", l.addr, l.role, l.tls);
        bound.push((socket, l.clone()));
    }
    Ok(bound)
}

/// The server's settings as they stand: every new connection takes the
/// newest context (a reload sends a new one); a session keeps the one it
/// started with to its end.
pub type LiveContext = watch::Receiver<Arc<ServerContext>>;

/// Accept connections until shutdown, then wait for the sessions.
///
/// A reload may add listeners (bound by the reloader, so that a port in
/// use refuses the reload, and sent through `added`) and remove some: a
/// removed listener stops accepting at once; its open sessions finish.
/// A listener that stays takes its new settings (allow lists, role,
/// TLS) with the next connection.
pub async fn serve(
    mut live: LiveContext,
    listeners: Vec<(TcpListener, ListenerConfig)>,
    mut added: tokio::sync::mpsc::UnboundedReceiver<(TcpListener, ListenerConfig)>,
) {
    let mut shutdown = live.borrow().shutdown.clone();
    let mut accept_loops = JoinSet::new();
    let mut running: std::collections::HashMap<SocketAddr, watch::Sender<bool>> =
        Default::default();
    let start = |socket: TcpListener,
                 listener: ListenerConfig,
                 running: &mut std::collections::HashMap<_, _>,
                 loops: &mut JoinSet<()>,
                 live: &LiveContext| {
        let (stop, stopped) = watch::channel(false);
        running.insert(listener.addr, stop);
        loops.spawn(accept_loop(live.clone(), socket, listener.addr, stopped));
    };
    for (socket, listener) in listeners {
        start(socket, listener, &mut running, &mut accept_loops, &live);
    }
    loop {
        tokio::select! {
            Some((socket, listener)) = added.recv() => {
                start(socket, listener, &mut running, &mut accept_loops, &live);
            }
            changed = live.changed() => {
                if changed.is_err() {
                    break;
                }
                let ctx = live.borrow_and_update().clone();
                running.retain(|addr, stop| {
                    let keep = ctx.config.listeners.iter().any(|l| l.addr == *addr);
                    if !keep {
                        tracing::info!("{addr}: listener removed by the reload; open sessions finish");
                        let _ = stop.send(true);
                    }
                    keep
                });
            }
            _ = shutdown.changed() => break,
            Some(_) = accept_loops.join_next(), if !accept_loops.is_empty() => {}
        }
    }
    while accept_loops.join_next().await.is_some() {}
}

async fn accept_loop(
    live: LiveContext,
    socket: TcpListener,
    addr: SocketAddr,
    mut removed: watch::Receiver<bool>,
) {
    let mut sessions = JoinSet::new();
    let mut shutdown = live.borrow().shutdown.clone();
    let mut descriptors = accept::Descriptors::new();
    loop {
        tokio::select! {
            accepted = socket.accept() => {
                // The newest settings for every new connection.
                let ctx = live.borrow().clone();
                let Some(listener) = ctx.config.listeners.iter().find(|l| l.addr == addr).cloned() else {
                    // Removed by a reload that this loop has not seen yet.
                    continue;
                };
                match accepted {
                Ok((tcp, peer)) => {
                    let _ = tcp.set_nodelay(true);
                    // Counted now, so that the limits see every
                    // connection at once; refused in the session's
                    // greeting (after the handshake of implicit TLS).
                    let admission = ctx.limits.admit(peer.ip());
                    sessions.spawn(async move {
                        tracing::debug!(client = %peer, "connect");
                        let (stream, tls) = match (listener.tls, &ctx.tls) {
                            (TlsMode::Implicit, Some(acceptor)) => {
                                let handshake = tokio::time::timeout(ctx.config.smtp.command_timeout.std(), acceptor.accept(tcp)).await;
                                match handshake {
                                    Ok(Ok(s)) => {
                                        let (version, cipher) = tls::describe(s.get_ref().1);
                                        (Stream::Tls(Box::new(s)), Some(TlsInfo { version, cipher }))
                                    }
                                    _ => {
                                        tracing::info!(client = %peer, "TLS handshake failed");
                                        return;
                                    }
                                }
                            }
                            _ => (Stream::Plain(tcp), None),
                        };
                        ctx.metrics.sessions_in.inc();
                        if let Some(t) = &tls {
                            ctx.metrics.tls.with_label_values(&["in", &t.version]).inc();
                        }
                        let metrics = ctx.metrics.clone();
                        let conn = Conn::new(stream, ctx.limits.stress(), ctx.config.smtp.stress_timeout.std());
                        Session::new(ctx, listener, peer, conn, tls)
                            .run(admission)
                            .await;
                        metrics.sessions_in.dec();
                        tracing::debug!(client = %peer, "disconnect");
                    });
                }
                Err(e) => {
                    // Out of file descriptors and the like: say so, turn
                    // the waiting client away, and wait a little.
                    descriptors.failed(&ctx.metrics, &socket, &listener, e).await;
                }
                }
            },
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
            _ = shutdown.changed() => break,
            _ = removed.changed() => {
                // Removed by a reload: no new connections; the open
                // sessions end as they would (or at shutdown, below).
                drop(socket);
                tokio::select! {
                    _ = async { while sessions.join_next().await.is_some() {} } => return,
                    _ = shutdown.changed() => {}
                }
                return drain(&live, addr, sessions).await;
            }
        }
    }
    drop(socket);
    drain(&live, addr, sessions).await
}

/// Shutdown: let the sessions finish within the grace period, then cut
/// them.
async fn drain(live: &LiveContext, addr: SocketAddr, mut sessions: JoinSet<()>) {
    let grace = live.borrow().config.smtp.shutdown_grace.std();
    let open = sessions.len();
    if open > 0 {
        tracing::info!("{addr}: waiting up to {grace:?} for {open} session(s)");
    }
    let drained = tokio::time::timeout(grace, async {
        while sessions.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::info!(
            "{addr}: cutting {} session(s) after the grace period",
            sessions.len()
        );
        sessions.abort_all();
        while sessions.join_next().await.is_some() {}
    }
}

/// What one configuration gives the sessions (built anew at each reload).
pub struct Settings {
    pub config: Arc<Config>,
    pub router: Arc<Router>,
    pub callout: Arc<Callout>,
    pub tls: Option<TlsAcceptor>,
}

/// Build the shared context: `settings` of one configuration, with what
/// lasts across reloads.
pub fn context(
    settings: Settings,
    store: Store,
    metrics: Arc<Metrics>,
    shutdown: watch::Receiver<bool>,
    limits: Arc<Limits>,
) -> Result<Arc<ServerContext>, String> {
    let Settings {
        config,
        router,
        callout,
        tls,
    } = settings;
    let policy = Arc::new(Policy::new(&config));
    // Over [dns], as mail routing.
    let auth = Some(Arc::new(Authenticator::new(&config)?));
    let users = match (config.accounts.backend, store.accounts()) {
        (AccountsBackend::Database, Some(accounts)) => {
            Some(UserDb::database(accounts, limits.verifications.clone()))
        }
        (AccountsBackend::Database, None) => {
            return Err("[accounts] backend = \"database\" needs the queue on PostgreSQL".into())
        }
        (AccountsBackend::Files, _) => config
            .auth
            .users_file
            .clone()
            .map(|f| UserDb::new(f, limits.verifications.clone())),
    };
    Ok(Arc::new(ServerContext {
        limits,
        users,
        config,
        store,
        router,
        policy,
        callout,
        auth,
        tls,
        metrics,
        shutdown,
    }))
}
