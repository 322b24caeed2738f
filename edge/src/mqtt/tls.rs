//! TLS for the MQTT uplink (`mqtts://`): the PEM files of `[mqtt]` are read and
//! checked when the configuration is loaded, and the rustls client configuration
//! (ring provider, the configured CA only, optional client certificate for mutual
//! TLS) is built from the checked bytes when the uplink starts.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

use crate::config::MqttTls;

/// Reads a PEM file holding one or more certificates; the error says what is wrong
/// with it (for a configuration message).
pub fn read_certificates(path: &Path) -> Result<Vec<u8>, String> {
    let pem = read(path)?;
    certificates(&pem).map_err(|e| format!("\"{}\" {e}", path.display()))?;
    Ok(pem)
}

/// Reads a PEM file holding a private key (PKCS#8, PKCS#1 or SEC1).
pub fn read_private_key(path: &Path) -> Result<Vec<u8>, String> {
    let pem = read(path)?;
    private_key(&pem).map_err(|e| format!("\"{}\" {e}", path.display()))?;
    Ok(pem)
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read \"{}\": {e}", path.display()))
}

fn certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("is not valid PEM: {e}"))?;
    if certs.is_empty() {
        return Err("holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into());
    }
    Ok(certs)
}

fn private_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => {
            "holds no PEM private key (-----BEGIN PRIVATE KEY-----)".to_string()
        }
        other => format!("is not a valid PEM private key: {other}"),
    })
}

/// The rustls client configuration: trusts only the configured CA, and presents
/// the client certificate when one is configured.
pub fn client_config(tls: &MqttTls) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(&tls.ca_pem).map_err(|e| format!("CA file {e}"))? {
        roots
            .add(cert)
            .map_err(|e| format!("CA file: unusable certificate: {e}"))?;
    }
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS versions: {e}"))?
            .with_root_certificates(roots);
    let config = match &tls.client {
        None => builder.with_no_client_auth(),
        Some(client) => {
            let chain = certificates(&client.cert_pem).map_err(|e| format!("cert file {e}"))?;
            let key = private_key(&client.key_pem).map_err(|e| format!("key file {e}"))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("client certificate and key do not go together: {e}"))?
        }
    };
    Ok(Arc::new(config))
}
