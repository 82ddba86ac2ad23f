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
use tokio::sync::oneshot;

use crate::shared::{Shared, Sink};
use crate::{ConnectionState, Error, Message, Result};

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
            .map_err(|source| Error::Connect {
                url: shared.url.clone(),
                source,
            })?;
        let _ = stream.set_nodelay(true);
        handshake(shared, stream).await
    };
    tokio::time::timeout(shared.options.connect_timeout, connect)
        .await
        .map_err(|_| Error::Connect {
            url: shared.url.clone(),
            source: io::Error::new(io::ErrorKind::TimedOut, "timed out"),
        })?
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
    for (sid, entry) in shared.subs.lock().iter() {
        let sid = sid.to_string();
        encode::sub(
            &mut hello,
            entry.subject.as_bytes(),
            entry.queue.as_deref().map(str::as_bytes),
            sid.as_bytes(),
        );
        if let Some(max) = entry.max {
            encode::unsub(&mut hello, sid.as_bytes(), Some(max - entry.delivered));
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
                    return Err(Error::Server(String::from_utf8_lossy(text).into_owned()));
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
        let writer = tokio::spawn(write_loop(shared.clone(), write_half, failed_tx));
        shared.wake_writer.notify_one();
        let ended = tokio::select! {
            result = read_loop(&shared, read_half, established.read_buf) => result,
            _ = failed_rx => Err(Error::Io(io::ErrorKind::BrokenPipe.into())),
            _ = shared.shutdown.notified() => Ok(()),
        };
        shared.out.lock().connected = false;
        if shared.closed.load(Ordering::Acquire) {
            // Let the writer send what close() queued before it stops.
            let _ = tokio::time::timeout(Duration::from_millis(500), writer).await;
            break;
        }
        writer.abort();
        if let Err(e) = ended {
            tracing::warn!(url = %shared.url, error = %e, "disconnected");
        }
        shared.fail_pongs(|| Error::Disconnected);
        if !shared.options.reconnect {
            break;
        }
        shared.set_state(ConnectionState::Reconnecting);
    }
    close_everything(&shared);
}

/// Tries to reconnect with exponential backoff and jitter.
async fn reconnect(shared: &Shared) -> Option<Established> {
    let options = &shared.options;
    let mut delay = options.reconnect_delay_initial;
    let mut attempts = 0usize;
    loop {
        if shared.closed.load(Ordering::Acquire) {
            return None;
        }
        if options.max_reconnect_attempts.is_some_and(|max| attempts >= max) {
            tracing::warn!(url = %shared.url, attempts, "giving up reconnecting");
            return None;
        }
        let jitter = delay.mul_f64(fastrand::f64() * 0.5);
        tokio::select! {
            _ = tokio::time::sleep(delay + jitter) => {}
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

fn close_everything(shared: &Shared) {
    shared.closed.store(true, Ordering::Release);
    shared.set_state(ConnectionState::Closed);
    shared.fail_pongs(|| Error::Closed);
    // Dropping the senders ends every subscriber's stream and request.
    shared.subs.lock().clear();
    shared.requests.lock().clear();
}

async fn write_loop(shared: Arc<Shared>, mut socket: OwnedWriteHalf, failed: oneshot::Sender<()>) {
    let mut spare = Vec::new();
    loop {
        {
            let mut out = shared.out.lock();
            std::mem::swap(&mut out.buf, &mut spare);
        }
        if spare.is_empty() {
            shared.wake_writer.notified().await;
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
                    let _ = shared.send(encode::PONG);
                }
                ServerOp::Pong => {
                    if let Some(waiter) = shared.pongs.lock().pop_front() {
                        let _ = waiter.send(Ok(()));
                    }
                }
                ServerOp::Err(text) => {
                    let text = String::from_utf8_lossy(text);
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
                subject: String::from_utf8_lossy(subject).into_owned(),
                reply: reply.map(|r| String::from_utf8_lossy(r).into_owned()),
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
            if tx.try_send(message).is_err() {
                dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        Sink::Inbox => {
            let token = message.subject.rsplit('.').next().unwrap_or_default().to_string();
            if let Some(waiter) = shared.requests.lock().remove(&token) {
                let _ = waiter.send(message);
            }
        }
    }
    if entry.max.is_some_and(|max| entry.delivered >= max) {
        subs.remove(&sid);
    }
}
