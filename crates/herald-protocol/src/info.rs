//! The JSON bodies of `INFO` and `CONNECT`.

use serde::{Deserialize, Serialize};

/// The body of the `INFO` a server sends when a client connects.
///
/// Field names are those nats-server uses, since clients read them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerInfo {
    /// Unique id of this server process.
    pub server_id: String,
    /// Human-readable server name.
    pub server_name: String,
    /// Server version.
    pub version: String,
    /// Protocol version: 1 supports dynamic `INFO` and headers.
    pub proto: i32,
    /// Runtime the server was built with (clients log it).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub go: String,
    /// Host the server listens on.
    pub host: String,
    /// Port the server listens on.
    pub port: u16,
    /// Whether the server supports `HPUB`/`HMSG`.
    pub headers: bool,
    /// Largest payload the server accepts.
    pub max_payload: usize,
    /// Id the server gave this connection.
    pub client_id: u64,
    /// Address the connection comes from, as the server sees it.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub client_ip: String,
    /// Whether the client must authenticate.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub auth_required: bool,
    /// Whether the client must use TLS.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub tls_required: bool,
    /// Whether JetStream is available.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub jetstream: bool,
    /// Other URLs of the cluster clients may connect to.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub connect_urls: Vec<String>,
    /// Set when the server is shutting down and clients should move away.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub ldm: bool,
}

fn default_true() -> bool {
    true
}

/// The body of the `CONNECT` a client sends after `INFO`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConnectInfo {
    /// Acknowledge every operation with `+OK`.
    pub verbose: bool,
    /// Strict checking of subjects and operations.
    pub pedantic: bool,
    /// The client wants TLS.
    pub tls_required: bool,
    /// Client name, shown in monitoring.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Client language.
    pub lang: String,
    /// Client library version.
    pub version: String,
    /// Protocol version the client speaks (1 = dynamic INFO and headers).
    pub protocol: i32,
    /// Deliver the client's own messages to its own subscriptions.
    #[serde(default = "default_true")]
    pub echo: bool,
    /// The client understands `HMSG`.
    pub headers: bool,
    /// The client wants a 503 status message when a request has no responders.
    pub no_responders: bool,
    /// Token for token authentication.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_token: Option<String>,
    /// User for user/password authentication.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Password for user/password authentication.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pass: Option<String>,
}

impl Default for ConnectInfo {
    fn default() -> Self {
        ConnectInfo {
            verbose: false,
            pedantic: false,
            tls_required: false,
            name: None,
            lang: String::new(),
            version: String::new(),
            protocol: 0,
            echo: true,
            headers: false,
            no_responders: false,
            auth_token: None,
            user: None,
            pass: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_defaults_echo_on() {
        let info: ConnectInfo = serde_json::from_str("{}").unwrap();
        assert!(info.echo);
        assert!(!info.verbose);
        let info: ConnectInfo =
            serde_json::from_str(r#"{"echo":false,"headers":true,"unknown_field":1}"#).unwrap();
        assert!(!info.echo);
        assert!(info.headers);
    }
}
