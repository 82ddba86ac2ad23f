//! How to connect.

use std::time::Duration;

use crate::{Client, Result};

/// Default bound on each subscription's queue of undelivered messages.
pub const SUBSCRIPTION_CAPACITY_DEFAULT: usize = 8192;
/// Default interval of the client's keepalive `PING`s.
pub const PING_INTERVAL_DEFAULT: Duration = Duration::from_secs(120);
/// Default bound on bytes buffered for the server while disconnected.
pub const RECONNECT_BUFFER_MAX_DEFAULT: usize = 8 * 1024 * 1024;

/// Options for [`Client::connect_with`], built fluently.
///
/// ```no_run
/// # async fn f() -> herald_client::Result<()> {
/// use std::time::Duration;
/// let client = herald_client::ConnectOptions::new()
///     .name("billing")
///     .request_timeout(Duration::from_secs(2))
///     .connect("nats://127.0.0.1:4333")
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub(crate) name: Option<String>,
    pub(crate) echo: bool,
    pub(crate) reconnect: bool,
    pub(crate) max_reconnect_attempts: Option<usize>,
    pub(crate) reconnect_delay_initial: Duration,
    pub(crate) reconnect_delay_max: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) subscription_capacity: usize,
    pub(crate) reconnect_buffer_max: usize,
    pub(crate) ping_interval: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            name: None,
            echo: true,
            reconnect: true,
            max_reconnect_attempts: None,
            reconnect_delay_initial: Duration::from_millis(50),
            reconnect_delay_max: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(5),
            subscription_capacity: SUBSCRIPTION_CAPACITY_DEFAULT,
            reconnect_buffer_max: RECONNECT_BUFFER_MAX_DEFAULT,
            ping_interval: PING_INTERVAL_DEFAULT,
        }
    }
}

impl ConnectOptions {
    /// Defaults: reconnect forever with backoff from 50 ms to 5 s, 5 s
    /// connect and request timeouts, echo on, 8192 messages per
    /// subscription, 8 MiB buffered while disconnected, keepalive every 2
    /// minutes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Client name, shown in the server's monitoring.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Do not deliver this client's own publishes to its own subscriptions.
    pub fn no_echo(mut self) -> Self {
        self.echo = false;
        self
    }

    /// Whether to reconnect after losing the connection (default true).
    pub fn reconnect(mut self, enabled: bool) -> Self {
        self.reconnect = enabled;
        self
    }

    /// Give up after this many failed reconnect attempts in a row (default: never).
    pub fn max_reconnect_attempts(mut self, attempts: usize) -> Self {
        self.max_reconnect_attempts = Some(attempts);
        self
    }

    /// First and largest delay between reconnect attempts; delays double
    /// with jitter in between.
    pub fn reconnect_delay(mut self, initial: Duration, max: Duration) -> Self {
        self.reconnect_delay_initial = initial;
        self.reconnect_delay_max = max.max(initial);
        self
    }

    /// How long one connection attempt, handshake included, may take.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Default timeout of [`Client::request`].
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Messages a subscription may hold before new ones are dropped (and
    /// counted by [`crate::Subscriber::dropped`]).
    pub fn subscription_capacity(mut self, capacity: usize) -> Self {
        self.subscription_capacity = capacity.max(1);
        self
    }

    /// Bytes of publishes kept while disconnected; beyond it publishing
    /// fails with [`crate::Error::Disconnected`].
    pub fn reconnect_buffer_max(mut self, bytes: usize) -> Self {
        self.reconnect_buffer_max = bytes;
        self
    }

    /// How often to `PING` the server when connected (default 2 minutes). A
    /// `PING` not answered within another interval means the connection is
    /// dead (e.g. the server host vanished without closing it), and the
    /// client reconnects.
    pub fn ping_interval(mut self, interval: Duration) -> Self {
        self.ping_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// Connects with these options.
    pub async fn connect(self, url: &str) -> Result<Client> {
        Client::connect_with(url, self).await
    }
}
