//! What the edge benches share (most run the real `venue-edge` daemon): a free
//! loopback port, the smoke-run switch, the embedded default config on free ports,
//! a process's resident memory, and its Prometheus metrics summed by line prefix.
//! Included by each bench with `#[path]` (a bench is its own crate).
#![allow(dead_code)] // each bench uses what it needs

use std::io::{Read as _, Write as _};

#[path = "../../../tests/support/free_port.rs"]
mod free_port;
pub use free_port::free_port;

/// `cargo bench` passes `--bench`; `cargo test --all-targets` runs the binary
/// without it, and then a small smoke run checks the bench still works.
pub fn smoke() -> bool {
    !std::env::args().any(|a| a == "--bench")
}

/// The embedded default configuration (`venue-edge default-config` of `bin`) with
/// zenoh on `zport`, metrics on `mport` and the spool in `spool`.
pub fn default_config(bin: &str, zport: u16, mport: u16, spool: &std::path::Path) -> String {
    let default = std::process::Command::new(bin)
        .arg("default-config")
        .output()
        .expect("default-config");
    String::from_utf8_lossy(&default.stdout)
        .replace("tcp/127.0.0.1:7447", &format!("tcp/127.0.0.1:{zport}"))
        .replace("127.0.0.1:9464", &format!("127.0.0.1:{mport}"))
        .replace(
            "dir = \".run/spool\"",
            &format!("dir = \"{}\"", spool.display()),
        )
}

/// Resident memory of process `pid`, KiB.
pub fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The daemon's `/metrics` text (empty while it is not listening).
pub fn metrics(port: u16) -> String {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = write!(s, "GET /metrics HTTP/1.0\r\n\r\n");
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body
}

/// The sum of every sample whose line starts with `prefix` and contains `contains`
/// ("" for all of them).
pub fn sum_of(text: &str, prefix: &str, contains: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix) && l.contains(contains))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
