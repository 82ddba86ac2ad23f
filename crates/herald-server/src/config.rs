//! Server configuration: defaults, the TOML file format and validation.
//!
//! Every key can also be given as a `herald serve` flag of the same name
//! (underscores become dashes); flags win over the file.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;

/// Default client port. Not 4222, so Herald can run beside a NATS server.
pub const PORT_DEFAULT: u16 = 4333;
/// Default HTTP monitoring port.
pub const HTTP_PORT_DEFAULT: u16 = 8333;
/// Default bound on each connection's unsent outbound bytes (64 MiB).
pub const MAX_PENDING_DEFAULT: usize = 64 * 1024 * 1024;
/// Default bound on simultaneous client connections.
pub const MAX_CONNECTIONS_DEFAULT: usize = 64 * 1024;
/// Default keepalive PING interval.
pub const PING_INTERVAL_MS_DEFAULT: u64 = 120_000;
/// Default number of unanswered PINGs before a connection is stale.
pub const MAX_PINGS_OUT_DEFAULT: u32 = 2;
/// Default time a connection may stay unwritable with data pending.
pub const WRITE_DEADLINE_MS_DEFAULT: u64 = 10_000;
/// Default interval between fsyncs of streams with sync policy `interval`.
pub const SYNC_INTERVAL_MS_DEFAULT: u64 = 1_000;
/// Default limit on receiving an HTTP request head, and on an idle
/// keep-alive connection: longer than the 60 s idle timeout load balancers
/// commonly use, so they, not Herald, close idle connections.
pub const HTTP_IDLE_TIMEOUT_MS_DEFAULT: u64 = 75_000;
/// Default subject of CloudEvents posted without one: their type.
pub const HTTP_SUBJECT_TEMPLATE_DEFAULT: &str = "{type}";

/// Why a configuration could not be loaded.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, with line and column.
        message: String,
    },
    /// A value is out of its allowed range.
    #[error("invalid config value {key}: {reason}")]
    Invalid {
        /// The key.
        key: &'static str,
        /// Why.
        reason: String,
    },
}

/// Everything `herald serve` can be told. Field names are the TOML keys.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on for clients.
    pub host: IpAddr,
    /// Client port; 0 picks a free one.
    pub port: u16,
    /// HTTP port (monitoring and the `/v1` API); 0 picks a free one.
    pub http_port: u16,
    /// Directory for durable data (created if missing).
    pub data_dir: PathBuf,
    /// Log filter, e.g. `info` or `herald_server=debug`.
    pub log_level: String,
    /// Name shown in `INFO` and monitoring; defaults to the server id.
    pub server_name: Option<String>,
    /// Largest accepted payload in bytes (headers included).
    pub max_payload: usize,
    /// Longest accepted control line in bytes.
    pub max_control_line: usize,
    /// Most simultaneous NATS client connections; HTTP connections have the
    /// same bound of their own.
    pub max_connections: usize,
    /// Most subscriptions per connection; 0 means no limit.
    pub max_subscriptions: usize,
    /// Most unsent bytes buffered for one connection before it is cut off as
    /// a slow consumer.
    pub max_pending: usize,
    /// Interval between keepalive PINGs.
    pub ping_interval_ms: u64,
    /// Unanswered PINGs after which a connection is closed as stale.
    pub max_pings_out: u32,
    /// How long a connection may stay unwritable with data pending before it
    /// is cut off as a slow consumer.
    pub write_deadline_ms: u64,
    /// When stream writes reach the device: `always` (fsync before each
    /// PubAck, group commit), `interval` (fsync every `sync_interval_ms`;
    /// PubAcks wait for the OS write only) or `never`. A stream may override
    /// it with the metadata key `herald.sync`.
    pub sync: crate::SyncPolicy,
    /// Interval of the periodic fsync for sync policy `interval`.
    pub sync_interval_ms: u64,
    /// Subject of a CloudEvent posted to `/v1/events` (no subject in the
    /// path): `{type}`, `{source}` and `{subject}` are replaced by those
    /// attributes.
    pub http_subject_template: String,
    /// Most milliseconds an HTTP client may take to send a request head,
    /// counted from when the connection starts waiting for it: also how
    /// long an idle keep-alive connection stays open.
    pub http_idle_timeout_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            host: IpAddr::from([0, 0, 0, 0]),
            port: PORT_DEFAULT,
            http_port: HTTP_PORT_DEFAULT,
            data_dir: PathBuf::from("./data"),
            log_level: "info".to_string(),
            server_name: None,
            max_payload: herald_protocol::MAX_PAYLOAD_DEFAULT,
            max_control_line: herald_protocol::MAX_CONTROL_LINE_DEFAULT,
            max_connections: MAX_CONNECTIONS_DEFAULT,
            max_subscriptions: 0,
            max_pending: MAX_PENDING_DEFAULT,
            ping_interval_ms: PING_INTERVAL_MS_DEFAULT,
            max_pings_out: MAX_PINGS_OUT_DEFAULT,
            write_deadline_ms: WRITE_DEADLINE_MS_DEFAULT,
            sync: crate::SyncPolicy::Interval,
            sync_interval_ms: SYNC_INTERVAL_MS_DEFAULT,
            http_subject_template: HTTP_SUBJECT_TEMPLATE_DEFAULT.to_string(),
            http_idle_timeout_ms: HTTP_IDLE_TIMEOUT_MS_DEFAULT,
        }
    }
}

/// Upper bound on `max_payload`: what a single frame may reasonably carry.
pub const MAX_PAYLOAD_LIMIT: usize = 64 * 1024 * 1024;

impl Config {
    /// Reads a TOML file; keys not in it keep their defaults.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text).map_err(|message| ConfigError::Parse {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Parses TOML text.
    pub fn from_toml(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// Checks ranges and relations between values.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason: &str| {
            Err(ConfigError::Invalid {
                key,
                reason: reason.to_string(),
            })
        };
        if self.max_payload == 0 || self.max_payload > MAX_PAYLOAD_LIMIT {
            return invalid("max_payload", "must be between 1 and 67108864 bytes");
        }
        if self.max_control_line < 64 {
            return invalid("max_control_line", "must be at least 64 bytes");
        }
        if self.max_connections == 0 {
            return invalid("max_connections", "must be at least 1");
        }
        if self.max_pending < self.max_payload {
            return invalid("max_pending", "must be at least max_payload");
        }
        if self.ping_interval_ms == 0 {
            return invalid("ping_interval_ms", "must be at least 1");
        }
        if self.max_pings_out == 0 {
            return invalid("max_pings_out", "must be at least 1");
        }
        if self.write_deadline_ms == 0 {
            return invalid("write_deadline_ms", "must be at least 1");
        }
        if self.http_idle_timeout_ms == 0 {
            return invalid("http_idle_timeout_ms", "must be at least 1");
        }
        if self.sync_interval_ms == 0 {
            return invalid("sync_interval_ms", "must be at least 1");
        }
        if !["{type}", "{source}", "{subject}"]
            .iter()
            .any(|p| self.http_subject_template.contains(p))
        {
            return invalid(
                "http_subject_template",
                "must contain at least one of {type}, {source} or {subject}",
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_documented_ports() {
        let config = Config::default();
        config.validate().unwrap();
        assert_eq!(config.port, 4333);
        assert_eq!(config.http_port, 8333);
        assert_eq!(config.max_pending, 64 * 1024 * 1024);
    }

    #[test]
    fn toml_overrides_and_rejects_unknown_keys() {
        let config = Config::from_toml("port = 5000\nmax_payload = 2048\n").unwrap();
        assert_eq!(config.port, 5000);
        assert_eq!(config.max_payload, 2048);
        assert_eq!(config.http_port, 8333);
        let err = Config::from_toml("prot = 5000\n").unwrap_err();
        assert!(err.contains("prot"), "{err}");
    }

    #[test]
    fn validation_rejects_nonsense() {
        let config = Config {
            max_payload: 0,
            ..Config::default()
        };
        assert!(config.validate().is_err());
        let config = Config {
            max_pending: 10,
            ..Config::default()
        };
        assert!(config.validate().is_err());
    }
}
