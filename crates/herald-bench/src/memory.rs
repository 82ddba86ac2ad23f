//! `memory`: the server's resident memory per idle connection.

use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use serde::Serialize;

use crate::conn::{server_addr, Conn};
use crate::{CommonArgs, Report};

/// Receive buffer of each idle connection (they only ever read a PONG).
const IDLE_READ_SIZE: usize = 4096;

/// Options of `herald bench memory`.
#[derive(Debug, Clone, clap::Args)]
pub struct MemoryArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Idle connections to open and hold.
    #[arg(long, default_value_t = 1000)]
    pub conns: usize,
    /// Process id of the server, whose VmRSS is read from /proc/PID/status.
    #[arg(long)]
    pub pid: u32,
    /// Seconds to wait after the last connection before the final reading.
    #[arg(long, default_value_t = 1.0)]
    pub settle: f64,
}

/// Result of one `memory` run.
#[derive(Debug, Serialize)]
pub struct MemoryReport {
    pub workload: &'static str,
    pub server: String,
    pub conns: usize,
    pub pid: u32,
    pub rss_before_kib: u64,
    /// Right after the last connection answered its PING.
    pub rss_established_kib: u64,
    /// After the settle time.
    pub rss_settled_kib: u64,
    /// Settled minus before, in bytes (negative if the server shrank).
    pub rss_delta_bytes: i64,
    pub bytes_per_conn: f64,
    /// Time to open and handshake every connection.
    pub connect_secs: f64,
    pub error: Option<String>,
}

impl Report for MemoryReport {
    fn line(&self) -> String {
        let mut line = format!(
            "memory {} idle conns: RSS {} -> {} -> {} KiB, delta {:.1} MiB = {:.0} bytes/conn (connected in {:.2} s)",
            self.conns,
            self.rss_before_kib,
            self.rss_established_kib,
            self.rss_settled_kib,
            self.rss_delta_bytes as f64 / (1024.0 * 1024.0),
            self.bytes_per_conn,
            self.connect_secs
        );
        if let Some(err) = &self.error {
            line += &format!(" ERROR: {err}");
        }
        line
    }

    fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }
}

/// Runs the workload.
pub fn run(args: &MemoryArgs) -> anyhow::Result<MemoryReport> {
    if args.conns == 0 {
        bail!("--conns must be at least 1");
    }
    let addr = server_addr(&args.common.server)?;
    raise_fd_limit(args.conns as u64 + 64)?;
    let before = rss_kib(args.pid)?;
    let started = Instant::now();
    let mut conns = Vec::with_capacity(args.conns);
    let mut error = None;
    for i in 0..args.conns {
        match Conn::connect_with(&addr, IDLE_READ_SIZE) {
            Ok(conn) => conns.push(conn),
            Err(e) => {
                error = Some(format!("connection {} of {}: {e:#}", i + 1, args.conns));
                break;
            }
        }
    }
    let connect_secs = started.elapsed().as_secs_f64();
    let established = rss_kib(args.pid)?;
    std::thread::sleep(Duration::from_secs_f64(args.settle));
    let settled = rss_kib(args.pid)?;
    // Still open? A server that dropped them would have a smaller footprint.
    if error.is_none() {
        for conn in &mut conns {
            if let Err(e) = conn.flush_roundtrip() {
                error = Some(format!("an idle connection failed after settling: {e:#}"));
                break;
            }
        }
    }
    let delta = (settled as i64 - before as i64) * 1024;
    let opened = conns.len();
    drop(conns);
    Ok(MemoryReport {
        workload: "memory",
        server: args.common.server.clone(),
        conns: opened,
        pid: args.pid,
        rss_before_kib: before,
        rss_established_kib: established,
        rss_settled_kib: settled,
        rss_delta_bytes: delta,
        bytes_per_conn: if opened > 0 {
            delta as f64 / opened as f64
        } else {
            0.0
        },
        connect_secs,
        error,
    })
}

/// VmRSS of `pid`, in KiB.
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    parse_vm_rss(&status).with_context(|| format!("no VmRSS line in {path}"))
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    line.trim().strip_suffix("kB")?.trim().parse().ok()
}

/// Raises the soft RLIMIT_NOFILE to the hard limit when `wanted` exceeds it.
fn raise_fd_limit(wanted: u64) -> anyhow::Result<()> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error()).context("getrlimit(RLIMIT_NOFILE)");
    }
    if limit.rlim_cur >= wanted {
        return Ok(());
    }
    if limit.rlim_max < wanted {
        bail!(
            "{wanted} file descriptors needed but the hard limit is {}; raise it (ulimit -Hn) or use fewer --conns",
            limit.rlim_max
        );
    }
    limit.rlim_cur = limit.rlim_max;
    // SAFETY: setrlimit only reads the struct we pass.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return Err(std::io::Error::last_os_error()).context("setrlimit(RLIMIT_NOFILE)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rss() {
        let status = "Name:\tnats-server\nVmPeak:\t 1000 kB\nVmRSS:\t   12345 kB\nThreads: 4\n";
        assert_eq!(parse_vm_rss(status), Some(12345));
        assert_eq!(parse_vm_rss("Name: x\n"), None);
    }

    #[test]
    fn own_rss_is_readable() {
        assert!(rss_kib(std::process::id()).unwrap() > 0);
    }
}
