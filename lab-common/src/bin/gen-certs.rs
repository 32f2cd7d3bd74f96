//! Makes the lab's development CA and server certificate with rcgen.
//!
//! ```text
//! scripts/gen-certs.sh            # the usual way; runs this binary
//! cargo run -p lab-common --bin gen-certs -- --help
//! ```
//!
//! A set that is still valid is kept, so running it twice changes
//! nothing; `--force` replaces it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use lab_common::certs::{self, CertSet, LAB_NAMES, VALID_DAYS};
use lab_common::tls;

/// Writes a development CA (ca.crt) and a server certificate it signed
/// (server.crt, server.key) for the lab's TLS steps. For the lab only.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Folder to write into [default: certs/ at the workspace root]
    #[arg(long)]
    out: Option<PathBuf>,

    /// Names the server certificate is valid for, comma-separated: DNS
    /// names or IP addresses [default: localhost,127.0.0.1,::1]
    #[arg(
        long,
        value_delimiter = ',',
        default_values_t = LAB_NAMES.map(String::from),
        hide_default_value = true
    )]
    names: Vec<String>,

    /// Make a new set even if the one in the folder is still valid.
    #[arg(long)]
    force: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let out = args.out.unwrap_or_else(tls::certs_dir);
    let names = args.names.join(", ");
    // Before looking at what is there: a bad name is the user's typo, not
    // a reason to replace the set.
    if let Err(err) = certs::check_names(&args.names) {
        eprintln!("error: --names: {err}");
        return ExitCode::from(2);
    }

    if !args.force {
        match certs::check_existing(&out, &args.names) {
            Ok(()) => {
                println!(
                    "{}/ already holds a valid CA and a server certificate \
                     for {names}: keeping them (--force makes new ones)",
                    shown(&out).display()
                );
                return ExitCode::SUCCESS;
            }
            // Nothing there yet is the usual first run, not news.
            Err(_) if !out.join(tls::CA_CERT_FILE).exists() => {}
            Err(err) => {
                // The error's advice is to run this very program: drop it.
                let hint = format!(" ({})", tls::MAKE_CERTS_HINT);
                let problem = err.to_string().replace(&hint, "");
                println!("making new certificates: {problem}");
            }
        }
    }

    let written =
        CertSet::generate(&args.names).and_then(|set| set.write_to(&out));
    if let Err(err) = written {
        return lab_common::cli::fail(err);
    }
    let [ca, cert, key] = certs::paths_in(&out);
    let [ca, cert, key] = [shown(&ca), shown(&cert), shown(&key)];
    println!(
        "wrote {} (the CA certificate: what clients trust)",
        ca.display()
    );
    println!(
        "wrote {} (for {names}, signed by that CA, valid {VALID_DAYS} \
         days)",
        cert.display()
    );
    println!("wrote {} (its private key)", key.display());
    ExitCode::SUCCESS
}

/// `path` relative to the workspace root when it is inside it, as the
/// tutorial writes it (`certs/ca.crt`).
fn shown(path: &Path) -> &Path {
    let root = tls::certs_dir();
    let root = root.parent().expect("certs/ has a parent");
    path.strip_prefix(root).unwrap_or(path)
}
