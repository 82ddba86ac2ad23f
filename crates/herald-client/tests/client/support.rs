//! Starting a server process for the tests.
//!
//! The binary, in order of preference:
//! - `HERALD_TEST_SERVER`: a `herald` binary, run as `herald serve --host
//!   127.0.0.1 --port <p> --http-port 0 --data-dir <tmp> --log-level warn`;
//! - `HERALD_TEST_NATS_SERVER`: a reference nats-server, run as
//!   `nats-server -a 127.0.0.1 -p <p> -js -sd <tmp>` (JetStream on, for the
//!   JetStream tests; `.ci/run` runs the suite once more this way, so the
//!   SDK is also checked against the reference server);
//! - otherwise the workspace's own `herald`, next to this test executable
//!   (`cargo test --workspace` builds it before running any test).
//!
//! Without any of them the tests fail with instructions: a test that cannot
//! find a server must not pass.

use std::future::Future;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Upper bound of any single wait.
pub const WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
enum Binary {
    Herald(PathBuf),
    Nats(PathBuf),
}

fn binary() -> Binary {
    if let Some(path) = std::env::var_os("HERALD_TEST_SERVER") {
        return Binary::Herald(path.into());
    }
    if let Some(path) = std::env::var_os("HERALD_TEST_NATS_SERVER") {
        return Binary::Nats(path.into());
    }
    // target/<profile>/deps/client-<hash> -> target/<profile>/herald
    let exe = std::env::current_exe().expect("test executable path");
    let herald = exe
        .parent()
        .and_then(Path::parent)
        .map(|dir| dir.join("herald"))
        .filter(|path| path.exists());
    match herald {
        Some(path) => Binary::Herald(path),
        None => panic!(
            "no server binary for the SDK tests: run `cargo test --workspace` (it builds \
             target/<profile>/herald first), `cargo build -p herald`, or set HERALD_TEST_SERVER \
             to a herald binary or HERALD_TEST_NATS_SERVER to a nats-server"
        ),
    }
}

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind loopback")
        .port()
}

/// A server process on `127.0.0.1:<port>`, killed on drop.
pub struct TestServer {
    binary: Binary,
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl TestServer {
    /// Starts a server on a free port.
    pub fn start() -> TestServer {
        TestServer::spawn(binary(), free_port(), temp_dir())
    }

    fn spawn(binary: Binary, port: u16, dir: PathBuf) -> TestServer {
        let log = std::fs::File::create(dir.join("server.log")).expect("server log");
        let mut command = match &binary {
            Binary::Herald(path) => {
                let mut c = Command::new(path);
                c.args(["serve", "--host", "127.0.0.1", "--port", &port.to_string()])
                    .args(["--http-port", "0", "--log-level", "warn", "--data-dir"])
                    .arg(dir.join("data"));
                c
            }
            Binary::Nats(path) => {
                let mut c = Command::new(path);
                c.args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
                    .arg(dir.join("data"));
                c
            }
        };
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {binary:?}: {e}"));
        let server = TestServer {
            binary,
            child,
            port,
            dir,
        };
        server.wait_ready();
        server
    }

    /// Waits until the server sends `INFO` on a fresh connection.
    fn wait_ready(&self) {
        let deadline = Instant::now() + WAIT * 2;
        while Instant::now() < deadline {
            if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
                let mut first = [0u8; 4];
                if stream.read_exact(&mut first).is_ok() && &first == b"INFO" {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "{:?} not ready on port {}:\n{}",
            self.binary,
            self.port,
            self.log()
        );
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Stops the server (as a crash would), returning what restarts it on
    /// the same port.
    pub fn kill(mut self) -> Stopped {
        let _ = self.child.kill();
        let _ = self.child.wait();
        Stopped {
            binary: self.binary.clone(),
            port: self.port,
            dir: std::mem::take(&mut self.dir),
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !self.dir.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A killed server that can be started again on its port.
pub struct Stopped {
    binary: Binary,
    port: u16,
    dir: PathBuf,
}

impl Stopped {
    pub fn restart(self) -> TestServer {
        TestServer::spawn(self.binary, self.port, self.dir)
    }
}

fn temp_dir() -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "herald-client-test-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    debug_assert!(Path::new(&dir).is_dir());
    dir
}

/// Awaits `future` for at most [`WAIT`].
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, future)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// Starts a server for one test.
macro_rules! server {
    () => {
        $crate::support::TestServer::start()
    };
}
pub(crate) use server;
