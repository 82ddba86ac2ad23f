//! The client handle.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use herald_protocol::{encode, Headers};
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot, watch, Notify};

use crate::connection;
use crate::shared::{Outgoing, Shared, Sink, SubEntry};
use crate::{ConnectOptions, Error, Message, Result, Subscriber};

/// Where the client's connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionState {
    /// Connected and handshaken.
    Connected,
    /// Lost the connection; trying again.
    Reconnecting,
    /// Closed for good: by [`Client::close`], [`Client::drain`], or after
    /// reconnecting gave up.
    Closed,
}

/// A connection to a server speaking the NATS client protocol. Cheap to
/// clone; all clones share one connection.
#[derive(Clone)]
pub struct Client {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.shared.url)
            .finish_non_exhaustive()
    }
}

/// Splits `nats://host:port` (or `host:port`, or `host`) into a URL for
/// messages and an address to dial. The default port is Herald's, 4333.
fn parse_url(url: &str) -> Result<(String, String)> {
    let rest = url
        .strip_prefix("nats://")
        .or_else(|| url.strip_prefix("tcp://"))
        .unwrap_or(url)
        .trim_end_matches('/');
    if rest.is_empty() || rest.contains(['/', '@', ' ']) {
        return Err(Error::InvalidUrl(url.to_string()));
    }
    let addr = match rest.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => rest.to_string(),
        Some((_, _)) if !rest.starts_with('[') => return Err(Error::InvalidUrl(url.to_string())),
        _ => format!("{rest}:4333"),
    };
    Ok((format!("nats://{addr}"), addr))
}

fn check_subject(subject: &str) -> Result<()> {
    if subject.is_empty()
        || subject.starts_with('.')
        || subject.ends_with('.')
        || subject.contains("..")
        || subject.contains(|c: char| c.is_whitespace() || c == '\0')
    {
        return Err(Error::InvalidSubject(subject.to_string()));
    }
    Ok(())
}

impl Client {
    /// Connects with default options. Returns once the server has accepted
    /// the connection (its PONG to our first PING arrived).
    pub async fn connect(url: &str) -> Result<Client> {
        Self::connect_with(url, ConnectOptions::default()).await
    }

    /// Connects with `options`.
    pub async fn connect_with(url: &str, options: ConnectOptions) -> Result<Client> {
        let (url, addr) = parse_url(url)?;
        let (state, _) = watch::channel(ConnectionState::Reconnecting);
        let shared = Arc::new(Shared {
            url,
            addr,
            options,
            out: Mutex::new(Outgoing {
                buf: Vec::new(),
                connected: false,
            }),
            wake_writer: Notify::new(),
            subs: Mutex::new(HashMap::new()),
            next_sid: AtomicU64::new(1),
            pongs: Mutex::new(VecDeque::new()),
            max_payload: AtomicUsize::new(herald_protocol::MAX_PAYLOAD_DEFAULT),
            state,
            closed: AtomicBool::new(false),
            shutdown: Notify::new(),
            inbox: Mutex::new(None),
            requests: Mutex::new(HashMap::new()),
            next_request: AtomicU64::new(1),
        });
        let established = connection::establish(&shared).await?;
        tokio::spawn(connection::run(shared.clone(), established));
        Ok(Client { shared })
    }

    /// The current connection state.
    pub fn connection_state(&self) -> ConnectionState {
        *self.shared.state.borrow()
    }

    /// A receiver that sees every change of the connection state.
    pub fn state_changes(&self) -> watch::Receiver<ConnectionState> {
        self.shared.state.subscribe()
    }

    /// The largest payload the server accepts, from its `INFO`.
    pub fn max_payload(&self) -> usize {
        self.shared.max_payload.load(Ordering::Relaxed)
    }

    /// Publishes `payload` to `subject`.
    pub fn publish(&self, subject: &str, payload: impl AsRef<[u8]>) -> Result<()> {
        self.publish_full(subject, None, None, payload.as_ref())
    }

    /// Publishes with headers.
    pub fn publish_with_headers(
        &self,
        subject: &str,
        headers: &Headers,
        payload: impl AsRef<[u8]>,
    ) -> Result<()> {
        self.publish_full(subject, None, Some(headers), payload.as_ref())
    }

    /// Publishes with a reply subject.
    pub fn publish_with_reply(&self, subject: &str, reply: &str, payload: impl AsRef<[u8]>) -> Result<()> {
        check_subject(reply)?;
        self.publish_full(subject, Some(reply), None, payload.as_ref())
    }

    fn publish_full(
        &self,
        subject: &str,
        reply: Option<&str>,
        headers: Option<&Headers>,
        payload: &[u8],
    ) -> Result<()> {
        check_subject(subject)?;
        let header_block = headers.map(Headers::to_bytes);
        let header_len = header_block.as_ref().map(Vec::len);
        let size = header_len.unwrap_or(0) + payload.len();
        let max = self.max_payload();
        if size > max {
            return Err(Error::MaxPayload { size, max });
        }
        let frame_len = size + subject.len() + reply.map_or(0, str::len) + 32;
        self.shared.send_with(frame_len, |buf| match &header_block {
            Some(block) => {
                let mut data = Vec::with_capacity(size);
                data.extend_from_slice(block);
                data.extend_from_slice(payload);
                encode::publish(
                    buf,
                    subject.as_bytes(),
                    reply.map(str::as_bytes),
                    header_len,
                    &data,
                );
            }
            None => encode::publish(buf, subject.as_bytes(), reply.map(str::as_bytes), None, payload),
        })
    }

    /// Subscribes to `subject` (wildcards allowed).
    pub async fn subscribe(&self, subject: &str) -> Result<Subscriber> {
        self.subscribe_inner(subject, None)
    }

    /// Joins queue group `queue` on `subject`: each message goes to one member.
    pub async fn queue_subscribe(&self, subject: &str, queue: &str) -> Result<Subscriber> {
        if queue.is_empty() || queue.contains(char::is_whitespace) {
            return Err(Error::InvalidSubject(queue.to_string()));
        }
        self.subscribe_inner(subject, Some(queue))
    }

    fn subscribe_inner(&self, subject: &str, queue: Option<&str>) -> Result<Subscriber> {
        check_subject(subject)?;
        let shared = &self.shared;
        let sid = shared.next_sid.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(shared.options.subscription_capacity);
        let dropped = Arc::new(AtomicU64::new(0));
        shared.subs.lock().insert(
            sid,
            SubEntry {
                subject: subject.to_string(),
                queue: queue.map(str::to_string),
                sink: Sink::Channel(tx, dropped.clone()),
                max: None,
                delivered: 0,
            },
        );
        let sid_text = sid.to_string();
        if let Err(e) = shared.send_with(subject.len() + 48, |buf| {
            encode::sub(
                buf,
                subject.as_bytes(),
                queue.map(str::as_bytes),
                sid_text.as_bytes(),
            )
        }) {
            shared.subs.lock().remove(&sid);
            return Err(e);
        }
        Ok(Subscriber {
            sid,
            rx,
            shared: shared.clone(),
            dropped,
            unsubscribed: false,
        })
    }

    /// Sends a request and waits for the first reply, up to the default
    /// request timeout. No subscriber on `subject` is [`Error::NoResponders`].
    pub async fn request(&self, subject: &str, payload: impl AsRef<[u8]>) -> Result<Message> {
        self.request_full(
            subject,
            None,
            payload.as_ref(),
            self.shared.options.request_timeout,
        )
        .await
    }

    /// [`Client::request`] with its own timeout.
    pub async fn request_with_timeout(
        &self,
        subject: &str,
        payload: impl AsRef<[u8]>,
        timeout: Duration,
    ) -> Result<Message> {
        self.request_full(subject, None, payload.as_ref(), timeout).await
    }

    /// [`Client::request`] with headers and a timeout.
    pub async fn request_with_headers(
        &self,
        subject: &str,
        headers: &Headers,
        payload: impl AsRef<[u8]>,
        timeout: Duration,
    ) -> Result<Message> {
        self.request_full(subject, Some(headers), payload.as_ref(), timeout)
            .await
    }

    async fn request_full(
        &self,
        subject: &str,
        headers: Option<&Headers>,
        payload: &[u8],
        timeout: Duration,
    ) -> Result<Message> {
        check_subject(subject)?;
        let inbox = self.inbox()?;
        let token = self
            .shared
            .next_request
            .fetch_add(1, Ordering::Relaxed)
            .to_string();
        let (tx, rx) = oneshot::channel();
        self.shared.requests.lock().insert(token.clone(), tx);
        let reply = format!("{inbox}.{token}");
        if let Err(e) = self.publish_full(subject, Some(&reply), headers, payload) {
            self.shared.requests.lock().remove(&token);
            return Err(e);
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(message)) if message.status == Some(503) => Err(Error::NoResponders {
                subject: subject.to_string(),
            }),
            Ok(Ok(message)) => Ok(message),
            Ok(Err(_)) => Err(Error::Closed),
            Err(_) => {
                self.shared.requests.lock().remove(&token);
                Err(Error::Timeout)
            }
        }
    }

    /// The inbox prefix, subscribing `<prefix>.*` on first use.
    fn inbox(&self) -> Result<String> {
        let mut inbox = self.shared.inbox.lock();
        if let Some(prefix) = inbox.as_ref() {
            return Ok(prefix.clone());
        }
        let prefix: String = std::iter::repeat_with(fastrand::alphanumeric).take(22).collect();
        let prefix = format!("_INBOX.{prefix}");
        let subject = format!("{prefix}.*");
        let sid = self.shared.next_sid.fetch_add(1, Ordering::Relaxed);
        self.shared.subs.lock().insert(
            sid,
            SubEntry {
                subject: subject.clone(),
                queue: None,
                sink: Sink::Inbox,
                max: None,
                delivered: 0,
            },
        );
        let sid = sid.to_string();
        self.shared.send_with(subject.len() + 32, |buf| {
            encode::sub(buf, subject.as_bytes(), None, sid.as_bytes())
        })?;
        *inbox = Some(prefix.clone());
        Ok(prefix)
    }

    /// Waits until the server has processed everything sent so far (a PING
    /// and its PONG), up to the request timeout.
    pub async fn flush(&self) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        {
            // The PONG waiter is queued with the PING so their order matches.
            let mut pongs = self.shared.pongs.lock();
            self.shared.send(encode::PING)?;
            pongs.push_back(tx);
        }
        match tokio::time::timeout(self.shared.options.request_timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(Error::Closed),
            Err(_) => Err(Error::Timeout),
        }
    }

    /// Unsubscribes everything, waits until every message already sent to
    /// this client has arrived, lets subscribers read them (their streams
    /// then end), and closes.
    pub async fn drain(&self) -> Result<()> {
        let sids: Vec<u64> = self.shared.subs.lock().keys().copied().collect();
        for sid in &sids {
            let sid = sid.to_string();
            let _ = self
                .shared
                .send_with(32, |buf| encode::unsub(buf, sid.as_bytes(), None));
        }
        let flushed = self.flush().await;
        {
            let mut subs = self.shared.subs.lock();
            for sid in sids {
                subs.remove(&sid);
            }
        }
        self.close().await;
        flushed
    }

    /// Writes what is queued (bounded wait) and closes the connection.
    pub async fn close(&self) {
        if self.shared.closed.load(Ordering::Acquire) {
            return;
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), self.flush()).await;
        self.shared.closed.store(true, Ordering::Release);
        self.shared.shutdown.notify_one();
        let mut state = self.shared.state.subscribe();
        let _ = tokio::time::timeout(
            Duration::from_secs(1),
            state.wait_for(|s| *s == ConnectionState::Closed),
        )
        .await;
    }
}

impl Client {
    /// Publishes `payload` to the reply subject of `request`.
    pub fn respond(&self, request: &Message, payload: impl AsRef<[u8]>) -> Result<()> {
        let reply = request
            .reply
            .as_deref()
            .ok_or_else(|| Error::InvalidSubject("message has no reply subject".into()))?;
        self.publish(reply, payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(parse_url("nats://127.0.0.1:4333").unwrap().1, "127.0.0.1:4333");
        assert_eq!(parse_url("localhost:5000").unwrap().1, "localhost:5000");
        assert_eq!(parse_url("localhost").unwrap().1, "localhost:4333");
        assert!(parse_url("nats://").is_err());
        assert!(parse_url("nats://host:notaport").is_err());
    }

    #[test]
    fn subjects() {
        assert!(check_subject("a.b").is_ok());
        assert!(check_subject("a..b").is_err());
        assert!(check_subject("a b").is_err());
        assert!(check_subject("").is_err());
    }
}
