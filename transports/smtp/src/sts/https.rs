//! One HTTPS request to a named host, for the MTA-STS policy fetch and the
//! TLS-RPT report POST: the host is resolved with our own resolver, the
//! certificate verified by the given (PKIX) rustls configuration for that
//! name, one HTTP/1.1 request on the connection (hyper's client over
//! tokio-rustls), no redirects followed, the body read up to a limit, all
//! within one deadline.

use bytes::Bytes;
use hickory_resolver::TokioResolver;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST, USER_AGENT};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;

/// Why a request got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HttpsError {
    /// The host has no address, or the lookup failed.
    Dns(String),
    /// No address took the TCP connection.
    Connect(String),
    /// The server's certificate did not verify (PKIX, name, expiry).
    Certificate(String),
    /// Any other TLS or HTTP failure, the size limit, the deadline.
    Http(String),
}

impl std::fmt::Display for HttpsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpsError::Dns(m)
            | HttpsError::Connect(m)
            | HttpsError::Certificate(m)
            | HttpsError::Http(m) => f.write_str(m),
        }
    }
}

/// An answer.
#[derive(Debug)]
pub(crate) struct Response {
    pub status: StatusCode,
    /// The Content-Type header, if any.
    pub content_type: Option<String>,
    pub body: Bytes,
}

/// One request.
pub(crate) struct Call<'a> {
    pub host: &'a str,
    pub port: u16,
    pub method: Method,
    /// Path and query, starting with `/`.
    pub path: &'a str,
    /// The request body and its Content-Type (none for a GET).
    pub body: Option<(Bytes, &'a str)>,
    /// The most response body bytes read; more is an error.
    pub limit: usize,
    pub timeout: Duration,
}

/// Aborts the connection task when the request is done or dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Send `call` and read the answer.
pub(crate) async fn request(
    resolver: &TokioResolver,
    tls: Arc<rustls::ClientConfig>,
    call: Call<'_>,
) -> Result<Response, HttpsError> {
    let host = call.host;
    let timeout = call.timeout;
    tokio::time::timeout(timeout, exchange(resolver, tls, call))
        .await
        .unwrap_or_else(|_| {
            Err(HttpsError::Http(format!(
                "https://{host}: no complete answer within {}s",
                timeout.as_secs()
            )))
        })
}

async fn exchange(
    resolver: &TokioResolver,
    tls: Arc<rustls::ClientConfig>,
    call: Call<'_>,
) -> Result<Response, HttpsError> {
    let host = call.host.trim_end_matches('.').to_ascii_lowercase();
    let addrs = addresses(resolver, &host).await?;
    let mut tcp = None;
    let mut errors = Vec::new();
    for ip in &addrs {
        match TcpStream::connect(SocketAddr::new(*ip, call.port)).await {
            Ok(s) => {
                tcp = Some(s);
                break;
            }
            Err(e) => errors.push(format!("{ip}: {e}")),
        }
    }
    let tcp = tcp.ok_or_else(|| {
        HttpsError::Connect(format!(
            "https://{host}:{}: cannot connect ({})",
            call.port,
            errors.join("; ")
        ))
    })?;
    let name = ServerName::try_from(host.clone())
        .map_err(|e| HttpsError::Http(format!("{host}: not a TLS server name: {e}")))?;
    let stream = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await
        .map_err(|e| {
            let certificate = e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                .is_some_and(|r| {
                    matches!(
                        r,
                        rustls::Error::InvalidCertificate(_)
                            | rustls::Error::NoCertificatesPresented
                    )
                });
            let msg = format!("https://{host}: TLS handshake: {e}");
            if certificate {
                HttpsError::Certificate(msg)
            } else {
                HttpsError::Http(msg)
            }
        })?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| HttpsError::Http(format!("https://{host}: HTTP handshake: {e}")))?;
    let _conn = AbortOnDrop(tokio::spawn(async move {
        let _ = conn.await;
    }));
    let host_header = if call.port == 443 {
        host.clone()
    } else {
        format!("{host}:{}", call.port)
    };
    let mut req = Request::builder()
        .method(call.method)
        .uri(call.path)
        .header(HOST, host_header)
        .header(USER_AGENT, "faxmta");
    let body = match call.body {
        Some((bytes, content_type)) => {
            req = req
                .header(CONTENT_TYPE, content_type)
                .header(CONTENT_LENGTH, bytes.len());
            bytes
        }
        None => Bytes::new(),
    };
    let req = req
        .body(Full::new(body))
        .map_err(|e| HttpsError::Http(format!("https://{host}{}: {e}", call.path)))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| HttpsError::Http(format!("https://{host}{}: {e}", call.path)))?;
    let status = resp.status();
    let content_type = resp
        .headers()
        .get(CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let body = Limited::new(resp.into_body(), call.limit)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                HttpsError::Http(format!(
                    "https://{host}{}: body larger than {} bytes",
                    call.path, call.limit
                ))
            } else {
                HttpsError::Http(format!(
                    "https://{host}{}: reading the body: {e}",
                    call.path
                ))
            }
        })?
        .to_bytes();
    Ok(Response {
        status,
        content_type,
        body,
    })
}

/// The addresses of `host` (an IP literal is its own address).
async fn addresses(resolver: &TokioResolver, host: &str) -> Result<Vec<IpAddr>, HttpsError> {
    if let Ok(ip) = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        return Ok(vec![ip]);
    }
    let ips: Vec<IpAddr> = resolver
        .lookup_ip(format!("{host}."))
        .await
        .map_err(|e| HttpsError::Dns(format!("address of {host}: {e}")))?
        .iter()
        .collect();
    if ips.is_empty() {
        return Err(HttpsError::Dns(format!("{host} has no address")));
    }
    Ok(ips)
}

/// The media type of a Content-Type value: lower case, without parameters.
pub(crate) fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::media_type;

    #[test]
    fn sts_media_type_drops_parameters() {
        assert_eq!(media_type("text/plain; charset=utf-8"), "text/plain");
        assert_eq!(media_type(" Text/Plain"), "text/plain");
        assert_eq!(media_type("text/html"), "text/html");
    }
}
