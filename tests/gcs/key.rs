//! A throwaway service-account key for the Cloud Storage tests: google-cloud-auth signs its
//! own bearer tokens with it (no token endpoint), and the fake server checks them with its
//! public half.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{Value, json};

use super::fake::AuthCheck;

pub const SERVICE_ACCOUNT: &str = "recorder@test-project.iam.gserviceaccount.com";

/// A service-account key that signs its own tokens, and the public half to check them.
pub struct Key {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
    pub public_der: Vec<u8>,
}

pub fn service_account_key() -> Key {
    let dir = tempfile::tempdir().expect("temp dir");
    let pem = dir.path().join("key.pem");
    let der = dir.path().join("public.der");
    let openssl = |args: &[&str]| {
        let status = std::process::Command::new("openssl")
            .args(args)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl makes a test key (apt-get install openssl)");
        assert!(status.success(), "openssl {args:?}");
    };
    let (pem_arg, der_arg) = (pem.to_str().unwrap(), der.to_str().unwrap());
    openssl(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        pem_arg,
    ]);
    openssl(&[
        "rsa",
        "-in",
        pem_arg,
        "-RSAPublicKey_out",
        "-outform",
        "DER",
        "-out",
        der_arg,
    ]);
    let key = json!({
        "type": "service_account",
        "project_id": "test-project",
        "private_key_id": "test-key-1",
        "private_key": std::fs::read_to_string(&pem).expect("the PEM"),
        "client_email": SERVICE_ACCOUNT,
        "client_id": "1234",
        // Unused: a service-account key signs its own JWTs.
        "token_uri": "http://127.0.0.1:9/token",
    });
    let path = dir.path().join("key.json");
    std::fs::write(&path, key.to_string()).expect("writing the key file");
    Key {
        public_der: std::fs::read(&der).expect("the public key"),
        dir,
        path,
    }
}

/// Tokens must be JWTs signed by `key`, issued by its service account, unexpired, and
/// scoped for Cloud Storage.
pub fn signed_by(key: &Key) -> AuthCheck {
    let public = jsonwebtoken::DecodingKey::from_rsa_der(&key.public_der);
    Arc::new(move |token: &str| {
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        validation.validate_aud = false;
        validation.set_issuer(&[SERVICE_ACCOUNT]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        let claims = jsonwebtoken::decode::<Value>(token, &public, &validation)
            .map_err(|e| format!("not a JWT signed by the key: {e}"))?
            .claims;
        if claims["sub"] != SERVICE_ACCOUNT {
            return Err(format!("sub is {}", claims["sub"]));
        }
        let scoped = claims["scope"].as_str().is_some_and(|scopes| {
            scopes.split(' ').any(|s| {
                s == "https://www.googleapis.com/auth/cloud-platform"
                    || s == "https://www.googleapis.com/auth/devstorage.read_write"
                    || s == "https://www.googleapis.com/auth/devstorage.full_control"
            })
        });
        let storage_audience = claims["aud"]
            .as_str()
            .is_some_and(|a| a.starts_with("https://storage.googleapis.com"));
        if !scoped && !storage_audience {
            return Err(format!("no Cloud Storage scope or audience in {claims}"));
        }
        Ok(())
    })
}
