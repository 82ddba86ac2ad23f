//! Helpers for async-nats clients.

use super::*;

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
