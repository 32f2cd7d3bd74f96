//! The configuration files the benchmark writes for the programs it runs:
//! the nginx that serves as backend, HAProxy and nginx's stream module as
//! contenders (plain, or in their second configuration, or with TLS at
//! the front), `lb` (the same, and with 1,000 backends for the scale
//! workload), and the Lua script that makes wrk print one line.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use super::reloads::Version;

/// What every configuration depends on.
pub struct Machine<'a> {
    pub cores: usize,
    /// The open-file limit the programs inherit.
    pub nofile: u64,
    /// The work folder (pid files, logs, nginx's temporary files).
    pub work: &'a Path,
}

/// The run's certificate for the TLS workloads (one ECDSA P-256 key for
/// every program): PEM files, and both in one for HAProxy.
#[derive(Clone, Debug)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Certificate then key, as HAProxy's `crt` wants them.
    pub combined: PathBuf,
}

/// The cipher suites every TLS server here prefers, in OpenSSL's names,
/// as lb does (`lab_common::tls::SERVER_SUITES`): AES-128-GCM first,
/// whatever order the client (wrk, OpenSSL) asks in. TLS 1.2, then 1.3.
const PREFERRED_CIPHERS: &str =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384";
const PREFERRED_SUITES: &str = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384";

/// nginx's TLS lines, without session resumption of either kind (every
/// handshake a client starts is a full one), its own cipher order first.
fn nginx_tls(certs: &CertFiles, indent: &str) -> String {
    format!(
        "{indent}ssl_certificate {};
{indent}ssl_certificate_key {};
{indent}ssl_session_cache off;
{indent}ssl_session_tickets off;
{indent}ssl_prefer_server_ciphers on;
{indent}ssl_ciphers {PREFERRED_CIPHERS};
{indent}ssl_conf_command Ciphersuites {PREFERRED_SUITES};
",
        certs.cert.display(),
        certs.key.display()
    )
}

/// One nginx answering a fixed small body on every port of `ports`: fast
/// enough not to be what limits a balancer; with `tls`, the same body over
/// TLS on that port too (the TLS workloads' direct runs).
pub fn backend_nginx(
    m: &Machine<'_>,
    ports: &[u16],
    tls: Option<(u16, &CertFiles)>,
) -> String {
    let work = m.work.display();
    let mut listens = String::new();
    for port in ports {
        writeln!(listens, "    listen 127.0.0.1:{port};").expect("a String");
    }
    if let Some((port, certs)) = tls {
        writeln!(listens, "    listen 127.0.0.1:{port} ssl;")
            .expect("a String");
        listens.push_str(&nginx_tls(certs, "    "));
    }
    format!(
        "worker_processes {cores};
daemon off;
pid {work}/backend-nginx.pid;
error_log {work}/backend-nginx.error.log warn;
worker_rlimit_nofile {nofile};
events {{ worker_connections {connections}; }}
http {{
  access_log off;
  keepalive_requests 1000000000;
  keepalive_timeout 600s;
  client_header_timeout 600s;
  client_body_temp_path {work}/nginx-temp;
  proxy_temp_path {work}/nginx-temp;
  fastcgi_temp_path {work}/nginx-temp;
  uwsgi_temp_path {work}/nginx-temp;
  scgi_temp_path {work}/nginx-temp;
  server {{
{listens}    location / {{
      default_type text/plain;
      return 200 \"backend answer: a small fixed body, one line of text.\\n\";
    }}
  }}
}}
",
        cores = m.cores,
        nofile = m.nofile,
        connections = m.nofile / 2,
    )
}

/// HAProxy's splice-auto configuration sizes its descriptors from
/// `maxconn` with pipes included: 9,000 asks for more than the 20,000
/// open files this machine allows, 4,000 fits (BENCH-NOTES.md).
pub const HAPROXY_SPLICE_MAXCONN: u64 = 4000;

/// HAProxy in `mode tcp`, round robin over `backends`, on `port`; with
/// `splice`, `option splice-auto`; with `tls`, TLS at the front (OpenSSL),
/// with neither tickets nor a session cache.
pub fn haproxy(
    m: &Machine<'_>,
    port: u16,
    backends: &[String],
    splice: bool,
    tls: Option<&CertFiles>,
) -> String {
    let mut servers = String::new();
    for (i, backend) in backends.iter().enumerate() {
        write!(servers, "\n  server s{} {backend}", i + 1).expect("a String");
    }
    let fit = m.nofile.saturating_sub(200) / 2;
    let (maxconn, option) = if splice {
        (fit.min(HAPROXY_SPLICE_MAXCONN), "  option splice-auto\n")
    } else {
        (fit, "")
    };
    let (cache, bind) = match tls {
        Some(certs) => (
            format!(
                "  tune.ssl.cachesize 0\n  ssl-default-bind-ciphers \
                 {PREFERRED_CIPHERS}\n  ssl-default-bind-ciphersuites \
                 {PREFERRED_SUITES}\n"
            ),
            format!(" ssl crt {} no-tls-tickets", certs.combined.display()),
        ),
        None => (String::new(), String::new()),
    };
    format!(
        "# No log lines, as the lab's balancers run with RUST_LOG=warn.
global
  nbthread {cores}
  maxconn {maxconn}
{cache}defaults
  mode tcp
{option}  timeout connect 5s
  timeout client 600s
  timeout server 600s
frontend balancer
  bind 127.0.0.1:{port}{bind}
  default_backend servers
backend servers
  balance roundrobin{servers}
",
        cores = m.cores,
    )
}

/// How nginx's stream module is set up beyond its defaults.
#[derive(Clone, Copy, Debug, Default)]
pub struct StreamTuning<'a> {
    /// `listen ... reuseport` (a listening socket per worker, which the
    /// kernel balances) and `proxy_buffer_size 64k` (default 16k).
    pub reuseport: bool,
    pub tls: Option<&'a CertFiles>,
}

/// nginx's stream module, round robin over `backends`, on `port`; `name`
/// keeps its pid and log files apart from the other nginx instances.
pub fn nginx_stream(
    m: &Machine<'_>,
    name: &str,
    port: u16,
    backends: &[String],
    tuning: StreamTuning<'_>,
) -> String {
    let work = m.work.display();
    let mut servers = String::new();
    for backend in backends {
        writeln!(servers, "    server {backend};").expect("a String");
    }
    let mut listen = format!("127.0.0.1:{port}");
    let mut extra = String::new();
    if tuning.reuseport {
        listen.push_str(" reuseport");
        extra.push_str("    proxy_buffer_size 64k;\n");
    }
    if let Some(certs) = tuning.tls {
        listen.push_str(" ssl");
        extra.push_str(&nginx_tls(certs, "    "));
    }
    format!(
        "load_module /usr/lib/nginx/modules/ngx_stream_module.so;
worker_processes {cores};
daemon off;
pid {work}/{name}.pid;
error_log {work}/{name}.error.log warn;
worker_rlimit_nofile {nofile};
events {{ worker_connections {connections}; }}
stream {{
  upstream servers {{
{servers}  }}
  server {{
    listen {listen};
    proxy_pass servers;
    proxy_timeout 600s;
{extra}  }}
}}
",
        cores = m.cores,
        nofile = m.nofile,
        connections = m.nofile / 2,
    )
}

/// How a benchmark's `lb` is set up.
#[derive(Clone, Copy, Debug)]
pub struct LbSetup<'a> {
    /// As lb's `algorithm` key names it: round robin, like every peer,
    /// for the comparisons; least connections for `lb-lc`.
    pub algorithm: &'a str,
    /// TCP health checks, or none (iperf3's server takes one client at a
    /// time, and a check's connection would be that client).
    pub checks: bool,
    /// `[limits] splice_pipes`, written only when set (lb's default is
    /// 256 pipes).
    pub splice_pipes: Option<u32>,
    /// `[tls]`: the certificate lb presents to clients.
    pub tls: Option<&'a CertFiles>,
}

impl LbSetup<'_> {
    /// Round robin, TCP checks, nothing else: the comparisons' `lb`.
    pub const PLAIN: LbSetup<'static> = LbSetup {
        algorithm: "round-robin",
        checks: true,
        splice_pipes: None,
        tls: None,
    };
}

/// `lb`'s file: `setup` over `backends`, each with its own id (the iperf3
/// set names one address three times).
pub fn lb(port: u16, backends: &[String], setup: LbSetup<'_>) -> String {
    let kind = if setup.checks { "tcp" } else { "off" };
    let mut text = format!(
        "# Written by scripts/bench.sh.
listen = \"127.0.0.1:{port}\"
algorithm = \"{algorithm}\"

[health]
kind = \"{kind}\"
interval = \"1s\"
",
        algorithm = setup.algorithm
    );
    if let Some(pipes) = setup.splice_pipes {
        write!(text, "\n[limits]\nsplice_pipes = {pipes}\n").expect("a String");
    }
    if let Some(certs) = setup.tls {
        write!(
            text,
            "\n[tls]\ncert = '{}'\nkey = '{}'\nresumption = false\n",
            certs.cert.display(),
            certs.key.display()
        )
        .expect("a String");
    }
    for (i, backend) in backends.iter().enumerate() {
        write!(
            text,
            "\n[[backends]]\nid = \"s{}\"\naddress = \"{backend}\"\n",
            i + 1
        )
        .expect("a String");
    }
    text
}

/// `lb`'s file for the scale workload: `count` backend entries `s1..`,
/// every one at `address` (lb takes one address under several ids), and
/// no health checks, so that 1,000 checkers do not load the machine.
pub fn lb_scale(
    port: u16,
    address: &str,
    algorithm: &str,
    count: usize,
) -> String {
    let mut text = format!(
        "# Written by scripts/bench.sh.
listen = \"127.0.0.1:{port}\"
algorithm = \"{algorithm}\"

[health]
kind = \"off\"
"
    );
    for i in 1..=count {
        write!(
            text,
            "\n[[backends]]\nid = \"s{i}\"\naddress = \"{address}\"\n"
        )
        .expect("a String");
    }
    text
}

/// HAProxy for the reloads workload, on `port`: version A (round robin,
/// backends 1 and 2 weighted 1 and 3) or B (least connections, backends
/// 2 and 3 weighted 2 and 1) of [`super::reloads::Version`]; with
/// `socket`, a stats socket that hands the listeners to the next process
/// (`expose-fd listeners`, for `-x`).
pub fn haproxy_reload(
    m: &Machine<'_>,
    port: u16,
    backends: &[String],
    version: Version,
    socket: Option<&Path>,
) -> String {
    let balance = match version {
        Version::A => "roundrobin",
        Version::B => "leastconn",
    };
    let stats = socket.map_or(String::new(), |path| {
        format!(
            "  stats socket {} mode 600 level admin expose-fd listeners\n",
            path.display()
        )
    });
    let mut servers = String::new();
    for (i, weight) in version.backends() {
        write!(
            servers,
            "\n  server s{} {} weight {weight}",
            i + 1,
            backends[i]
        )
        .expect("a String");
    }
    format!(
        "global
  nbthread {cores}
  maxconn {maxconn}
{stats}defaults
  mode tcp
  timeout connect 5s
  timeout client 600s
  timeout server 600s
frontend balancer
  bind 127.0.0.1:{port}
  default_backend servers
backend servers
  balance {balance}{servers}
",
        cores = m.cores,
        maxconn = m.nofile.saturating_sub(200) / 2,
    )
}

/// `lb`'s file for the reloads workload: version A (weighted round
/// robin over backends 1 and 2) or B (least connections over 2 and 3),
/// health checks off (the load alone decides who gets a client), and
/// with `socket` the `[upgrade]` socket a new `lb --upgrade` connects to.
pub fn lb_reload(
    port: u16,
    backends: &[String],
    version: Version,
    socket: Option<&Path>,
) -> String {
    let algorithm = match version {
        Version::A => "weighted-round-robin",
        Version::B => "least-connections",
    };
    let mut text = format!(
        "# Written by scripts/bench.sh.
listen = \"127.0.0.1:{port}\"
algorithm = \"{algorithm}\"

[health]
kind = \"off\"
"
    );
    if let Some(socket) = socket {
        write!(text, "\n[upgrade]\nsocket = '{}'\n", socket.display())
            .expect("a String");
    }
    for (i, weight) in version.backends() {
        write!(
            text,
            "\n[[backends]]\nid = \"s{}\"\naddress = \"{}\"\nweight = {weight}\n",
            i + 1,
            backends[i]
        )
        .expect("a String");
    }
    text
}

/// wrk's script: one line at the end, "WRK requests duration_us p50_us
/// p99_us errors" (errors of every kind).
pub const WRK_REPORT: &str = r#"-- One line for bench.sh: requests, duration (us), p50 and p99 latency
-- (us), errors of any kind.
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRK %d %d %d %d %d\n", summary.requests,
    summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.status + e.timeout))
end
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn machine() -> Machine<'static> {
        Machine {
            cores: 2,
            nofile: 20_000,
            work: Path::new("/tmp/w"),
        }
    }

    fn backends() -> Vec<String> {
        (1..=3).map(|i| format!("127.0.0.1:2000{i}")).collect()
    }

    #[test]
    fn haproxy_balances_over_every_backend() {
        let text = haproxy(&machine(), 20104, &backends(), false, None);
        assert!(text.contains("  maxconn 9900\n"));
        assert!(!text.contains("splice") && !text.contains("ssl"));
        assert!(text.contains("  bind 127.0.0.1:20104\n"));
        assert!(text.ends_with(
            "  balance roundrobin\n  server s1 127.0.0.1:20001\n  \
             server s2 127.0.0.1:20002\n  server s3 127.0.0.1:20003\n"
        ));
    }

    #[test]
    fn nginx_files_name_their_ports_and_folder() {
        let stream = nginx_stream(
            &machine(),
            "nginx-stream-nginx",
            20105,
            &backends(),
            StreamTuning::default(),
        );
        assert!(stream.contains("    listen 127.0.0.1:20105;\n"));
        assert!(stream.contains("pid /tmp/w/nginx-stream-nginx.pid;"));
        assert!(stream.contains("    server 127.0.0.1:20003;\n  }"));
        assert!(stream.contains("events { worker_connections 10000; }"));
        let backend = backend_nginx(&machine(), &[20001, 20002], None);
        assert!(backend.contains(
            "    listen 127.0.0.1:20001;\n    listen 127.0.0.1:20002;\n    location / {"
        ));
    }

    #[test]
    fn the_reload_files_differ_in_algorithm_weights_and_backends() {
        let socket = Path::new("/tmp/w/haproxy-x.sock");
        let a =
            haproxy_reload(&machine(), 20204, &backends(), Version::A, None);
        let b = haproxy_reload(
            &machine(),
            20204,
            &backends(),
            Version::B,
            Some(socket),
        );
        assert!(a.ends_with(
            "  balance roundrobin\n  server s1 127.0.0.1:20001 weight 1\n  \
             server s2 127.0.0.1:20002 weight 3\n"
        ));
        assert!(b.ends_with(
            "  balance leastconn\n  server s2 127.0.0.1:20002 weight 2\n  \
             server s3 127.0.0.1:20003 weight 1\n"
        ));
        assert!(!a.contains("stats socket"));
        assert!(b.contains(
            "  stats socket /tmp/w/haproxy-x.sock mode 600 level admin \
             expose-fd listeners\n"
        ));
        let lb_a = lb_reload(20206, &backends(), Version::A, None);
        let lb_b = lb_reload(20206, &backends(), Version::B, Some(socket));
        assert!(lb_a.contains("algorithm = \"weighted-round-robin\""));
        assert!(lb_a.contains(
            "id = \"s2\"\naddress = \"127.0.0.1:20002\"\nweight = 3"
        ));
        assert!(!lb_a.contains("20003") && !lb_b.contains("20001"));
        assert!(lb_b.contains("[upgrade]\nsocket = '/tmp/w/haproxy-x.sock'"));
    }

    fn certs() -> CertFiles {
        CertFiles {
            cert: "/tmp/w/bench.crt".into(),
            key: "/tmp/w/bench.key".into(),
            combined: "/tmp/w/bench.pem".into(),
        }
    }

    #[test]
    fn the_second_configurations_and_tls_fronts() {
        let splice = haproxy(&machine(), 20113, &backends(), true, None);
        assert!(splice.contains("  maxconn 4000\n"));
        assert!(splice.contains("  mode tcp\n  option splice-auto\n"));
        let tls =
            haproxy(&machine(), 20404, &backends(), false, Some(&certs()));
        assert!(tls.contains(
            "  bind 127.0.0.1:20404 ssl crt /tmp/w/bench.pem no-tls-tickets\n"
        ));
        assert!(tls.contains("  tune.ssl.cachesize 0\n"));
        assert!(tls.contains(
            "  ssl-default-bind-ciphersuites \
             TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384\n"
        ));
        let tuned = StreamTuning {
            reuseport: true,
            tls: Some(&certs()),
        };
        let stream = nginx_stream(&machine(), "n", 20405, &backends(), tuned);
        assert!(stream.contains("    listen 127.0.0.1:20405 reuseport ssl;\n"));
        assert!(stream.contains("    proxy_buffer_size 64k;\n"));
        assert!(stream.contains(
            "    ssl_session_cache off;\n    ssl_session_tickets off;\n"
        ));
        assert!(stream.contains(
            "    ssl_prefer_server_ciphers on;\n    ssl_ciphers \
             ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384;\n"
        ));
        let backend =
            backend_nginx(&machine(), &[20001], Some((20004, &certs())));
        assert!(backend.contains("    listen 127.0.0.1:20004 ssl;\n"));
        assert!(
            backend.contains("    ssl_certificate_key /tmp/w/bench.key;\n")
        );
    }

    /// The file is one `lb` itself accepts, with the settings the report
    /// claims: round robin, checks on or off, one id per slot.
    #[test]
    fn lb_accepts_the_config_the_benchmark_writes() {
        use balancer::config::{CheckKind, Config};
        let iperf = vec!["127.0.0.1:20021".to_owned(); 3];
        for (list, checks) in [(backends(), true), (iperf, false)] {
            let setup = LbSetup {
                checks,
                ..LbSetup::PLAIN
            };
            let text = lb(20106, &list, setup);
            let config = Config::parse(Path::new("lb-bench.toml"), &text)
                .unwrap_or_else(|err| panic!("{err}\n{text}"));
            assert_eq!(config.listen.to_string(), "127.0.0.1:20106");
            assert_eq!(config.algorithm.to_string(), "round-robin");
            let expected = if checks {
                CheckKind::Tcp
            } else {
                CheckKind::Off
            };
            assert_eq!(config.health.kind, expected);
            assert_eq!(config.backends.len(), 3);
            assert_eq!(config.backends[2].address.to_string(), list[2]);
        }
        // lb-lc: least connections.
        let setup = LbSetup {
            algorithm: "least-connections",
            ..LbSetup::PLAIN
        };
        let text = lb(20111, &backends(), setup);
        let config = Config::parse(Path::new("lb-lc.toml"), &text).unwrap();
        assert_eq!(config.algorithm.to_string(), "least-connections");
        // lb-nosplice: the buffered relay alone.
        let setup = LbSetup {
            splice_pipes: Some(0),
            ..LbSetup::PLAIN
        };
        let text = lb(20112, &backends(), setup);
        let config =
            Config::parse(Path::new("lb-nosplice.toml"), &text).unwrap();
        assert_eq!(config.limits.splice_pipes, 0);
        // The TLS rows: a full handshake every time, as for the peers.
        let certs = certs();
        let setup = LbSetup {
            tls: Some(&certs),
            ..LbSetup::PLAIN
        };
        let text = lb(20114, &backends(), setup);
        let config = Config::parse(Path::new("lb-tls.toml"), &text).unwrap();
        assert!(config.tls.front.is_some());
        assert!(!config.tls.resumption);
        // The scale workload tries every algorithm lb knows (its list is
        // written out, lb being only the tests' dependency).
        let known: Vec<&str> = balancer::select::Algorithm::ALL
            .iter()
            .map(|algorithm| algorithm.name())
            .collect();
        assert_eq!(super::super::SCALE_ALGORITHMS.as_slice(), known);
        // The scale files: 1,000 ids at one address, for every
        // algorithm lb knows.
        for algorithm in balancer::select::Algorithm::ALL {
            let name = algorithm.to_string();
            let text = lb_scale(20501, "127.0.0.1:20001", &name, 1000);
            let config = Config::parse(Path::new("lb-scale.toml"), &text)
                .unwrap_or_else(|err| panic!("{name}: {err}"));
            assert_eq!(config.backends.len(), 1000);
            assert_eq!(config.backends[999].id, "s1000");
            assert_eq!(config.health.kind, CheckKind::Off);
            assert_eq!(config.algorithm.to_string(), name);
        }
        // The reload workload's two files (without `[upgrade]`, which
        // the upgrade work adds).
        for (version, algorithm) in [
            (Version::A, "weighted-round-robin"),
            (Version::B, "least-connections"),
        ] {
            let text = lb_reload(20206, &backends(), version, None);
            let config = Config::parse(Path::new("lb-sighup.toml"), &text)
                .unwrap_or_else(|err| panic!("{err}\n{text}"));
            assert_eq!(config.algorithm.to_string(), algorithm);
            assert_eq!(config.backends.len(), 2);
        }
    }
}
