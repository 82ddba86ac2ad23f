//! `herald stream add|ls|info|rm|purge|get`.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::bail;
use herald_client::jetstream::{
    DiscardPolicy, JetStream, RetentionPolicy, StorageType, StreamConfig, StreamInfo, StreamMessage,
    StreamPurgeRequest,
};
use herald_protocol::jetstream::api::{
    DeleteResponse, MsgGetResponse, Paged, StreamInfoResponse, StreamListResponse, StreamPurgeResponse,
    LIST_PAGE_LIMIT,
};
use herald_protocol::jetstream::{encode_response, ResponseType};

use super::output::{self, js_error, out, outln, JsCommon, Table};
use super::{connect_url, parse_duration, runtime};

/// Metadata key Herald reads a stream's sync policy from.
const SYNC_METADATA: &str = "herald.sync";

/// Options of `herald stream`.
#[derive(Debug, clap::Args)]
pub struct StreamArgs {
    #[command(subcommand)]
    command: StreamCommand,
    #[command(flatten)]
    common: JsCommon,
}

#[derive(Debug, clap::Subcommand)]
enum StreamCommand {
    /// Create a stream.
    Add(AddArgs),
    /// List the streams.
    #[command(alias = "list")]
    Ls,
    /// Show a stream's configuration and state.
    Info {
        /// Stream name.
        name: String,
    },
    /// Delete a stream and all its messages.
    #[command(alias = "delete")]
    Rm {
        /// Stream name.
        name: String,
    },
    /// Remove messages from a stream: all, or those of a subject, or all but the newest N.
    Purge(PurgeArgs),
    /// Show a stored message, by sequence or as the last one on a subject.
    Get(GetArgs),
}

#[derive(Debug, clap::Args)]
struct AddArgs {
    /// Stream name.
    name: String,
    /// Subjects the stream stores, comma separated (wildcards allowed) [default: NAME].
    #[arg(long, value_delimiter = ',')]
    subjects: Vec<String>,
    /// Where messages are kept.
    #[arg(long, default_value = "file", value_parser = ["file", "memory"])]
    storage: String,
    /// When messages are removed: by limits, once every consumer acked (interest), or once one
    /// consumer acked (workqueue).
    #[arg(long, default_value = "limits", value_parser = ["limits", "interest", "workqueue"])]
    retention: String,
    /// Most messages kept [default: unlimited].
    #[arg(long)]
    max_msgs: Option<i64>,
    /// Most bytes kept [default: unlimited].
    #[arg(long)]
    max_bytes: Option<i64>,
    /// Oldest message age, e.g. 1h, 30m [default: unlimited].
    #[arg(long, value_parser = parse_duration)]
    max_age: Option<Duration>,
    /// Most messages kept per subject [default: unlimited].
    #[arg(long)]
    max_msgs_per_subject: Option<i64>,
    /// At a limit, remove old messages or refuse new ones.
    #[arg(long, default_value = "old", value_parser = ["old", "new"])]
    discard: String,
    /// Window for de-duplication by Nats-Msg-Id, e.g. 2m [default: 2m].
    #[arg(long, value_parser = parse_duration)]
    dupe_window: Option<Duration>,
    /// Allow direct gets ($JS.API.DIRECT.GET).
    #[arg(long)]
    allow_direct: bool,
    /// Honour Nats-Rollup headers.
    #[arg(long)]
    allow_rollup: bool,
    /// Refuse deleting messages.
    #[arg(long)]
    deny_delete: bool,
    /// Refuse purges.
    #[arg(long)]
    deny_purge: bool,
    /// When writes reach the disk (Herald; stored as metadata herald.sync).
    #[arg(long, value_parser = ["always", "interval", "never"])]
    sync: Option<String>,
    /// Free-text description.
    #[arg(long)]
    description: Option<String>,
}

#[derive(Debug, clap::Args)]
struct PurgeArgs {
    /// Stream name.
    name: String,
    /// Only messages on this subject (wildcards allowed).
    #[arg(long)]
    subject: Option<String>,
    /// Keep the newest N messages.
    #[arg(long, conflicts_with = "seq")]
    keep: Option<u64>,
    /// Remove messages below this sequence.
    #[arg(long)]
    seq: Option<u64>,
}

#[derive(Debug, clap::Args)]
struct GetArgs {
    /// Stream name.
    name: String,
    /// Sequence of the message.
    #[arg(required_unless_present = "last_for", conflicts_with = "last_for")]
    seq: Option<u64>,
    /// Instead of a sequence: the last message on this subject.
    #[arg(long, value_name = "SUBJECT")]
    last_for: Option<String>,
}

pub fn run_stream(args: StreamArgs) -> anyhow::Result<()> {
    runtime()?.block_on(async move {
        let client = connect_url(&args.common.server, "herald-stream").await?;
        let js = client.jetstream();
        let json = args.common.json;
        let result = match args.command {
            StreamCommand::Add(add) => stream_add(&js, add, json).await,
            StreamCommand::Ls => stream_ls(&js, json).await,
            StreamCommand::Info { name } => {
                let info = js.stream_info(&name).await.map_err(|e| js_error(e, &name))?;
                print_info(&info, json);
                Ok(())
            }
            StreamCommand::Rm { name } => {
                js.delete_stream(&name).await.map_err(|e| js_error(e, &name))?;
                if json {
                    let body = DeleteResponse { success: true };
                    output::print_json(&encode_response(ResponseType::StreamDelete, &body));
                } else {
                    outln!("Stream {name} deleted");
                }
                Ok(())
            }
            StreamCommand::Purge(purge) => stream_purge(&js, purge, json).await,
            StreamCommand::Get(get) => stream_get(&js, get, json).await,
        };
        client.close().await;
        result
    })
}

fn config_of(add: AddArgs) -> anyhow::Result<StreamConfig> {
    let nanos = |d: Duration| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
    let mut metadata = BTreeMap::new();
    if let Some(sync) = add.sync {
        metadata.insert(SYNC_METADATA.to_string(), sync);
    }
    let Some(retention) = RetentionPolicy::parse(&add.retention) else {
        bail!("invalid retention {:?}", add.retention);
    };
    Ok(StreamConfig {
        subjects: add
            .subjects
            .into_iter()
            .filter(|s| !s.trim().is_empty())
            .collect(),
        description: add.description.unwrap_or_default(),
        storage: if add.storage == "memory" {
            StorageType::Memory
        } else {
            StorageType::File
        },
        retention,
        max_msgs: add.max_msgs.unwrap_or(-1),
        max_bytes: add.max_bytes.unwrap_or(-1),
        max_age: add.max_age.map_or(0, nanos),
        max_msgs_per_subject: add.max_msgs_per_subject.unwrap_or(-1),
        discard: if add.discard == "new" {
            DiscardPolicy::New
        } else {
            DiscardPolicy::Old
        },
        duplicate_window: add.dupe_window.map_or(0, nanos),
        allow_direct: add.allow_direct,
        allow_rollup_hdrs: add.allow_rollup,
        deny_delete: add.deny_delete,
        deny_purge: add.deny_purge,
        num_replicas: 1,
        metadata,
        ..StreamConfig::new(add.name, Vec::new())
    })
}

async fn stream_add(js: &JetStream, add: AddArgs, json: bool) -> anyhow::Result<()> {
    let name = add.name.clone();
    let info = js
        .create_stream(config_of(add)?)
        .await
        .map_err(|e| js_error(e, &name))?;
    if json {
        print_info(&info, true);
    } else {
        outln!("Stream {name} created\n");
        print_info(&info, false);
    }
    Ok(())
}

async fn stream_ls(js: &JetStream, json: bool) -> anyhow::Result<()> {
    let mut streams = js.streams().await.map_err(|e| js_error(e, "stream list"))?;
    streams.sort_by(|a, b| a.config.name.cmp(&b.config.name));
    if json {
        let body = StreamListResponse {
            paged: Paged {
                total: streams.len() as u64,
                offset: 0,
                limit: LIST_PAGE_LIMIT as u64,
            },
            streams,
            missing: Vec::new(),
        };
        output::print_json(&encode_response(ResponseType::StreamList, &body));
        return Ok(());
    }
    if streams.is_empty() {
        outln!("No streams defined");
        return Ok(());
    }
    let mut table = Table::new(&[
        "Name",
        "Subjects",
        "Storage",
        ">Messages",
        ">Bytes",
        ">Consumers",
        "Last Message",
    ]);
    for info in &streams {
        table.row(vec![
            info.config.name.clone(),
            info.config.subjects.join(", "),
            info.config.storage.to_string(),
            info.state.messages.to_string(),
            output::bytes(info.state.bytes),
            info.state.consumer_count.to_string(),
            output::time(&info.state.last_ts),
        ]);
    }
    out!("{}", table.render());
    Ok(())
}

/// A stream's configuration and state, or its API JSON.
fn print_info(info: &StreamInfo, json: bool) {
    if json {
        let body = StreamInfoResponse {
            info: info.clone(),
            did_create: false,
            paged: None,
        };
        output::print_json(&encode_response(ResponseType::StreamInfo, &body));
        return;
    }
    let c = &info.config;
    let flag = |on: bool| if on { "yes" } else { "no" }.to_string();
    let mut config = vec![
        ("Subjects", c.subjects.join(", ")),
        ("Storage", c.storage.to_string()),
        ("Retention", c.retention.to_string()),
        ("Discard", c.discard.to_string()),
        ("Max messages", output::limit(c.max_msgs)),
        ("Max bytes", output::byte_limit(c.max_bytes)),
        ("Max age", output::nanos(c.max_age, "unlimited")),
        ("Max msgs per subject", output::limit(c.max_msgs_per_subject)),
        ("Max message size", output::byte_limit(c.max_msg_size.into())),
        ("Duplicate window", output::nanos(c.duplicate_window, "none")),
        ("Allow direct", flag(c.allow_direct)),
        ("Allow rollup", flag(c.allow_rollup_hdrs)),
        ("Deny delete", flag(c.deny_delete)),
        ("Deny purge", flag(c.deny_purge)),
    ];
    if !c.description.is_empty() {
        config.insert(0, ("Description", c.description.clone()));
    }
    for (key, value) in &c.metadata {
        config.push(("Metadata", format!("{key}={value}")));
    }
    config.push(("Created", output::time(&info.created)));
    let s = &info.state;
    let seq_at = |seq: u64, ts| {
        if s.messages == 0 {
            seq.to_string()
        } else {
            format!("{seq} @ {}", output::time(ts))
        }
    };
    let state = [
        ("Messages", s.messages.to_string()),
        ("Bytes", output::bytes(s.bytes)),
        ("First sequence", seq_at(s.first_seq, &s.first_ts)),
        ("Last sequence", seq_at(s.last_seq, &s.last_ts)),
        ("Subjects", s.num_subjects.to_string()),
        ("Deleted", s.num_deleted.to_string()),
        ("Consumers", s.consumer_count.to_string()),
    ];
    out!("{}", output::fields(&format!("Stream {}", c.name), &config));
    outln!();
    out!("{}", output::fields("State", &state));
}

async fn stream_purge(js: &JetStream, purge: PurgeArgs, json: bool) -> anyhow::Result<()> {
    let request = StreamPurgeRequest {
        filter: purge.subject.clone().unwrap_or_default(),
        seq: purge.seq.unwrap_or(0),
        keep: purge.keep.unwrap_or(0),
    };
    let purged = js
        .purge_stream(&purge.name, request)
        .await
        .map_err(|e| js_error(e, &purge.name))?;
    if json {
        let body = StreamPurgeResponse {
            success: true,
            purged,
        };
        output::print_json(&encode_response(ResponseType::StreamPurge, &body));
    } else {
        let on = purge.subject.map(|s| format!(" on {s}")).unwrap_or_default();
        outln!("Purged {purged} message(s){on} from stream {}", purge.name);
    }
    Ok(())
}

async fn stream_get(js: &JetStream, get: GetArgs, json: bool) -> anyhow::Result<()> {
    let message = match (&get.last_for, get.seq) {
        (Some(subject), _) => js
            .get_last_message(&get.name, subject)
            .await
            .map_err(|e| js_error(e, format!("{} > {subject}", get.name)))?,
        (None, Some(seq)) => js
            .get_message(&get.name, seq)
            .await
            .map_err(|e| js_error(e, format!("{} #{seq}", get.name)))?,
        (None, None) => bail!("give a sequence or --last-for SUBJECT"),
    };
    print_message(&get.name, &message, json);
    Ok(())
}

fn print_message(stream: &str, message: &StreamMessage, json: bool) {
    if json {
        let body = MsgGetResponse {
            message: message.to_stored(),
        };
        output::print_json(&encode_response(ResponseType::StreamMsgGet, &body));
        return;
    }
    let fields = [
        ("Subject", message.subject.clone()),
        ("Time", output::time(&message.time)),
        ("Size", output::bytes(message.payload.len() as u64)),
    ];
    out!(
        "{}",
        output::fields(
            &format!("Message {} in stream {stream}", message.sequence),
            &fields
        )
    );
    let headers = output::header_lines(message.headers.as_ref());
    if !headers.is_empty() {
        outln!("\n{}", headers.trim_end());
    }
    outln!("\n{}", String::from_utf8_lossy(&message.payload));
}
