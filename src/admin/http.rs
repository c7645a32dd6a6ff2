//! The admin HTTP listener: `GET /metrics` in Prometheus' text format,
//! and the HTTP fax API (`POST /fax/send`, `GET /fax/status/ID`: see
//! [`super::fax_api`]).
//! It binds to loopback by default (`[admin] listen`); what it exposes is
//! for the operator, not the Internet.

use super::metrics::Metrics;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use faxmta_queue::Store;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::watch;

#[derive(Clone)]
struct AppState {
    metrics: Arc<Metrics>,
    store: Store,
}

async fn render(State(state): State<AppState>) -> impl IntoResponse {
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
}

/// Bind the listener now (so a busy port fails the start), serve later.
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, String> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr} (admin): {e}"))
}

/// Serve until shutdown.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    store: Store,
    fax_api: Arc<super::fax_api::Api>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    mut shutdown: watch::Receiver<bool>,
) {
    let app = Router::new()
        .route("/metrics", get(metrics_handler))
        .with_state(AppState { metrics, store })
        .merge(super::fax_api::routes(fax_api));
    let stop = async move {
        let _ = shutdown.changed().await;
    };
    let result = match tls {
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .await
        }
        Some(acceptor) => match super::https::TlsListener::new(listener, acceptor) {
            Ok(tls) => axum::serve(tls, app).with_graceful_shutdown(stop).await,
            Err(e) => Err(e),
        },
    };
    if let Err(e) = result {
        tracing::warn!("admin listener: {e}");
    }
}

async fn metrics_handler(state: State<AppState>) -> impl IntoResponse {
    render(state).await
}
