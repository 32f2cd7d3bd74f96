//! The loads: wrk for HTTP, iperf3 for bulk, and curl for the smoke test
//! (which needs nothing but curl). Each runs as a process with a time
//! limit; what it prints is parsed here into a [`Run`].

use std::fmt::Write;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use super::stats::Run;
use crate::procs::Procs;
use crate::sys;

/// Kept-alive connections, or a new connection per request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Http {
    KeepAlive,
    Close,
}

/// wrk's line from [`super::configs::WRK_REPORT`]: "WRK requests
/// duration_us p50_us p99_us errors".
pub fn parse_wrk(output: &str) -> Option<Run> {
    let line = output.lines().find_map(|line| line.strip_prefix("WRK "))?;
    let numbers: Vec<f64> = line
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    let [requests, duration_us, p50_us, p99_us, errors] = numbers[..] else {
        return None;
    };
    Some(Run {
        rate: requests * 1e6 / duration_us,
        p50_us,
        p99_us,
        work: requests,
        errors: errors as u64,
        cpu_ns: 0,
        load_cpu_ns: 0,
    })
}

/// iperf3's `--json` report: the receiver's rate and bytes.
pub fn parse_iperf3(output: &str) -> Option<Run> {
    let report: serde_json::Value = serde_json::from_str(output).ok()?;
    let received = &report["end"]["sum_received"];
    let bits_per_second = received["bits_per_second"].as_f64()?;
    let bytes = received["bytes"].as_f64()?;
    Some(Run {
        rate: bits_per_second / 1e9,
        work: bytes / 1e9,
        ..Run::default()
    })
}

/// curl's `--write-out '%{time_total}\n'`, one line per request, and the
/// number of requests it was asked for: latency percentiles, and the
/// requests it did not report on as errors.
pub fn parse_curl_times(output: &str, asked: usize, elapsed: Duration) -> Run {
    let mut times: Vec<f64> = output
        .lines()
        .filter_map(|line| line.trim().parse::<f64>().ok())
        .map(|seconds| seconds * 1e6)
        .collect();
    times.sort_by(f64::total_cmp);
    let n = times.len();
    let at = |rank: usize| times.get(rank.max(1) - 1).copied().unwrap_or(0.0);
    Run {
        rate: n as f64 / elapsed.as_secs_f64(),
        p50_us: at(n.div_ceil(2)),
        p99_us: at(n * 99 / 100),
        work: n as f64,
        errors: asked.saturating_sub(n) as u64,
        cpu_ns: 0,
        load_cpu_ns: 0,
    }
}

/// The CPU time, in nanoseconds, process `pid` (and its children) spent
/// while `load` ran.
fn with_cpu<T>(
    pid: Option<u32>,
    load: impl FnOnce() -> Result<T, String>,
) -> Result<(T, u64), String> {
    let before = pid.map(sys::cpu_ns);
    let result = load()?;
    let ticks = match (pid, before) {
        (Some(pid), Some(before)) => sys::cpu_ns(pid).saturating_sub(before),
        _ => 0,
    };
    Ok((result, ticks))
}

/// How a load is made: wrk and iperf3, or curl alone for the smoke test.
pub struct Loader {
    pub smoke: bool,
    pub duration: u64,
    pub connections: usize,
    pub work: PathBuf,
}

impl Loader {
    /// HTTP load on `port` (HTTPS with `tls`); `cpu_pid`'s CPU time is
    /// measured meanwhile, and wrk's own.
    pub fn http(
        &self,
        procs: &mut Procs,
        kind: Http,
        tls: bool,
        port: u16,
        cpu_pid: Option<u32>,
    ) -> Result<Run, String> {
        let limit = Duration::from_secs(self.duration + 30);
        let (mut run, ticks) = with_cpu(cpu_pid, || {
            if self.smoke {
                return self.curl_http(procs, kind, port, limit);
            }
            let mut wrk = Command::new("wrk");
            wrk.arg("-t1")
                .arg(format!("-c{}", self.connections))
                .arg(format!("-d{}s", self.duration));
            if kind == Http::Close {
                // Exactly so: wrk passes "Connection:close" (no space)
                // on in a way that keeps the connections alive
                // (BENCH-NOTES.md).
                wrk.args(["-H", "Connection: close"]);
            }
            let scheme = if tls { "https" } else { "http" };
            wrk.arg("-s")
                .arg(self.work.join("report.lua"))
                .arg(format!("{scheme}://127.0.0.1:{port}/"));
            let (output, wrk_ns) =
                procs.run_with_cpu("wrk", &mut wrk, limit)?;
            let mut run = parse_wrk(&output).ok_or_else(|| {
                format!("wrk against port {port} gave no result")
            })?;
            run.load_cpu_ns = wrk_ns;
            Ok(run)
        })?;
        run.cpu_ns = ticks;
        Ok(run)
    }

    /// The smoke test's HTTP load: curl fetching one URL 100 times over
    /// one kept-alive connection, or 30 times with a new one each.
    fn curl_http(
        &self,
        procs: &mut Procs,
        kind: Http,
        port: u16,
        limit: Duration,
    ) -> Result<Run, String> {
        let count = match kind {
            Http::KeepAlive => 100,
            Http::Close => 30,
        };
        let mut config = String::new();
        for _ in 0..count {
            writeln!(config, "url = \"http://127.0.0.1:{port}/\"")
                .expect("a String");
            writeln!(config, "output = \"/dev/null\"").expect("a String");
        }
        let config_path = self.work.join(format!("curl-{port}.cfg"));
        std::fs::write(&config_path, config).map_err(|err| err.to_string())?;
        let mut curl = Command::new("curl");
        curl.args(["-sS", "--fail", "--max-time"])
            .arg(limit.as_secs().to_string())
            .args(["-w", "%{time_total}\\n", "--config"])
            .arg(&config_path);
        if kind == Http::Close {
            curl.args(["-H", "Connection: close"]);
        }
        let started = Instant::now();
        let output = procs.run("curl", &mut curl, limit)?;
        Ok(parse_curl_times(&output, count, started.elapsed()))
    }

    /// Bulk transfer through `port`: iperf3, one stream, client to server
    /// (the smoke test: curl reading 20 MB of the dummy servers' /bytes).
    pub fn bulk(
        &self,
        procs: &mut Procs,
        port: u16,
        cpu_pid: Option<u32>,
    ) -> Result<Run, String> {
        let limit = Duration::from_secs(self.duration + 30);
        let (mut run, ticks) = with_cpu(cpu_pid, || {
            if self.smoke {
                let mut curl = Command::new("curl");
                curl.args(["-sS", "--fail", "-o", "/dev/null", "--max-time"])
                    .arg(limit.as_secs().to_string())
                    .args(["-w", "%{size_download} %{time_total}"])
                    .arg(format!("http://127.0.0.1:{port}/bytes/20000000"));
                let output = procs.run("curl", &mut curl, limit)?;
                let mut fields = output.split_whitespace();
                let bytes: f64 =
                    fields.next().and_then(|f| f.parse().ok()).unwrap_or(0.0);
                let seconds: f64 =
                    fields.next().and_then(|f| f.parse().ok()).unwrap_or(0.0);
                if bytes <= 0.0 || seconds <= 0.0 {
                    return Err(format!(
                        "curl /bytes through port {port} failed"
                    ));
                }
                return Ok(Run {
                    rate: bytes * 8.0 / seconds / 1e9,
                    work: bytes / 1e9,
                    ..Run::default()
                });
            }
            // The server may still be closing the last test: try 3 times.
            for _ in 0..3 {
                let mut iperf = Command::new("iperf3");
                iperf
                    .args(["-c", "127.0.0.1", "-J", "-p"])
                    .arg(port.to_string())
                    .arg("-t")
                    .arg(self.duration.to_string());
                let output = procs.run("iperf3", &mut iperf, limit)?;
                if let Some(run) = parse_iperf3(&output) {
                    return Ok(run);
                }
                std::thread::sleep(Duration::from_secs(1));
            }
            Err(format!("iperf3 through port {port} gave no result"))
        })?;
        run.cpu_ns = ticks;
        Ok(run)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_line_gives_rate_latency_and_errors() {
        let output = "Running 5s test @ http://127.0.0.1:20104/\n\
                      WRK 350000 5000000 360 980 2\n";
        let run = parse_wrk(output).unwrap();
        assert_eq!(run.rate, 70_000.0);
        assert_eq!((run.p50_us, run.p99_us), (360.0, 980.0));
        assert_eq!((run.work, run.errors), (350_000.0, 2));
        assert_eq!(parse_wrk("WRK 1 2 3\n"), None);
        assert_eq!(parse_wrk("unable to connect\n"), None);
    }

    #[test]
    fn iperf3_receiver_figures() {
        let json = r#"{"start": {}, "end": {"sum_sent": {"bytes": 1},
            "sum_received": {"bytes": 11500000000,
                             "bits_per_second": 18400000000.0}}}"#;
        let run = parse_iperf3(json).unwrap();
        assert_eq!(run.rate, 18.4);
        assert_eq!(run.work, 11.5);
        assert_eq!(parse_iperf3(r#"{"error": "the server is busy"}"#), None);
    }

    #[test]
    fn curl_times_give_percentiles_and_missing_answers() {
        // 4 answers of 5 asked, in 2 s.
        let output = "0.004\n0.001\n0.003\n0.002\n";
        let run = parse_curl_times(output, 5, Duration::from_secs(2));
        assert_eq!(run.rate, 2.0);
        assert_eq!(run.p50_us, 2000.0);
        assert_eq!(run.p99_us, 3000.0);
        assert_eq!(run.errors, 1);
    }
}
