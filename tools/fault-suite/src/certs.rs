//! The certificates of one run of the suite: a fresh CA and a server
//! certificate for `localhost`, `127.0.0.1` and `::1` (the lab's names),
//! in a temporary folder (never the learner's `certs/`), with the TLS
//! configurations made from them.

use std::path::PathBuf;
use std::sync::Arc;

use lab_common::certs::{CertSet, LAB_NAMES};
use lab_common::{Error, tls};
use tokio_rustls::rustls::{ClientConfig, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// A CA, a server certificate it signed, and configurations for both
/// ends. The folder is deleted on drop.
pub struct Certs {
    dir: tempfile::TempDir,
    /// Presents the server certificate (the fault backends, and `lb`'s
    /// front through its config file).
    pub acceptor: TlsAcceptor,
    /// Trusts the CA only (the suite's TLS clients).
    pub client: Arc<ClientConfig>,
}

impl Certs {
    pub fn new() -> Result<Certs, Error> {
        let dir = tempfile::tempdir()
            .map_err(|err| format!("a temporary folder: {err}"))?;
        let names: Vec<String> = LAB_NAMES.iter().map(|&n| n.into()).collect();
        CertSet::generate(&names)?.write_to(dir.path())?;
        let certs = Certs {
            acceptor: TlsAcceptor::from(Certs::server_config_in(&dir)?),
            client: tls::client_config(&dir.path().join(tls::CA_CERT_FILE))?,
            dir,
        };
        Ok(certs)
    }

    fn server_config_in(
        dir: &tempfile::TempDir,
    ) -> Result<Arc<ServerConfig>, Error> {
        tls::server_config(
            &dir.path().join(tls::SERVER_CERT_FILE),
            &dir.path().join(tls::SERVER_KEY_FILE),
        )
    }

    pub fn connector(&self) -> TlsConnector {
        TlsConnector::from(self.client.clone())
    }

    pub fn ca_path(&self) -> PathBuf {
        self.dir.path().join(tls::CA_CERT_FILE)
    }

    pub fn cert_path(&self) -> PathBuf {
        self.dir.path().join(tls::SERVER_CERT_FILE)
    }

    pub fn key_path(&self) -> PathBuf {
        self.dir.path().join(tls::SERVER_KEY_FILE)
    }
}
