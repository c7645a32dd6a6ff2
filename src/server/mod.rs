//! The inbound SMTP server: listeners, one task per connection, and an
//! orderly shutdown (stop accepting, let sessions finish within the grace
//! period, then cut them; nothing acknowledged is lost because a message
//! is acknowledged only once it is on disk).

mod accept;
mod conn;
pub mod data;
pub mod path;
mod received;
mod rlimit;
mod session;
pub mod tls;

use crate::admin::metrics::Metrics;
use crate::config::{Config, ListenerConfig, TlsMode};
use crate::policy::limits::Limits;
use crate::policy::spf::Authenticator;
use crate::policy::users::UserDb;
use crate::policy::Policy;
use crate::router::Router;
use conn::{Conn, Stream};
use faxmta_queue::Store;
use faxmta_transports::smtp::Callout;
pub use rlimit::raise_open_files_limit;
use session::{Session, TlsInfo};
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
    let mut bound = Vec::new();
    for l in &config.listeners {
        let socket = TcpListener::bind(l.addr)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", l.addr))?;
        tracing::info!("listening on {} ({:?}, TLS {:?})", l.addr, l.role, l.tls);
        bound.push((socket, l.clone()));
    }
    Ok(bound)
}

/// Accept connections until shutdown, then wait for the sessions.
pub async fn serve(ctx: Arc<ServerContext>, listeners: Vec<(TcpListener, ListenerConfig)>) {
    let mut accept_loops = JoinSet::new();
    for (socket, listener) in listeners {
        accept_loops.spawn(accept_loop(ctx.clone(), socket, listener));
    }
    while accept_loops.join_next().await.is_some() {}
}

async fn accept_loop(ctx: Arc<ServerContext>, socket: TcpListener, listener: ListenerConfig) {
    let mut sessions = JoinSet::new();
    let mut shutdown = ctx.shutdown.clone();
    let mut descriptors = accept::Descriptors::new();
    loop {
        tokio::select! {
            accepted = socket.accept() => match accepted {
                Ok((tcp, peer)) => {
                    let _ = tcp.set_nodelay(true);
                    // Counted now, so that the limits see every
                    // connection at once; refused in the session's
                    // greeting (after the handshake of implicit TLS).
                    let admission = ctx.limits.admit(peer.ip());
                    let ctx = ctx.clone();
                    let listener = listener.clone();
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
                    descriptors.failed(&ctx, &socket, &listener, e).await;
                }
            },
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
            _ = shutdown.changed() => break,
        }
    }
    drop(socket);
    let grace = ctx.config.smtp.shutdown_grace.std();
    let open = sessions.len();
    if open > 0 {
        tracing::info!(
            "{}: waiting up to {:?} for {open} session(s)",
            listener.addr,
            grace
        );
    }
    let drained = tokio::time::timeout(grace, async {
        while sessions.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::info!(
            "{}: cutting {} session(s) after the grace period",
            listener.addr,
            sessions.len()
        );
        sessions.abort_all();
        while sessions.join_next().await.is_some() {}
    }
}

/// Build the shared context.
pub fn context(
    config: Arc<Config>,
    store: Store,
    router: Arc<Router>,
    callout: Arc<Callout>,
    tls: Option<TlsAcceptor>,
    metrics: Arc<Metrics>,
    shutdown: watch::Receiver<bool>,
) -> Result<Arc<ServerContext>, String> {
    let policy = Arc::new(Policy::new(&config));
    // Over [dns], as mail routing.
    let auth = Some(Arc::new(Authenticator::new(&config)?));
    let limits = Arc::new(Limits::new(&config));
    let users = config.auth.users_file.clone().map(UserDb::new);
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
