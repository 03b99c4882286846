//! HTTPS for the sandbox: a throwaway CA and a server certificate for the listening address,
//! both made at start (rcgen, ECDSA P-256) and gone when it stops; only the CA's certificate
//! leaves the process, for clients to trust.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::SandboxError;

/// How long a client may take to complete the TLS handshake.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The acceptor and the CA certificate (PEM) that signed its certificate.
pub(crate) struct Tls {
    pub(crate) acceptor: TlsAcceptor,
    pub(crate) ca_pem: String,
}

/// A fresh CA, and a certificate it signed for `ip` (the only name the server has: clients
/// reach it by IP literal), served over TLS 1.2 and 1.3 with the ring provider.
pub(crate) fn new(ip: IpAddr) -> Result<Tls, SandboxError> {
    let refused =
        |e: rcgen::Error| SandboxError::Config(format!("making the TLS certificate: {e}"));
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(refused)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.distinguished_name
        .push(DnType::CommonName, "nx-sandbox throwaway CA");
    let ca =
        CertifiedIssuer::self_signed(ca, KeyPair::generate().map_err(refused)?).map_err(refused)?;

    let mut leaf = CertificateParams::new(Vec::<String>::new()).map_err(refused)?;
    leaf.subject_alt_names = vec![SanType::IpAddress(ip)];
    leaf.distinguished_name
        .push(DnType::CommonName, ip.to_string());
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_key = KeyPair::generate().map_err(refused)?;
    let leaf = leaf.signed_by(&leaf_key, &ca).map_err(refused)?;

    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let chain: Vec<CertificateDer<'static>> = vec![leaf.der().clone()];
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .and_then(|b| b.with_no_client_auth().with_single_cert(chain, key))
    .map_err(|e| SandboxError::Config(format!("TLS setup: {e}")))?;
    Ok(Tls {
        acceptor: TlsAcceptor::from(Arc::new(config)),
        ca_pem: ca.pem(),
    })
}
