//! The trust store of every TLS login a rotator makes to a server it changes (databases, Redis):
//! the public (Mozilla) roots plus a PEM bundle the function is given, TLS 1.2 and 1.3 on
//! aws-lc-rs, strict verification of the chain and the host name. One config per process.

use rustls::ClientConfig;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use std::sync::Arc;

/// The client config: the public roots, plus every certificate of `bundle` when given (`what`
/// names it in errors, e.g. "DB CA bundle"); a given bundle must hold at least one certificate.
pub fn client_config(what: &str, bundle: Option<&[u8]>) -> Result<Arc<ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(pem) = bundle {
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| format!("the {what} is not valid PEM: {e}"))?;
            roots
                .add(cert)
                .map_err(|e| format!("the {what} holds a certificate rustls rejects: {e}"))?;
            added += 1;
        }
        if added == 0 {
            return Err(format!("the {what} holds no PEM certificate"));
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bundle_must_hold_a_certificate() {
        assert!(client_config("X bundle", None).is_ok());
        let err = client_config("X bundle", Some(b"no pem here")).unwrap_err();
        assert_eq!(err, "the X bundle holds no PEM certificate");
    }
}
