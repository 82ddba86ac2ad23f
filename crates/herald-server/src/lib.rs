//! Herald's server: tokio tasks that move bytes between client sockets and
//! the router core, plus configuration and HTTP monitoring.
//!
//! The main types:
//! - [`Config`]: every setting, with defaults, TOML loading and validation.
//! - [`Server`]: binds the client and monitoring listeners and runs until
//!   [`Server::shutdown`].
//! - [`Stats`]: the counters behind `/metrics` and `/varz`.
//!
//! ```no_run
//! # async fn example() -> Result<(), herald_server::ServerError> {
//! let config = herald_server::Config { port: 0, http_port: 0, ..Default::default() };
//! let server = herald_server::Server::start(config).await?;
//! println!("clients: {}", server.client_addr());
//! server.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Inside, each connection is one task (`connection.rs`) that parses what its
//! client sends and appends deliveries straight into subscribers' bounded
//! outbound buffers ([`outbound`]), flushing them once per read buffer.

pub mod config;
mod connection;
mod http;
mod jetstream;
mod local;
mod monitor;
pub mod outbound;
mod publisher;
mod router;
mod server;
pub mod stats;
mod webhooks;

pub use config::{Config, ConfigError};
pub use http::admin::V1_ROUTES;
pub use jetstream::settings::SyncPolicy;
pub use server::{Server, ServerError};
pub use stats::Stats;

pub(crate) use server::ServerState;
