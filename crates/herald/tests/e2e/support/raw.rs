//! Raw protocol sessions over TCP.

use super::*;

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
