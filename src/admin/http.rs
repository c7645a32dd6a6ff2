//! The admin listener: `GET /metrics` in Prometheus' text format, and
//! the HTTP fax API ([`super::fax_api`]), over HTTP or HTTPS
//! (`[admin] tls`). It binds to loopback by default (`[admin] listen`);
//! what it exposes is for the operator, not the Internet.
//!
//! Each connection is served here (hyper's HTTP/1 server), not by
//! `axum::serve`, so that it has bounds like an SMTP session's: at most
//! `[admin] max_connections` at once (more are answered 503 and closed;
//! over HTTPS, closed), `header_timeout` to finish a TLS handshake and
//! each request's headers (and to start the next request on a kept-alive
//! connection), and `request_timeout` for a whole request, body and
//! answer included (then 408 and the connection is closed).

use super::fax_api::{self, reply};
use crate::metrics::Metrics;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use faxmta_queue::Store;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{watch, Semaphore};

#[derive(Clone)]
struct AppState {
    metrics: Arc<Metrics>,
    store: Store,
    /// `[admin] metrics_token_file`.
    token_file: Option<std::path::PathBuf>,
}

/// The bounds of a connection (`[admin]`).
#[derive(Debug, Clone, Copy)]
struct Bounds {
    header: Duration,
    request: Duration,
    connections: usize,
}

/// How long open connections may finish their request at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Whether `headers` carry the token of `[admin] metrics_token_file`
/// (`Authorization: Bearer TOKEN`). The file is read at each request, so
/// a new token takes effect at once; one that cannot be read lets
/// nobody in.
fn metrics_allowed(file: &std::path::Path, headers: &axum::http::HeaderMap) -> Result<(), String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("metrics_token_file {}: {e}", file.display()))?;
    let token = text.lines().next().unwrap_or("").trim();
    if token.is_empty() {
        return Err(format!("metrics_token_file {}: empty", file.display()));
    }
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
        .unwrap_or("");
    // Compared in constant time (for equal lengths).
    let same = presented.len() == token.len()
        && presented
            .bytes()
            .zip(token.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if same {
        Ok(())
    } else {
        Err(String::new())
    }
}

async fn render(State(state): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    if let Some(file) = &state.token_file {
        if let Err(why) = metrics_allowed(file, &headers) {
            if !why.is_empty() {
                tracing::warn!("GET /metrics refused: {why}");
            }
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer realm=\"faxmta metrics\"")],
                "401 Unauthorized: /metrics needs the token of [admin] metrics_token_file \
                 (Authorization: Bearer TOKEN)\n",
            )
                .into_response();
        }
    }
    let text = tokio::task::spawn_blocking(move || state.metrics.render(&state.store))
        .await
        .unwrap_or_else(|e| format!("# error: {e}\n"));
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// Bind the listener now (so a busy port fails the start), serve later.
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, String> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr} (admin): {e}"))
}

/// A request that takes longer than `request_timeout` (its body too:
/// the handlers read it) is answered 408 and its connection closed.
async fn deadline(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    let format = reply::Format::from_headers(request.headers());
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            let e = reply::ApiError::new(
                reply::Code::RequestTimeout,
                format!(
                    "the request took longer than {}s ([admin] request_timeout)",
                    limit.as_secs()
                ),
            );
            let mut response = reply::error(format, &e);
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            response
        }
    }
}

/// The client of a request (a request extension: the portal counts
/// failed logins per address).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

/// Serve until shutdown.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    store: Store,
    fax_api: Arc<fax_api::Api>,
    portal: Option<Arc<crate::portal::Portal>>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    mut shutdown: watch::Receiver<bool>,
) {
    let admin = &fax_api.config.admin;
    let bounds = Bounds {
        header: admin.header_timeout.std(),
        request: admin.request_timeout.std(),
        connections: admin.max_connections.max(1),
    };
    let app = Router::new()
        .route("/metrics", get(render))
        .with_state(AppState {
            metrics,
            store,
            token_file: admin.metrics_token_file.clone(),
        })
        .merge(fax_api::routes(fax_api));
    let app = match portal {
        Some(portal) => app.merge(crate::portal::routes(portal)),
        None => app,
    };
    let app = app
        .fallback(fax_api::unknown)
        .layer(axum::middleware::from_fn_with_state(
            bounds.request,
            deadline,
        ));
    let slots = Arc::new(Semaphore::new(bounds.connections));
    loop {
        let accepted = tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listener.accept() => accepted,
        };
        let (tcp, peer) = match accepted {
            Ok(c) => c,
            Err(e) => {
                // Out of descriptors and the like: wait, go on.
                tracing::warn!("admin listener: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::info!(
                "admin listener: refused {peer}: {} connections open ([admin] max_connections)",
                bounds.connections
            );
            // Over TLS a plain answer would be noise: just close.
            if tls.is_none() {
                tokio::spawn(refuse(tcp));
            }
            continue;
        };
        let app = app.clone().layer(axum::Extension(ClientAddr(peer)));
        let (tls, stop) = (tls.clone(), shutdown.clone());
        tokio::spawn(async move {
            let _slot = slot;
            match tls {
                None => connection(tcp, app, bounds, stop).await,
                Some(acceptor) => {
                    match tokio::time::timeout(bounds.header, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => connection(tls, app, bounds, stop).await,
                        Ok(Err(e)) => tracing::debug!("admin listener: TLS from {peer}: {e}"),
                        Err(_) => tracing::debug!("admin listener: TLS from {peer}: timed out"),
                    }
                }
            }
        });
    }
    // Let the open connections finish (each stops at its next request).
    let all = u32::try_from(bounds.connections).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, slots.acquire_many(all)).await;
}

/// One connection, until the client closes it, a bound cuts it, or
/// shutdown.
async fn connection<I>(io: I, app: Router, bounds: Bounds, mut stop: watch::Receiver<bool>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(bounds.header);
    let conn = builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(app));
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!("admin listener: {e}");
            }
        }
        _ = stop.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, conn).await;
        }
    }
}

/// A connection over `max_connections`: a 503 and close, without
/// reading the request (what it sent is drained briefly so the close
/// does not reset the answer away).
async fn refuse(mut tcp: TcpStream) {
    let e = reply::ApiError::new(
        reply::Code::TooManyConnections,
        "too many connections to the admin listener; try again later",
    );
    let body = reply::error_json(&e);
    let answer = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\nRetry-After: 1\r\n\r\n{body}",
        StatusCode::SERVICE_UNAVAILABLE.as_u16(),
        StatusCode::SERVICE_UNAVAILABLE
            .canonical_reason()
            .unwrap_or("Service Unavailable"),
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        tcp.write_all(answer.as_bytes()).await?;
        tcp.shutdown().await?;
        let mut sink = [0u8; 4096];
        while tcp.read(&mut sink).await? > 0 {}
        Ok::<(), std::io::Error>(())
    })
    .await;
}
