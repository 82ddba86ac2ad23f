//! `herald webhook add|ls|info|rm`: webhook subscriptions, through the HTTP
//! API (`/v1/webhooks`) of a running server.

use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use serde_json::{json, Map, Value};

use super::output::{self, out, outln, Table};
use super::runtime;

const HTTP_URL_DEFAULT: &str = "http://127.0.0.1:8333";
/// Longest wait for one API answer (a create sets up a stream and consumer).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Options of `herald webhook`.
#[derive(Debug, clap::Args)]
pub struct WebhookArgs {
    #[command(subcommand)]
    command: WebhookCommand,
    /// Herald's HTTP API (the server's --http-port).
    #[arg(long, env = "HERALD_HTTP_URL", default_value = HTTP_URL_DEFAULT, global = true)]
    http_url: String,
    /// Print the API's JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, clap::Subcommand)]
enum WebhookCommand {
    /// Create a webhook: POST each message on SUBJECT to URL, signed, with retries.
    Add(Box<AddArgs>),
    /// List the webhooks with their delivery counts.
    #[command(alias = "list")]
    Ls,
    /// Show one webhook's settings and delivery counts.
    Info {
        /// Webhook name.
        name: String,
    },
    /// Delete a webhook: stop delivering, remove its consumer (and the stream Herald made for it).
    #[command(alias = "delete")]
    Rm {
        /// Webhook name.
        name: String,
    },
}

#[derive(Debug, clap::Args)]
struct AddArgs {
    /// Subject filter; `*` matches one token, `>` the rest.
    subject: String,
    /// Endpoint URL (http or https).
    url: String,
    /// Webhook name (letters, digits, `_`, `-`) [default: generated].
    #[arg(long)]
    name: Option<String>,
    /// Stream to read [default: the one capturing SUBJECT, else one made for the webhook].
    #[arg(long)]
    stream: Option<String>,
    /// Signing secret, `whsec_<base64>` [default: generated, printed once].
    #[arg(long)]
    secret: Option<String>,
    /// Attempts per message before dead-lettering [default: 10].
    #[arg(long)]
    max_attempts: Option<u64>,
    /// Longest a message is retried after it was stored, in ms [default: 86400000].
    #[arg(long)]
    max_age_ms: Option<u64>,
    /// Wait before the first retry, in ms; doubles per attempt [default: 1000].
    #[arg(long)]
    backoff_initial_ms: Option<u64>,
    /// Longest wait between attempts, in ms [default: 3600000].
    #[arg(long)]
    backoff_max_ms: Option<u64>,
    /// Longest one request may take, in ms [default: 10000].
    #[arg(long)]
    timeout_ms: Option<u64>,
    /// Requests in flight at most [default: 4].
    #[arg(long)]
    concurrency: Option<u64>,
    /// One message at a time, in stream order; a failing message holds back the rest.
    #[arg(long)]
    ordered: bool,
    /// Where messages go after the last attempt [default: herald.webhooks.<name>.dead].
    #[arg(long)]
    dead_letter_subject: Option<String>,
}

pub fn run_webhook(args: WebhookArgs) -> anyhow::Result<()> {
    runtime()?.block_on(async move {
        let api = Api::new(&args.http_url)?;
        match args.command {
            WebhookCommand::Add(add) => {
                let webhook = api
                    .send(reqwest::Method::POST, "/v1/webhooks", Some(add_body(*add)))
                    .await?;
                if args.json {
                    outln!("{webhook}");
                } else {
                    out!("{}", details("Created webhook", &webhook));
                    outln!("\nThe secret is shown only now: keep it to verify signatures.");
                }
            }
            WebhookCommand::Ls => {
                let list = api.send(reqwest::Method::GET, "/v1/webhooks", None).await?;
                if args.json {
                    outln!("{list}");
                } else {
                    out!("{}", table(&list));
                }
            }
            WebhookCommand::Info { name } => {
                let webhook = api.send(reqwest::Method::GET, &path_of(&name), None).await?;
                if args.json {
                    outln!("{webhook}");
                } else {
                    out!("{}", details(&format!("Webhook {name}"), &webhook));
                }
            }
            WebhookCommand::Rm { name } => {
                api.send(reqwest::Method::DELETE, &path_of(&name), None).await?;
                if args.json {
                    outln!("{}", json!({ "deleted": name }));
                } else {
                    outln!("Deleted webhook {name}");
                }
            }
        }
        Ok(())
    })
}

fn path_of(name: &str) -> String {
    // Names are [A-Za-z0-9_-]; anything else cannot exist, and must not
    // change the path.
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("/v1/webhooks/{encoded}")
}

fn add_body(add: AddArgs) -> Value {
    let mut body = Map::new();
    body.insert("subject".into(), add.subject.into());
    body.insert("url".into(), add.url.into());
    let mut text = |key: &str, value: Option<String>| {
        if let Some(value) = value {
            body.insert(key.into(), value.into());
        }
    };
    text("name", add.name);
    text("stream", add.stream);
    text("secret", add.secret);
    text("dead_letter_subject", add.dead_letter_subject);
    let numbers = [
        ("max_attempts", add.max_attempts),
        ("max_age_ms", add.max_age_ms),
        ("backoff_initial_ms", add.backoff_initial_ms),
        ("backoff_max_ms", add.backoff_max_ms),
        ("timeout_ms", add.timeout_ms),
        ("concurrency", add.concurrency),
    ];
    for (key, value) in numbers {
        if let Some(value) = value {
            body.insert(key.into(), value.into());
        }
    }
    if add.ordered {
        body.insert("ordered".into(), true.into());
    }
    Value::Object(body)
}

/// The HTTP API of one server.
struct Api {
    base: String,
    client: reqwest::Client,
}

impl Api {
    fn new(url: &str) -> anyhow::Result<Api> {
        let parsed = reqwest::Url::parse(url).with_context(|| format!("invalid --http-url {url:?}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            bail!("invalid --http-url {url:?}: use http://HOST:PORT");
        }
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .context("cannot start the HTTP client")?;
        Ok(Api {
            base: url.trim_end_matches('/').to_string(),
            client,
        })
    }

    /// Sends one request; the JSON answer (`Null` for none), or an error
    /// with the problem's detail.
    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let mut request = self.client.request(method, &url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(|e| {
            if e.is_connect() {
                anyhow!(
                    "cannot connect to {}: connection refused or unreachable (is `herald serve` running, with its HTTP API on that port?)",
                    self.base
                )
            } else if e.is_timeout() {
                anyhow!("no answer from {} within {REQUEST_TIMEOUT:?}", self.base)
            } else {
                anyhow!("request to {url} failed: {e}")
            }
        })?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .with_context(|| format!("reading the answer of {url}"))?;
        let json: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        if !status.is_success() {
            let detail = json
                .get("detail")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| json.to_string());
            bail!("{detail} (HTTP {})", status.as_u16());
        }
        Ok(json)
    }
}

fn text(value: &Value, key: &str) -> String {
    match value.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

fn number(value: &Value, key: &str) -> String {
    value.get(key).and_then(Value::as_u64).unwrap_or(0).to_string()
}

fn table(list: &Value) -> String {
    let mut table = Table::new(&[
        "NAME",
        "SUBJECT",
        "URL",
        "STREAM",
        ">DELIVERED",
        ">PENDING",
        ">FAILED",
        ">DEAD",
    ]);
    let empty = Vec::new();
    let hooks = list.get("webhooks").and_then(Value::as_array).unwrap_or(&empty);
    for hook in hooks {
        let stats = hook.get("stats").cloned().unwrap_or(Value::Null);
        table.row(vec![
            text(hook, "name"),
            text(hook, "subject"),
            text(hook, "url"),
            text(hook, "stream"),
            number(&stats, "delivered"),
            number(&stats, "pending"),
            number(&stats, "failed_attempts"),
            number(&stats, "dead_lettered"),
        ]);
    }
    if hooks.is_empty() {
        return "No webhooks\n".into();
    }
    table.render()
}

fn details(title: &str, hook: &Value) -> String {
    let mut fields: Vec<(&str, String)> = vec![
        ("Name", text(hook, "name")),
        ("Subject", text(hook, "subject")),
        ("URL", text(hook, "url")),
        ("Stream", text(hook, "stream")),
    ];
    if hook.get("secret").is_some() {
        fields.push(("Secret", text(hook, "secret")));
    }
    fields.extend([
        ("Max attempts", number(hook, "max_attempts")),
        ("Max age", ms(hook, "max_age_ms")),
        (
            "Backoff",
            format!(
                "{} to {}",
                ms(hook, "backoff_initial_ms"),
                ms(hook, "backoff_max_ms")
            ),
        ),
        ("Timeout", ms(hook, "timeout_ms")),
        ("Concurrency", number(hook, "concurrency")),
        ("Ordered", text(hook, "ordered")),
        ("Dead letters to", text(hook, "dead_letter_subject")),
        ("Created", text(hook, "created")),
    ]);
    if let Some(stats) = hook.get("stats") {
        fields.extend([
            ("Delivered", number(stats, "delivered")),
            ("Attempts", number(stats, "attempts")),
            ("Failed attempts", number(stats, "failed_attempts")),
            ("Dead-lettered", number(stats, "dead_lettered")),
            ("Pending", number(stats, "pending")),
        ]);
        if stats.get("last_status").is_some() {
            fields.push(("Last status", number(stats, "last_status")));
        }
        if stats.get("last_error").is_some() {
            fields.push(("Last error", text(stats, "last_error")));
        }
    }
    output::fields(title, &fields)
}

fn ms(value: &Value, key: &str) -> String {
    let n = value.get(key).and_then(Value::as_u64).unwrap_or(0);
    output::duration(Duration::from_millis(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cannot_escape_the_webhook_path() {
        assert_eq!(path_of("orders_1-x"), "/v1/webhooks/orders_1-x");
        assert_eq!(path_of("../streams"), "/v1/webhooks/%2E%2E%2Fstreams");
    }

    #[test]
    fn only_given_options_are_sent() {
        let add = AddArgs {
            subject: "a.>".into(),
            url: "http://h/".into(),
            name: Some("n".into()),
            stream: None,
            secret: None,
            max_attempts: Some(3),
            max_age_ms: None,
            backoff_initial_ms: None,
            backoff_max_ms: None,
            timeout_ms: None,
            concurrency: None,
            ordered: true,
            dead_letter_subject: None,
        };
        assert_eq!(
            add_body(add),
            json!({"subject": "a.>", "url": "http://h/", "name": "n", "max_attempts": 3, "ordered": true})
        );
    }
}
