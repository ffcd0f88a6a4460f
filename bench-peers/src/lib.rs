//! Helpers for the peer benchmarks (see benches/ and src/bin/): driving `wrk` and summarising
//! its runs.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Output};
use std::time::Duration;

/// One `GET /<path>` (HTTP/1.1, `Connection: close`), with `credential` as a bearer if given:
/// the status and the body (0 and empty if no answer could be read).
///
/// # Panics
/// If nothing listens on `addr`.
pub fn http_get(addr: SocketAddr, path: &str, credential: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let auth = credential
        .map(|c| format!("Authorization: Bearer {c}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET /{path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_string();
    (status, body)
}

/// One wrk run.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// Requests per second.
    pub rps: f64,
    /// Latency percentiles, in microseconds.
    pub p50: f64,
    /// 99th percentile, in microseconds.
    pub p99: f64,
    /// Requests completed in the run (wrk's "N requests in …").
    pub requests: f64,
    /// CPU time the serving process used during the run, in seconds (user + system, every
    /// thread); `NaN` when the caller did not measure it.
    pub server_cpu_s: f64,
}

impl Sample {
    /// Server CPU time per request, in microseconds.
    pub fn cpu_per_request_us(&self) -> f64 {
        1e6 * self.server_cpu_s / self.requests
    }
}

/// CPU time this process has used so far (user + system, every thread, living or ended), in
/// seconds, from `/proc/self/stat` (clock ticks of 1/100 s, Linux's `USER_HZ`).
pub fn process_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat is readable (Linux)");
    // Fields after the command name (which may contain spaces): state is field 3; utime and
    // stime are fields 14 and 15.
    let after = &stat[stat.rfind(')').expect("a command name in parentheses") + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields[i - 3].parse::<f64>().expect("a number of clock ticks");
    (ticks(14) + ticks(15)) / 100.0
}

/// `wrk -t1 -c<connections> -d<seconds>s --latency -H "Authorization: Bearer <credential>"
/// http://<addr>/` (not started).
pub fn wrk_command(addr: SocketAddr, credential: &str, seconds: u32, connections: u32) -> Command {
    let mut cmd = Command::new("wrk");
    cmd.args([
        "-t1",
        &format!("-c{connections}"),
        &format!("-d{seconds}s"),
        "--latency",
        "-H",
        &format!("Authorization: Bearer {credential}"),
    ])
    .arg(format!("http://{addr}/"));
    cmd
}

/// `cmd` run on the CPUs `cpus` (`taskset -c`), or as it is when `cpus` is `None` (program and
/// arguments only: set stdio and the environment on the result).
pub fn pinned(cmd: &Command, cpus: Option<&str>) -> Command {
    match cpus {
        None => {
            let mut plain = Command::new(cmd.get_program());
            plain.args(cmd.get_args());
            plain
        }
        Some(cpus) => {
            let mut t = Command::new("taskset");
            t.args(["-c", cpus]).arg(cmd.get_program()).args(cmd.get_args());
            t
        }
    }
}

/// The figures of a finished wrk run.
///
/// # Panics
/// If wrk failed or saw any non-2xx answer (`label` names the run in the message).
pub fn wrk_sample(label: &str, out: &Output) -> Sample {
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && !text.contains("Non-2xx"),
        "{label}: wrk failed or saw non-2xx answers:\n{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    if let Some(errors) = text.lines().find(|l| l.contains("Socket errors")) {
        eprintln!("  {label}: wrk reported {}", errors.trim());
    }
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0);
    let pct = |p: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(p))
            .and_then(|l| l.split_whitespace().nth(1))
            .map_or(f64::NAN, micros)
    };
    let requests = text
        .lines()
        .find_map(|l| l.trim().split_once(" requests in "))
        .and_then(|(n, _)| n.trim().parse().ok())
        .unwrap_or(f64::NAN);
    Sample {
        rps,
        p50: pct("50%"),
        p99: pct("99%"),
        requests,
        server_cpu_s: f64::NAN,
    }
}

/// One wrk run of 16 connections, waited for.
///
/// # Panics
/// As [`wrk_sample`]; wrk is not installed.
pub fn wrk(label: &str, addr: SocketAddr, credential: &str, seconds: u32) -> Sample {
    let out = wrk_command(addr, credential, seconds, 16)
        .output()
        .expect("wrk is installed (the run scripts install it)");
    wrk_sample(label, &out)
}

/// wrk's latency figures in microseconds: `97.00us`, `3.08ms`, `1.20s`, `1.01m`.
pub fn micros(v: &str) -> f64 {
    let v = v.trim();
    let (num, scale) = if let Some(n) = v.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = v.strip_suffix("ms") {
        (n, 1e3)
    } else if let Some(n) = v.strip_suffix('m') {
        (n, 60e6)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1e6)
    } else {
        (v, f64::NAN)
    };
    num.parse::<f64>().map_or(f64::NAN, |n| n * scale)
}

/// The median (the mean of the middle two for an even count).
///
/// # Panics
/// If `v` is empty.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The smallest and largest value.
pub fn min_max(v: &[f64]) -> (f64, f64) {
    v.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
        (lo.min(x), hi.max(x))
    })
}

/// A latency in microseconds, as `171 µs` or `3.08 ms`.
pub fn latency(us: f64) -> String {
    if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.0} µs")
    }
}

/// Round `round` of an alternating schedule over `n` configurations: every configuration once,
/// starting one configuration later than the round before.
pub fn round_order(round: usize, n: usize) -> impl Iterator<Item = usize> {
    (0..n).map(move |k| (round + k) % n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_latencies_in_microseconds() {
        assert_eq!(micros("97.00us"), 97.0);
        assert_eq!(micros("3.08ms"), 3080.0);
        assert_eq!(micros("1.50s"), 1_500_000.0);
        assert!(micros("?").is_nan());
    }

    #[test]
    fn medians_and_rounds() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(min_max(&[2.0, 5.0, 1.0]), (1.0, 5.0));
        assert_eq!(round_order(0, 3).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(round_order(1, 3).collect::<Vec<_>>(), [1, 2, 0]);
        assert_eq!(round_order(4, 3).collect::<Vec<_>>(), [1, 2, 0]);
    }
}
