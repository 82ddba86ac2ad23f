//! JetStream over the raw protocol: `$JS.API` requests, PubAcks, status
//! messages (`NATS/1.0 408 ...`) and the `$JS.ACK` reply subjects of
//! delivered messages. Shared by `js-pub` and `js-replay`.

use std::borrow::Cow;
use std::fmt;
use std::io::Write as _;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::conn::Conn;
use crate::scan::Msg;

/// Subjects every benchmark stream captures.
pub const STREAM_SUBJECTS: &str = "bench.js.>";
/// How long one API request may take.
const API_TIMEOUT: Duration = Duration::from_secs(10);
/// Read timeout while waiting for an API reply.
const API_POLL: Duration = Duration::from_millis(100);

/// Where a stream keeps its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Storage {
    File,
    Memory,
}

impl Storage {
    pub fn as_str(self) -> &'static str {
        match self {
            Storage::File => "file",
            Storage::Memory => "memory",
        }
    }
}

/// How the server was told to sync stored messages to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncMode {
    /// The server's default (nats-server: fsync every 2 minutes).
    Default,
    /// Every message is on disk before its PubAck.
    Always,
}

impl SyncMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncMode::Default => "default",
            SyncMode::Always => "always",
        }
    }
}

/// Acknowledgement policy of the replay consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AckPolicy {
    None,
    Explicit,
}

impl AckPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            AckPolicy::None => "none",
            AckPolicy::Explicit => "explicit",
        }
    }
}

/// The stream options `js-pub` and `js-replay` share.
#[derive(Debug, Clone, clap::Args)]
pub struct StreamArgs {
    /// Stream to (re)create and publish into; it captures `bench.js.>`.
    #[arg(long, default_value = "BENCH")]
    pub stream: String,
    /// Storage of the stream.
    #[arg(long, value_enum, default_value_t = Storage::File)]
    pub storage: Storage,
    /// How the server syncs the stream to disk. JetStream has no per-stream setting:
    /// nats-server needs `jetstream { sync_interval: always }` in its config file.
    /// Herald reads the stream metadata `herald.sync`, set to this value unless
    /// default (`herald serve --sync always` does it server-wide).
    #[arg(long, value_enum, default_value_t = SyncMode::Default)]
    pub sync: SyncMode,
}

/// An error reply of the JetStream API (`{"error": {...}}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ApiError {
    #[serde(default)]
    pub code: u16,
    #[serde(default)]
    pub err_code: u32,
    #[serde(default)]
    pub description: String,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (code {}, err_code {})",
            self.description, self.code, self.err_code
        )
    }
}

/// A status message: an `HMSG` whose header line carries a code, such as
/// `NATS/1.0 408 Request Timeout` or `NATS/1.0 503`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status<'a> {
    pub code: u16,
    /// The text after the code (may be empty).
    pub description: &'a str,
    /// The `Nats-Pending-Messages` header: messages a pull request will no longer get.
    pub pending_msgs: Option<u64>,
}

/// The status carried by `msg`'s headers, if any (plain data messages and
/// headers without a code have none).
pub fn parse_status<'a>(msg: &Msg<'a>) -> Option<Status<'a>> {
    parse_status_headers(&msg.payload[..msg.header_len])
}

/// [`parse_status`] on a header block (`NATS/1.0 408 Request Timeout\r\n...`).
pub fn parse_status_headers(headers: &[u8]) -> Option<Status<'_>> {
    let text = std::str::from_utf8(headers).ok()?;
    let mut lines = text.split("\r\n");
    let first = lines.next()?.strip_prefix("NATS/1.0")?;
    let first = first.trim_start_matches([' ', '\t']);
    let digits = first.len() - first.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    if digits != 3 {
        return None;
    }
    let code = first[..3].parse().ok()?;
    let description = first[3..].trim();
    let pending_msgs = lines.find_map(|line| {
        let (name, value) = line.split_once(':')?;
        if name.trim().eq_ignore_ascii_case("Nats-Pending-Messages") {
            value.trim().parse().ok()
        } else {
            None
        }
    });
    Some(Status {
        code,
        description,
        pending_msgs,
    })
}

/// A successful PubAck (`{"stream":"BENCH","seq":42}`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PubAck<'a> {
    #[serde(borrow)]
    pub stream: Cow<'a, str>,
    pub seq: u64,
    /// The message was a duplicate (same `Nats-Msg-Id`) and not stored again.
    #[serde(default)]
    pub duplicate: bool,
}

#[derive(Deserialize)]
struct PubAckReply<'a> {
    #[serde(borrow, default)]
    stream: Option<Cow<'a, str>>,
    #[serde(default)]
    seq: Option<u64>,
    #[serde(default)]
    duplicate: bool,
    #[serde(default)]
    error: Option<ApiError>,
}

/// Parses the reply to a publish: a PubAck, or why the message was not stored
/// (an `"error"` reply, a status such as 503 no responders, or garbage).
pub fn parse_pub_reply<'a>(msg: &Msg<'a>) -> Result<PubAck<'a>, String> {
    if let Some(status) = parse_status(msg) {
        return Err(match status.code {
            503 => "no responders: no stream captures the subject (503)".to_string(),
            code => format!("status {code} {}", status.description),
        });
    }
    parse_pub_ack(&msg.payload[msg.header_len..])
}

/// Parses a PubAck body (see [`parse_pub_reply`]).
pub fn parse_pub_ack(body: &[u8]) -> Result<PubAck<'_>, String> {
    let reply: PubAckReply<'_> = serde_json::from_slice(body).map_err(|e| {
        let shown = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
        format!("malformed PubAck {shown:?}: {e}")
    })?;
    if let Some(err) = reply.error {
        return Err(format!("server replied error: {err}"));
    }
    match (reply.stream, reply.seq) {
        (Some(stream), Some(seq)) => Ok(PubAck {
            stream,
            seq,
            duplicate: reply.duplicate,
        }),
        _ => Err(format!(
            "PubAck without stream or seq: {:?}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        )),
    }
}

/// What the `$JS.ACK.…` reply subject of a delivered message tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckReply {
    /// Times this message has been delivered (1 the first time).
    pub delivered: u64,
    pub stream_seq: u64,
    pub consumer_seq: u64,
    /// Messages left for the consumer after this one.
    pub pending: u64,
}

/// Parses `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>`
/// and the newer form with domain and account hash in front and a random
/// token at the end.
pub fn parse_ack_reply(subject: &[u8]) -> Option<AckReply> {
    let rest = subject.strip_prefix(b"$JS.ACK.")?;
    let mut tokens = [&[][..]; 12];
    let mut count = 0;
    for token in rest.split(|&b| b == b'.') {
        *tokens.get_mut(count)? = token;
        count += 1;
    }
    // The numbers start after stream and consumer (plus domain and hash).
    let first = match count {
        7 => 2,
        9.. => 4,
        _ => return None,
    };
    let number = |i: usize| -> Option<u64> { std::str::from_utf8(tokens[first + i]).ok()?.parse().ok() };
    Some(AckReply {
        delivered: number(0)?,
        stream_seq: number(1)?,
        consumer_seq: number(2)?,
        pending: number(4)?,
    })
}

/// A token unique to this run, for inbox subjects.
pub fn unique_token() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() ^ (d.as_secs() as u32));
    format!("hb{:x}{nanos:x}", std::process::id())
}

/// Appends `n` in decimal.
pub fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Requests to the JetStream API over one connection, each with its own
/// reply subject under one wildcard subscription.
pub struct Api {
    /// `<inbox>.` — replies go to `<inbox>.<n>`.
    prefix: String,
    next: u64,
    server: String,
}

impl Api {
    /// Subscribes `<inbox>.*` as `sid` on `conn`.
    pub fn subscribe(conn: &mut Conn, inbox: &str, sid: u32, server: &str) -> anyhow::Result<Self> {
        conn.write_all(format!("SUB {inbox}.* {sid}\r\n").as_bytes())?;
        conn.flush_roundtrip().context("subscribing the API inbox")?;
        Ok(Self {
            prefix: format!("{inbox}."),
            next: 0,
            server: server.to_owned(),
        })
    }

    /// Sends `body` to `subject` and waits for the reply. The outer error is
    /// a transport failure or no JetStream at all; the inner one an API error.
    pub fn request(
        &mut self,
        conn: &mut Conn,
        subject: &str,
        body: &Value,
    ) -> anyhow::Result<Result<Value, ApiError>> {
        self.next += 1;
        let reply = format!("{}{}", self.prefix, self.next);
        let body = if body.is_null() {
            Vec::new()
        } else {
            serde_json::to_vec(body)?
        };
        let mut frame = Vec::with_capacity(body.len() + 128);
        let _ = write!(frame, "PUB {subject} {reply} {}\r\n", body.len());
        frame.extend_from_slice(&body);
        frame.extend_from_slice(b"\r\n");
        conn.set_read_timeout(Some(API_POLL))?;
        conn.write_all(&frame)?;
        let deadline = Instant::now() + API_TIMEOUT;
        let mut answer: Option<Result<Vec<u8>, u16>> = None;
        while answer.is_none() {
            conn.read_some(|msg| {
                if msg.subject == reply.as_bytes() && answer.is_none() {
                    answer = Some(match parse_status(msg) {
                        Some(status) => Err(status.code),
                        None => Ok(msg.body().to_vec()),
                    });
                }
            })?;
            if answer.is_none() && Instant::now() > deadline {
                bail!(
                    "JetStream not available on {}: no reply to {subject} within {API_TIMEOUT:?}",
                    self.server
                );
            }
        }
        let body = match answer {
            Some(Ok(body)) => body,
            Some(Err(503)) => bail!(
                "JetStream not available on {}: no responders for {subject}",
                self.server
            ),
            Some(Err(code)) => bail!("status {code} in reply to {subject}"),
            None => unreachable!("loop ends with an answer"),
        };
        let value: Value = serde_json::from_slice(&body).with_context(|| {
            format!(
                "malformed reply to {subject}: {:?}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            )
        })?;
        match value.get("error") {
            Some(err) => Ok(Err(serde_json::from_value(err.clone()).unwrap_or_else(|_| {
                ApiError {
                    description: err.to_string(),
                    ..ApiError::default()
                }
            }))),
            None => Ok(Ok(value)),
        }
    }

    /// [`Api::request`] where an API error is a failure too.
    pub fn call(&mut self, conn: &mut Conn, subject: &str, body: &Value) -> anyhow::Result<Value> {
        match self.request(conn, subject, body)? {
            Ok(value) => Ok(value),
            Err(err) => bail!("{subject}: {err}"),
        }
    }

    /// Deletes the stream (if it exists) and creates it afresh.
    pub fn recreate_stream(&mut self, conn: &mut Conn, args: &StreamArgs) -> anyhow::Result<()> {
        let name = &args.stream;
        let deleted = self.request(conn, &format!("$JS.API.STREAM.DELETE.{name}"), &Value::Null)?;
        if let Err(err) = deleted {
            if err.code != 404 {
                bail!("deleting stream {name}: {err}");
            }
        }
        let subject = format!("$JS.API.STREAM.CREATE.{name}");
        let config = stream_config(name, args.storage, args.sync);
        let mut created = self.request(conn, &subject, &config)?;
        if created.as_ref().is_err_and(|err| err.code == 500) {
            // nats-server 2.15 fails once to create a file stream right after
            // deleting a memory one ("could not create storage directory").
            std::thread::sleep(Duration::from_millis(100));
            created = self.request(conn, &subject, &config)?;
        }
        match created {
            Ok(_) => Ok(()),
            Err(err) => bail!("creating stream {name}: {err}"),
        }
    }

    /// The stream's message count and sequence range.
    pub fn stream_state(&mut self, conn: &mut Conn, name: &str) -> anyhow::Result<StreamState> {
        let info = self.call(conn, &format!("$JS.API.STREAM.INFO.{name}"), &Value::Null)?;
        serde_json::from_value(info.get("state").cloned().unwrap_or_default())
            .with_context(|| format!("stream info of {name} without a valid state: {info}"))
    }

    /// Deletes the consumer; succeeds when it did not exist.
    pub fn delete_consumer(&mut self, conn: &mut Conn, stream: &str, name: &str) -> anyhow::Result<()> {
        let subject = format!("$JS.API.CONSUMER.DELETE.{stream}.{name}");
        match self.request(conn, &subject, &Value::Null)? {
            Err(err) if err.code != 404 => bail!("deleting consumer {name}: {err}"),
            _ => Ok(()),
        }
    }
}

/// `state` of a stream info reply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct StreamState {
    #[serde(default)]
    pub messages: u64,
    #[serde(default)]
    pub bytes: u64,
    #[serde(default)]
    pub first_seq: u64,
    #[serde(default)]
    pub last_seq: u64,
}

/// Stream metadata key through which Herald takes a per-stream sync policy.
pub const SYNC_METADATA_KEY: &str = "herald.sync";

/// The body of `$JS.API.STREAM.CREATE.<name>`.
pub fn stream_config(name: &str, storage: Storage, sync: SyncMode) -> Value {
    let mut config = json!({
        "name": name,
        "subjects": [STREAM_SUBJECTS],
        "retention": "limits",
        "storage": storage.as_str(),
        "discard": "old",
        "num_replicas": 1,
    });
    if sync != SyncMode::Default {
        config["metadata"] = json!({ SYNC_METADATA_KEY: sync.as_str() });
    }
    config
}

/// The body of `$JS.API.CONSUMER.CREATE.<stream>.<name>`: a durable pull
/// consumer delivering everything.
pub fn consumer_config(stream: &str, name: &str, ack: AckPolicy, max_ack_pending: i64) -> Value {
    let mut config = json!({
        "name": name,
        "durable_name": name,
        "deliver_policy": "all",
        "ack_policy": ack.as_str(),
        "replay_policy": "instant",
    });
    if ack == AckPolicy::Explicit {
        config["max_ack_pending"] = json!(max_ack_pending);
    }
    json!({ "stream_name": stream, "config": config })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals() {
        for n in [0u64, 7, 10, 99, 1234567890, u64::MAX] {
            let mut out = Vec::new();
            push_decimal(&mut out, n);
            assert_eq!(out, n.to_string().as_bytes());
        }
    }

    #[test]
    fn configs() {
        let c = consumer_config("S", "c", AckPolicy::None, 5);
        assert!(c["config"].get("max_ack_pending").is_none());
        let c = consumer_config("S", "c", AckPolicy::Explicit, 5);
        assert_eq!(c["config"]["max_ack_pending"], 5);
        let c = stream_config("S", Storage::Memory, SyncMode::Default);
        assert_eq!(c["storage"], "memory");
        assert!(c.get("metadata").is_none());
        let c = stream_config("S", Storage::File, SyncMode::Always);
        assert_eq!(c["metadata"]["herald.sync"], "always");
    }
}
