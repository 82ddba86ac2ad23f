//! Helpers shared by every end-to-end test: a running `herald serve` child
//! process, raw protocol sessions, a minimal HTTP GET, and bounded waits for
//! `async-nats` clients.

#![allow(dead_code)] // Not every test module uses every helper.

mod http;
mod nats;
mod raw;

pub use http::*;
pub use nats::*;
pub use raw::*;

use std::collections::BTreeMap;
use std::fs::File;
use std::future::Future;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_nats::{Client, Message, Subscriber};
use futures_util::{FutureExt as _, StreamExt as _};

/// The binary under test.
pub const HERALD: &str = env!("CARGO_BIN_EXE_herald");
/// The version the binary prints in its banner.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Upper bound for any single wait: generous for a loaded 2-core debug
/// build, short enough that a hang fails the test quickly.
pub const WAIT: Duration = Duration::from_secs(10);
/// How long the binary may take to print its two address lines.
pub const STARTUP_WAIT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------
// Temporary directories
// ---------------------------------------------------------------------------

/// A uniquely named directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "herald-e2e-{tag}-{}-{}-{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------------------
// The server process
// ---------------------------------------------------------------------------

/// A running `herald serve`, killed (and its directory removed) on drop.
pub struct TestServer {
    child: Child,
    /// Where NATS clients connect.
    pub client_addr: SocketAddr,
    /// Where the HTTP monitoring endpoints are.
    pub http_addr: SocketAddr,
    /// The two lines the binary printed on stdout.
    pub banner: [String; 2],
    /// Further stdout lines (there should be none).
    stdout_rest: mpsc::Receiver<String>,
    stderr_path: PathBuf,
    dir: TempDir,
}

impl TestServer {
    /// `herald serve` on 127.0.0.1 with free ports and default limits.
    pub fn start() -> TestServer {
        TestServer::start_with(&[])
    }

    /// Like [`TestServer::start`] with extra flags. Flags given here replace
    /// the defaults of the same name (`--host`, `--port`, `--http-port`,
    /// `--data-dir`, `--log-level`).
    pub fn start_with(extra: &[&str]) -> TestServer {
        let dir = TempDir::new("server");
        let data_dir = dir.path().join("data").display().to_string();
        let mut args = vec!["serve".to_string()];
        let defaults = [
            ("--host", "127.0.0.1"),
            ("--port", "0"),
            ("--http-port", "0"),
            ("--data-dir", data_dir.as_str()),
            ("--log-level", "warn"),
        ];
        for (flag, value) in defaults {
            if !extra.contains(&flag) {
                args.push(flag.to_string());
                args.push(value.to_string());
            }
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        TestServer::spawn(&args, dir).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Runs `herald <args>` exactly as given and waits for the two address
    /// lines. `dir` receives the stderr log and is removed with the server.
    pub fn spawn(args: &[String], dir: TempDir) -> Result<TestServer, String> {
        let stderr_path = dir.path().join("stderr.log");
        let stderr = File::create(&stderr_path).map_err(|e| format!("cannot create stderr log: {e}"))?;
        let mut child = Command::new(HERALD)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .map_err(|e| format!("cannot start {HERALD}: {e}"))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + STARTUP_WAIT;
        let mut lines = Vec::new();
        while lines.len() < 2 {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => lines.push(line),
                Err(e) => {
                    let _ = child.kill();
                    let status = child.wait().ok();
                    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
                    return Err(format!(
                        "herald {args:?} did not print its addresses ({e:?}); stdout so far: {lines:?}; \
                         exit: {status:?}; stderr:\n{stderr}"
                    ));
                }
            }
        }
        let banner = [lines[0].clone(), lines[1].clone()];
        let client_prefix = format!("herald {VERSION} listening for clients on nats://");
        let http_prefix = "herald HTTP API and monitoring on http://";
        let parse = |line: &str, prefix: &str| -> Result<SocketAddr, String> {
            line.strip_prefix(prefix)
                .and_then(|addr| addr.parse().ok())
                .ok_or_else(|| format!("unexpected banner line {line:?} (expected {prefix:?}<ip>:<port>)"))
        };
        let client_addr = parse(&banner[0], &client_prefix);
        let http_addr = parse(&banner[1], http_prefix);
        let (client_addr, http_addr) = match (client_addr, http_addr) {
            (Ok(c), Ok(h)) => (c, h),
            (Err(e), _) | (_, Err(e)) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(e);
            }
        };
        Ok(TestServer {
            child,
            client_addr,
            http_addr,
            banner,
            stdout_rest: rx,
            stderr_path,
            dir,
        })
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://{}", self.client_addr)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Everything the server logged so far (for failure messages).
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// A raw protocol connection that has read the server's `INFO`.
    pub fn raw(&self) -> RawConn {
        RawConn::connect(self.client_addr)
    }

    /// A raw connection that has sent `CONNECT {json}` and seen it accepted.
    pub fn raw_connected(&self, connect_json: &str) -> RawConn {
        let mut conn = self.raw();
        conn.handshake(connect_json);
        conn
    }

    pub fn http_get(&self, path: &str) -> HttpResponse {
        http_get(self.http_addr, path)
    }

    /// `/varz` parsed as JSON.
    pub fn varz(&self) -> serde_json::Value {
        let response = self.http_get("/varz");
        assert_eq!(response.status, 200, "/varz: {response:?}");
        serde_json::from_str(&response.body)
            .unwrap_or_else(|e| panic!("/varz is not JSON ({e}): {}", response.body))
    }

    /// One numeric field of `/varz`.
    pub fn varz_u64(&self, field: &str) -> u64 {
        let varz = self.varz();
        varz[field]
            .as_u64()
            .unwrap_or_else(|| panic!("/varz field {field:?} is not a number: {varz}"))
    }

    /// `/metrics` parsed into `name{labels}` → value.
    pub fn metrics(&self) -> Metrics {
        let response = self.http_get("/metrics");
        assert_eq!(response.status, 200, "/metrics: {response:?}");
        Metrics::parse(&response.body)
    }

    /// Sends a signal with the `kill` command (no libc dependency needed).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args(["-s", name, &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -s {name} failed: {status}");
    }

    /// Waits for the process to exit, up to `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        wait_child(&mut self.child, timeout)
    }

    /// Stdout lines printed after the banner (call after the process exited
    /// to get all of them).
    pub fn stdout_after_banner(&self) -> Vec<String> {
        let mut lines = Vec::new();
        while let Ok(line) = self.stdout_rest.recv_timeout(Duration::from_millis(200)) {
            lines.push(line);
        }
        lines
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits for `child` to exit, up to `timeout`; `None` if it is still running.
pub fn wait_child(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() >= deadline => return None,
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("waiting for child: {e}"),
        }
    }
}

/// Result of running `herald` to completion.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `herald <args>` that is expected to exit by itself; kills it and
/// fails if it is still running after [`WAIT`].
pub fn run_herald(args: &[&str]) -> Finished {
    let dir = TempDir::new("run");
    let out_path = dir.path().join("stdout");
    let err_path = dir.path().join("stderr");
    let mut child = Command::new(HERALD)
        .args(args)
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).unwrap())
        .stderr(File::create(&err_path).unwrap())
        .spawn()
        .expect("start herald");
    let status = wait_child(&mut child, WAIT);
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("herald {args:?} was still running after {WAIT:?}; stdout: {stdout}\nstderr: {stderr}");
    };
    Finished {
        status,
        stdout,
        stderr,
    }
}

// ---------------------------------------------------------------------------
// Bounded waits
// ---------------------------------------------------------------------------

/// Polls `condition` until it holds, failing after [`WAIT`]. For counters
/// and gauges the server updates just after the protocol reply that the
/// test can observe (monitoring is eventually consistent).
pub fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    loop {
        if condition() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {WAIT:?} waiting for: {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Awaits `future` for at most `limit`, failing the test with `what`.
pub async fn within<T>(limit: Duration, what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(limit, future).await {
        Ok(value) => value,
        Err(_) => panic!("timed out after {limit:?}: {what}"),
    }
}
