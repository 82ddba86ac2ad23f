//! A raw, blocking client connection: handshake, reads through the
//! [`Scanner`], automatic `PONG`s and `-ERR` reporting.

use std::io::{self, Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use crate::scan::{Frame, Msg, Scanner};

/// Bytes asked for per `read` call.
pub const READ_SIZE: usize = 256 * 1024;

/// Sent right after the server's `INFO`.
pub const CONNECT: &[u8] = b"CONNECT {\"verbose\":false,\"pedantic\":false,\"headers\":true,\
\"no_responders\":true,\"protocol\":1,\"echo\":true,\"name\":\"herald-bench\"}\r\n";

/// How long the handshake and subscription flushes may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Turns `nats://host:port`, `host:port` or `host` into `host:port`
/// (port 4222 when none is given, as NATS URLs do).
pub fn server_addr(url: &str) -> anyhow::Result<String> {
    let rest = url.strip_prefix("nats://").unwrap_or(url);
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() || rest.contains('/') || rest.contains('@') {
        bail!("unsupported server address {url:?}; expected nats://host:port or host:port");
    }
    let has_port = match rest.rsplit_once(':') {
        Some((host, port)) => !host.ends_with(':') && port.parse::<u16>().is_ok(),
        None => false,
    };
    Ok(if has_port {
        rest.to_owned()
    } else {
        format!("{rest}:4222")
    })
}

/// What one [`Conn::read_some`] saw besides messages.
#[derive(Debug, Default, Clone, Copy)]
pub struct ReadStatus {
    /// Messages handed to the callback.
    pub msgs: usize,
    /// `PONG`s received.
    pub pongs: usize,
    /// `PING`s received (already answered unless `answer_pings` is off).
    pub pings: usize,
    /// The read timed out without data.
    pub timed_out: bool,
}

/// One client connection.
pub struct Conn {
    stream: TcpStream,
    scanner: Scanner,
    /// Whether `read_some` writes a `PONG` for each `PING` itself.
    answer_pings: bool,
    /// Every `-ERR` received, in order.
    errors: Vec<String>,
}

impl Conn {
    /// Connects, reads `INFO`, sends `CONNECT` and `PING`, waits for `PONG`.
    pub fn connect(addr: &str) -> anyhow::Result<Self> {
        Self::connect_with(addr, READ_SIZE)
    }

    /// [`Conn::connect`] with a chosen receive buffer size.
    pub fn connect_with(addr: &str, read_size: usize) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(addr).with_context(|| format!("cannot connect to {addr}"))?;
        stream.set_nodelay(true)?;
        let mut conn = Self {
            stream,
            scanner: Scanner::new(read_size),
            answer_pings: true,
            errors: Vec::new(),
        };
        conn.set_read_timeout(Some(HANDSHAKE_TIMEOUT))?;
        let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
        let mut got_info = false;
        while !got_info {
            if Instant::now() > deadline {
                bail!("no INFO from {addr}");
            }
            let n = conn.fill()?;
            if n == 0 {
                continue;
            }
            conn.scanner
                .scan(|frame| got_info |= matches!(frame, Frame::Info(_)))
                .with_context(|| format!("reading INFO from {addr}"))?;
        }
        conn.write_all(CONNECT)?;
        conn.flush_roundtrip()
            .with_context(|| format!("handshake with {addr}"))?;
        Ok(conn)
    }

    /// A second handle on the same socket for a reader thread; it leaves
    /// `PING`s to the caller so that only one thread ever writes.
    pub fn reader_clone(&self) -> anyhow::Result<Self> {
        let stream = self.stream.try_clone().context("cannot clone the socket")?;
        Ok(Self {
            stream,
            scanner: Scanner::new(4096),
            answer_pings: false,
            errors: Vec::new(),
        })
    }

    /// Sets the timeout of each blocking read.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.stream.set_read_timeout(timeout)
    }

    /// Leaves `PING`s for the caller to answer (see [`ReadStatus::pings`]).
    pub fn set_answer_pings(&mut self, answer: bool) {
        self.answer_pings = answer;
    }

    /// Every `-ERR` text received so far.
    pub fn errors(&self) -> &[String] {
        &self.errors
    }

    /// Writes all of `bytes`.
    pub fn write_all(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        match self.stream.write_all(bytes) {
            Ok(()) => Ok(()),
            Err(e) => Err(self.explain(e.into())),
        }
    }

    /// Sends `PING` and reads (delivering no messages; any that arrive are
    /// an error) until the `PONG`.
    pub fn flush_roundtrip(&mut self) -> anyhow::Result<()> {
        self.write_all(b"PING\r\n")?;
        let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
        loop {
            let status = self.read_some(|_| {})?;
            if status.pongs > 0 {
                return Ok(());
            }
            if !self.errors.is_empty() {
                bail!("server error: {}", self.errors.join("; "));
            }
            if status.msgs > 0 {
                bail!("unexpected message before PONG");
            }
            if Instant::now() > deadline {
                bail!("no PONG within {HANDSHAKE_TIMEOUT:?}");
            }
        }
    }

    /// One `read` call; every complete message goes to `on_msg`. `PING`s are
    /// answered, `-ERR`s are recorded and printed to stderr. A read timeout
    /// is not an error (see [`ReadStatus::timed_out`]); end of stream is.
    pub fn read_some<F>(&mut self, mut on_msg: F) -> anyhow::Result<ReadStatus>
    where
        F: FnMut(&Msg<'_>),
    {
        let mut status = ReadStatus::default();
        if self.fill()? == 0 {
            status.timed_out = true;
            return Ok(status);
        }
        let errors = &mut self.errors;
        self.scanner.scan(|frame| match frame {
            Frame::Msg(msg) => {
                status.msgs += 1;
                on_msg(&msg);
            }
            Frame::Ping => status.pings += 1,
            Frame::Pong => status.pongs += 1,
            Frame::Err(text) => {
                let text = String::from_utf8_lossy(text).into_owned();
                eprintln!("herald-bench: server sent -ERR {text}");
                errors.push(text);
            }
            Frame::Info(_) | Frame::Ok => {}
        })?;
        if self.answer_pings && status.pings > 0 {
            self.write_all(&b"PONG\r\n".repeat(status.pings))?;
        }
        Ok(status)
    }

    /// Reads once into the scanner; 0 means the read timed out.
    fn fill(&mut self) -> anyhow::Result<usize> {
        loop {
            match self.stream.read(self.scanner.spare()) {
                Ok(0) => {
                    let why = match self.errors.last() {
                        Some(err) => format!(" after -ERR {err}"),
                        None => String::new(),
                    };
                    bail!("server closed the connection{why}");
                }
                Ok(n) => {
                    self.scanner.filled(n);
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    return Ok(0)
                }
                Err(e) => return Err(self.explain(e.into())),
            }
        }
    }

    fn explain(&self, err: anyhow::Error) -> anyhow::Error {
        match self.errors.last() {
            Some(text) => err.context(format!("server sent -ERR {text}")),
            None => err,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::server_addr;

    #[test]
    fn addresses() {
        assert_eq!(server_addr("nats://127.0.0.1:4333").unwrap(), "127.0.0.1:4333");
        assert_eq!(server_addr("127.0.0.1:4222").unwrap(), "127.0.0.1:4222");
        assert_eq!(server_addr("localhost").unwrap(), "localhost:4222");
        assert_eq!(server_addr("nats://[::1]:4333/").unwrap(), "[::1]:4333");
        assert!(server_addr("nats://u:p@host:1").is_err());
        assert!(server_addr("").is_err());
    }
}
