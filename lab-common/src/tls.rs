//! TLS plumbing: where the lab's certificates live, the flags that name
//! them (`--cert`/`--key`, `--ca`/`--insecure`), reading PEM files, and
//! building rustls configurations from them.
//!
//! What a TLS step *does* with these configurations (accept, connect,
//! which name it checks) is its lesson and stays in its `lib.rs`.
//!
//! PEM files are read with `rustls-pki-types`' [`PemObject`] (re-exported
//! by tokio-rustls): `rustls-pemfile` is archived, and its code lives
//! there now.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::{
    CryptoProvider, WebPkiSupportedAlgorithms, aws_lc_rs,
    verify_tls12_signature, verify_tls13_signature,
};
use tokio_rustls::rustls::pki_types::pem::{self, PemObject};
use tokio_rustls::rustls::pki_types::{
    CertificateDer, PrivateKeyDer, ServerName, UnixTime,
};
use tokio_rustls::rustls::{
    ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig,
    SignatureScheme, SupportedCipherSuite,
};

use crate::Error;

/// The lab CA's certificate: what clients trust (`curl --cacert`).
pub const CA_CERT_FILE: &str = "ca.crt";
/// The server certificate, for localhost, 127.0.0.1 and ::1.
pub const SERVER_CERT_FILE: &str = "server.crt";
/// The server certificate's private key.
pub const SERVER_KEY_FILE: &str = "server.key";

/// What to tell someone whose certificates are missing or broken, when
/// they are the lab's own (the default paths): errors about a path given
/// on the command line say what is wrong with it and stop there.
pub const MAKE_CERTS_HINT: &str =
    "run scripts/gen-certs.sh to make the lab's certificates";

/// `<workspace root>/certs`, found from this crate's own path at build
/// time, so `cargo run` finds the certificates from any folder.
pub fn certs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("lab-common sits one folder below the workspace root")
        .join("certs")
}

/// The default `--ca`: `certs/ca.crt`.
pub fn default_ca_path() -> PathBuf {
    certs_dir().join(CA_CERT_FILE)
}

/// The default `--cert`: `certs/server.crt`.
pub fn default_cert_path() -> PathBuf {
    certs_dir().join(SERVER_CERT_FILE)
}

/// The default `--key`: `certs/server.key`.
pub fn default_key_path() -> PathBuf {
    certs_dir().join(SERVER_KEY_FILE)
}

/// `--cert` and `--key`: the certificate a TLS listener presents. Every
/// binary that serves TLS takes them the same way, with
/// `#[command(flatten)]` in its clap arguments.
#[derive(clap::Args, Debug, Clone)]
pub struct CertFlags {
    /// Certificate chain (PEM) presented to clients that speak TLS.
    #[arg(long, default_value_os_t = default_cert_path())]
    pub cert: PathBuf,

    /// Private key (PEM) of that certificate.
    #[arg(long, default_value_os_t = default_key_path())]
    pub key: PathBuf,
}

impl CertFlags {
    /// Loads the two files: see [`server_config`].
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, Error> {
        server_config(&self.cert, &self.key)
    }
}

/// `--ca` and `--insecure`: how a balancer checks the TLS backends it
/// dials. What it does with them is the step's lesson.
#[derive(clap::Args, Debug, Clone)]
pub struct TrustFlags {
    /// CA certificate(s) (PEM) that must have signed the TLS backends'
    /// certificates.
    #[arg(long, default_value_os_t = default_ca_path())]
    pub ca: PathBuf,

    /// Do not verify the TLS backends' certificates at all. For
    /// experiments only: anyone on the way to a backend could pose as it.
    #[arg(long, conflicts_with = "ca")]
    pub insecure: bool,
}

impl TrustFlags {
    /// Loads `--ca`: see [`client_config`]. (With `--insecure` there is
    /// nothing to load; the step decides what that means.)
    pub fn client_config(&self) -> Result<Arc<ClientConfig>, Error> {
        client_config(&self.ca)
    }
}

/// Every certificate in a PEM file, in order (a server's chain starts
/// with its own certificate).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|err| pem_error("certificate", path, err))?;
    if certs.is_empty() {
        return Err(pem_error("certificate", path, pem::Error::NoItemsFound));
    }
    Ok(certs)
}

/// The first private key in a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, Error> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|err| pem_error("private key", path, err))
}

/// A server configuration that presents the certificate chain in `cert`
/// with the key in `key`. Fails if the key does not belong to the
/// certificate.
///
/// No ALPN protocol is offered: the lab's balancers relay bytes without
/// reading HTTP, so the client and the backend must agree on HTTP/1.1,
/// which is what clients fall back to when the server names none.
///
/// The server, not the client, picks the cipher suite, from
/// [`SERVER_SUITES`].
pub fn server_config(
    cert: &Path,
    key: &Path,
) -> Result<Arc<ServerConfig>, Error> {
    let chain = load_certs(cert)?;
    let key_der = load_key(key)?;
    let provider = CryptoProvider {
        cipher_suites: SERVER_SUITES.to_vec(),
        ..aws_lc_rs::default_provider()
    };
    let mut config = ServerConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .expect("aws-lc-rs supports rustls' default protocol versions")
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|err| pair_error(cert, key, err))?;
    config.ignore_client_order = true;
    Ok(Arc::new(config))
}

/// The cipher suites a server offers, best first: rustls' own, with
/// AES-128-GCM ahead of AES-256-GCM. OpenSSL's clients (curl, wrk)
/// ask for AES-256 first, and TLS 1.3 pairs it with SHA-384, which
/// x86's SHA instructions do not cover (they do SHA-256) and which
/// aws-lc computes in plain code on AMD processors: a tenth of a
/// handshake's CPU on this lab's machine, for a key length no attack
/// on AES-128 needs. Browsers ask for AES-128 first anyway.
pub const SERVER_SUITES: [SupportedCipherSuite; 9] = {
    use aws_lc_rs::cipher_suite::*;
    [
        TLS13_AES_128_GCM_SHA256,
        TLS13_AES_256_GCM_SHA384,
        TLS13_CHACHA20_POLY1305_SHA256,
        TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ]
};

/// Says in words what is wrong with a certificate and key that each
/// loaded but do not work together. (rustls' own words are for
/// programmers: "keys may not be consistent: KeyMismatch".)
fn pair_error(
    cert: &Path,
    key: &Path,
    err: tokio_rustls::rustls::Error,
) -> Error {
    use tokio_rustls::rustls::{Error as Tls, InconsistentKeys};
    let (cert_shown, key_shown) = (cert.display(), key.display());
    let problem = match err {
        Tls::InconsistentKeys(InconsistentKeys::KeyMismatch) => format!(
            "the private key {key_shown} does not belong to the certificate \
             {cert_shown} (they come from different sets)"
        ),
        // What the crypto provider says about a key it cannot read.
        Tls::General(_) => format!(
            "cannot use the private key {key_shown}: not an RSA, ECDSA or \
             Ed25519 key"
        ),
        Tls::InvalidCertificate(why) => {
            format!("cannot use the certificate {cert_shown}: {why:?}")
        }
        other => format!("{cert_shown} with {key_shown}: {other}"),
    };
    format!("{problem}{}", hint(&[cert, key])).into()
}

/// Whether `path` is where the lab's own certificates live (`certs/` at
/// the root of the workspace): the files `scripts/gen-certs.sh` writes.
fn is_lab_default(path: &Path) -> bool {
    let defaults = [default_ca_path(), default_cert_path(), default_key_path()];
    std::path::absolute(path).is_ok_and(|path| defaults.contains(&path))
}

/// The advice that ends an error about `paths`: making the lab's
/// certificates helps when they are the lab's; a path the user typed is
/// theirs to fix, and the message has said what is wrong with it.
fn hint(paths: &[&Path]) -> String {
    if paths.iter().all(|path| is_lab_default(path)) {
        format!(" ({MAKE_CERTS_HINT})")
    } else {
        String::new()
    }
}

/// A client configuration that trusts the CA certificates in `ca` and
/// nothing else: not the system's roots, which never signed a lab
/// certificate.
pub fn client_config(ca: &Path) -> Result<Arc<ClientConfig>, Error> {
    let config = ClientConfig::builder()
        .with_root_certificates(root_store(ca)?)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The CA certificates in `ca`, as the roots a client trusts.
pub fn root_store(ca: &Path) -> Result<RootCertStore, Error> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(ca)? {
        roots.add(cert).map_err(|err| {
            format!("{}: not a usable CA certificate: {err}", ca.display())
        })?;
    }
    Ok(roots)
}

/// A client configuration that accepts any certificate for any name:
/// encryption without knowing who is at the other end. For `--insecure`
/// only; whoever can reach the path can pose as the backend.
pub fn insecure_client_config() -> Arc<ClientConfig> {
    let verifier = AcceptAnyCertificate {
        algorithms: aws_lc_rs::default_provider()
            .signature_verification_algorithms,
    };
    let config = ClientConfig::builder()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Arc::new(config)
}

/// Skips the certificate checks (issuer, expiry, name) but still checks
/// the handshake signature, so the connection is at least encrypted to
/// whoever holds the presented certificate's key.
#[derive(Debug)]
struct AcceptAnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, tokio_rustls::rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, tokio_rustls::rustls::Error> {
        verify_tls12_signature(message, cert, signature, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, tokio_rustls::rustls::Error> {
        verify_tls13_signature(message, cert, signature, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Names the file, what was expected in it, and how to make a good one.
fn pem_error(what: &str, path: &Path, err: pem::Error) -> Error {
    let problem = match err {
        pem::Error::Io(err) if err.kind() == io::ErrorKind::NotFound => {
            "no such file".to_owned()
        }
        pem::Error::Io(err) => err.to_string(),
        pem::Error::NoItemsFound => format!("no PEM {what} in it"),
        other => format!("not a PEM {what}: {other}"),
    };
    format!(
        "cannot load the {what} {}: {problem}{}",
        path.display(),
        hint(&[path])
    )
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_paths_are_in_the_workspace_certs_folder() {
        let dir = certs_dir();
        assert!(dir.ends_with("certs"), "{}", dir.display());
        assert!(dir.parent().unwrap().join("Cargo.toml").is_file());
        assert_eq!(default_ca_path(), dir.join("ca.crt"));
        assert_eq!(default_cert_path(), dir.join("server.crt"));
        assert_eq!(default_key_path(), dir.join("server.key"));
    }

    #[test]
    fn a_missing_file_the_user_named_is_named_without_the_script() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("server.crt");
        let err = server_config(&missing, &missing).unwrap_err().to_string();
        let want = format!(
            "cannot load the certificate {}: no such file",
            missing.display()
        );
        assert_eq!(err, want);
        let err = client_config(&missing).unwrap_err().to_string();
        assert!(err.ends_with(": no such file"), "{err}");
    }

    #[test]
    fn only_the_lab_default_paths_get_the_gen_certs_hint() {
        let not_found = || io::Error::from(io::ErrorKind::NotFound);
        for default in
            [default_ca_path(), default_cert_path(), default_key_path()]
        {
            assert!(is_lab_default(&default), "{}", default.display());
            let err =
                pem_error("certificate", &default, pem::Error::Io(not_found()));
            let err = err.to_string();
            assert!(err.ends_with(&format!("({MAKE_CERTS_HINT})")), "{err}");
        }
        let typed = Path::new("/nonexistent.pem");
        assert!(!is_lab_default(typed));
        let err = pem_error("certificate", typed, pem::Error::Io(not_found()));
        assert_eq!(
            err.to_string(),
            "cannot load the certificate /nonexistent.pem: no such file"
        );
        // The same file name elsewhere is not the lab's.
        assert!(!is_lab_default(Path::new("/tmp/certs/server.crt")));
    }

    #[test]
    fn a_key_from_another_set_is_called_that() {
        let names = vec!["localhost".to_owned()];
        let [one, two] = [(); 2].map(|()| {
            let dir = tempfile::tempdir().unwrap();
            crate::certs::CertSet::generate(&names)
                .unwrap()
                .write_to(dir.path())
                .unwrap();
            dir
        });
        let cert = one.path().join(SERVER_CERT_FILE);
        let key = two.path().join(SERVER_KEY_FILE);
        let err = server_config(&cert, &key).unwrap_err().to_string();
        let want = format!(
            "the private key {} does not belong to the certificate {} (they \
             come from different sets)",
            key.display(),
            cert.display()
        );
        assert_eq!(err, want);
        // A set that belongs together loads.
        server_config(&cert, &one.path().join(SERVER_KEY_FILE)).unwrap();
    }

    #[test]
    fn a_file_that_is_no_key_rustls_can_use_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let names = vec!["localhost".to_owned()];
        crate::certs::CertSet::generate(&names)
            .unwrap()
            .write_to(dir.path())
            .unwrap();
        // A PEM "private key" whose bytes are no key at all.
        let key = dir.path().join("bad.key");
        std::fs::write(
            &key,
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let cert = dir.path().join(SERVER_CERT_FILE);
        let err = server_config(&cert, &key).unwrap_err().to_string();
        let want = format!(
            "cannot use the private key {}: not an RSA, ECDSA or Ed25519 key",
            key.display()
        );
        assert_eq!(err, want);
    }

    #[test]
    fn a_file_without_pem_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let garbage = dir.path().join("ca.crt");
        std::fs::write(&garbage, "not a certificate\n").unwrap();
        let err = client_config(&garbage).unwrap_err().to_string();
        assert!(err.contains("no PEM certificate"), "{err}");
        let err = load_key(&garbage).unwrap_err().to_string();
        assert!(err.contains("no PEM private key"), "{err}");
    }
}
