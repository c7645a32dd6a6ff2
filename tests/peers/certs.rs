//! Certificates for TLS tests (rcgen): a self-signed one, and a private
//! CA that issues server certificates (its certificate is what a sender
//! trusts through `[outbound] ca_file`).

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

/// A certificate and its key: DER of the certificate, PEM of the
/// certificate (or of the chain, leaf first), PEM of the key.
pub struct Cert {
    pub der: Vec<u8>,
    pub pem: String,
    pub key: String,
}

/// A self-signed certificate for `name` (ECDSA P-256).
pub fn self_signed(name: &str) -> Cert {
    let cert = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
    Cert {
        der: cert.cert.der().to_vec(),
        pem: cert.cert.pem(),
        key: cert.key_pair.serialize_pem(),
    }
}

/// A private CA: its certificate goes into the sender's `[outbound]
/// ca_file`, and it issues server certificates.
pub struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    pub fn new() -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "faxmta test CA");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    /// The CA certificate, PEM.
    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// The CA certificate itself (DER, PEM, key).
    pub fn cert(&self) -> Cert {
        Cert {
            der: self.cert.der().to_vec(),
            pem: self.cert.pem(),
            key: self.key.serialize_pem(),
        }
    }

    /// A server certificate for `name`, issued by this CA; its `pem` is
    /// the chain (the certificate, then the CA's).
    pub fn issue(&self, name: &str) -> Cert {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec![name.to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let leaf = params.signed_by(&key, &self.cert, &self.key).unwrap();
        Cert {
            der: leaf.der().to_vec(),
            pem: format!("{}{}", leaf.pem(), self.cert.pem()),
            key: key.serialize_pem(),
        }
    }
}

/// A private CA and a server certificate for `name` it issued: (the CA,
/// the server's, whose `pem` is the chain: its certificate, then the CA's).
pub fn ca_and_leaf(name: &str) -> (Cert, Cert) {
    let ca = Ca::new();
    let leaf = ca.issue(name);
    (ca.cert(), leaf)
}
