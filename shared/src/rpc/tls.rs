//! Transport security, when the service terminates TLS itself (outside a mesh, or inside
//! one that does not): a server certificate, optionally client certificates checked
//! against a CA (mTLS, the caller's identity then being its certificate's), and TLS to the
//! peer service with a configured CA.

use std::path::{Path, PathBuf};

use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig};

/// TLS settings of one service.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TlsFlags {
    /// Serve TLS with this certificate chain (PEM).
    #[arg(long, env = "GONGJI_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, env = "GONGJI_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Check client certificates against this CA (PEM): a caller presenting one is known by
    /// its URI SAN (SPIFFE ID) or, without one, its subject.
    #[arg(long, env = "GONGJI_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
    /// Refuse connections without a client certificate (health probes must present one).
    #[arg(
        long,
        env = "GONGJI_TLS_REQUIRE_CLIENT_CERT",
        requires = "tls_client_ca"
    )]
    pub tls_require_client_cert: bool,
    /// Check the peer service's certificate against this CA (PEM); its address is https://.
    #[arg(long, env = "GONGJI_PEER_TLS_CA")]
    pub peer_tls_ca: Option<PathBuf>,
    /// The name the peer's certificate is for, when it is not the address's host.
    #[arg(long, env = "GONGJI_PEER_TLS_DOMAIN", requires = "peer_tls_ca")]
    pub peer_tls_domain: Option<String>,
    /// Present this client certificate (PEM) to the peer service (mTLS).
    #[arg(long, env = "GONGJI_PEER_TLS_CERT", requires_all = ["peer_tls_key", "peer_tls_ca"])]
    pub peer_tls_cert: Option<PathBuf>,
    /// The private key of --peer-tls-cert (PEM).
    #[arg(long, env = "GONGJI_PEER_TLS_KEY", requires = "peer_tls_cert")]
    pub peer_tls_key: Option<PathBuf>,
}

/// A TLS file cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {path}: {error}")]
pub struct TlsError {
    path: String,
    error: std::io::Error,
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|error| TlsError {
        path: path.display().to_string(),
        error,
    })
}

impl TlsFlags {
    /// The server's TLS, if it serves TLS.
    pub fn server(&self) -> Result<Option<ServerTlsConfig>, TlsError> {
        let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) else {
            return Ok(None);
        };
        let mut config =
            ServerTlsConfig::new().identity(Identity::from_pem(read(cert)?, read(key)?));
        if let Some(ca) = &self.tls_client_ca {
            config = config
                .client_ca_root(Certificate::from_pem(read(ca)?))
                .client_auth_optional(!self.tls_require_client_cert);
        }
        Ok(Some(config))
    }

    /// The peer's TLS, if the peer is reached over TLS.
    pub fn peer(&self) -> Result<Option<ClientTlsConfig>, TlsError> {
        let Some(ca) = &self.peer_tls_ca else {
            return Ok(None);
        };
        let mut config = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read(ca)?));
        if let Some(domain) = &self.peer_tls_domain {
            config = config.domain_name(domain.clone());
        }
        if let (Some(cert), Some(key)) = (&self.peer_tls_cert, &self.peer_tls_key) {
            config = config.identity(Identity::from_pem(read(cert)?, read(key)?));
        }
        Ok(Some(config))
    }
}

/// `endpoint` with the peer's TLS, if any.
pub fn with_tls(
    endpoint: Endpoint,
    tls: Option<ClientTlsConfig>,
) -> Result<Endpoint, tonic::transport::Error> {
    match tls {
        Some(config) => endpoint.tls_config(config),
        None => Ok(endpoint),
    }
}

/// The caller identity a client certificate (DER) stands for: its first URI SAN (a SPIFFE
/// ID), else its subject (RFC 4514).
pub fn certificate_identity(der: &[u8]) -> Option<String> {
    use x509_parser::prelude::*;
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let GeneralName::URI(uri) = name {
                return Some((*uri).to_owned());
            }
        }
    }
    let subject = cert.subject().to_string();
    (!subject.is_empty()).then_some(subject)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_stands_for_its_uri_san_else_its_subject() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.subject_alt_names = vec![rcgen::SanType::URI(
            "spiffe://gongji.test/hospital".try_into().unwrap(),
        )];
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(
            certificate_identity(cert.der()).as_deref(),
            Some("spiffe://gongji.test/hospital")
        );
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "tax-bureau");
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(
            certificate_identity(cert.der()).as_deref(),
            Some("CN=tax-bureau")
        );
        assert_eq!(certificate_identity(b"not a certificate"), None);
    }
}
