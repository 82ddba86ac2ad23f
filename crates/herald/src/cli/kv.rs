//! `herald kv put|get|del|watch|ls`.

use anyhow::{bail, Context as _};
use herald_client::jetstream::{Entry, JetStream, Kv, Operation};

use super::output::{self, js_error, out, outln, JsCommon, JsonObject, Table};
use super::{connect_url, runtime};

/// Options of `herald kv`.
#[derive(Debug, clap::Args)]
pub struct KvArgs {
    #[command(subcommand)]
    command: KvCommand,
    #[command(flatten)]
    common: JsCommon,
}

#[derive(Debug, clap::Subcommand)]
enum KvCommand {
    /// Set a key, creating the bucket if it does not exist.
    Put {
        /// Bucket name.
        bucket: String,
        /// Key.
        key: String,
        /// Value.
        value: String,
        /// Revisions kept per key when the bucket is created (1 to 64).
        #[arg(long, default_value_t = 1)]
        history: i64,
    },
    /// Print a key's value.
    Get {
        /// Bucket name.
        bucket: String,
        /// Key.
        key: String,
        /// Print only the value.
        #[arg(long)]
        raw: bool,
    },
    /// Delete a key (keeping its history), or purge it with --purge.
    #[command(alias = "rm")]
    Del {
        /// Bucket name.
        bucket: String,
        /// Key.
        key: String,
        /// Also remove the key's history.
        #[arg(long)]
        purge: bool,
    },
    /// Print the latest value of matching keys, then every change, until Ctrl-C.
    Watch {
        /// Bucket name.
        bucket: String,
        /// Keys to watch; `*` matches one token, `>` the rest.
        #[arg(default_value = ">")]
        pattern: String,
        /// Exit after this many entries.
        #[arg(long)]
        count: Option<u64>,
    },
    /// List a bucket's keys, or the buckets without BUCKET.
    #[command(alias = "list")]
    Ls {
        /// Bucket name.
        bucket: Option<String>,
    },
}

pub fn run_kv(args: KvArgs) -> anyhow::Result<()> {
    runtime()?.block_on(async move {
        let client = connect_url(&args.common.server, "herald-kv").await?;
        let js = client.jetstream();
        let json = args.common.json;
        let result = match args.command {
            KvCommand::Put {
                bucket,
                key,
                value,
                history,
            } => kv_put(&js, &bucket, &key, &value, history, json).await,
            KvCommand::Get { bucket, key, raw } => kv_get(&js, &bucket, &key, raw, json).await,
            KvCommand::Del { bucket, key, purge } => kv_del(&js, &bucket, &key, purge, json).await,
            KvCommand::Watch {
                bucket,
                pattern,
                count,
            } => kv_watch(&js, &bucket, &pattern, count, json).await,
            KvCommand::Ls { bucket: Some(bucket) } => kv_keys(&js, &bucket, json).await,
            KvCommand::Ls { bucket: None } => kv_buckets(&js, json).await,
        };
        client.close().await;
        result
    })
}

/// Opens a bucket, with `bucket not found: NAME` if it does not exist.
async fn open(js: &JetStream, bucket: &str) -> anyhow::Result<Kv> {
    match js.kv(bucket).await {
        Ok(kv) => Ok(kv),
        Err(e) if e.is_stream_not_found() => bail!("bucket not found: {bucket}"),
        Err(e) => Err(js_error(e, bucket)),
    }
}

async fn kv_put(
    js: &JetStream,
    bucket: &str,
    key: &str,
    value: &str,
    history: i64,
    json: bool,
) -> anyhow::Result<()> {
    let kv = match js.kv(bucket).await {
        Ok(kv) => kv,
        Err(e) if e.is_stream_not_found() => {
            let kv = js
                .kv_create_bucket(bucket, history)
                .await
                .map_err(|e| js_error(e, bucket))?;
            if !json {
                eprintln!("Created bucket {bucket} (history {})", history.max(1));
            }
            kv
        }
        Err(e) => return Err(js_error(e, bucket)),
    };
    let revision = kv
        .put(key, value)
        .await
        .map_err(|e| js_error(e, format!("{bucket} > {key}")))?;
    if json {
        let line = JsonObject::new()
            .str("bucket", bucket)
            .str("key", key)
            .num("revision", revision)
            .finish();
        outln!("{line}");
    } else {
        outln!("{bucket} > {key} = {value} (revision {revision})");
    }
    Ok(())
}

fn entry_json(entry: &Entry) -> String {
    JsonObject::new()
        .str("bucket", &entry.bucket)
        .str("key", &entry.key)
        .num("revision", entry.revision)
        .str("operation", entry.operation.as_str())
        .str("created", &entry.created.to_rfc3339())
        .num("delta", entry.delta)
        .str("value", &String::from_utf8_lossy(&entry.value))
        .finish()
}

async fn kv_get(js: &JetStream, bucket: &str, key: &str, raw: bool, json: bool) -> anyhow::Result<()> {
    let kv = open(js, bucket).await?;
    let what = format!("{bucket} > {key}");
    let entry = kv.entry(key).await.map_err(|e| js_error(e, &what))?;
    let Some(entry) = entry.filter(|e| e.operation == Operation::Put) else {
        bail!("key not found: {what}");
    };
    if json {
        outln!("{}", entry_json(&entry));
    } else if raw {
        outln!("{}", String::from_utf8_lossy(&entry.value));
    } else {
        outln!(
            "{what}  revision {}  created {}\n",
            entry.revision,
            output::time(&entry.created)
        );
        outln!("{}", String::from_utf8_lossy(&entry.value));
    }
    Ok(())
}

async fn kv_del(js: &JetStream, bucket: &str, key: &str, purge: bool, json: bool) -> anyhow::Result<()> {
    let kv = open(js, bucket).await?;
    let what = format!("{bucket} > {key}");
    let result = if purge {
        kv.purge(key).await
    } else {
        kv.delete(key).await
    };
    result.map_err(|e| js_error(e, &what))?;
    let operation = if purge {
        Operation::Purge
    } else {
        Operation::Delete
    };
    if json {
        let line = JsonObject::new()
            .str("bucket", bucket)
            .str("key", key)
            .str("operation", operation.as_str())
            .finish();
        outln!("{line}");
    } else if purge {
        outln!("Purged {what}");
    } else {
        outln!("Deleted {what}");
    }
    Ok(())
}

async fn kv_watch(
    js: &JetStream,
    bucket: &str,
    pattern: &str,
    count: Option<u64>,
    json: bool,
) -> anyhow::Result<()> {
    let kv = open(js, bucket).await?;
    let mut watch = kv
        .watch_with_history(pattern)
        .await
        .map_err(|e| js_error(e, format!("{bucket} > {pattern}")))?;
    eprintln!("Watching bucket {bucket} for keys matching {pattern}");
    let mut seen = 0u64;
    while count.is_none_or(|count| seen < count) {
        let entry = tokio::select! {
            entry = watch.next() => entry,
            _ = tokio::signal::ctrl_c() => break,
        };
        let Some(entry) = entry else {
            bail!("the connection to the server was closed");
        };
        let entry = entry.context("invalid watch entry")?;
        seen += 1;
        if json {
            outln!("{}", entry_json(&entry));
        } else {
            let value = match entry.operation {
                Operation::Put => format!(": {}", String::from_utf8_lossy(&entry.value)),
                _ => String::new(),
            };
            outln!(
                "[{}] {} {bucket} > {}{value} (revision {})",
                output::time(&entry.created),
                entry.operation,
                entry.key,
                entry.revision
            );
        }
    }
    Ok(())
}

async fn kv_keys(js: &JetStream, bucket: &str, json: bool) -> anyhow::Result<()> {
    let kv = open(js, bucket).await?;
    let mut keys = kv.keys().await.map_err(|e| js_error(e, bucket))?;
    keys.sort();
    if json {
        let keys: Vec<String> = keys.iter().map(|k| output::json_string(k)).collect();
        let line = JsonObject::new()
            .str("bucket", bucket)
            .raw("keys", &format!("[{}]", keys.join(",")))
            .finish();
        outln!("{line}");
    } else if keys.is_empty() {
        eprintln!("No keys in bucket {bucket}");
    } else {
        for key in keys {
            outln!("{key}");
        }
    }
    Ok(())
}

async fn kv_buckets(js: &JetStream, json: bool) -> anyhow::Result<()> {
    let streams = js.streams().await.map_err(|e| js_error(e, "stream list"))?;
    let mut buckets: Vec<_> = streams
        .iter()
        .filter_map(|s| s.config.name.strip_prefix("KV_").map(|b| (b.to_string(), s)))
        .collect();
    buckets.sort_by(|a, b| a.0.cmp(&b.0));
    if json {
        let names: Vec<String> = buckets.iter().map(|(b, _)| output::json_string(b)).collect();
        outln!(
            "{}",
            JsonObject::new()
                .raw("buckets", &format!("[{}]", names.join(",")))
                .finish()
        );
        return Ok(());
    }
    if buckets.is_empty() {
        outln!("No buckets defined");
        return Ok(());
    }
    let mut table = Table::new(&["Bucket", ">History", ">Values", ">Bytes"]);
    for (bucket, info) in buckets {
        table.row(vec![
            bucket,
            info.config.max_msgs_per_subject.to_string(),
            info.state.messages.to_string(),
            output::bytes(info.state.bytes),
        ]);
    }
    out!("{}", table.render());
    Ok(())
}
