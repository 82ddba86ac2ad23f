//! `herald pub|sub|req|reply`: the command-line client, built on herald-client;
//! `herald stream|consumer|kv`: JetStream management, in the submodules.

mod consumer;
mod events;
mod kv;
mod output;
mod stream;
mod webhook;

pub use consumer::{run_consumer, ConsumerArgs};
pub use events::{run_events, EventsArgs};
pub use kv::{run_kv, KvArgs};
pub use stream::{run_stream, StreamArgs};
pub use webhook::{run_webhook, WebhookArgs};

use std::io::Write as _;
use std::time::Duration;

use anyhow::{bail, Context as _};
use herald_client::{Client, ConnectOptions, Error, Headers, Message};

const SERVER_DEFAULT: &str = "nats://127.0.0.1:4333";

/// Where to connect; shared by every client command.
#[derive(Debug, clap::Args)]
pub struct ServerArg {
    /// Server URL.
    #[arg(long, short = 's', env = "HERALD_SERVER", default_value = SERVER_DEFAULT)]
    server: String,
}

/// Options of `herald pub`.
#[derive(Debug, clap::Args)]
pub struct PubArgs {
    /// Subject to publish to.
    subject: String,
    /// Message payload.
    data: String,
    /// Header as NAME:VALUE; repeat for more.
    #[arg(long = "header", short = 'H', value_name = "NAME:VALUE", value_parser = parse_header)]
    headers: Vec<(String, String)>,
    /// Publish the message this many times; `{{i}}` in DATA becomes the message number (1-based).
    #[arg(long, default_value_t = 1)]
    count: u64,
    #[command(flatten)]
    server: ServerArg,
}

/// Options of `herald sub`.
#[derive(Debug, clap::Args)]
pub struct SubArgs {
    /// Subject to subscribe to; `*` matches one token, `>` the rest.
    subject: String,
    /// Join this queue group: each message goes to one member of the group.
    #[arg(long, short = 'q')]
    queue: Option<String>,
    /// Exit after this many messages.
    #[arg(long)]
    count: Option<u64>,
    #[command(flatten)]
    server: ServerArg,
}

/// Options of `herald req`.
#[derive(Debug, clap::Args)]
pub struct ReqArgs {
    /// Subject to send the request to.
    subject: String,
    /// Request payload.
    data: String,
    /// Header as NAME:VALUE; repeat for more.
    #[arg(long = "header", short = 'H', value_name = "NAME:VALUE", value_parser = parse_header)]
    headers: Vec<(String, String)>,
    /// How long to wait for the reply, e.g. 500ms, 2s, 1m.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    timeout: Duration,
    #[command(flatten)]
    server: ServerArg,
}

/// Options of `herald reply`.
#[derive(Debug, clap::Args)]
pub struct ReplyArgs {
    /// Subject to answer requests on.
    subject: String,
    /// Response payload sent to every request.
    response: String,
    /// Queue group to join, so several responders share the requests [default: herald-reply].
    #[arg(long, short = 'q', default_value = "herald-reply")]
    queue: String,
    /// Exit after answering this many requests.
    #[arg(long)]
    count: Option<u64>,
    #[command(flatten)]
    server: ServerArg,
}

fn parse_header(text: &str) -> Result<(String, String), String> {
    match text.split_once(':') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_string(), value.trim().to_string()))
        }
        _ => Err(format!("expected NAME:VALUE, got {text:?}")),
    }
}

/// Parses a Go-style duration (`250ms`, `2s`, `1m`, `1h`, `1m30s`, `1.5s`)
/// or a bare number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let invalid = || format!("invalid duration {text:?}; use e.g. 500ms, 2s, 1m or 1h");
    if let Some(nanos) = herald_protocol::jetstream::time::parse_go_duration(text) {
        return u64::try_from(nanos)
            .map(Duration::from_nanos)
            .map_err(|_| invalid());
    }
    match text.parse::<f64>() {
        Ok(n) if n.is_finite() && n >= 0.0 => Ok(Duration::from_secs_f64(n)),
        _ => Err(invalid()),
    }
}

fn headers_of(pairs: &[(String, String)]) -> Option<Headers> {
    if pairs.is_empty() {
        return None;
    }
    let mut headers = Headers::new();
    for (name, value) in pairs {
        headers.append(name.clone(), value.clone());
    }
    Some(headers)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Connects once, without retrying, with an error that says what to do.
async fn connect(server: &ServerArg, name: &str) -> anyhow::Result<Client> {
    connect_url(&server.server, name).await
}

async fn connect_url(server: &str, name: &str) -> anyhow::Result<Client> {
    let options = ConnectOptions::new()
        .name(name)
        .connect_timeout(Duration::from_secs(3))
        .max_reconnect_attempts(10);
    match options.connect(server).await {
        Ok(client) => Ok(client),
        Err(Error::ConnectionRefused { url }) => {
            bail!("cannot connect to {url}: connection refused (is `herald serve` running?)")
        }
        Err(Error::Unreachable { url, source }) => {
            bail!("cannot connect to {url}: {source} (is `herald serve` running?)")
        }
        Err(e) => Err(e).with_context(|| format!("cannot connect to {server}")),
    }
}

fn print_message(out: &mut impl std::io::Write, n: u64, message: &Message) -> std::io::Result<()> {
    writeln!(out, "[#{n}] Received on \"{}\"", message.subject)?;
    if let Some(reply) = &message.reply {
        writeln!(out, "Reply: {reply}")?;
    }
    if let Some(headers) = &message.headers {
        for (name, value) in headers.iter() {
            writeln!(out, "{name}: {value}")?;
        }
    }
    writeln!(out, "{}", String::from_utf8_lossy(&message.payload))?;
    writeln!(out)?;
    out.flush()
}

/// Publishes one message; while reconnecting with a full buffer, waits for
/// the connection to come back and tries again.
async fn publish_one(
    client: &Client,
    subject: &str,
    headers: Option<&Headers>,
    data: &[u8],
) -> Result<(), Error> {
    loop {
        let sent = match headers {
            Some(h) => client.publish_with_headers(subject, h, data),
            None => client.publish(subject, data),
        };
        match sent {
            Err(Error::Disconnected) => {
                let mut state = client.state_changes();
                let back = state.wait_for(|s| *s != herald_client::ConnectionState::Reconnecting);
                if tokio::time::timeout(Duration::from_secs(30), back).await.is_err() {
                    return Err(Error::Disconnected);
                }
            }
            other => return other,
        }
    }
}

pub fn run_pub(args: PubArgs) -> anyhow::Result<()> {
    runtime()?.block_on(async move {
        let client = connect(&args.server, "herald-pub").await?;
        let headers = headers_of(&args.headers);
        let numbered = args.data.contains("{{i}}");
        for i in 1..=args.count {
            let data = if numbered {
                args.data.replace("{{i}}", &i.to_string())
            } else {
                args.data.clone()
            };
            publish_one(&client, &args.subject, headers.as_ref(), data.as_bytes())
                .await
                .with_context(|| format!("cannot publish to {}", args.subject))?;
            if i % 10_000 == 0 {
                client.flush().await?;
            }
        }
        client
            .flush()
            .await
            .context("the server did not confirm the messages")?;
        println!("Published {} message(s) to {}", args.count, args.subject);
        client.close().await;
        Ok(())
    })
}

pub fn run_sub(args: SubArgs) -> anyhow::Result<()> {
    runtime()?.block_on(async move {
        let client = connect(&args.server, "herald-sub").await?;
        let mut sub = match &args.queue {
            Some(queue) => client.queue_subscribe(&args.subject, queue).await?,
            None => client.subscribe(&args.subject).await?,
        };
        client
            .flush()
            .await
            .context("the server did not confirm the subscription")?;
        match &args.queue {
            Some(queue) => eprintln!("Listening on {} in queue group {queue}", args.subject),
            None => eprintln!("Listening on {}", args.subject),
        }
        let mut n = 0;
        loop {
            let message = tokio::select! {
                m = sub.next() => m,
                _ = tokio::signal::ctrl_c() => break,
            };
            let Some(message) = message else {
                bail!("the connection to {} was closed", args.server.server);
            };
            n += 1;
            print_message(&mut std::io::stdout().lock(), n, &message)?;
            if args.count.is_some_and(|count| n >= count) {
                break;
            }
        }
        client.close().await;
        Ok(())
    })
}

pub fn run_req(args: ReqArgs) -> anyhow::Result<()> {
    runtime()?.block_on(async move {
        let client = connect(&args.server, "herald-req").await?;
        let reply = match headers_of(&args.headers) {
            Some(h) => {
                client
                    .request_with_headers(&args.subject, &h, args.data, args.timeout)
                    .await
            }
            None => {
                client
                    .request_with_timeout(&args.subject, args.data, args.timeout)
                    .await
            }
        };
        let reply = match reply {
            Ok(reply) => reply,
            Err(Error::NoResponders { subject }) => bail!("no responders on {subject}"),
            Err(Error::Timeout) => bail!("no reply on {} within {:?}", args.subject, args.timeout),
            Err(e) => return Err(e).context("request failed"),
        };
        let mut out = std::io::stdout().lock();
        if let Some(headers) = &reply.headers {
            for (name, value) in headers.iter() {
                writeln!(out, "{name}: {value}")?;
            }
        }
        writeln!(out, "{}", String::from_utf8_lossy(&reply.payload))?;
        drop(out);
        client.close().await;
        Ok(())
    })
}

pub fn run_reply(args: ReplyArgs) -> anyhow::Result<()> {
    runtime()?.block_on(async move {
        let client = connect(&args.server, "herald-reply").await?;
        let mut requests = client.queue_subscribe(&args.subject, &args.queue).await?;
        client
            .flush()
            .await
            .context("the server did not confirm the subscription")?;
        eprintln!(
            "Answering requests on {} (queue group {})",
            args.subject, args.queue
        );
        let mut n = 0;
        loop {
            let request = tokio::select! {
                m = requests.next() => m,
                _ = tokio::signal::ctrl_c() => break,
            };
            let Some(request) = request else {
                bail!("the connection to {} was closed", args.server.server);
            };
            if request.reply.is_none() {
                continue;
            }
            client.respond(&request, args.response.as_bytes())?;
            n += 1;
            if args.count.is_some_and(|count| n >= count) {
                client.flush().await?;
                break;
            }
        }
        client.close().await;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("1m").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn headers() {
        assert_eq!(
            parse_header("Trace-Id: abc").unwrap(),
            ("Trace-Id".into(), "abc".into())
        );
        assert!(parse_header("novalue").is_err());
    }
}
