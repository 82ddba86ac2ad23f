//! Binding the listeners, accepting connections, and shutting down.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use herald_protocol::ServerInfo;
use thiserror::Error;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{Config, ConfigError};
use crate::router::Router;
use crate::stats::Stats;

/// How long shutdown waits for connections to finish their last writes.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Why the server could not start.
#[derive(Debug, Error)]
pub enum ServerError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The data directory could not be created.
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// State shared by every task of one server.
pub(crate) struct ServerState {
    pub config: Config,
    pub router: Router,
    pub stats: Stats,
    /// The `INFO` sent to each client, before per-client fields are set.
    pub info: ServerInfo,
    pub next_client_id: AtomicU64,
    /// Open connections by id, for monitoring. Touched on connect and close only.
    pub clients: parking_lot::Mutex<rustc_hash::FxHashMap<u64, Arc<crate::router::ClientShared>>>,
    pub next_touch_mark: AtomicU64,
    pub started: Instant,
    pub started_at: SystemTime,
    /// Streams and consumers.
    pub jetstream: crate::jetstream::JetStream,
    /// Counters of the HTTP front end.
    pub http_stats: crate::http::stats::HttpStats,
    /// Counters of each webhook, for `/metrics`.
    pub webhooks: crate::webhooks::WebhookMetrics,
}

/// A running server.
pub struct Server {
    state: Arc<ServerState>,
    client_addr: SocketAddr,
    http_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    accept_task: JoinHandle<()>,
    http_task: JoinHandle<()>,
}

impl Server {
    /// Validates `config`, creates the data directory, binds both listeners
    /// and starts serving.
    pub async fn start(config: Config) -> Result<Server, ServerError> {
        config.validate()?;
        std::fs::create_dir_all(&config.data_dir).map_err(|source| ServerError::DataDir {
            path: config.data_dir.clone(),
            source,
        })?;
        let (listener, client_addr) = bind(SocketAddr::new(config.host, config.port)).await?;
        let (http_listener, http_addr) = bind(SocketAddr::new(config.host, config.http_port)).await?;

        let server_id = format!("H{:016X}{:016X}", fastrand::u64(..), fastrand::u64(..));
        let info = ServerInfo {
            server_name: config.server_name.clone().unwrap_or_else(|| server_id.clone()),
            server_id,
            version: env!("CARGO_PKG_VERSION").to_string(),
            proto: 1,
            go: format!("herald {}", env!("CARGO_PKG_VERSION")),
            host: config.host.to_string(),
            port: client_addr.port(),
            headers: true,
            max_payload: config.max_payload,
            ..ServerInfo::default()
        };
        let (shutdown, shutdown_rx) = watch::channel(false);
        let jetstream = crate::jetstream::JetStream::new(
            &config.data_dir,
            config.sync,
            config.sync_interval_ms,
            shutdown_rx.clone(),
        );
        let state = Arc::new(ServerState {
            jetstream,
            http_stats: Default::default(),
            webhooks: Default::default(),
            config,
            router: Router::new(),
            stats: Stats::default(),
            info,
            next_client_id: AtomicU64::new(1),
            clients: Default::default(),
            next_touch_mark: AtomicU64::new(1),
            started: Instant::now(),
            started_at: SystemTime::now(),
        });
        crate::jetstream::start(&state);
        let accept_task = tokio::spawn(accept_loop(state.clone(), listener, shutdown_rx.clone()));
        let local = crate::local::Local::new(state.clone());
        // Webhook deliveries run until shutdown; their definitions load
        // before the HTTP API can create more.
        let webhooks = crate::webhooks::Webhooks::start(state.clone(), local.clone(), shutdown_rx.clone());
        let http_task = tokio::spawn(crate::http::serve(
            state.clone(),
            local,
            webhooks,
            http_listener,
            shutdown_rx,
        ));
        tracing::info!(%client_addr, %http_addr, server_id = %state.info.server_id, "herald started");
        Ok(Server {
            state,
            client_addr,
            http_addr,
            shutdown,
            accept_task,
            http_task,
        })
    }

    /// Where clients connect.
    pub fn client_addr(&self) -> SocketAddr {
        self.client_addr
    }

    /// Where the HTTP monitoring endpoints are.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The server's counters.
    pub fn stats(&self) -> &Stats {
        &self.state.stats
    }

    /// Stops accepting, tells every connection to close after writing what it
    /// has queued, and waits (a bounded time) for them to finish.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.accept_task.await;
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        while self.state.stats.connections.load(Ordering::Relaxed) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let _ = self.http_task.await;
        let state = self.state.clone();
        let _ = tokio::task::spawn_blocking(move || state.jetstream.sync_all()).await;
        tracing::info!("herald stopped");
    }
}

/// Binds `addr`, returning the listener and the address it got (the port
/// may have been 0).
async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), ServerError> {
    let bind_error = |source| ServerError::Bind { addr, source };
    let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
    let local = listener.local_addr().map_err(bind_error)?;
    Ok((listener, local))
}

async fn accept_loop(state: Arc<ServerState>, listener: TcpListener, mut shutdown: watch::Receiver<bool>) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.changed() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => admit(&state, stream, peer, &shutdown),
            Err(e) => {
                // Typically out of file descriptors: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

fn admit(state: &Arc<ServerState>, stream: TcpStream, peer: SocketAddr, shutdown: &watch::Receiver<bool>) {
    let stats = &state.stats;
    let open = stats.connections.fetch_add(1, Ordering::Relaxed);
    if open >= state.config.max_connections as u64 {
        stats.connections.fetch_sub(1, Ordering::Relaxed);
        stats.rejected_connections.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(%peer, "maximum connections exceeded");
        // Best effort: the client learns why before the socket closes.
        let _ = stream.try_write(b"-ERR 'maximum connections exceeded'\r\n");
        return;
    }
    stats.total_connections.fetch_add(1, Ordering::Relaxed);
    tokio::spawn(crate::connection::serve_connection(
        state.clone(),
        stream,
        peer,
        shutdown.clone(),
    ));
}
