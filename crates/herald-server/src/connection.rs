//! One client connection: a task that reads and parses the client's
//! operations, routes its publishes into subscribers' outbound buffers, and
//! writes its own outbound buffer when the socket needs waiting for.

use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use herald_core::{validate_literal_subject, validate_queue_name, validate_subject};
use herald_protocol::{encode, parse_client_op, ClientOp, ConnectInfo, Limits, ProtocolError};
use parking_lot::Mutex;
use rustc_hash::FxHashMap;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::outbound::{Appended, Data, Flushed, Outbound, SHARE_PAYLOAD_MIN};
use crate::publisher::{Origin, PubData, Publisher};
use crate::router::{ClientIdentity, ClientShared, SubRef, Subscription};
use crate::stats::Verb;
use crate::ServerState;

/// Smallest and largest read size; reads grow while they fill the buffer and
/// shrink while they don't, so idle connections stay small.
const READ_SIZE_MIN: usize = 512;
const READ_SIZE_MAX: usize = 64 * 1024;
/// Reads processed per wake-up before yielding to the other select branches.
const READS_PER_WAKE_MAX: usize = 8;
/// How long a closing connection may take to write its last bytes.
const CLOSE_FLUSH_TIMEOUT: Duration = Duration::from_millis(500);
/// Status message sent to a requester when nobody subscribes to the subject.
const NO_RESPONDERS_HEADER: &[u8] = b"NATS/1.0 503\r\n\r\n";

/// Why a connection ended.
enum CloseReason {
    ClientClosed,
    Io(io::Error),
    Protocol(ProtocolError),
    InvalidConnect(&'static str),
    SlowConsumer,
    WriteDeadline,
    Stale,
    ServerShutdown,
}

impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CloseReason::ClientClosed => write!(f, "client closed the connection"),
            CloseReason::Io(e) => write!(f, "I/O error: {e}"),
            CloseReason::Protocol(e) => write!(f, "protocol error: {e}"),
            CloseReason::InvalidConnect(why) => write!(f, "invalid CONNECT: {why}"),
            CloseReason::SlowConsumer => write!(f, "slow consumer: outbound buffer over max_pending"),
            CloseReason::WriteDeadline => {
                write!(f, "slow consumer: socket unwritable past write_deadline_ms")
            }
            CloseReason::Stale => write!(f, "stale connection: keepalive PINGs unanswered"),
            CloseReason::ServerShutdown => write!(f, "server shutting down"),
        }
    }
}

/// Options from the client's CONNECT.
struct ClientOptions {
    verbose: bool,
    pedantic: bool,
    echo: bool,
    no_responders: bool,
}

struct Connection {
    state: Arc<ServerState>,
    client: Arc<ClientShared>,
    peer: SocketAddr,
    limits: Limits,
    options: ClientOptions,
    /// Routes this client's publishes; one batch per read buffer.
    publisher: Publisher,
    read_size: usize,
    pings_out: u32,
}

/// Serves one accepted socket until it closes.
pub(crate) async fn serve_connection(
    state: Arc<ServerState>,
    stream: TcpStream,
    peer: SocketAddr,
    mut shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let stream = Arc::new(stream);
    let id = state.next_client_id.fetch_add(1, Ordering::Relaxed);
    let client = Arc::new(ClientShared {
        id,
        peer,
        connected_at: std::time::SystemTime::now(),
        identity: Default::default(),
        in_msgs: Default::default(),
        in_bytes: Default::default(),
        outbound: Outbound::new(stream.clone(), state.config.max_pending),
        headers: Default::default(),
        subs: Mutex::new(FxHashMap::default()),
        touch_mark: Default::default(),
    });
    state.clients.lock().insert(id, client.clone());
    let mut conn = Connection {
        limits: Limits {
            max_control_line: state.config.max_control_line,
            max_payload: state.config.max_payload,
        },
        publisher: Publisher::new(state.clone()),
        state,
        client,
        peer,
        options: ClientOptions {
            verbose: false,
            pedantic: false,
            echo: true,
            no_responders: false,
        },
        read_size: READ_SIZE_MIN,
        pings_out: 0,
    };
    conn.send_info();
    let reason = conn.run(&stream, &mut shutdown).await;
    conn.close(&stream, reason).await;
}

impl Connection {
    fn send_info(&mut self) {
        let mut info = self.state.info.clone();
        info.client_id = self.client.id;
        info.client_ip = self.peer.ip().to_string();
        let mut line = Vec::with_capacity(512);
        encode::info(&mut line, &info);
        self.client.outbound.push_raw(&line);
    }

    async fn run(&mut self, stream: &TcpStream, shutdown: &mut watch::Receiver<bool>) -> CloseReason {
        let state = self.state.clone();
        let config = &state.config;
        let ping_every = Duration::from_millis(config.ping_interval_ms);
        let write_deadline = Duration::from_millis(config.write_deadline_ms);
        let mut ping_timer = tokio::time::interval_at(Instant::now() + ping_every, ping_every);
        let mut stall = pin!(tokio::time::sleep(write_deadline));
        let mut stalled = false;
        let mut read_buf = BytesMut::new();
        if let Err(reason) = self.flush_own(&mut stalled, &mut stall, write_deadline) {
            return reason;
        }
        loop {
            let wants_write = self.client.outbound.queued_bytes() > 0;
            tokio::select! {
                biased;
                _ = shutdown.changed() => return CloseReason::ServerShutdown,
                _ = self.client.outbound.owner_woken() => {
                    // Another task queued data it could not write, or marked
                    // this client slow: try now, arming the write deadline.
                    if let Err(reason) = self.flush_own(&mut stalled, &mut stall, write_deadline) {
                        return reason;
                    }
                }
                _ = &mut stall, if stalled => return CloseReason::WriteDeadline,
                ready = stream.writable(), if wants_write => {
                    if let Err(e) = ready {
                        return CloseReason::Io(e);
                    }
                    if let Err(reason) = self.flush_own(&mut stalled, &mut stall, write_deadline) {
                        return reason;
                    }
                }
                ready = stream.readable() => {
                    if let Err(e) = ready {
                        return CloseReason::Io(e);
                    }
                    if let Err(reason) = self.read_and_process(stream, &mut read_buf) {
                        return reason;
                    }
                }
                _ = ping_timer.tick() => {
                    if self.pings_out >= config.max_pings_out {
                        return CloseReason::Stale;
                    }
                    self.pings_out += 1;
                    self.push_own(encode::PING);
                    if let Err(reason) = self.flush_own(&mut stalled, &mut stall, write_deadline) {
                        return reason;
                    }
                }
            }
        }
    }

    /// Writes this connection's own outbound buffer as far as the socket allows,
    /// arming the write deadline while data is stuck.
    fn flush_own(
        &mut self,
        stalled: &mut bool,
        stall: &mut std::pin::Pin<&mut tokio::time::Sleep>,
        write_deadline: Duration,
    ) -> Result<(), CloseReason> {
        match self.client.outbound.flush() {
            Ok(Flushed::WouldBlock) => {
                if !*stalled {
                    *stalled = true;
                    stall.as_mut().reset(Instant::now() + write_deadline);
                }
            }
            Ok(Flushed::Done) | Ok(Flushed::Busy) => *stalled = false,
            Err(e) => return Err(CloseReason::Io(e)),
        }
        if self.client.outbound.is_slow() {
            return Err(CloseReason::SlowConsumer);
        }
        Ok(())
    }

    fn read_and_process(&mut self, stream: &TcpStream, read_buf: &mut BytesMut) -> Result<(), CloseReason> {
        for _ in 0..READS_PER_WAKE_MAX {
            read_buf.reserve(self.read_size);
            let room = read_buf.capacity() - read_buf.len();
            match stream.try_read_buf(read_buf) {
                Ok(0) => return Err(CloseReason::ClientClosed),
                Ok(n) => {
                    if n == room && self.read_size < READ_SIZE_MAX {
                        self.read_size *= 2;
                    } else if n < room / 4 && self.read_size > READ_SIZE_MIN {
                        self.read_size /= 2;
                    }
                    let result = self.process(read_buf);
                    self.end_of_batch();
                    result?;
                    if n < room {
                        return Ok(());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(CloseReason::Io(e)),
            }
        }
        Ok(())
    }

    /// Handles every whole operation in `read_buf`, leaving a partial one.
    fn process(&mut self, read_buf: &mut BytesMut) -> Result<(), CloseReason> {
        loop {
            if read_buf.is_empty() {
                return Ok(());
            }
            let (op, used) = match parse_client_op(read_buf, &self.limits) {
                Ok(Some(found)) => found,
                Ok(None) => return Ok(()),
                Err(e) => {
                    let verb = verb_of(read_buf);
                    self.send_err(verb, e.err_text());
                    return Err(CloseReason::Protocol(e));
                }
            };
            match op {
                ClientOp::Pub {
                    subject,
                    reply,
                    header_len,
                    data,
                } if data.len() >= SHARE_PAYLOAD_MIN => {
                    // Large payload: hand subscribers a shared slice of the
                    // read buffer instead of copying it into each of them.
                    let base = read_buf.as_ptr() as usize;
                    let range = |s: &[u8]| {
                        let start = s.as_ptr() as usize - base;
                        start..start + s.len()
                    };
                    let (subject, reply, data) = (range(subject), reply.map(range), range(data));
                    let frame = read_buf.split_to(used).freeze();
                    let payload = frame.slice(data);
                    let reply = reply.map(|r| &frame[r]);
                    self.publish(&frame[subject], reply, header_len, PubData::Shared(&payload));
                    continue;
                }
                ClientOp::Pub {
                    subject,
                    reply,
                    header_len,
                    data,
                } => self.publish(subject, reply, header_len, PubData::Borrowed(data)),
                other => self.handle_control(other)?,
            }
            read_buf.advance(used);
        }
    }

    fn handle_control(&mut self, op: ClientOp<'_>) -> Result<(), CloseReason> {
        match op {
            ClientOp::Connect(json) => {
                self.publisher.counts.ops[Verb::Connect as usize] += 1;
                self.on_connect(json)?;
            }
            ClientOp::Sub { subject, queue, sid } => {
                self.publisher.counts.ops[Verb::Sub as usize] += 1;
                self.on_sub(subject, queue, sid);
            }
            ClientOp::Unsub { sid, max } => {
                self.publisher.counts.ops[Verb::Unsub as usize] += 1;
                self.on_unsub(sid, max);
            }
            ClientOp::Ping => {
                self.publisher.counts.ops[Verb::Ping as usize] += 1;
                self.push_own(encode::PONG);
            }
            ClientOp::Pong => {
                self.publisher.counts.ops[Verb::Pong as usize] += 1;
                self.pings_out = 0;
            }
            // Clients have no reason to send these; they are harmless.
            ClientOp::Info(_) | ClientOp::Ok | ClientOp::Err(_) => {}
            ClientOp::Pub { .. } => unreachable!("PUB is handled by process"),
        }
        Ok(())
    }

    fn on_connect(&mut self, json: &[u8]) -> Result<(), CloseReason> {
        let info: ConnectInfo = match serde_json::from_slice(json) {
            Ok(info) => info,
            Err(_) => {
                self.send_err(Verb::Connect, "Invalid CONNECT JSON");
                return Err(CloseReason::InvalidConnect("invalid JSON"));
            }
        };
        if info.no_responders && !info.headers {
            self.send_err(Verb::Connect, "no responders requires headers support");
            return Err(CloseReason::InvalidConnect("no_responders without headers"));
        }
        self.options = ClientOptions {
            verbose: info.verbose,
            pedantic: info.pedantic,
            echo: info.echo,
            no_responders: info.no_responders,
        };
        self.client.headers.store(info.headers, Ordering::Relaxed);
        *self.client.identity.lock() = ClientIdentity {
            name: info.name,
            lang: info.lang,
            version: info.version,
        };
        self.ok();
        Ok(())
    }

    fn on_sub(&mut self, subject: &[u8], queue: Option<&[u8]>, sid: &[u8]) {
        if validate_subject(subject).is_err() {
            return self.send_err(Verb::Sub, "Invalid Subject");
        }
        if let Some(queue) = queue {
            if validate_queue_name(queue).is_err() {
                return self.send_err(Verb::Sub, "Invalid Queue Name");
            }
        }
        let max_subs = self.state.config.max_subscriptions;
        let sub = {
            let mut subs = self.client.subs.lock();
            if subs.contains_key(sid) {
                // A repeated sid keeps the existing subscription, as NATS does.
                drop(subs);
                return self.ok();
            }
            if max_subs > 0 && subs.len() >= max_subs {
                drop(subs);
                return self.send_err(Verb::Sub, "Maximum Subscriptions Exceeded");
            }
            let sub = Arc::new(Subscription {
                client: self.client.clone(),
                sid: sid.into(),
                subject: subject.into(),
                queue: queue.map(Into::into),
                max: Default::default(),
                delivered: Default::default(),
                closed: Default::default(),
            });
            subs.insert(sid.into(), sub.clone());
            sub
        };
        if self.state.router.insert(&sub).is_err() {
            self.client.subs.lock().remove(sid);
            return self.send_err(Verb::Sub, "Invalid Subject");
        }
        self.ok();
    }

    fn on_unsub(&mut self, sid: &[u8], max: Option<u64>) {
        let removed = {
            let mut subs = self.client.subs.lock();
            match (subs.get(sid), max) {
                (Some(sub), Some(max)) if max > sub.delivered.load(Ordering::Relaxed) => {
                    sub.max.store(max, Ordering::Relaxed);
                    None
                }
                _ => subs.remove(sid),
            }
        };
        if let Some(sub) = removed {
            self.state.router.remove([&sub]);
        }
        self.ok();
    }

    /// Routes one published message to every matching subscription.
    #[inline]
    fn publish(
        &mut self,
        subject: &[u8],
        reply: Option<&[u8]>,
        header_len: Option<usize>,
        data: PubData<'_>,
    ) {
        let verb = if header_len.is_some() {
            Verb::Hpub
        } else {
            Verb::Pub
        };
        let counts = &mut self.publisher.counts;
        counts.ops[verb as usize] += 1;
        counts.in_msgs += 1;
        counts.in_bytes += data.len() as u64;
        if self.options.pedantic && validate_literal_subject(subject).is_err() {
            return self.send_err(verb, "Invalid Publish Subject");
        }
        let origin = Origin {
            client_id: self.client.id,
            echo: self.options.echo,
        };
        let routed = self
            .publisher
            .route(subject, reply, header_len, data, Some(origin));
        if !routed.delivered && routed.unmatched && self.options.no_responders {
            if let Some(reply) = reply {
                self.send_no_responders(reply);
            }
        }
        self.ok();
    }

    fn send_no_responders(&mut self, reply: &[u8]) {
        let (_, matched) = self.state.router.matches(reply);
        let own = matched
            .plain
            .iter()
            .chain(matched.queues.iter().flat_map(|g| g.members.iter()))
            .find_map(|sub| match sub {
                SubRef::Client(sub) if sub.client.id == self.client.id => Some(sub.clone()),
                _ => None,
            });
        if let Some(sub) = own {
            let sid = sub.sid.clone();
            self.client.outbound.push_msg(
                reply,
                &sid,
                None,
                Some(NO_RESPONDERS_HEADER.len()),
                Data::Borrowed(NO_RESPONDERS_HEADER),
            );
            self.touch_self();
        }
    }

    /// Flushes every outbound buffer this read buffer added to, and applies
    /// what had to wait for the end of the buffer.
    fn end_of_batch(&mut self) {
        let counts = &self.publisher.counts;
        if counts.in_msgs > 0 {
            self.client.in_msgs.fetch_add(counts.in_msgs, Ordering::Relaxed);
            self.client.in_bytes.fetch_add(counts.in_bytes, Ordering::Relaxed);
        }
        self.publisher.finish();
    }

    fn touch_self(&mut self) {
        self.publisher.touch(&self.client);
    }

    fn push_own(&mut self, bytes: &[u8]) {
        if self.client.outbound.push_raw(bytes) == Appended::Queued {
            self.touch_self();
        }
    }

    fn ok(&mut self) {
        if self.options.verbose {
            self.push_own(encode::OK);
        }
    }

    fn send_err(&mut self, verb: Verb, text: &str) {
        self.state.stats.count_error(verb);
        let mut line = Vec::with_capacity(text.len() + 10);
        encode::err(&mut line, text);
        self.push_own(&line);
    }

    async fn close(mut self, stream: &TcpStream, reason: CloseReason) {
        let state = self.state.clone();
        let stats = &state.stats;
        let slow = matches!(reason, CloseReason::SlowConsumer | CloseReason::WriteDeadline)
            || self.client.outbound.is_slow();
        if slow {
            // Counted here only, once per connection, whoever noticed it.
            stats.slow_consumers.fetch_add(1, Ordering::Relaxed);
            self.client.outbound.cut_off();
        }
        let last_words: Option<&str> = match &reason {
            _ if slow => Some("Slow Consumer"),
            CloseReason::Stale => {
                stats.stale_connections.fetch_add(1, Ordering::Relaxed);
                Some("Stale Connection")
            }
            _ => None,
        };
        match &reason {
            CloseReason::ClientClosed | CloseReason::ServerShutdown => {
                tracing::debug!(client = self.client.id, peer = %self.peer, %reason, "connection closed")
            }
            _ => tracing::info!(client = self.client.id, peer = %self.peer, %reason, "connection closed"),
        }
        let outbound = &self.client.outbound;
        if let Some(text) = last_words {
            let mut line = Vec::new();
            encode::err(&mut line, text);
            outbound.push_final(&line);
        }
        outbound.close();
        // Give the socket a moment to take what is queued (errors, last messages).
        if !matches!(reason, CloseReason::ClientClosed | CloseReason::Io(_)) {
            let _ = tokio::time::timeout(CLOSE_FLUSH_TIMEOUT, async {
                loop {
                    match outbound.flush() {
                        Ok(Flushed::Done) | Err(_) => break,
                        Ok(Flushed::Busy) => tokio::task::yield_now().await,
                        Ok(Flushed::WouldBlock) => {
                            if stream.writable().await.is_err() {
                                break;
                            }
                        }
                    }
                }
            })
            .await;
        }
        let subs: Vec<_> = self.client.subs.lock().drain().map(|(_, sub)| sub).collect();
        self.state.router.remove(&subs);
        self.end_of_batch();
        // Other connections may still hold this client through cached
        // matches; shut the socket down now rather than when they let go.
        let _ = socket2::SockRef::from(stream).shutdown(std::net::Shutdown::Both);
        state.clients.lock().remove(&self.client.id);
        stats.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The verb at the start of an unparsable buffer, for error metrics.
fn verb_of(buf: &[u8]) -> Verb {
    let end = buf
        .iter()
        .position(|b| b.is_ascii_whitespace())
        .unwrap_or(buf.len())
        .min(8);
    let word = &buf[..end];
    for verb in Verb::ALL {
        if word.eq_ignore_ascii_case(verb.label().as_bytes()) {
            return verb;
        }
    }
    Verb::Other
}
