//! Certificates for a test's etcd, made with rcgen in a temp dir: a CA, etcd's server
//! certificate, and client certificates (good, expired, or from another CA).

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, date_time_ymd,
};

/// A certificate and its key, written as PEM files.
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A certificate authority of one test.
pub struct TestCa {
    dir: PathBuf,
    name: String,
    issuer: CertifiedIssuer<'static, KeyPair>,
    /// The CA's certificate, to trust.
    pub cert: PathBuf,
}

impl TestCa {
    /// A new CA, its certificate written to `dir/<name>-ca.pem`.
    pub fn new(dir: &Path, name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("a CA key");
        let issuer = CertifiedIssuer::self_signed(params, key).expect("a self-signed CA");
        let cert = dir.join(format!("{name}-ca.pem"));
        std::fs::write(&cert, issuer.pem()).expect("writing the CA");
        Self {
            dir: dir.to_owned(),
            name: name.to_owned(),
            issuer,
            cert,
        }
    }

    /// etcd's certificate for 127.0.0.1 and localhost. Both serverAuth and clientAuth: etcd's
    /// embedded gRPC gateway dials etcd itself with this certificate.
    pub fn server(&self) -> CertFiles {
        self.issue(
            "server",
            "etcd-server",
            vec!["127.0.0.1".to_owned(), "localhost".to_owned()],
            vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
            false,
        )
    }

    /// A client certificate with common name `name` (etcd takes it as the user name when a
    /// request carries no token).
    pub fn client(&self, name: &str) -> CertFiles {
        self.issue(
            name,
            name,
            Vec::new(),
            vec![ExtendedKeyUsagePurpose::ClientAuth],
            false,
        )
    }

    /// A client certificate that expired in 2021.
    pub fn expired_client(&self, name: &str) -> CertFiles {
        self.issue(
            &format!("expired-{name}"),
            name,
            Vec::new(),
            vec![ExtendedKeyUsagePurpose::ClientAuth],
            true,
        )
    }

    /// Writes `<ca>-<file>.pem` and `<ca>-<file>-key.pem` for common name `name`.
    fn issue(
        &self,
        file: &str,
        name: &str,
        sans: Vec<String>,
        usages: Vec<ExtendedKeyUsagePurpose>,
        expired: bool,
    ) -> CertFiles {
        let mut params = CertificateParams::new(sans).expect("certificate params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = usages;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        if expired {
            params.not_before = date_time_ymd(2020, 1, 1);
            params.not_after = date_time_ymd(2021, 1, 1);
        }
        let key = KeyPair::generate().expect("a key");
        let cert = params.signed_by(&key, &self.issuer).expect("signing");
        let files = CertFiles {
            cert: self.dir.join(format!("{}-{file}.pem", self.name)),
            key: self.dir.join(format!("{}-{file}-key.pem", self.name)),
        };
        std::fs::write(&files.cert, cert.pem()).expect("writing a certificate");
        std::fs::write(&files.key, key.serialize_pem()).expect("writing a key");
        files
    }
}
