//! The server under test: `herald serve`, or the reference `nats-server`
//! (with JetStream) when `HERALD_TEST_NATS_SERVER` names its binary.
//!
//! Each [`JsServer`] has its own temporary data directory (removed on drop)
//! and can be stopped gracefully ([`JsServer::stop`]) or killed with SIGKILL
//! ([`JsServer::kill_9`]) and then started again on the same port and data
//! directory ([`JsServer::restart`]).

#![allow(dead_code)] // Not every test uses every method.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long a server may take to become ready (a loaded 2-core machine
/// running a debug build, or a store being recovered after SIGKILL).
const STARTUP_WAIT: Duration = Duration::from_secs(30);

/// Which binary runs.
#[derive(Debug, Clone)]
enum Flavor {
    /// `nats-server -js`, the oracle for these tests.
    Nats(PathBuf),
    /// `herald serve`, the binary under test.
    Herald,
}

fn flavor() -> Flavor {
    match std::env::var_os("HERALD_TEST_NATS_SERVER") {
        Some(path) if !path.is_empty() => Flavor::Nats(path.into()),
        _ => Flavor::Herald,
    }
}

/// True when the suite runs against the reference nats-server.
pub fn is_nats_server() -> bool {
    matches!(flavor(), Flavor::Nats(_))
}

/// A running server process, killed (and its directory removed) on drop.
pub struct JsServer {
    flavor: Flavor,
    child: Option<Child>,
    /// Client port; 0 until the first start chose one.
    port: u16,
    /// Herald's HTTP monitoring port (changes with every start; 0 for nats-server).
    http_port: u16,
    /// Temporary root: `data/` plus one log file per start.
    dir: PathBuf,
    starts: u32,
    /// More `herald serve` options (ignored for nats-server).
    herald_args: Vec<String>,
}

impl JsServer {
    /// Starts a server on a free loopback port with an empty data directory.
    pub fn start() -> JsServer {
        Self::start_with(&[])
    }

    /// Starts a server like [`JsServer::start`], Herald with more `serve` options.
    pub fn start_with(herald_args: &[&str]) -> JsServer {
        let dir = temp_dir();
        let mut server = JsServer {
            flavor: flavor(),
            child: None,
            port: 0,
            http_port: 0,
            dir,
            starts: 0,
            herald_args: herald_args.iter().map(|s| s.to_string()).collect(),
        };
        server.spawn();
        server
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Herald's monitoring endpoint, `http://127.0.0.1:<port>` (herald only).
    pub fn http_url(&self) -> String {
        assert!(self.http_port != 0, "monitoring is a herald endpoint");
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// The directory the server keeps its durable state in.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Kills the process with SIGKILL (a crash: nothing is flushed) and
    /// waits for it to be gone.
    pub fn kill_9(&mut self) {
        let mut child = self.child.take().expect("kill_9: the server is not running");
        let _ = child.kill(); // Child::kill sends SIGKILL on Unix.
        let _ = child.wait();
    }

    /// Stops the process gracefully (SIGTERM) and waits for it to exit.
    pub fn stop(&mut self) {
        let mut child = self.child.take().expect("stop: the server is not running");
        let status = Command::new("kill")
            .args(["-s", "TERM", &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -s TERM failed: {status}");
        let deadline = Instant::now() + STARTUP_WAIT;
        loop {
            match child.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "the server did not exit within {STARTUP_WAIT:?} of SIGTERM; log:\n{}",
                        self.log()
                    );
                }
            }
        }
    }

    /// Starts the server again on the same port and data directory. Stops
    /// it gracefully first if it is still running.
    pub fn restart(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
        self.spawn();
    }

    /// Everything every run of the server logged so far.
    pub fn log(&self) -> String {
        let mut out = String::new();
        for start in 1..=self.starts {
            let path = self.log_path(start);
            out.push_str(&format!("---- {} ----\n", path.display()));
            out.push_str(&std::fs::read_to_string(&path).unwrap_or_default());
        }
        out
    }

    fn log_path(&self, start: u32) -> PathBuf {
        self.dir.join(format!("server-{start}.log"))
    }

    fn spawn(&mut self) {
        self.starts += 1;
        let log_path = self.log_path(self.starts);
        let log = std::fs::File::create(&log_path).expect("create server log");
        let data_dir = self.data_dir();
        match self.flavor.clone() {
            Flavor::Nats(binary) => {
                // -p -1: nats-server picks a free port itself (no race with
                // other tests); restarts reuse the port it chose.
                let port = if self.port == 0 {
                    "-1".to_string()
                } else {
                    self.port.to_string()
                };
                let child = Command::new(&binary)
                    .args(["-a", "127.0.0.1", "-p", &port, "-js", "-sd"])
                    .arg(&data_dir)
                    .stdin(Stdio::null())
                    .stdout(log.try_clone().expect("clone log"))
                    .stderr(log)
                    .spawn()
                    .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
                self.child = Some(child);
                self.port = self.wait_nats_ready(&log_path);
            }
            Flavor::Herald => {
                let binary = env!("CARGO_BIN_EXE_herald");
                let mut child = Command::new(binary)
                    .args(["serve", "--host", "127.0.0.1", "--port", &self.port.to_string()])
                    .args(["--http-port", "0", "--log-level", "warn", "--data-dir"])
                    .arg(&data_dir)
                    .args(&self.herald_args)
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(log)
                    .spawn()
                    .unwrap_or_else(|e| panic!("cannot start {binary}: {e}"));
                let stdout = child.stdout.take().expect("piped stdout");
                self.child = Some(child);
                let (tx, rx) = mpsc::channel();
                // Keeps draining stdout for the life of the process.
                std::thread::spawn(move || {
                    for line in BufReader::new(stdout).lines() {
                        let Ok(line) = line else { break };
                        let _ = tx.send(line);
                    }
                });
                self.port = self.wait_herald_ready(&rx);
            }
        }
    }

    /// Waits for nats-server's "Server is ready" and returns its client port.
    fn wait_nats_ready(&mut self, log_path: &PathBuf) -> u16 {
        const LISTENING: &str = "Listening for client connections on ";
        let deadline = Instant::now() + STARTUP_WAIT;
        loop {
            let log = std::fs::read_to_string(log_path).unwrap_or_default();
            if log.contains("Server is ready") {
                let addr = log
                    .lines()
                    .find_map(|line| {
                        line.split_once(LISTENING)
                            .map(|(_, addr)| addr.trim().to_string())
                    })
                    .unwrap_or_else(|| panic!("nats-server log has no {LISTENING:?} line:\n{log}"));
                let addr: SocketAddr = addr
                    .parse()
                    .unwrap_or_else(|e| panic!("cannot parse nats-server address {addr:?}: {e}"));
                return addr.port();
            }
            self.fail_if_exited_or_late(deadline);
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for herald's `... listening for clients on nats://ADDR` line.
    fn wait_herald_ready(&mut self, rx: &mpsc::Receiver<String>) -> u16 {
        const LISTENING: &str = " listening for clients on nats://";
        let deadline = Instant::now() + STARTUP_WAIT;
        loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(line) => {
                    if let Some((_, addr)) = line.split_once(LISTENING) {
                        let addr: SocketAddr = addr
                            .trim()
                            .parse()
                            .unwrap_or_else(|e| panic!("cannot parse herald address in {line:?}: {e}"));
                        // The monitoring line follows at once.
                        if let Ok(next) = rx.recv_timeout(STARTUP_WAIT) {
                            if let Some((_, http)) = next.split_once("monitoring on http://") {
                                if let Ok(http) = http.trim().parse::<SocketAddr>() {
                                    self.http_port = http.port();
                                }
                            }
                        }
                        return addr.port();
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => std::thread::sleep(Duration::from_millis(10)),
            }
            self.fail_if_exited_or_late(deadline);
        }
    }

    fn fail_if_exited_or_late(&mut self, deadline: Instant) {
        let child = self.child.as_mut().expect("server process");
        if let Ok(Some(status)) = child.try_wait() {
            self.child = None;
            panic!(
                "the server exited during startup ({status}); log:\n{}",
                self.log()
            );
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            self.child = None;
            panic!(
                "the server was not ready within {STARTUP_WAIT:?}; log:\n{}",
                self.log()
            );
        }
    }
}

impl Drop for JsServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn temp_dir() -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "herald-jetstream-{}-{}-{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}
