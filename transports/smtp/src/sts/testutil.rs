//! Test peers for the sts/ and tlsrpt/ unit tests: a test CA (rcgen), an
//! HTTPS server (hyper over tokio-rustls) whose answer a test sets and whose
//! requests it reads, and tests/peers/dns.py on loopback with a resolver
//! pointed at it (never the system's).

use bytes::Bytes;
use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::TokioResolver;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A CA and its key.
pub(crate) struct TestCa {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let key = rcgen::KeyPair::generate().expect("CA key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let cert = params.self_signed(&key).expect("CA certificate");
        TestCa { cert, key }
    }

    pub fn der(&self) -> CertificateDer<'static> {
        self.cert.der().clone()
    }

    /// A server certificate for `names`, and its key.
    pub fn issue(&self, names: &[&str]) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        let key = rcgen::KeyPair::generate().expect("key");
        let params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .expect("params");
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("certificate");
        (
            cert.der().clone(),
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
    }

    /// A server certificate for `names` and its key, as PEM.
    pub fn issue_pem(&self, names: &[&str]) -> (String, String) {
        let key = rcgen::KeyPair::generate().expect("key");
        let params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .expect("params");
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("certificate");
        (cert.pem(), key.serialize_pem())
    }

    /// A verifying client configuration trusting this CA only.
    pub fn client_config(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.der()).expect("CA as root");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Arc::new(
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("protocol versions")
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    }
}

/// What the HTTPS server answers, and what it was asked.
#[derive(Debug, Clone)]
pub(crate) struct Served {
    pub status: u16,
    pub content_type: Option<String>,
    pub location: Option<String>,
    pub body: Vec<u8>,
    pub hits: usize,
    /// Method, path, Content-Type and body of each request.
    pub requests: Vec<(String, String, Option<String>, Vec<u8>)>,
}

/// An HTTPS server on 127.0.0.1.
pub(crate) struct HttpsServer {
    pub addr: SocketAddr,
    pub served: Arc<Mutex<Served>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for HttpsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl HttpsServer {
    /// Serve with `cert` (issued by `ca`) and `key`; answers 200
    /// text/plain with an empty body until told otherwise.
    pub async fn start(
        ca: &TestCa,
        cert: CertificateDer<'static>,
        key: PrivateKeyDer<'static>,
    ) -> HttpsServer {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(vec![cert, ca.der()], key)
            .expect("server certificate");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let served = Arc::new(Mutex::new(Served {
            status: 200,
            content_type: Some("text/plain".into()),
            location: None,
            body: Vec::new(),
            hits: 0,
            requests: Vec::new(),
        }));
        let state = served.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                let state = state.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let svc = hyper::service::service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, std::convert::Infallible>(answer(&state, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
        HttpsServer { addr, served, task }
    }

    pub fn set(&self, f: impl FnOnce(&mut Served)) {
        f(&mut self.served.lock().expect("lock"));
    }

    pub fn get(&self) -> Served {
        self.served.lock().expect("lock").clone()
    }
}

async fn answer(
    state: &Mutex<Served>,
    req: hyper::Request<hyper::body::Incoming>,
) -> hyper::Response<Full<Bytes>> {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let ct = req
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    let mut s = state.lock().expect("lock");
    s.hits += 1;
    s.requests.push((method, path, ct, body));
    let mut resp = hyper::Response::builder().status(s.status);
    if let Some(ct) = &s.content_type {
        resp = resp.header(hyper::header::CONTENT_TYPE, ct.as_str());
    }
    if let Some(l) = &s.location {
        resp = resp.header(hyper::header::LOCATION, l.as_str());
    }
    resp.body(Full::new(Bytes::from(s.body.clone())))
        .expect("response")
}

/// tests/peers/dns.py serving a zone on 127.0.0.1.
pub(crate) struct DnsPeer {
    child: Child,
    pub port: u16,
    zone: PathBuf,
    _dir: tempfile::TempDir,
}

impl DnsPeer {
    pub fn start(zone: &str) -> DnsPeer {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("zone");
        std::fs::write(&path, zone).expect("zone file");
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/peers/dns.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(&path)
            .args(["--address", "127.0.0.1", "--port", "0"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("dns.py (is python3-dnslib installed? scripts/test installs it)");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("dns.py ready line");
        let port = line
            .trim()
            .strip_prefix("ready ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("dns.py said {line:?}"));
        DnsPeer {
            child,
            port,
            zone: path,
            _dir: dir,
        }
    }

    /// Serve `zone` from now on (dns.py reads a replaced file again).
    pub fn set_zone(&self, zone: &str) {
        let tmp = self.zone.with_extension("new");
        std::fs::write(&tmp, zone).expect("zone file");
        std::fs::rename(&tmp, &self.zone).expect("zone rename");
    }

    /// A resolver asking only this server, without a cache (so a changed
    /// zone shows at once).
    pub fn resolver(&self) -> TokioResolver {
        let mut ns = NameServerConfig::udp_and_tcp("127.0.0.1".parse().expect("ip"));
        for c in &mut ns.connections {
            c.port = self.port;
        }
        let mut opts = ResolverOpts::default();
        opts.timeout = Duration::from_secs(2);
        opts.attempts = 1;
        opts.cache_size = 0;
        TokioResolver::builder_with_config(
            ResolverConfig::from_name_servers(vec![ns]),
            TokioRuntimeProvider::default(),
        )
        .with_options(opts)
        .build()
        .expect("resolver")
    }
}

impl Drop for DnsPeer {
    fn drop(&mut self) {
        drop(self.child.stdin.take()); // dns.py exits when its stdin closes
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
