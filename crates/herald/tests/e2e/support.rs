//! Helpers shared by every end-to-end test: a running `herald serve` child
//! process, raw protocol sessions, a minimal HTTP GET, and bounded waits for
//! `async-nats` clients.

#![allow(dead_code)] // Not every test module uses every helper.

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
        let http_prefix = "herald monitoring on http://";
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
// Raw protocol sessions
// ---------------------------------------------------------------------------

/// Why a raw read stopped before finding what it looked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    Closed,
    TimedOut,
}

/// A plain TCP connection speaking the client protocol by hand.
pub struct RawConn {
    stream: TcpStream,
    /// Received and not yet consumed.
    buf: Vec<u8>,
    /// The `INFO` JSON, when it was read.
    pub info: serde_json::Value,
}

impl RawConn {
    /// Connects and reads the `INFO` line.
    pub fn connect(addr: SocketAddr) -> RawConn {
        let mut conn = RawConn::connect_bare(addr);
        let line = conn.read_until(b"\r\n");
        let text = String::from_utf8_lossy(&line).into_owned();
        let json = text
            .strip_prefix("INFO ")
            .unwrap_or_else(|| panic!("expected INFO as the first line, got {text:?}"));
        conn.info = serde_json::from_str(json.trim_end())
            .unwrap_or_else(|e| panic!("INFO is not JSON ({e}): {text}"));
        conn
    }

    /// Connects without reading anything.
    pub fn connect_bare(addr: SocketAddr) -> RawConn {
        let stream =
            TcpStream::connect_timeout(&addr, WAIT).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        stream.set_nodelay(true).ok();
        RawConn {
            stream,
            buf: Vec::new(),
            info: serde_json::Value::Null,
        }
    }

    /// Sends `CONNECT {json}` and checks with a `PING` that it was accepted
    /// silently (the JSON should not ask for `verbose`).
    pub fn handshake(&mut self, connect_json: &str) {
        self.send(format!("CONNECT {connect_json}\r\n"));
        let before = self.ping();
        assert_eq!(before, "", "unexpected reply to CONNECT {connect_json}");
    }

    pub fn send(&mut self, bytes: impl AsRef<[u8]>) {
        self.stream
            .write_all(bytes.as_ref())
            .unwrap_or_else(|e| panic!("raw send failed: {e}"));
    }

    /// Like [`RawConn::send`] but reports failure (the server may have closed).
    pub fn try_send(&mut self, bytes: impl AsRef<[u8]>) -> io::Result<()> {
        self.stream.write_all(bytes.as_ref())
    }

    /// Closes our sending side; the server sees end of input.
    pub fn shutdown_write(&self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    /// Reads once into the buffer, waiting at most until `deadline`.
    fn fill(&mut self, deadline: Instant) -> Result<usize, Stop> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Stop::TimedOut);
        }
        self.stream
            .set_read_timeout(Some(left))
            .expect("set_read_timeout");
        let mut chunk = [0u8; 64 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) => Err(Stop::Closed),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(n)
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                Err(Stop::TimedOut)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
            // A reset is the peer closing too (it had unread input from us).
            Err(_) => Err(Stop::Closed),
        }
    }

    /// Reads until `pattern` and returns everything up to and including it.
    pub fn try_read_until(&mut self, pattern: &[u8], timeout: Duration) -> Result<Vec<u8>, (Stop, Vec<u8>)> {
        let deadline = Instant::now() + timeout;
        let mut searched = 0;
        loop {
            if let Some(at) = find(&self.buf[searched..], pattern) {
                let end = searched + at + pattern.len();
                return Ok(self.buf.drain(..end).collect());
            }
            searched = self.buf.len().saturating_sub(pattern.len().saturating_sub(1));
            if let Err(stop) = self.fill(deadline) {
                return Err((stop, self.buf.clone()));
            }
        }
    }

    /// Reads until `pattern`, failing the test on timeout or close.
    pub fn read_until(&mut self, pattern: &[u8]) -> Vec<u8> {
        self.try_read_until(pattern, WAIT).unwrap_or_else(|(stop, got)| {
            panic!(
                "waiting for {:?}: {stop:?}; received {:?}",
                String::from_utf8_lossy(pattern),
                String::from_utf8_lossy(&got)
            )
        })
    }

    /// Reads exactly `n` more bytes.
    pub fn read_exact(&mut self, n: usize) -> Vec<u8> {
        let deadline = Instant::now() + WAIT;
        while self.buf.len() < n {
            if let Err(stop) = self.fill(deadline) {
                panic!(
                    "waiting for {n} bytes: {stop:?}; received {:?}",
                    String::from_utf8_lossy(&self.buf)
                );
            }
        }
        self.buf.drain(..n).collect()
    }

    /// Sends `PING` and returns (as text) everything received before the
    /// `PONG`. Because the server handles one connection's operations in
    /// order, this is a barrier for everything sent before.
    pub fn ping(&mut self) -> String {
        self.send("PING\r\n");
        let got = self.read_until(b"PONG\r\n");
        String::from_utf8_lossy(&got[..got.len() - 6]).into_owned()
    }

    /// Reads until the server closes the connection; returns everything
    /// received. Fails the test if it is still open after `timeout`.
    pub fn read_to_close(&mut self, timeout: Duration) -> Vec<u8> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.fill(deadline) {
                Ok(_) => {}
                Err(Stop::Closed) => return std::mem::take(&mut self.buf),
                Err(Stop::TimedOut) => {
                    let tail = &self.buf[self.buf.len().saturating_sub(512)..];
                    panic!(
                        "connection still open after {timeout:?}; last bytes received: {:?}",
                        String::from_utf8_lossy(tail)
                    )
                }
            }
        }
    }

    /// Like [`RawConn::read_to_close`] but returns the text and discards
    /// nothing.
    pub fn read_to_close_text(&mut self, timeout: Duration) -> String {
        String::from_utf8_lossy(&self.read_to_close(timeout)).into_owned()
    }

    /// Whether the server has closed the connection, checked without waiting
    /// longer than `timeout` (data received meanwhile is kept).
    pub fn is_closed_within(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            match self.fill(deadline) {
                Ok(_) => {}
                Err(Stop::Closed) => return true,
                Err(Stop::TimedOut) => return false,
            }
        }
    }

    /// Bytes received and not yet consumed.
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.stream.local_addr().expect("local_addr")
    }
}

/// Position of `needle` in `haystack`.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Number of non-overlapping occurrences of `needle`.
pub fn count(haystack: &[u8], needle: &[u8]) -> usize {
    let mut n = 0;
    let mut rest = haystack;
    while let Some(at) = find(rest, needle) {
        n += 1;
        rest = &rest[at + needle.len()..];
    }
    n
}

// ---------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------

#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `GET path` over a fresh connection with `Connection: close`.
pub fn http_get(addr: SocketAddr, path: &str) -> HttpResponse {
    let mut stream =
        TcpStream::connect_timeout(&addr, WAIT).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.set_write_timeout(Some(WAIT)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAccept: */*\r\n\r\n"
    )
    .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .unwrap_or_else(|e| panic!("GET {path}: reading the response: {e}"));
    let split = find(&raw, b"\r\n\r\n").unwrap_or_else(|| {
        panic!(
            "GET {path}: no header terminator in {:?}",
            String::from_utf8_lossy(&raw)
        )
    });
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("GET {path}: bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    HttpResponse {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = find(data, b"\r\n") {
        let size_text = String::from_utf8_lossy(&data[..eol]);
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let Ok(size) = usize::from_str_radix(size_text, 16) else {
            break;
        };
        data = &data[eol + 2..];
        if size == 0 || data.len() < size {
            break;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[(size + 2).min(data.len())..];
    }
    out
}

/// Prometheus text exposition, as `name{labels}` → value.
#[derive(Debug, Clone)]
pub struct Metrics(pub BTreeMap<String, f64>);

impl Metrics {
    pub fn parse(text: &str) -> Metrics {
        let mut map = BTreeMap::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (name, value) = line
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("malformed metrics line {line:?}"));
            let value: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("malformed metric value in {line:?}"));
            map.insert(name.to_string(), value);
        }
        Metrics(map)
    }

    /// The value of one series; fails the test if it is absent.
    pub fn get(&self, series: &str) -> f64 {
        *self.0.get(series).unwrap_or_else(|| {
            panic!(
                "metric {series} missing; have: {:?}",
                self.0.keys().collect::<Vec<_>>()
            )
        })
    }

    /// Sum of every series of a metric name, whatever its labels.
    pub fn sum(&self, name: &str) -> f64 {
        self.0
            .iter()
            .filter(|(k, _)| *k == name || k.starts_with(&format!("{name}{{")))
            .map(|(_, v)| v)
            .sum()
    }

    pub fn has(&self, series: &str) -> bool {
        self.0.contains_key(series)
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

// ---------------------------------------------------------------------------
// async-nats helpers
// ---------------------------------------------------------------------------

/// Connects an `async-nats` client with default options.
pub async fn connect(url: &str) -> Client {
    connect_with(async_nats::ConnectOptions::new(), url).await
}

/// Connects an `async-nats` client with `options`.
pub async fn connect_with(options: async_nats::ConnectOptions, url: &str) -> Client {
    within(WAIT, "async-nats connect", options.connect(url))
        .await
        .unwrap_or_else(|e| panic!("async-nats cannot connect to {url}: {e}"))
}

/// A round trip through the server for `client`: it publishes to a fresh
/// inbox it subscribes to and waits for the message. When this returns,
/// the server has handled everything the client sent before, and the
/// client has dispatched everything the server had queued for it before.
/// (`Client::flush` only writes the client's buffer; it is no round trip.)
/// Needs echo, the default.
pub async fn sync(client: &Client) {
    let inbox = client.new_inbox();
    let mut sub = client.subscribe(inbox.clone()).await.expect("sync subscribe");
    client.publish(inbox, "sync".into()).await.expect("sync publish");
    client.flush().await.expect("sync flush");
    let got = within(WAIT, "sync round trip through the server", sub.next()).await;
    assert!(got.is_some(), "sync subscription ended");
    sub.unsubscribe().await.expect("sync unsubscribe");
}

/// Subscribes and waits until the server has registered the subscription.
pub async fn subscribe(client: &Client, subject: &str) -> Subscriber {
    let sub = client.subscribe(subject.to_string()).await.expect("subscribe");
    sync(client).await;
    sub
}

/// Queue-subscribes and waits until the server has registered it.
pub async fn queue_subscribe(client: &Client, subject: &str, queue: &str) -> Subscriber {
    let sub = client
        .queue_subscribe(subject.to_string(), queue.to_string())
        .await
        .expect("queue_subscribe");
    sync(client).await;
    sub
}

/// The next message, failing on timeout or end of stream.
pub async fn next(sub: &mut Subscriber) -> Message {
    within(WAIT, "next message", sub.next())
        .await
        .expect("subscription ended while a message was expected")
}

/// Exactly the next `n` messages (within an overall bound).
pub async fn next_n(sub: &mut Subscriber, n: usize) -> Vec<Message> {
    let limit = WAIT * 3;
    let mut out = Vec::with_capacity(n);
    let collect = async {
        while out.len() < n {
            match sub.next().await {
                Some(m) => out.push(m),
                None => break,
            }
        }
    };
    if tokio::time::timeout(limit, collect).await.is_err() {
        panic!("received {} of {n} messages within {limit:?}", out.len());
    }
    assert_eq!(
        out.len(),
        n,
        "subscription ended after {} of {n} messages",
        out.len()
    );
    out
}

/// Messages already dispatched to `sub`, without waiting. After [`sync`] of
/// the subscribing client this is everything the server delivered so far.
pub fn ready(sub: &mut Subscriber) -> Vec<Message> {
    let mut out = Vec::new();
    // `unconstrained`: tokio's cooperative budget would otherwise report an
    // empty channel after ~128 polls in one task, whatever it holds.
    while let Some(Some(m)) = tokio::task::unconstrained(sub.next()).now_or_never() {
        out.push(m);
    }
    out
}

/// Waits for the subscription stream to end; fails if a message arrives
/// instead or it does not end in time.
pub async fn expect_end(sub: &mut Subscriber) {
    if let Some(m) = within(WAIT, "end of the subscription stream", sub.next()).await {
        panic!(
            "expected the subscription to end, got a message on {}: {:?}",
            m.subject, m.payload
        );
    }
}

/// A new client on `url` can subscribe, publish and receive.
pub async fn assert_pubsub_works(url: &str) {
    let client = connect(url).await;
    let subject = format!("health.{}", client.new_inbox().replace('.', "_"));
    let mut sub = subscribe(&client, &subject).await;
    client
        .publish(subject.clone(), "alive".into())
        .await
        .expect("publish");
    client.flush().await.expect("flush");
    let m = next(&mut sub).await;
    assert_eq!(&m.payload[..], b"alive");
}

/// [`assert_pubsub_works`] for synchronous tests.
pub fn assert_pubsub_works_blocking(url: &str) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(assert_pubsub_works(url));
}

/// Deterministic xorshift64* generator (no dependency needed).
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> XorShift {
        XorShift(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-ish in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            *b = self.next_u64() as u8;
        }
    }
}
