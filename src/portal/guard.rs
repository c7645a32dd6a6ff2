//! What every portal request passes first: the portal must be enabled
//! (`[portal] enabled`, read at each request so a reload turns it on or
//! off), a request that changes something must come from the portal's
//! own pages (its `Origin`, when the browser sends one, names this host;
//! `Sec-Fetch-Site` is not `cross-site`), and every answer carries
//! headers that keep it out of frames, caches and other sites' scripts.

use super::Portal;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// The Content-Security-Policy of every page: nothing from elsewhere,
/// no inline script, no framing, forms post here only.
const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; \
                   script-src 'self'; frame-ancestors 'none'; form-action 'self'; \
                   base-uri 'none'; object-src 'none'";

pub async fn guard(State(portal): State<Arc<Portal>>, request: Request, next: Next) -> Response {
    if !portal.context().config.portal.enabled {
        return (
            StatusCode::NOT_FOUND,
            "the portal is turned off ([portal] enabled)\n",
        )
            .into_response();
    }
    let safe = matches!(*request.method(), Method::GET | Method::HEAD);
    if !safe {
        if let Err(why) = same_origin(request.headers()) {
            tracing::info!(
                "portal: refused {} {}: {why}",
                request.method(),
                request.uri().path()
            );
            return (StatusCode::FORBIDDEN, format!("refused: {why}\n")).into_response();
        }
    }
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// A request that changes something comes from a page of this host:
/// its `Origin` (sent by browsers with every POST) names the host the
/// request was sent to, and the browser does not call it cross-site.
pub fn same_origin(headers: &HeaderMap) -> Result<(), String> {
    let text = |name: header::HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_ascii_lowercase())
    };
    if text(header::HeaderName::from_static("sec-fetch-site")).as_deref() == Some("cross-site") {
        return Err("a cross-site request".into());
    }
    let Some(origin) = text(header::ORIGIN) else {
        // Not a browser, or an old one: the CSRF token decides.
        return Ok(());
    };
    let host = text(header::HOST).unwrap_or_default();
    let authority = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .unwrap_or("");
    match !authority.is_empty() && authority == host {
        true => Ok(()),
        false => Err(format!("the request comes from {origin}, not from {host}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn only_this_hosts_pages_may_post() {
        let host = ("host", "127.0.0.1:9025");
        assert!(same_origin(&headers(&[host, ("origin", "http://127.0.0.1:9025")])).is_ok());
        assert!(
            same_origin(&headers(&[host])).is_ok(),
            "no Origin: the token decides"
        );
        assert!(same_origin(&headers(&[host, ("origin", "http://evil.example")])).is_err());
        assert!(same_origin(&headers(&[host, ("origin", "null")])).is_err());
        assert!(same_origin(&headers(&[host, ("origin", "http://127.0.0.1:9026")])).is_err());
        assert!(same_origin(&headers(&[host, ("sec-fetch-site", "cross-site")])).is_err());
    }
}
