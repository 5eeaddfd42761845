//! A throw-away PKI for TLS tests.
//!
//! Generated per server rather than checked in, so nothing ever expires or leaks a
//! key into the repository, and each test has its own CA: a client configured for
//! one test's server can't accidentally be trusted by another's.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};

/// PEM files of one generated PKI. Keys are PKCS#8, which both OpenSSL (Redis,
/// redis-cli) and rustls accept.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub dir: PathBuf,
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

/// Writes a self-signed CA, a server certificate for `127.0.0.1`/`localhost` and a
/// client certificate (clientAuth) into `dir`, both signed by the CA.
pub fn generate_tls(dir: &Path) -> TlsFiles {
    try_generate_tls(dir).unwrap_or_else(|e| panic!("generating test TLS certificates in {}: {e:#}", dir.display()))
}

fn try_generate_tls(dir: &Path) -> anyhow::Result<TlsFiles> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let files = TlsFiles {
        dir: dir.to_path_buf(),
        ca_cert: dir.join("ca.crt"),
        server_cert: dir.join("server.crt"),
        server_key: dir.join("server.key"),
        client_cert: dir.join("client.crt"),
        client_key: dir.join("client.key"),
    };

    let ca_key = KeyPair::generate().context("generating the CA key")?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).context("CA parameters")?;
    ca_params.distinguished_name.push(DnType::CommonName, "genesis-testkit CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let ca_cert = ca_params.self_signed(&ca_key).context("self-signing the CA")?;
    write(&files.ca_cert, &ca_cert.pem())?;
    let issuer = Issuer::new(ca_params, ca_key);

    let server_key = KeyPair::generate().context("generating the server key")?;
    let mut server_params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .context("server certificate parameters")?;
    server_params.distinguished_name.push(DnType::CommonName, "genesis-testkit redis server");
    server_params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_cert = server_params.signed_by(&server_key, &issuer).context("signing the server certificate")?;
    write(&files.server_cert, &server_cert.pem())?;
    write(&files.server_key, &server_key.serialize_pem())?;

    let client_key = KeyPair::generate().context("generating the client key")?;
    let mut client_params = CertificateParams::new(Vec::<String>::new()).context("client certificate parameters")?;
    client_params.distinguished_name.push(DnType::CommonName, "genesis-testkit client");
    client_params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_cert = client_params.signed_by(&client_key, &issuer).context("signing the client certificate")?;
    write(&files.client_cert, &client_cert.pem())?;
    write(&files.client_key, &client_key.serialize_pem())?;

    Ok(files)
}

fn write(path: &Path, contents: &str) -> anyhow::Result<()> {
    fs::write(path, contents).with_context(|| format!("writing {}", path.display()))
}
