//! The `tls:` client block (`configtls.ClientConfig`) shared by the `otlp` and `otlphttp`
//! exporters, and how it becomes a tonic or reqwest TLS setup (rustls with the ring provider).
//!
//! Supported: `insecure`, `insecure_skip_verify`, `ca_file`/`ca_pem`, `cert_file`/`cert_pem` +
//! `key_file`/`key_pem` (client certificate), `include_system_ca_certs_pool`,
//! `server_name_override` (gRPC only), `min_version`/`max_version` (1.2 and 1.3 only: rustls
//! speaks nothing older). Accepted and ignored: `cipher_suites`, `curve_preferences`,
//! `reload_interval`, `tpm`.

use osprey_pipeline::ConfigError;
use serde::Deserialize;
use std::sync::Arc;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsClientConfig {
    /// gRPC: no transport security at all (unless a CA is given or the endpoint is `https://`).
    pub insecure: bool,
    /// TLS without verifying the server's certificate.
    pub insecure_skip_verify: bool,
    pub server_name_override: String,
    pub ca_file: String,
    pub ca_pem: String,
    pub cert_file: String,
    pub cert_pem: String,
    pub key_file: String,
    pub key_pem: String,
    pub include_system_ca_certs_pool: bool,
    pub min_version: String,
    pub max_version: String,
    pub cipher_suites: Vec<String>,
    pub curve_preferences: Vec<String>,
    pub reload_interval: serde_yaml::Value,
    pub tpm: serde_yaml::Value,
}

/// A certificate chain and its private key, both PEM.
pub type PemPair = (Vec<u8>, Vec<u8>);

/// A TLS version as `configtls` names them, ordered.
fn tls_version(text: &str) -> Option<u8> {
    Some(match text {
        "" => 0,
        "1.0" => 10,
        "1.1" => 11,
        "1.2" => 12,
        "1.3" => 13,
        _ => return None,
    })
}

/// The error chain of `e`, outermost first (`transport error: invalid certificate`).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

impl TlsClientConfig {
    /// Semantic checks; paths are relative to the exporter (`tls.ca_file`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let both = |a: &str, b: &str, key: &str, what: &str| {
            if !a.is_empty() && !b.is_empty() {
                Err(ConfigError::new(
                    format!("tls.{key}"),
                    format!("provide either a {what} file or the PEM-encoded string, but not both"),
                ))
            } else {
                Ok(())
            }
        };
        both(&self.ca_file, &self.ca_pem, "ca_file", "CA")?;
        both(&self.cert_file, &self.cert_pem, "cert_file", "certificate")?;
        both(&self.key_file, &self.key_pem, "key_file", "key")?;
        let has_cert = !self.cert_file.is_empty() || !self.cert_pem.is_empty();
        let has_key = !self.key_file.is_empty() || !self.key_pem.is_empty();
        if has_cert != has_key {
            return Err(ConfigError::new(
                "tls",
                "for auth via TLS, provide both certificate and key, or neither",
            ));
        }
        let min = tls_version(&self.min_version).ok_or_else(|| {
            ConfigError::new(
                "tls.min_version",
                format!("unknown TLS version {:?}", self.min_version),
            )
        })?;
        let max = tls_version(&self.max_version).ok_or_else(|| {
            ConfigError::new(
                "tls.max_version",
                format!("unknown TLS version {:?}", self.max_version),
            )
        })?;
        if max != 0 && min > max {
            return Err(ConfigError::new(
                "tls.min_version",
                "min_version is greater than max_version",
            ));
        }
        if max != 0 && max < 12 {
            return Err(ConfigError::new(
                "tls.max_version",
                "TLS versions below 1.2 are not supported",
            ));
        }
        Ok(())
    }

    pub fn has_ca(&self) -> bool {
        !self.ca_file.is_empty() || !self.ca_pem.is_empty()
    }

    fn read(path: &str, key: &str) -> Result<Vec<u8>, ConfigError> {
        std::fs::read(path)
            .map_err(|e| ConfigError::new(format!("tls.{key}"), format!("cannot read {path}: {e}")))
    }

    /// The CA bundle (PEM), if one is configured.
    pub fn load_ca(&self) -> Result<Option<Vec<u8>>, ConfigError> {
        if !self.ca_file.is_empty() {
            return Self::read(&self.ca_file, "ca_file").map(Some);
        }
        Ok((!self.ca_pem.is_empty()).then(|| self.ca_pem.clone().into_bytes()))
    }

    /// The client certificate chain and key (PEM), if configured.
    pub fn load_identity(&self) -> Result<Option<PemPair>, ConfigError> {
        let cert = if !self.cert_file.is_empty() {
            Self::read(&self.cert_file, "cert_file")?
        } else {
            self.cert_pem.clone().into_bytes()
        };
        let key = if !self.key_file.is_empty() {
            Self::read(&self.key_file, "key_file")?
        } else {
            self.key_pem.clone().into_bytes()
        };
        Ok((!cert.is_empty() && !key.is_empty()).then_some((cert, key)))
    }

    /// Whether a gRPC client uses TLS, as `configgrpc` decides: always, unless `insecure` is
    /// set without a CA; an `https://` endpoint forces TLS.
    pub fn grpc_uses_tls(&self, https_scheme: bool) -> bool {
        https_scheme || !self.insecure || self.has_ca()
    }

    /// Applies this block to a tonic endpoint (which must have an `https` URI).
    pub fn apply_tonic(
        &self,
        endpoint: tonic::transport::Endpoint,
    ) -> Result<tonic::transport::Endpoint, ConfigError> {
        use tonic::transport::{Certificate, ClientTlsConfig, Identity};
        if !self.min_version.is_empty() || !self.max_version.is_empty() {
            tracing::debug!(
                "tls.min_version/max_version: the gRPC client negotiates TLS 1.2 or 1.3"
            );
        }
        let mut tls = ClientTlsConfig::new();
        if !self.server_name_override.is_empty() {
            tls = tls.domain_name(self.server_name_override.clone());
        }
        if let Some((cert, key)) = self.load_identity()? {
            tls = tls.identity(Identity::from_pem(cert, key));
        }
        let result = if self.insecure_skip_verify {
            endpoint.tls_config_with_verifier(tls, Arc::new(NoVerify::new()))
        } else {
            if let Some(ca) = self.load_ca()? {
                tls = tls.ca_certificate(Certificate::from_pem(ca));
            }
            if !self.has_ca() || self.include_system_ca_certs_pool {
                tls = tls.with_native_roots();
            }
            endpoint.tls_config(tls)
        };
        result
            .map_err(|e| ConfigError::new("tls", format!("cannot set up TLS: {}", error_chain(&e))))
    }

    /// Applies this block to a reqwest client (used for `https://` URLs).
    pub fn apply_reqwest(
        &self,
        mut builder: reqwest::ClientBuilder,
    ) -> Result<reqwest::ClientBuilder, ConfigError> {
        builder = builder.use_rustls_tls();
        if self.insecure_skip_verify {
            builder = builder.danger_accept_invalid_certs(true);
        }
        if let Some(ca) = self.load_ca()? {
            let certs = reqwest::Certificate::from_pem_bundle(&ca).map_err(|e| {
                ConfigError::new(
                    "tls.ca_file",
                    format!("failed to parse CA: {}", error_chain(&e)),
                )
            })?;
            if certs.is_empty() {
                return Err(ConfigError::new(
                    "tls.ca_file",
                    "no certificate in the CA PEM",
                ));
            }
            for c in certs {
                builder = builder.add_root_certificate(c);
            }
            if !self.include_system_ca_certs_pool {
                builder = builder.tls_built_in_root_certs(false);
            }
        }
        if let Some((mut cert, key)) = self.load_identity()? {
            cert.push(b'\n');
            cert.extend_from_slice(&key);
            let id = reqwest::Identity::from_pem(&cert).map_err(|e| {
                ConfigError::new(
                    "tls.cert_file",
                    format!("failed to load TLS cert and key: {}", error_chain(&e)),
                )
            })?;
            builder = builder.identity(id);
        }
        if !self.server_name_override.is_empty() {
            tracing::warn!(
                "tls.server_name_override is not supported by the HTTP exporter; ignored"
            );
        }
        let version = |v: &str| match v {
            "1.3" => Some(reqwest::tls::Version::TLS_1_3),
            "1.2" => Some(reqwest::tls::Version::TLS_1_2),
            _ => None,
        };
        if let Some(v) = version(&self.min_version) {
            builder = builder.min_tls_version(v);
        }
        if let Some(v) = version(&self.max_version) {
            builder = builder.max_tls_version(v);
        }
        Ok(builder)
    }
}

/// `insecure_skip_verify`: accepts any server certificate, still checks handshake signatures.
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl NoVerify {
    fn new() -> Self {
        let provider = rustls::crypto::CryptoProvider::get_default()
            .cloned()
            .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
        NoVerify(provider)
    }
}

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls(yaml: &str) -> TlsClientConfig {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn validation_names_the_key() {
        assert!(tls("insecure: true").validate().is_ok());
        let e = tls("ca_file: a\nca_pem: b").validate().unwrap_err();
        assert_eq!(e.path, "tls.ca_file");
        let e = tls("cert_file: a").validate().unwrap_err();
        assert_eq!(e.path, "tls");
        let e = tls("min_version: '1.3'\nmax_version: '1.2'")
            .validate()
            .unwrap_err();
        assert_eq!(e.path, "tls.min_version");
        let e = tls("min_version: '2.0'").validate().unwrap_err();
        assert_eq!(e.path, "tls.min_version");
    }

    #[test]
    fn grpc_tls_decision_follows_configgrpc() {
        assert!(tls("").grpc_uses_tls(false));
        assert!(!tls("insecure: true").grpc_uses_tls(false));
        assert!(tls("insecure: true").grpc_uses_tls(true));
        assert!(tls("insecure: true\nca_pem: x").grpc_uses_tls(false));
    }

    #[test]
    fn unreadable_ca_file_is_a_config_error() {
        let ep = tonic::transport::Endpoint::from_static("https://localhost:4317");
        let e = tls("ca_file: /nonexistent/ca.pem")
            .apply_tonic(ep)
            .unwrap_err();
        assert_eq!(e.path, "tls.ca_file");
        // insecure_skip_verify needs no roots.
        let ep = tonic::transport::Endpoint::from_static("https://localhost:4317");
        assert!(tls("insecure_skip_verify: true").apply_tonic(ep).is_ok());
    }
}
