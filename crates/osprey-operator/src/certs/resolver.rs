//! The webhook server's certificate, swappable while it serves: a rustls
//! `ResolvesServerCert` holding the current certificate and key, replaced when the rotation
//! loop (or cert-manager) renews them. New TLS handshakes use the new certificate at once.

use super::generate::{pem_certs, pem_key};
use super::{CertError, TlsMaterial};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::sync::{Arc, RwLock};

/// The crypto provider every TLS object here uses (ring, as built into the workspace).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Parses `material`'s certificate chain and key and checks that they belong together.
pub fn certified_key(material: &TlsMaterial) -> Result<CertifiedKey, CertError> {
    let chain = pem_certs(&material.cert_pem)?;
    let key = pem_key(&material.key_pem)?;
    CertifiedKey::from_der(chain, key, &provider())
        .map_err(|e| CertError::Invalid(format!("certificate and key: {e}")))
}

/// The serving certificate, replaceable at run time.
#[derive(Debug)]
pub struct CertResolver {
    current: RwLock<Arc<CertifiedKey>>,
}

impl CertResolver {
    /// A resolver serving `material`.
    pub fn new(material: &TlsMaterial) -> Result<Arc<Self>, CertError> {
        Ok(Arc::new(Self {
            current: RwLock::new(Arc::new(certified_key(material)?)),
        }))
    }

    /// Serves `material` from the next handshake on. Invalid material leaves the current
    /// certificate in place and is an error.
    pub fn swap(&self, material: &TlsMaterial) -> Result<(), CertError> {
        let key = Arc::new(certified_key(material)?);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = key;
        Ok(())
    }

    /// The DER of the certificate being served.
    pub fn current_cert_der(&self) -> Vec<u8> {
        let key = self
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        key.cert.first().map(|c| c.to_vec()).unwrap_or_default()
    }

    /// A rustls server configuration (TLS 1.2 and 1.3, ALPN h2 and http/1.1) resolving its
    /// certificate through `self`.
    pub fn server_config(self: &Arc<Self>) -> Result<rustls::ServerConfig, CertError> {
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| CertError::Invalid(format!("TLS configuration: {e}")))?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(cfg)
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs::generate::{dns_names, issue, unix_now};

    #[test]
    fn swap_replaces_the_served_certificate_and_rejects_bad_material() {
        let names = dns_names("svc", "ns");
        let a = issue(&names, unix_now()).unwrap();
        let b = issue(&names, unix_now()).unwrap();
        let r = CertResolver::new(&a).unwrap();
        assert_eq!(
            r.current_cert_der(),
            pem_certs(&a.cert_pem).unwrap()[0].to_vec()
        );
        r.swap(&b).unwrap();
        assert_eq!(
            r.current_cert_der(),
            pem_certs(&b.cert_pem).unwrap()[0].to_vec()
        );
        let mixed = TlsMaterial {
            key_pem: a.key_pem.clone(),
            ..b.clone()
        };
        assert!(r.swap(&mixed).is_err());
        assert_eq!(
            r.current_cert_der(),
            pem_certs(&b.cert_pem).unwrap()[0].to_vec()
        );
        assert!(r.server_config().is_ok());
    }
}
