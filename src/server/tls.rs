//! The server's TLS setup: load the configured certificate, or make a
//! self-signed one on first start, and build the rustls acceptor
//! (TLS 1.2 and 1.3, ring provider).

use crate::config::{Config, TlsConfig};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;

/// Build the acceptor for every TLS-capable listener.
pub fn acceptor(config: &Config) -> Result<TlsAcceptor, String> {
    let (cert_path, key_path) = certificate_paths(&config.tls, &config.hostname)?;
    let certs = load_certs(&cert_path)?;
    let key = load_key(&key_path)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("TLS certificate {}: {e}", cert_path.display()))?;
    Ok(TlsAcceptor::from(Arc::new(server)))
}

/// The configured pair, or the generated one (made now if missing).
fn certificate_paths(tls: &TlsConfig, hostname: &str) -> Result<(PathBuf, PathBuf), String> {
    if let (Some(cert), Some(key)) = (&tls.cert, &tls.key) {
        return Ok((cert.clone(), key.clone()));
    }
    let dir = &tls.generated_dir;
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    if cert.exists() && key.exists() {
        return Ok((cert, key));
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let made = rcgen::generate_simple_self_signed(vec![hostname.to_string()])
        .map_err(|e| format!("cannot generate a self-signed certificate: {e}"))?;
    write_private(&key, made.key_pair.serialize_pem().as_bytes())?;
    std::fs::write(&cert, made.cert.pem())
        .map_err(|e| format!("cannot write {}: {e}", cert.display()))?;
    tracing::info!(cert = %cert.display(), "generated a self-signed certificate for {hostname}");
    Ok((cert, key))
}

fn write_private(path: &Path, data: &[u8]) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(data))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let file = std::fs::File::open(path)
        .map_err(|e| format!("TLS certificate {}: {e}", path.display()))?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut BufReader::new(file))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("TLS certificate {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "TLS certificate {}: no certificate in the file",
            path.display()
        ));
    }
    Ok(certs)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("TLS key {}: {e}", path.display()))?;
    rustls_pemfile::private_key(&mut BufReader::new(file))
        .map_err(|e| format!("TLS key {}: {e}", path.display()))?
        .ok_or_else(|| format!("TLS key {}: no private key in the file", path.display()))
}

/// The protocol version and cipher suite of an established session, as
/// written in Received headers and logs.
pub fn describe(conn: &rustls::ServerConnection) -> (String, String) {
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_string(),
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_string(),
        Some(v) => format!("{v:?}"),
        None => "unknown".to_string(),
    };
    let cipher = conn
        .negotiated_cipher_suite()
        .map(|s| format!("{:?}", s.suite()))
        .unwrap_or_else(|| "unknown".into());
    (version, cipher)
}
