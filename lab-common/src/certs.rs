//! The lab's certificates, made with rcgen: a development CA and a server
//! certificate it signed, for `localhost`, `127.0.0.1` and `::1`.
//!
//! `scripts/gen-certs.sh` writes them into `certs/` (through the
//! `gen-certs` binary); tests write their own into a temporary folder.
//!
//! The CA's private key is used once, to sign the server certificate, and
//! never written anywhere: nobody can use these files to mint more
//! certificates that a machine trusting the lab CA would accept.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};
use tokio_rustls::rustls::client::WebPkiServerVerifier;
use tokio_rustls::rustls::client::danger::ServerCertVerifier;
use tokio_rustls::rustls::pki_types::{ServerName, UnixTime};

use crate::Error;
use crate::tls::{
    CA_CERT_FILE, SERVER_CERT_FILE, SERVER_KEY_FILE, load_certs, root_store,
    server_config,
};

/// The names the lab's server certificate is valid for: every way a
/// learner may write "this machine".
pub const LAB_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// How long a new certificate is valid. A year is long enough to forget
/// about it during the lab, short enough not to live on forever.
pub const VALID_DAYS: i64 = 365;

/// A CA certificate, and a server certificate and key it signed, as PEM.
#[derive(Debug)]
pub struct CertSet {
    pub ca_cert_pem: String,
    pub server_cert_pem: String,
    pub server_key_pem: String,
}

impl CertSet {
    /// Makes a fresh CA and a server certificate for `names` (DNS names
    /// or IP addresses; rcgen makes an IP address an IP SAN by itself).
    pub fn generate(names: &[String]) -> Result<CertSet, Error> {
        check_names(names)?;
        let now = OffsetDateTime::now_utc();
        // A day of slack before "now", for clocks that disagree a little.
        let not_before = now - Duration::days(1);
        let not_after = now + Duration::days(VALID_DAYS);

        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::default();
        ca_params
            .distinguished_name
            .push(DnType::CommonName, ca_name(&ca_key));
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca_params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        ca_params.not_before = not_before;
        ca_params.not_after = not_after;
        let ca = CertifiedIssuer::self_signed(ca_params, ca_key)?;

        let mut server_params = CertificateParams::new(names.to_vec())?;
        server_params
            .distinguished_name
            .push(DnType::CommonName, "lb-lab server");
        server_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        server_params.extended_key_usages =
            vec![ExtendedKeyUsagePurpose::ServerAuth];
        server_params.use_authority_key_identifier_extension = true;
        server_params.not_before = not_before;
        server_params.not_after = not_after;
        let server_key = KeyPair::generate()?;
        let server_cert = server_params.signed_by(&server_key, &ca)?;

        Ok(CertSet {
            ca_cert_pem: ca.pem(),
            server_cert_pem: server_cert.pem(),
            server_key_pem: server_key.serialize_pem(),
        })
    }

    /// Writes `ca.crt`, `server.crt` and `server.key` into `dir`, making
    /// it if needed. The key is readable by its owner only.
    pub fn write_to(&self, dir: &Path) -> Result<(), Error> {
        fs::create_dir_all(dir)
            .map_err(|err| format!("cannot create {}: {err}", dir.display()))?;
        write_file(&dir.join(CA_CERT_FILE), &self.ca_cert_pem, false)?;
        write_file(&dir.join(SERVER_CERT_FILE), &self.server_cert_pem, false)?;
        write_file(&dir.join(SERVER_KEY_FILE), &self.server_key_pem, true)?;
        Ok(())
    }
}

/// Fails unless every one of `names` is a DNS name or an IP address, as
/// a client would check it: rcgen writes whatever it is given, even an
/// empty name or `bad name!`, into a certificate nobody can match. A
/// wildcard (`*.lab.test`) is a DNS name with `*.` in front.
pub fn check_names(names: &[String]) -> Result<(), Error> {
    if names.is_empty() {
        return Err("a server certificate needs at least one name".into());
    }
    for name in names {
        let bare = name.strip_prefix("*.").unwrap_or(name);
        if ServerName::try_from(bare).is_err() {
            return Err(format!(
                "`{name}` is not a DNS name or IP address (e.g. localhost, \
                 lab.test, 127.0.0.1)"
            )
            .into());
        }
    }
    Ok(())
}

/// The paths of a certificate set inside `dir`.
pub fn paths_in(dir: &Path) -> [PathBuf; 3] {
    [CA_CERT_FILE, SERVER_CERT_FILE, SERVER_KEY_FILE].map(|file| dir.join(file))
}

/// Checks that `dir` holds a set that works today and tomorrow: the key
/// matches the server certificate, which the CA signed, for every one of
/// `names`. The error says what is wrong.
pub fn check_existing(dir: &Path, names: &[String]) -> Result<(), Error> {
    let [ca, cert, key] = paths_in(dir);
    // Loading the server's configuration proves its files parse and that
    // the key belongs to the certificate.
    server_config(&cert, &key)?;
    let roots = root_store(&ca)?;
    let verifier = WebPkiServerVerifier::builder(Arc::new(roots)).build()?;
    let chain = load_certs(&cert)?;
    let (end_entity, intermediates) = chain
        .split_first()
        .expect("load_certs never returns an empty list");
    let now = UnixTime::now();
    let tomorrow = UnixTime::since_unix_epoch(std::time::Duration::from_secs(
        now.as_secs() + 24 * 60 * 60,
    ));
    for name in names {
        let server_name = ServerName::try_from(name.as_str())
            .map_err(|_| format!("`{name}` is not a DNS name or IP address"))?
            .to_owned();
        for moment in [now, tomorrow] {
            verifier
                .verify_server_cert(
                    end_entity,
                    intermediates,
                    &server_name,
                    &[],
                    moment,
                )
                .map_err(|err| {
                    format!("{} for {name}: {err}", cert.display())
                })?;
        }
    }
    Ok(())
}

/// `lb-lab development CA 3f9a12c4`: the suffix, taken from the CA's
/// random public key, tells two lab CAs apart. With one name for all,
/// a client trusting another lab CA would take it for the issuer and
/// report a bad signature instead of an unknown issuer.
fn ca_name(ca_key: &KeyPair) -> String {
    // The raw key is 0x04 then the curve point: skip the constant byte.
    let point = ca_key.public_key_raw();
    let suffix: String = point
        .iter()
        .skip(1)
        .take(4)
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!("lb-lab development CA {suffix}")
}

/// Writes `text` to `path`; `private` files get mode 0600 on Unix, set
/// when the file is created so the key is never readable by others.
fn write_file(path: &Path, text: &str, private: bool) -> Result<(), Error> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
        // The mode applies only to a new file: replace, don't overwrite.
        let _ = fs::remove_file(path);
    }
    #[cfg(not(unix))]
    let _ = private;
    options
        .open(path)
        .and_then(|mut file| file.write_all(text.as_bytes()))
        .map_err(|err| format!("cannot write {}: {err}", path.display()).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lab_names() -> Vec<String> {
        LAB_NAMES.map(String::from).to_vec()
    }

    #[test]
    fn a_generated_set_checks_out_for_its_names() {
        let dir = tempfile::tempdir().unwrap();
        CertSet::generate(&lab_names())
            .unwrap()
            .write_to(dir.path())
            .unwrap();
        check_existing(dir.path(), &lab_names()).unwrap();
    }

    #[test]
    fn a_name_the_certificate_lacks_fails_the_check() {
        let dir = tempfile::tempdir().unwrap();
        CertSet::generate(&["other.test".into()])
            .unwrap()
            .write_to(dir.path())
            .unwrap();
        let err = check_existing(dir.path(), &lab_names())
            .unwrap_err()
            .to_string();
        assert!(err.contains("not valid for name"), "{err}");
    }

    #[test]
    fn a_server_certificate_from_another_ca_fails_the_check() {
        let dir = tempfile::tempdir().unwrap();
        let mine = CertSet::generate(&lab_names()).unwrap();
        let other = CertSet::generate(&lab_names()).unwrap();
        CertSet {
            ca_cert_pem: other.ca_cert_pem,
            ..mine
        }
        .write_to(dir.path())
        .unwrap();
        let err = check_existing(dir.path(), &lab_names())
            .unwrap_err()
            .to_string();
        assert!(err.contains("UnknownIssuer"), "{err}");
    }

    #[test]
    fn a_name_that_is_not_a_dns_name_or_ip_is_refused() {
        for bad in ["", "bad name!", "lab..test"] {
            let err = CertSet::generate(&[bad.to_owned()])
                .unwrap_err()
                .to_string();
            assert!(err.contains("is not a DNS name or IP address"), "{err}");
        }
        CertSet::generate(&["*.lab.test".into(), "::1".into()]).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn the_key_is_private_to_its_owner() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        CertSet::generate(&lab_names())
            .unwrap()
            .write_to(dir.path())
            .unwrap();
        let key = dir.path().join(SERVER_KEY_FILE);
        let mode = fs::metadata(key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
