//! `herald consumer add|ls|info|rm|next`.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context as _};
use herald_client::jetstream::{
    AckPolicy, ConsumerConfig, ConsumerInfo, DeliverPolicy, JetStream, JsMessage, Timestamp,
};
use herald_protocol::jetstream::api::{ConsumerListResponse, DeleteResponse, Paged, LIST_PAGE_LIMIT};
use herald_protocol::jetstream::{encode_response, ResponseType};

use super::output::{self, js_error, out, outln, JsCommon, JsonObject, Table};
use super::{connect_url, parse_duration, runtime};

/// Metadata key Herald reads a consumer's dead-letter subject from.
const DEAD_LETTER_METADATA: &str = "herald.dead_letter_subject";

/// Options of `herald consumer`.
#[derive(Debug, clap::Args)]
pub struct ConsumerArgs {
    #[command(subcommand)]
    command: ConsumerCommand,
    #[command(flatten)]
    common: JsCommon,
}

#[derive(Debug, clap::Subcommand)]
enum ConsumerCommand {
    /// Create (or update) a durable consumer.
    Add(Box<AddArgs>),
    /// List a stream's consumers.
    #[command(alias = "list")]
    Ls {
        /// Stream name.
        stream: String,
    },
    /// Show a consumer's configuration and state.
    Info {
        /// Stream name.
        stream: String,
        /// Consumer name.
        name: String,
    },
    /// Delete a consumer.
    #[command(alias = "delete")]
    Rm {
        /// Stream name.
        stream: String,
        /// Consumer name.
        name: String,
    },
    /// Pull messages from a pull consumer, print them and acknowledge them.
    Next(NextArgs),
}

#[derive(Debug, clap::Args)]
struct AddArgs {
    /// Stream name.
    stream: String,
    /// Consumer (durable) name.
    name: String,
    /// Only messages on this subject (wildcards allowed); repeat for several.
    #[arg(long = "filter", value_name = "SUBJECT")]
    filters: Vec<String>,
    /// How messages are acknowledged.
    #[arg(long, default_value = "explicit", value_parser = ["explicit", "all", "none"])]
    ack: String,
    /// Where to start: all, last, new, last-per-subject, seq:N or time:RFC3339.
    #[arg(long, default_value = "all", value_parser = parse_deliver)]
    deliver: Deliver,
    /// Redeliver a message not acknowledged within this time, e.g. 30s [default: 30s].
    #[arg(long, value_parser = parse_duration)]
    ack_wait: Option<Duration>,
    /// Most deliveries of a message [default: unlimited].
    #[arg(long)]
    max_deliver: Option<i64>,
    /// Redelivery delays per attempt, comma separated, e.g. 1s,5s,30s.
    #[arg(long, value_delimiter = ',', value_parser = parse_duration)]
    backoff: Vec<Duration>,
    /// Most messages delivered but not acknowledged [default: 1000].
    #[arg(long)]
    max_ack_pending: Option<i64>,
    /// Make it a push consumer delivering to this subject.
    #[arg(long, value_name = "SUBJECT")]
    push_subject: Option<String>,
    /// Queue group of a push consumer's subscribers.
    #[arg(long, requires = "push_subject")]
    deliver_group: Option<String>,
    /// Publish messages that ran out of deliveries here (Herald; metadata herald.dead_letter_subject).
    #[arg(long, value_name = "SUBJECT")]
    dead_letter: Option<String>,
    /// Free-text description.
    #[arg(long)]
    description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Deliver {
    policy: DeliverPolicy,
    seq: u64,
    time: Option<Timestamp>,
}

fn parse_deliver(text: &str) -> Result<Deliver, String> {
    let simple = |policy| Deliver {
        policy,
        seq: 0,
        time: None,
    };
    match text {
        "all" => Ok(simple(DeliverPolicy::All)),
        "last" => Ok(simple(DeliverPolicy::Last)),
        "new" => Ok(simple(DeliverPolicy::New)),
        "last-per-subject" => Ok(simple(DeliverPolicy::LastPerSubject)),
        _ => {
            if let Some(seq) = text.strip_prefix("seq:") {
                match seq.parse::<u64>() {
                    Ok(seq) if seq > 0 => Ok(Deliver {
                        policy: DeliverPolicy::ByStartSequence,
                        seq,
                        time: None,
                    }),
                    _ => Err(format!("invalid start sequence {seq:?}")),
                }
            } else if let Some(time) = text.strip_prefix("time:") {
                let time = Timestamp::parse_rfc3339(time).map_err(|e| e.to_string())?;
                Ok(Deliver {
                    policy: DeliverPolicy::ByStartTime,
                    seq: 0,
                    time: Some(time),
                })
            } else {
                Err(format!(
                    "expected all, last, new, last-per-subject, seq:N or time:RFC3339, got {text:?}"
                ))
            }
        }
    }
}

#[derive(Debug, clap::Args)]
struct NextArgs {
    /// Stream name.
    stream: String,
    /// Consumer name.
    name: String,
    /// How many messages to pull.
    #[arg(long, default_value_t = 1)]
    count: usize,
    /// Print without acknowledging (they are redelivered after the ack wait).
    #[arg(long)]
    no_ack: bool,
    /// How long to wait for messages, e.g. 500ms, 5s.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    wait: Duration,
}

pub fn run_consumer(args: ConsumerArgs) -> anyhow::Result<()> {
    runtime()?.block_on(async move {
        let client = connect_url(&args.common.server, "herald-consumer").await?;
        let js = client.jetstream();
        let json = args.common.json;
        let result = match args.command {
            ConsumerCommand::Add(add) => consumer_add(&js, *add, json).await,
            ConsumerCommand::Ls { stream } => consumer_ls(&js, &stream, json).await,
            ConsumerCommand::Info { stream, name } => {
                let info = js
                    .consumer_info(&stream, &name)
                    .await
                    .map_err(|e| js_error(e, format!("{stream} > {name}")))?;
                print_info(&info, json);
                Ok(())
            }
            ConsumerCommand::Rm { stream, name } => {
                js.delete_consumer(&stream, &name)
                    .await
                    .map_err(|e| js_error(e, format!("{stream} > {name}")))?;
                if json {
                    let body = DeleteResponse { success: true };
                    output::print_json(&encode_response(ResponseType::ConsumerDelete, &body));
                } else {
                    outln!("Consumer {name} on stream {stream} deleted");
                }
                Ok(())
            }
            ConsumerCommand::Next(next) => consumer_next(&js, next, json).await,
        };
        client.close().await;
        result
    })
}

fn config_of(add: AddArgs) -> ConsumerConfig {
    let nanos = |d: Duration| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
    let mut metadata = BTreeMap::new();
    if let Some(subject) = add.dead_letter {
        metadata.insert(DEAD_LETTER_METADATA.to_string(), subject);
    }
    let (filter_subject, filter_subjects) = match add.filters.len() {
        1 => (add.filters[0].clone(), Vec::new()),
        _ => (String::new(), add.filters),
    };
    ConsumerConfig {
        durable_name: add.name,
        description: add.description.unwrap_or_default(),
        deliver_policy: add.deliver.policy,
        opt_start_seq: add.deliver.seq,
        opt_start_time: add.deliver.time,
        ack_policy: AckPolicy::parse(&add.ack).unwrap_or(AckPolicy::Explicit),
        ack_wait: add.ack_wait.map_or(0, nanos),
        max_deliver: add.max_deliver.unwrap_or(0),
        backoff: add.backoff.into_iter().map(nanos).collect(),
        filter_subject,
        filter_subjects,
        max_ack_pending: add.max_ack_pending.unwrap_or(0),
        deliver_subject: add.push_subject.unwrap_or_default(),
        deliver_group: add.deliver_group.unwrap_or_default(),
        metadata,
        ..ConsumerConfig::default()
    }
}

async fn consumer_add(js: &JetStream, add: AddArgs, json: bool) -> anyhow::Result<()> {
    let what = format!("{} > {}", add.stream, add.name);
    let stream = add.stream.clone();
    let info = js
        .create_consumer(&stream, config_of(add))
        .await
        .map_err(|e| js_error(e, &what))?;
    if !json {
        outln!("Consumer {} on stream {stream} created\n", info.name);
    }
    print_info(&info, json);
    Ok(())
}

async fn consumer_ls(js: &JetStream, stream: &str, json: bool) -> anyhow::Result<()> {
    let mut consumers = js.consumers(stream).await.map_err(|e| js_error(e, stream))?;
    consumers.sort_by(|a, b| a.name.cmp(&b.name));
    if json {
        let body = ConsumerListResponse {
            paged: Paged {
                total: consumers.len() as u64,
                offset: 0,
                limit: LIST_PAGE_LIMIT as u64,
            },
            consumers,
            missing: Vec::new(),
        };
        output::print_json(&encode_response(ResponseType::ConsumerList, &body));
        return Ok(());
    }
    if consumers.is_empty() {
        outln!("No consumers on stream {stream}");
        return Ok(());
    }
    let mut table = Table::new(&[
        "Name",
        "Type",
        "Filter",
        "Ack",
        ">Pending",
        ">Ack Pending",
        ">Redelivered",
        ">Last Delivered",
    ]);
    for info in &consumers {
        table.row(vec![
            info.name.clone(),
            kind(&info.config).to_string(),
            filters(&info.config),
            info.config.ack_policy.to_string(),
            info.num_pending.to_string(),
            info.num_ack_pending.to_string(),
            info.num_redelivered.to_string(),
            info.delivered.stream_seq.to_string(),
        ]);
    }
    out!("{}", table.render());
    Ok(())
}

fn kind(config: &ConsumerConfig) -> &'static str {
    if config.is_pull() {
        "pull"
    } else {
        "push"
    }
}

fn filters(config: &ConsumerConfig) -> String {
    let filters = config.filters();
    if filters.is_empty() {
        "-".into()
    } else {
        filters.join(", ")
    }
}

fn print_info(info: &ConsumerInfo, json: bool) {
    if json {
        output::print_json(&encode_response(ResponseType::ConsumerInfo, info));
        return;
    }
    let c = &info.config;
    let deliver = match c.deliver_policy {
        DeliverPolicy::ByStartSequence => format!("from sequence {}", c.opt_start_seq),
        DeliverPolicy::ByStartTime => format!(
            "from {}",
            c.opt_start_time.as_ref().map(output::time).unwrap_or_default()
        ),
        other => other.to_string(),
    };
    let mut config = vec![
        ("Type", kind(c).to_string()),
        ("Filter", filters(c)),
        ("Deliver", deliver),
        ("Ack policy", c.ack_policy.to_string()),
        ("Ack wait", output::nanos(c.ack_wait, "-")),
        ("Max deliver", output::limit(c.max_deliver)),
        ("Max ack pending", output::limit(c.max_ack_pending)),
    ];
    if !c.backoff.is_empty() {
        let backoff: Vec<String> = c.backoff.iter().map(|b| output::nanos(*b, "0s")).collect();
        config.push(("Backoff", backoff.join(", ")));
    }
    if !c.deliver_subject.is_empty() {
        config.push(("Push subject", c.deliver_subject.clone()));
        if !c.deliver_group.is_empty() {
            config.push(("Deliver group", c.deliver_group.clone()));
        }
    }
    if !c.description.is_empty() {
        config.push(("Description", c.description.clone()));
    }
    for (key, value) in &c.metadata {
        config.push(("Metadata", format!("{key}={value}")));
    }
    config.push(("Created", output::time(&info.created)));
    let state = [
        (
            "Last delivered",
            format!(
                "consumer seq {}, stream seq {}",
                info.delivered.consumer_seq, info.delivered.stream_seq
            ),
        ),
        (
            "Ack floor",
            format!(
                "consumer seq {}, stream seq {}",
                info.ack_floor.consumer_seq, info.ack_floor.stream_seq
            ),
        ),
        ("Pending", info.num_pending.to_string()),
        ("Ack pending", info.num_ack_pending.to_string()),
        ("Redelivered", info.num_redelivered.to_string()),
        ("Waiting pulls", info.num_waiting.to_string()),
    ];
    let title = format!("Consumer {} on stream {}", info.name, info.stream_name);
    out!("{}", output::fields(&title, &config));
    outln!();
    out!("{}", output::fields("State", &state));
}

async fn consumer_next(js: &JetStream, next: NextArgs, json: bool) -> anyhow::Result<()> {
    let what = format!("{} > {}", next.stream, next.name);
    // Asked first so a missing stream or consumer is a clear error.
    let info = js
        .consumer_info(&next.stream, &next.name)
        .await
        .map_err(|e| js_error(e, &what))?;
    if !info.config.is_pull() {
        bail!("consumer {what} is a push consumer; `consumer next` needs a pull consumer");
    }
    let messages = js
        .fetch(&next.stream, &next.name, next.count.max(1), next.wait)
        .await
        .map_err(|e| js_error(e, &what))?;
    let ack = !next.no_ack && info.config.ack_policy != AckPolicy::None;
    for (i, message) in messages.iter().enumerate() {
        print_delivery(i + 1, message, json)?;
        if ack {
            message.ack().context("cannot acknowledge")?;
        }
    }
    if ack && !messages.is_empty() {
        js.client()
            .flush()
            .await
            .context("the server did not confirm the acknowledgements")?;
    }
    if !json {
        match (messages.len(), ack) {
            (0, _) => eprintln!(
                "No messages available on {what} within {}",
                output::duration(next.wait)
            ),
            (n, true) => eprintln!("Received and acknowledged {n} message(s)"),
            (n, false) => eprintln!("Received {n} message(s), not acknowledged"),
        }
    }
    Ok(())
}

fn print_delivery(n: usize, message: &JsMessage, json: bool) -> anyhow::Result<()> {
    let info = message.info().map_err(|e| js_error(e, &message.subject))?;
    let payload = String::from_utf8_lossy(&message.payload);
    if json {
        let line = JsonObject::new()
            .str("subject", &message.subject)
            .str("stream", &info.stream)
            .str("consumer", &info.consumer)
            .num("stream_seq", info.stream_seq)
            .num("consumer_seq", info.consumer_seq)
            .num("delivered", info.delivered)
            .num("pending", info.pending)
            .str("time", &info.timestamp.to_rfc3339())
            .headers("headers", message.headers.as_ref())
            .str("data", &payload)
            .finish();
        outln!("{line}");
        return Ok(());
    }
    outln!(
        "[#{n}] {} > {}  stream seq {}  consumer seq {}  delivered {}  pending {}",
        info.stream,
        info.consumer,
        info.stream_seq,
        info.consumer_seq,
        info.delivered,
        info.pending
    );
    outln!("Subject: {}", message.subject);
    outln!("Time: {}", output::time(&info.timestamp));
    out!("{}", output::header_lines(message.headers.as_ref()));
    outln!("\n{payload}\n");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deliver_policies() {
        assert_eq!(parse_deliver("new").unwrap().policy, DeliverPolicy::New);
        assert_eq!(
            parse_deliver("last-per-subject").unwrap().policy,
            DeliverPolicy::LastPerSubject
        );
        let seq = parse_deliver("seq:42").unwrap();
        assert_eq!((seq.policy, seq.seq), (DeliverPolicy::ByStartSequence, 42));
        let time = parse_deliver("time:2024-01-02T03:04:05Z").unwrap();
        assert_eq!(time.policy, DeliverPolicy::ByStartTime);
        assert_eq!(time.time.unwrap().to_rfc3339(), "2024-01-02T03:04:05Z");
        for bad in ["seq:0", "seq:x", "time:yesterday", "first"] {
            assert!(parse_deliver(bad).is_err(), "{bad}");
        }
    }
}
