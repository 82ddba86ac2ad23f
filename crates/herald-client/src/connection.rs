//! The connection task: connects, performs the handshake, moves bytes in
//! both directions, dispatches what arrives, and reconnects with backoff.

use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use herald_protocol::{encode, parse_server_op, ConnectInfo, Headers, Limits, ServerInfo, ServerOp};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use crate::shared::{Shared, Sink};
use crate::{ConnectionState, Error, Message, Result};

/// How long closing waits for queued bytes to be written.
const CLOSE_WRITE_WAIT: Duration = Duration::from_secs(1);
/// Bytes read per socket read.
const READ_SIZE: usize = 64 * 1024;
/// Limits for what the server sends: control lines are short, payloads
/// bounded by what a server may carry.
const LIMITS: Limits = Limits {
    max_control_line: 64 * 1024,
    max_payload: 64 * 1024 * 1024,
};

/// A connected socket after the handshake, with bytes already read past it.
pub(crate) struct Established {
    stream: TcpStream,
    read_buf: BytesMut,
}

/// Connects and performs the handshake: INFO, CONNECT, the live
/// subscriptions, then PING, returning once the server's PONG arrives.
pub(crate) async fn establish(shared: &Shared) -> Result<Established> {
    let connect = async {
        let stream = TcpStream::connect(&shared.addr)
            .await
            .map_err(|source| connect_error(shared, source))?;
        let _ = stream.set_nodelay(true);
        handshake(shared, stream).await
    };
    let result = match tokio::time::timeout(shared.options.connect_timeout, connect).await {
        Ok(result) => result,
        Err(_) => Err(Error::Unreachable {
            url: shared.url.clone(),
            source: io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no handshake within {:?}", shared.options.connect_timeout),
            ),
        }),
    };
    if result.is_err() {
        // Subscriptions queued since the handshake's snapshot go out again
        // with the next one.
        shared.disconnected();
    }
    result
}

fn connect_error(shared: &Shared, source: io::Error) -> Error {
    let url = shared.url.clone();
    match source.kind() {
        io::ErrorKind::ConnectionRefused => Error::ConnectionRefused { url },
        _ => Error::Unreachable { url, source },
    }
}

async fn handshake(shared: &Shared, mut stream: TcpStream) -> Result<Established> {
    let fail = |reason: String| Error::Handshake {
        url: shared.url.clone(),
        reason,
    };
    let mut read_buf = BytesMut::with_capacity(4096);
    // INFO first.
    let info: ServerInfo = loop {
        if let Some((op, used)) = parse_server_op(&read_buf, &LIMITS)? {
            let info = match op {
                ServerOp::Info(json) => {
                    serde_json::from_slice(json).map_err(|e| fail(format!("invalid INFO: {e}")))?
                }
                other => return Err(fail(format!("expected INFO, got {other:?}"))),
            };
            read_buf.advance(used);
            break info;
        }
        if stream.read_buf(&mut read_buf).await? == 0 {
            return Err(fail("server closed the connection before INFO".into()));
        }
    };
    shared.max_payload.store(info.max_payload, Ordering::Relaxed);

    let mut hello = Vec::with_capacity(512);
    let connect = ConnectInfo {
        verbose: false,
        pedantic: false,
        name: shared.options.name.clone(),
        lang: "rust".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        protocol: 1,
        echo: shared.options.echo,
        headers: true,
        no_responders: true,
        ..ConnectInfo::default()
    };
    encode::connect(&mut hello, &connect);
    {
        // From here on SUB/UNSUB are queued for the writer, which starts
        // after the handshake, so none is lost or reordered.
        let mut out = shared.out.lock();
        out.subs_sent = true;
        for (sid, entry) in shared.subs.lock().iter() {
            entry.encode(*sid, &mut hello);
        }
    }
    hello.extend_from_slice(encode::PING);
    stream.write_all(&hello).await?;

    // Wait for our PONG; messages for resubscribed subjects may come first.
    loop {
        while let Some((op, used)) = parse_server_op(&read_buf, &LIMITS)? {
            match op {
                ServerOp::Pong => {
                    read_buf.advance(used);
                    return Ok(Established { stream, read_buf });
                }
                ServerOp::Err(text) => {
                    return Err(Error::Protocol(String::from_utf8_lossy(text).into_owned()));
                }
                ServerOp::Ping => stream.write_all(encode::PONG).await?,
                other => dispatch(shared, other),
            }
            read_buf.advance(used);
        }
        if stream.read_buf(&mut read_buf).await? == 0 {
            return Err(fail("server closed the connection during the handshake".into()));
        }
    }
}

/// Runs the connection until the client closes, reconnecting as configured.
pub(crate) async fn run(shared: Arc<Shared>, first: Established) {
    let mut next = Some(first);
    loop {
        let established = match next.take() {
            Some(e) => e,
            None => match reconnect(&shared).await {
                Some(e) => e,
                None => break,
            },
        };
        let (read_half, write_half) = established.stream.into_split();
        shared.out.lock().connected = true;
        shared.set_state(ConnectionState::Connected);
        let (failed_tx, failed_rx) = oneshot::channel();
        let mut writer = tokio::spawn(write_loop(shared.clone(), write_half, failed_tx));
        shared.wake_writer.notify_one();
        let ended = tokio::select! {
            result = read_loop(&shared, read_half, established.read_buf) => result,
            _ = failed_rx => Err(Error::Io(io::ErrorKind::BrokenPipe.into())),
            e = keepalive(&shared) => Err(e),
            _ = shared.shutdown.notified() => Ok(()),
        };
        if shared.is_closed() {
            // The writer sends what was queued before closing, then ends.
            if tokio::time::timeout(CLOSE_WRITE_WAIT, &mut writer).await.is_err() {
                writer.abort();
            }
            break;
        }
        writer.abort();
        shared.disconnected();
        match ended {
            Err(e) => tracing::warn!(url = %shared.url, error = %e, "disconnected"),
            Ok(()) => tracing::warn!(url = %shared.url, "disconnected"),
        }
        if !shared.options.reconnect {
            break;
        }
        shared.set_state(ConnectionState::Reconnecting);
    }
    shared.close_everything();
}

/// Tries to reconnect with exponential backoff and jitter.
async fn reconnect(shared: &Shared) -> Option<Established> {
    let options = &shared.options;
    let mut delay = options.reconnect_delay_initial;
    let mut attempts = 0usize;
    loop {
        if shared.is_closed() {
            return None;
        }
        if options.max_reconnect_attempts.is_some_and(|max| attempts >= max) {
            tracing::warn!(url = %shared.url, attempts, "giving up reconnecting");
            return None;
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff(delay)) => {}
            _ = shared.shutdown.notified() => return None,
        }
        attempts += 1;
        match establish(shared).await {
            Ok(established) => {
                tracing::info!(url = %shared.url, attempts, "reconnected");
                return Some(established);
            }
            Err(e) => tracing::debug!(url = %shared.url, error = %e, "reconnect attempt failed"),
        }
        delay = (delay * 2).min(options.reconnect_delay_max);
    }
}

/// Pings the server every interval; returns when a `PING` goes unanswered
/// for an interval (the connection is stale) or cannot be sent.
async fn keepalive(shared: &Shared) -> Error {
    let interval = shared.options.ping_interval;
    loop {
        tokio::time::sleep(interval).await;
        let pong = match shared.ping() {
            Ok(pong) => pong,
            Err(e) => return e,
        };
        match tokio::time::timeout(interval, pong).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => return e,
            Ok(Err(_)) => return Error::Closed,
            Err(_) => {
                return Error::Io(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "stale connection: no PONG",
                ))
            }
        }
    }
}

/// `delay` with up to 50% random jitter, so many clients do not reconnect
/// in lockstep.
fn backoff(delay: Duration) -> Duration {
    delay + delay.mul_f64(fastrand::f64() * 0.5)
}

/// Writes whatever is queued, coalescing everything queued since the last
/// write into one. Ends (shutting the socket down) once the client closes
/// and nothing is left.
async fn write_loop(shared: Arc<Shared>, mut socket: OwnedWriteHalf, failed: oneshot::Sender<()>) {
    let mut spare = Vec::new();
    loop {
        shared.take_outgoing(&mut spare);
        if spare.is_empty() {
            if shared.is_closed() {
                let _ = socket.shutdown().await;
                return;
            }
            shared.wake_writer.notified().await;
            // Let the tasks that are ready run first: many concurrent
            // publishers (say, 64 awaiting their acks at once) then queue
            // their messages before this write rather than each causing one.
            tokio::task::yield_now().await;
            continue;
        }
        if socket.write_all(&spare).await.is_err() {
            let _ = failed.send(());
            return;
        }
        spare.clear();
        if spare.capacity() > 4 * READ_SIZE {
            spare = Vec::new();
        }
    }
}

async fn read_loop(shared: &Shared, mut socket: OwnedReadHalf, mut read_buf: BytesMut) -> Result<()> {
    loop {
        while let Some((op, used)) = parse_server_op(&read_buf, &LIMITS)? {
            match op {
                ServerOp::Ping => {
                    let _ = shared.send_with(encode::PONG.len(), |buf| buf.extend_from_slice(encode::PONG));
                }
                ServerOp::Pong => shared.pong(),
                ServerOp::Err(text) => {
                    let text = String::from_utf8_lossy(text);
                    if is_fatal(&text) {
                        tracing::warn!(url = %shared.url, error = %text, "server closed the connection");
                        return Err(Error::Protocol(text.into_owned()));
                    }
                    tracing::warn!(url = %shared.url, error = %text, "server error");
                }
                other => dispatch(shared, other),
            }
            read_buf.advance(used);
        }
        read_buf.reserve(READ_SIZE);
        if socket.read_buf(&mut read_buf).await? == 0 {
            return Err(Error::Io(io::ErrorKind::UnexpectedEof.into()));
        }
    }
}

/// Whether a `-ERR` means the server closes the connection. Servers keep
/// the connection after errors about one subscription or one publish
/// (invalid subjects, permissions, subscription limits); everything else
/// (`Maximum Payload Violation`, `Parser Error`, `Slow Consumer`,
/// `Stale Connection`, `Authorization Violation`, ...) ends it.
pub(crate) fn is_fatal(text: &str) -> bool {
    const KEEP: [&str; 5] = [
        "invalid subject",
        "invalid publish subject",
        "invalid queue name",
        "permissions violation",
        "maximum subscriptions exceeded",
    ];
    let text = text.trim().to_ascii_lowercase();
    !KEEP.iter().any(|prefix| text.starts_with(prefix))
}

/// Delivers a message to its subscription, or updates the server info.
fn dispatch(shared: &Shared, op: ServerOp<'_>) {
    match op {
        ServerOp::Msg {
            subject,
            sid,
            reply,
            header_len,
            data,
        } => {
            let Some(sid) = std::str::from_utf8(sid).ok().and_then(|s| s.parse::<u64>().ok()) else {
                return;
            };
            let (headers, payload) = match header_len {
                Some(h) => (Headers::parse(&data[..h]).ok(), &data[h..]),
                None => (None, data),
            };
            let message = Message {
                subject: owned_text(subject),
                reply: reply.map(owned_text),
                status: headers.as_ref().and_then(|h| h.status),
                headers,
                payload: Bytes::copy_from_slice(payload),
            };
            deliver(shared, sid, message);
        }
        ServerOp::Info(json) => {
            if let Ok(info) = serde_json::from_slice::<ServerInfo>(json) {
                shared.max_payload.store(info.max_payload, Ordering::Relaxed);
            }
        }
        _ => {}
    }
}

fn deliver(shared: &Shared, sid: u64, message: Message) {
    let mut subs = shared.subs.lock();
    let Some(entry) = subs.get_mut(&sid) else {
        return;
    };
    entry.delivered += 1;
    match &entry.sink {
        Sink::Channel(tx, dropped) => {
            if let Err(mpsc::error::TrySendError::Full(_)) = tx.try_send(message) {
                dropped.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(sid, "subscriber queue full; message dropped");
            }
        }
        Sink::Inbox => crate::request::deliver_reply(shared, message),
    }
    if entry.max.is_some_and(|max| entry.delivered >= max) {
        subs.remove(&sid);
    }
}

/// `bytes` as an owned string; subjects are ASCII, so the fast check
/// nearly always succeeds (invalid UTF-8 is replaced, never refused).
fn owned_text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_owned(),
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}
