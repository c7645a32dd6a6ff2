//! DKIM signing (RFC 6376, RFC 8463) with mail-auth: the signer the SMTP
//! transport calls at delivery time, made from the `[[dkim]]` keys the
//! configuration read (src/config/dkim.rs), and the key pairs of `faxmta
//! dkim keygen`.
//!
//! Signing happens in the transport, on the message exactly as it goes on
//! the wire (after any 8BITMIME conversion, CRLF line ends, before
//! dot-stuffing), so nothing changes a signed octet afterwards. Only mail
//! from trusted clients — users logged in with SMTP AUTH and networks in
//! `[relay] allow` — and our own
//! reports is signed (`ClientInfo::trusted`), and only when its From
//! domain is a `[[dkim]]` domain: mail from the Internet that we relay (a
//! backup MX, a relay domain) keeps its own signatures and gets none of
//! ours, even with a From in our domain.

use crate::config::dkim::{signing_key, DkimKeyKind};
use crate::config::Config;
use mail_auth::common::crypto::DkimKey;
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{Canonicalization, Done};
use mail_parser::MessageParser;
use std::collections::HashMap;

/// The header fields we sign, when present (mail-auth also lists the
/// absent ones, so none can be added later without breaking the
/// signature).
const SIGNED: &[&str] = &[
    "From",
    "Reply-To",
    "Subject",
    "Date",
    "Message-ID",
    "To",
    "Cc",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
];

/// Signs outbound mail for the `[[dkim]]` domains.
pub struct DkimSigner {
    /// By From domain (lower case).
    signers: HashMap<String, mail_auth::dkim::DkimSigner<DkimKey, Done>>,
}

impl DkimSigner {
    /// The keys were checked when the configuration was loaded; one that
    /// no longer loads is left out (and logged).
    pub fn new(config: &Config) -> DkimSigner {
        let mut signers = HashMap::new();
        for d in &config.dkim {
            let Some(loaded) = &d.loaded else { continue };
            match signing_key(loaded) {
                Ok(key) => {
                    let signer = mail_auth::dkim::DkimSigner::from_key(key)
                        .domain(d.domain.0.clone())
                        .selector(d.selector.clone())
                        .headers(SIGNED.iter().copied())
                        .header_canonicalization(Canonicalization::Relaxed)
                        .body_canonicalization(Canonicalization::Relaxed);
                    signers.insert(d.domain.0.clone(), signer);
                }
                Err(e) => tracing::error!("DKIM key for {}: {e}", d.domain.0),
            }
        }
        DkimSigner { signers }
    }
}

/// The domain of the (first) From address of a message, lower case.
pub fn from_domain(message: &[u8]) -> Option<String> {
    let parsed = MessageParser::default().parse_headers(message)?;
    let address = parsed.from()?.first()?.address()?;
    let (_, domain) = address.rsplit_once('@')?;
    Some(domain.trim_end_matches('.').to_ascii_lowercase())
}

impl faxmta_smtp::Signer for DkimSigner {
    fn sign(&self, message: &[u8]) -> Option<Vec<u8>> {
        let domain = from_domain(message)?;
        let signer = self.signers.get(&domain)?;
        match signer.sign(message) {
            Ok(signature) => Some(signature.to_header().into_bytes()),
            Err(e) => {
                tracing::warn!("DKIM signing for {domain} failed, sent unsigned: {e}");
                None
            }
        }
    }
}

/// A new key pair for `faxmta dkim keygen`: the private key as PEM and the
/// DNS TXT record's text (`v=DKIM1; k=…; p=…`).
pub fn generate(kind: DkimKeyKind) -> Result<(String, String), String> {
    use mail_auth::dkim::generate::DkimKeyPair;
    let (pair, label, k) = match kind {
        DkimKeyKind::Rsa => (DkimKeyPair::generate_rsa(2048), "RSA PRIVATE KEY", "rsa"),
        DkimKeyKind::Ed25519 => (DkimKeyPair::generate_ed25519(), "PRIVATE KEY", "ed25519"),
    };
    let pair = pair.map_err(|e| format!("cannot generate the key: {e}"))?;
    let pem = pem::encode(&pem::Pem::new(label, pair.private_key().to_vec()));
    let record = format!("v=DKIM1; k={k}; p={}", pair.encoded_public_key());
    Ok((pem, record))
}

/// A TXT record's text in zone-file form: quoted strings of at most 255
/// octets each (RFC 1035), which DNS joins again (RFC 6376 §3.6.2.2).
pub fn zone_strings(text: &str) -> String {
    text.as_bytes()
        .chunks(255)
        .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use faxmta_smtp::Signer;
    use std::path::Path;

    #[test]
    fn a_generated_key_signs_mail_from_its_domain_only() {
        let dir = tempfile::tempdir().unwrap();
        let (pem, record) = generate(DkimKeyKind::Ed25519).unwrap();
        assert!(record.starts_with("v=DKIM1; k=ed25519; p="), "{record}");
        let key = dir.path().join("k.pem");
        std::fs::write(&key, pem).unwrap();
        let text = format!(
            "[[dkim]]\ndomain = \"Example.ORG\"\nselector = \"s1\"\nkey = \"{}\"\n",
            key.display()
        );
        let config = Config::parse(Path::new("t.toml"), &text).unwrap();
        let signer = DkimSigner::new(&config);
        let msg = b"From: A <a@example.org>\r\nTo: b@x.test\r\nSubject: hi\r\n\r\nbody\r\n";
        let header = String::from_utf8(signer.sign(msg).unwrap()).unwrap();
        assert!(header.starts_with("DKIM-Signature: "), "{header}");
        assert!(
            header.contains("d=example.org") && header.contains("s=s1"),
            "{header}"
        );
        assert!(header.contains("a=ed25519-sha256"), "{header}");
        assert!(header.ends_with("\r\n"));
        let other = b"From: c@elsewhere.test\r\n\r\nbody\r\n";
        assert!(signer.sign(other).is_none());
        assert!(signer.sign(b"no header at all").is_none());
    }

    #[test]
    fn a_bad_key_file_is_a_configuration_error() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k.pem");
        std::fs::write(&key, "not a key").unwrap();
        let text = format!(
            "[[dkim]]\ndomain = \"example.org\"\nselector = \"s1\"\nkey = \"{}\"\n",
            key.display()
        );
        let e = Config::parse(Path::new("t.toml"), &text).unwrap_err();
        assert!(e.message.contains("no PEM private key"), "{e}");
        assert_eq!(e.place, ":4:7", "{e}");
    }

    #[test]
    fn long_records_are_split_for_zone_files() {
        let long = "x".repeat(300);
        let z = zone_strings(&long);
        assert_eq!(z, format!("\"{}\" \"{}\"", "x".repeat(255), "x".repeat(45)));
    }
}
