//! Certificates made by tests: a throw-away certificate authority that issues
//! server certificates for loopback and client certificates, written as PEM
//! files for the TLS brokers, Redis servers, targets and token endpoints the
//! tests start.
//!
//! Nothing here is fit for production: keys are generated per run, never
//! protected, and live as long as the directory they are written to.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

/// Why a certificate could not be made or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    /// Generating a key or signing a certificate failed.
    #[error("cannot make a test certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// Writing a PEM file failed.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// A certificate and its private key, PEM encoded, and where they were written.
#[derive(Debug, Clone)]
pub struct Pem {
    /// The certificate, PEM.
    pub cert: String,
    /// The PKCS#8 private key, PEM.
    pub key: String,
    /// The certificate's file.
    pub cert_path: PathBuf,
    /// The key's file.
    pub key_path: PathBuf,
}

/// A certificate authority for one test, with its files in `dir`.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
    dir: PathBuf,
    /// The CA certificate (PEM) and its file: the CA bundle clients trust.
    pub ca_cert_path: PathBuf,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa").field("dir", &self.dir).finish_non_exhaustive()
    }
}

impl TestCa {
    /// A new CA named `name`; its certificate is written to `dir/ca.pem`.
    pub fn new(dir: &Path, name: &str) -> Result<Self, CertError> {
        std::fs::create_dir_all(dir).map_err(|source| CertError::Write { path: dir.to_owned(), source })?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, format!("{name} test CA"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate()?)?;
        let ca_cert_path = dir.join("ca.pem");
        write(&ca_cert_path, &issuer.pem())?;
        Ok(Self { issuer, dir: dir.to_owned(), ca_cert_path })
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> String {
        self.issuer.pem()
    }

    /// A server certificate for `localhost`, `127.0.0.1` and `::1`, written to
    /// `dir/<name>.pem` and `dir/<name>.key`.
    pub fn server(&self, name: &str) -> Result<Pem, CertError> {
        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
        self.issue(name, names, ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// A client certificate whose common name is `name`, written to
    /// `dir/<name>.pem` and `dir/<name>.key`.
    pub fn client(&self, name: &str) -> Result<Pem, CertError> {
        self.issue(name, Vec::new(), ExtendedKeyUsagePurpose::ClientAuth)
    }

    fn issue(
        &self,
        name: &str,
        names: Vec<String>,
        usage: ExtendedKeyUsagePurpose,
    ) -> Result<Pem, CertError> {
        let mut params = CertificateParams::new(names)?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = vec![usage];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        let pem = Pem {
            cert: cert.pem(),
            key: key.serialize_pem(),
            cert_path: self.dir.join(format!("{name}.pem")),
            key_path: self.dir.join(format!("{name}.key")),
        };
        write(&pem.cert_path, &pem.cert)?;
        write(&pem.key_path, &pem.key)?;
        Ok(pem)
    }
}

fn write(path: &Path, contents: &str) -> Result<(), CertError> {
    std::fs::write(path, contents).map_err(|source| CertError::Write { path: path.to_owned(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issues_pem_files_a_rustls_client_can_load() {
        let dir = std::env::temp_dir().join(format!("scimfleet-certs-{}", std::process::id()));
        let ca = TestCa::new(&dir, "unit").expect("ca");
        let server = ca.server("server").expect("server");
        let client = ca.client("client").expect("client");
        assert!(std::fs::read_to_string(&ca.ca_cert_path).expect("ca file").contains("BEGIN CERTIFICATE"));
        assert!(std::fs::read_to_string(&server.key_path).expect("key file").contains("PRIVATE KEY"));
        assert_ne!(server.cert, client.cert);
        // reqwest parses what tests hand to targets and token clients.
        reqwest::Certificate::from_pem(ca.ca_pem().as_bytes()).expect("CA parses");
        reqwest::Identity::from_pem(format!("{}{}", client.cert, client.key).as_bytes())
            .expect("identity parses");
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
