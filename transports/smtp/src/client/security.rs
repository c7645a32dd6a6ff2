//! How one outbound connection is to be secured ([`Security`]: STARTTLS
//! or implicit TLS, AUTH, DANE, REQUIRETLS), what TLS it got
//! ([`TlsInfo`]), and why TLS failed in RFC 8460's terms ([`TlsFailure`]).

use crate::dane::DaneCheck;
use crate::tls::TlsPolicy;
use faxmta_transport::Credentials;

/// TLS facts of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsInfo {
    pub version: String,
    pub cipher: String,
    /// Whether the certificate verified for the host name.
    pub verified: bool,
    /// Why it did not, if it did not.
    pub verify_error: Option<String>,
    /// The TLSA record that authenticated the server (DANE), if one did.
    pub dane: Option<String>,
}

/// How one connection is secured and authenticated.
#[derive(Debug, Clone, Copy)]
pub struct Security<'a> {
    pub tls: TlsPolicy,
    /// TLS from the first byte, before the greeting (SMTPS, RFC 8314);
    /// otherwise STARTTLS as `tls` says.
    pub implicit_tls: bool,
    /// AUTH after EHLO (after TLS) with these. They are sent only over
    /// TLS, unless `tls` is [`TlsPolicy::Off`] — which must then be what
    /// the administrator configured, never a fallback.
    pub auth: Option<&'a Credentials>,
    /// The server's certificate chain must match these TLSA records
    /// (DANE); STARTTLS is then mandatory.
    pub dane: Option<&'a DaneCheck>,
    /// The message carries REQUIRETLS (RFC 8689): the server must offer
    /// REQUIRETLS after STARTTLS.
    pub requiretls: bool,
}

impl Security<'_> {
    /// STARTTLS as `policy` says, no AUTH.
    pub fn starttls(policy: TlsPolicy) -> Self {
        Security {
            tls: policy,
            implicit_tls: false,
            auth: None,
            dane: None,
            requiretls: false,
        }
    }

    /// Whether STARTTLS must succeed (no plaintext, ever).
    pub fn needs_tls(&self) -> bool {
        self.implicit_tls
            || self.dane.is_some()
            || self.requiretls
            || matches!(
                self.tls,
                TlsPolicy::Required | TlsPolicy::Verify | TlsPolicy::Dane
            )
    }
}

/// Why TLS to a host failed, in RFC 8460's terms (for TLS reports).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsFailure {
    StarttlsNotSupported,
    CertificateHostMismatch,
    CertificateExpired,
    CertificateNotTrusted,
    /// A TLS handshake that did not complete, or DANE that did not match.
    ValidationFailure,
    TlsaInvalid,
    DnssecInvalid,
    DaneRequired,
}

impl TlsFailure {
    /// A certificate error as rustls words it, sorted.
    pub fn of_certificate(error: &str) -> TlsFailure {
        let e = error.to_ascii_lowercase();
        if e.contains("notvalidforname") || e.contains("not valid for name") {
            TlsFailure::CertificateHostMismatch
        } else if e.contains("expired") || e.contains("notvalidyet") {
            TlsFailure::CertificateExpired
        } else {
            TlsFailure::CertificateNotTrusted
        }
    }
}
