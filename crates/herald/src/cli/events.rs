//! `herald events append|read|tail|categories`: the event store of
//! herald-events from the command line, each event with its envelope.
//!
//! A category is a stream (`ES_<category>` by default), an aggregate the
//! subject `<category>.<id>` in it; positions are stream sequences and an
//! aggregate's version is the position of its last event.

use std::io::{IsTerminal as _, Read as _};
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context as _};
use base64::Engine as _;
use bytes::Bytes;
use herald_client::jetstream::Timestamp;
use herald_client::Client;
use herald_events::{
    AggregateId, Causation, Codec, EventStore, ExpectedVersion, NewEvent, RecordedEvent, StoreConfig,
};

use super::output::{js_error, out, outln, JsCommon, JsonObject, Table};
use super::{connect_url, runtime};

/// Characters of event data shown in a table cell.
const DATA_SHOWN: usize = 60;
/// Events fetched per request when reading a category.
const READ_BATCH: u64 = 1000;

/// Options of `herald events`.
#[derive(Debug, clap::Args)]
pub struct EventsArgs {
    #[command(subcommand)]
    command: EventsCommand,
    /// Prefix of category stream names: category `accounts` is stream `<PREFIX>accounts`.
    #[arg(long, value_name = "PREFIX", default_value = "ES_", global = true)]
    stream_prefix: String,
    #[command(flatten)]
    common: JsCommon,
}

#[derive(Debug, clap::Subcommand)]
enum EventsCommand {
    /// Append one event to an aggregate, optionally only at an expected version.
    Append(AppendArgs),
    /// Print the stored events of an aggregate (<category>.<id>) or a whole category.
    Read(ReadArgs),
    /// Print the events of an aggregate or category, then each new one as it is appended, until Ctrl-C.
    Tail(TailArgs),
    /// List the categories: the streams named <PREFIX><category>.
    #[command(alias = "ls")]
    Categories,
}

#[derive(Debug, clap::Args)]
struct AppendArgs {
    /// The aggregate, as <category>.<id>, e.g. accounts.a-1 (letters, digits, '-', '_', '~', '=').
    aggregate: String,
    /// Event type (ce-type), e.g. Deposited.
    #[arg(long = "type", short = 't', value_name = "TYPE")]
    event_type: String,
    /// Event data, e.g. '{"amount":100}' [default: read from stdin].
    #[arg(long, short = 'd', conflicts_with = "data_file")]
    data: Option<String>,
    /// Read the event data from this file ('-' for stdin).
    #[arg(long, value_name = "PATH")]
    data_file: Option<PathBuf>,
    /// Append only if the aggregate's version (the position of its last event) is N; 0 means no
    /// events yet. Without it or --no-events, the event is appended whatever the version.
    #[arg(long, value_name = "N", conflicts_with = "no_events")]
    expected_version: Option<u64>,
    /// Append only if the aggregate has no events yet.
    #[arg(long)]
    no_events: bool,
    /// Schema version of the data (ce-schemaversion).
    #[arg(long, value_name = "N", default_value_t = 1)]
    schema_version: u32,
    /// Event id (ce-id) [default: a new ULID]. Retrying an append with the
    /// same id within the stream's duplicate window (2 min) stores it once.
    #[arg(long, value_name = "ID")]
    id: Option<String>,
    /// Correlation id (ce-correlationid) [default: the new event's id, starting a chain].
    #[arg(long, value_name = "ID")]
    correlation_id: Option<String>,
    /// Id of the command or event that caused this one (ce-causationid).
    #[arg(long, value_name = "ID")]
    causation_id: Option<String>,
    /// Media type of the data (datacontenttype); JSON data is checked unless --raw.
    #[arg(long, value_name = "MEDIA-TYPE", default_value = herald_events::codec::JSON)]
    content_type: String,
    /// Producer of the event (ce-source).
    #[arg(long, default_value = "herald-cli")]
    source: String,
    /// Send the data byte for byte, without checking or compacting JSON.
    #[arg(long)]
    raw: bool,
}

#[derive(Debug, clap::Args)]
struct ReadArgs {
    /// An aggregate (<category>.<id>) or a whole category (<category>, no dot).
    target: String,
    /// First stream position to print.
    #[arg(long, value_name = "N", default_value_t = 1)]
    from: u64,
    /// Print at most N events [default: all].
    #[arg(long, value_name = "N")]
    max: Option<u64>,
}

#[derive(Debug, clap::Args)]
struct TailArgs {
    /// An aggregate (<category>.<id>) or a whole category (<category>, no dot).
    target: String,
    /// First stream position to print [default: 1, the whole history first].
    #[arg(long, value_name = "N", conflicts_with = "new")]
    from: Option<u64>,
    /// Print only events appended from now on.
    #[arg(long)]
    new: bool,
    /// Exit after printing N events.
    #[arg(long, value_name = "N")]
    count: Option<u64>,
}

/// What `read` and `tail` look at.
enum Target {
    Aggregate(AggregateId),
    Category(String),
}

impl Target {
    fn parse(text: &str) -> anyhow::Result<Target> {
        if text.contains('.') {
            parse_aggregate(text).map(Target::Aggregate)
        } else {
            AggregateId::check_category(text)
                .map_err(|e| anyhow!("{e}"))
                .map(|_| Target::Category(text.to_string()))
        }
    }

    fn category(&self) -> &str {
        match self {
            Target::Aggregate(aggregate) => aggregate.category(),
            Target::Category(category) => category,
        }
    }

    fn is_category(&self) -> bool {
        matches!(self, Target::Category(_))
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Aggregate(aggregate) => write!(f, "{aggregate}"),
            Target::Category(category) => write!(f, "category {category}"),
        }
    }
}

fn parse_aggregate(text: &str) -> anyhow::Result<AggregateId> {
    if !text.contains('.') {
        bail!("invalid aggregate {text:?}: expected <category>.<id>, e.g. accounts.a-1");
    }
    if text.matches('.').count() > 1 {
        bail!("invalid aggregate {text:?}: expected <category>.<id> with a single dot (neither may contain dots)");
    }
    AggregateId::parse_subject(text).map_err(|e| anyhow!("{e} (in aggregate {text:?})"))
}

pub fn run_events(args: EventsArgs) -> anyhow::Result<()> {
    let json = args.common.json;
    let config = StoreConfig {
        stream_prefix: args.stream_prefix,
        ..StoreConfig::default()
    };
    let server = args.common.server;
    runtime()?.block_on(async move {
        match args.command {
            EventsCommand::Append(append) => {
                // Everything that can be checked locally is, before connecting.
                let request = AppendRequest::new(append)?;
                let config = StoreConfig {
                    source: request.source.clone(),
                    ..config
                };
                let (client, store) = open(&server, config).await?;
                let result = request.run(&store, json).await;
                client.close().await;
                result
            }
            EventsCommand::Read(read) => {
                let target = Target::parse(&read.target)?;
                let (client, store) = open(&server, config).await?;
                let result = events_read(&store, &target, read.from, read.max, json).await;
                client.close().await;
                result
            }
            EventsCommand::Tail(tail) => {
                let target = Target::parse(&tail.target)?;
                let (client, store) = open(&server, config).await?;
                let result = events_tail(&store, &target, &tail, json).await;
                client.close().await;
                result
            }
            EventsCommand::Categories => {
                let (client, store) = open(&server, config).await?;
                let result = events_categories(&store, json).await;
                client.close().await;
                result
            }
        }
    })
}

async fn open(server: &str, config: StoreConfig) -> anyhow::Result<(Client, EventStore)> {
    let client = connect_url(server, "herald-events").await?;
    let store = EventStore::with_config(&client, config);
    Ok((client, store))
}

/// An event-store error as a message for people; `what` names what was
/// being worked on (for server errors).
fn es_error(err: herald_events::Error, what: impl std::fmt::Display) -> anyhow::Error {
    match err {
        herald_events::Error::Client(e) => js_error(e, what),
        other => anyhow!("{other}"),
    }
}

/// A checked append, ready to send.
struct AppendRequest {
    aggregate: AggregateId,
    event: NewEvent,
    expected: ExpectedVersion,
    causation: Causation,
    source: String,
}

impl AppendRequest {
    fn new(args: AppendArgs) -> anyhow::Result<AppendRequest> {
        let aggregate = parse_aggregate(&args.aggregate)?;
        check_type_name(&args.event_type)?;
        let data = read_data(&args)?;
        let expected = if args.no_events {
            ExpectedVersion::NoEvents
        } else {
            args.expected_version
                .map_or(ExpectedVersion::Any, ExpectedVersion::at)
        };
        Ok(AppendRequest {
            aggregate,
            event: NewEvent {
                id: args.id,
                event_type: args.event_type,
                schema_version: args.schema_version,
                content_type: args.content_type,
                data: Bytes::from(data),
            },
            expected,
            causation: Causation {
                correlation_id: args.correlation_id,
                causation_id: args.causation_id,
            },
            source: args.source,
        })
    }

    async fn run(self, store: &EventStore, json: bool) -> anyhow::Result<()> {
        let aggregate = &self.aggregate;
        let events = std::slice::from_ref(&self.event);
        let appended = match store
            .append_with(aggregate, self.expected, events, &self.causation)
            .await
        {
            Ok(appended) => appended,
            Err(e) if e.is_conflict() => match store.version(aggregate).await {
                Ok(0) => bail!("{e} (it has no events)"),
                Ok(version) => bail!("{e} (it is at version {version})"),
                Err(_) => bail!("{e}"),
            },
            Err(e) => return Err(es_error(e, store.stream_name(aggregate.category()))),
        };
        let id = appended.ids.first().map_or("", String::as_str);
        if json {
            let correlation = self.causation.correlation_id.as_deref().unwrap_or(id);
            let line = JsonObject::new()
                .str("aggregate", &aggregate.to_string())
                .str("type", &self.event.event_type)
                .num("position", appended.first_position)
                .num("version", appended.version)
                .str("id", id)
                .str("correlationid", correlation)
                .raw("duplicate", if appended.duplicate { "true" } else { "false" })
                .finish();
            outln!("{line}");
        } else {
            let duplicate = if appended.duplicate {
                " (a duplicate: already stored)"
            } else {
                ""
            };
            outln!(
                "Appended {} to {aggregate} at position {} (version {}), id {id}{duplicate}",
                self.event.event_type,
                appended.first_position,
                appended.version
            );
        }
        Ok(())
    }
}

/// The rule herald-events applies to type names, checked before anything
/// is created on the server.
fn check_type_name(name: &str) -> anyhow::Result<()> {
    herald_events::envelope::check_type_name(name).map_err(|_| {
        anyhow!("invalid event type {name:?}: 1 to 256 bytes without spaces or control characters")
    })
}

/// The event data from --data, --data-file or stdin; JSON is checked and
/// compacted unless --raw.
fn read_data(args: &AppendArgs) -> anyhow::Result<Vec<u8>> {
    let read_stdin = || -> anyhow::Result<Vec<u8>> {
        let mut data = Vec::new();
        std::io::stdin()
            .lock()
            .read_to_end(&mut data)
            .context("cannot read the event data from stdin")?;
        Ok(data)
    };
    let (data, origin) = match (&args.data, &args.data_file) {
        (Some(data), _) => (data.clone().into_bytes(), "--data".to_string()),
        (None, Some(path)) if path.as_os_str() == "-" => (read_stdin()?, "stdin".to_string()),
        (None, Some(path)) => {
            let data = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            (data, path.display().to_string())
        }
        (None, None) => {
            if std::io::stdin().is_terminal() {
                bail!("no event data: give --data, --data-file or pipe it on stdin (--data null for none)");
            }
            (read_stdin()?, "stdin".to_string())
        }
    };
    if args.raw || !is_json(&args.content_type) {
        return Ok(data);
    }
    if data.iter().all(u8::is_ascii_whitespace) {
        bail!("no event data in {origin}: give JSON (e.g. null or {{}}), or --raw to send it empty");
    }
    if let Err(e) = serde_json::from_slice::<serde_json::Value>(&data) {
        bail!("invalid JSON data in {origin}: {e} (--raw sends it as is)");
    }
    Ok(compact_json(&data))
}

/// Whether a media type is JSON (as herald-events decodes it: empty is JSON).
fn is_json(content_type: &str) -> bool {
    let media = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    media.is_empty() || media == "application/json" || media == "text/json" || media.ends_with("+json")
}

/// Valid JSON without the whitespace between tokens, keys in their order.
fn compact_json(json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len());
    let (mut in_string, mut escaped) = (false, false);
    for &byte in json {
        if in_string {
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == b'"' {
                in_string = false;
            }
        } else if byte == b'"' {
            in_string = true;
        } else if byte.is_ascii_whitespace() {
            continue;
        }
        out.push(byte);
    }
    out
}

/// The data as compact JSON text if it is JSON of a JSON media type.
fn json_data(event: &RecordedEvent) -> Option<String> {
    if !is_json(&event.envelope.content_type) {
        return None;
    }
    serde_json::from_slice::<serde_json::Value>(&event.data).ok()?;
    String::from_utf8(compact_json(&event.data)).ok()
}

/// The data for a table cell: JSON (CBOR shown as JSON too), else text,
/// else its size; cut at [`DATA_SHOWN`] characters.
fn data_cell(event: &RecordedEvent) -> String {
    let text = if event.data.is_empty() {
        "-".to_string()
    } else if let Some(json) = json_data(event) {
        json
    } else if let Ok(value) = Codec::decode(&event.envelope.content_type, &event.data) {
        value.to_string()
    } else if let Ok(text) = std::str::from_utf8(&event.data) {
        text.chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect()
    } else {
        format!("<{} bytes of {}>", event.data.len(), event.envelope.content_type)
    };
    if text.chars().count() <= DATA_SHOWN {
        return text;
    }
    let mut cut: String = text.chars().take(DATA_SHOWN - 1).collect();
    cut.push('…');
    cut
}

/// A time to the millisecond, `-` when not set.
fn time_cell(time: &Timestamp) -> String {
    if time.is_go_zero() {
        return "-".into();
    }
    let seconds = Timestamp::from_unix(time.unix_secs(), 0).to_rfc3339();
    let seconds = seconds.trim_end_matches('Z');
    format!("{seconds}.{:03}Z", time.subsec_nanos() / 1_000_000)
}

/// Columns of the event table; `>` marks numeric ones.
fn columns(with_aggregate: bool) -> Vec<&'static str> {
    let mut columns = vec![">Position"];
    if with_aggregate {
        columns.push("Aggregate");
    }
    columns.extend([
        "Time",
        "Type",
        "Id",
        ">Schema",
        "Correlation",
        "Causation",
        "Data",
    ]);
    columns
}

fn cells(event: &RecordedEvent, with_aggregate: bool) -> Vec<String> {
    let envelope = &event.envelope;
    let mut cells = vec![event.position.to_string()];
    if with_aggregate {
        cells.push(event.aggregate.to_string());
    }
    cells.extend([
        time_cell(&envelope.time),
        envelope.event_type.clone(),
        envelope.id.clone(),
        envelope.schema_version.to_string(),
        envelope.correlation_id.clone(),
        envelope.causation_id.clone().unwrap_or_else(|| "-".into()),
        data_cell(event),
    ]);
    cells
}

/// The event as one line of JSON: the CloudEvents JSON format (so the
/// envelope's attributes keep their CloudEvents names, and data is `data`
/// when JSON, else `data_base64`), plus the extensions `position` and
/// `storedtime`.
fn event_json(event: &RecordedEvent) -> String {
    let envelope = &event.envelope;
    let subject = if envelope.subject.is_empty() {
        event.aggregate.to_string()
    } else {
        envelope.subject.clone()
    };
    let mut object = JsonObject::new()
        .num("position", event.position)
        .str("specversion", herald_events::envelope::CLOUDEVENTS_VERSION)
        .str("id", &envelope.id)
        .str("source", &envelope.source)
        .str("type", &envelope.event_type)
        .str("subject", &subject)
        .str("time", &envelope.time.to_rfc3339())
        .str("storedtime", &event.stored_at.to_rfc3339())
        .str("datacontenttype", &envelope.content_type)
        .num("schemaversion", envelope.schema_version)
        .str("correlationid", &envelope.correlation_id);
    if let Some(causation) = &envelope.causation_id {
        object = object.str("causationid", causation);
    }
    let object = match json_data(event) {
        Some(json) => object.raw("data", &json),
        None => object.str(
            "data_base64",
            &base64::engine::general_purpose::STANDARD.encode(&event.data),
        ),
    };
    object.finish()
}

async fn events_read(
    store: &EventStore,
    target: &Target,
    from: u64,
    max: Option<u64>,
    json: bool,
) -> anyhow::Result<()> {
    let from = from.max(1);
    let mut table = Table::new(&columns(target.is_category()));
    let mut shown = 0u64;
    let mut print = |event: &RecordedEvent| {
        shown += 1;
        if json {
            outln!("{}", event_json(event));
        } else {
            table.row(cells(event, target.is_category()));
        }
    };
    let stream = store.stream_name(target.category());
    match target {
        Target::Aggregate(aggregate) => {
            let events = store
                .read(aggregate, from)
                .await
                .map_err(|e| es_error(e, &stream))?;
            let limit = max.map_or(usize::MAX, |max| usize::try_from(max).unwrap_or(usize::MAX));
            events.iter().take(limit).for_each(&mut print);
        }
        Target::Category(category) => {
            // In batches, so that JSON lines come out as they are read.
            let mut next = from;
            let mut left = max.unwrap_or(u64::MAX);
            while left > 0 {
                let want = left.min(READ_BATCH);
                let batch = store
                    .read_category(category, next, want as usize)
                    .await
                    .map_err(|e| es_error(e, &stream))?;
                batch.iter().for_each(&mut print);
                left -= batch.len() as u64;
                match batch.last() {
                    Some(last) if batch.len() as u64 == want => next = last.position + 1,
                    _ => break,
                }
            }
        }
    }
    if json {
        return Ok(());
    }
    if shown == 0 {
        eprintln!("No events in {target} from position {from}");
    } else {
        out!("{}", table.render());
    }
    Ok(())
}

/// Widths of the columns of `tail`'s table, which is printed a row at a
/// time: wide enough for usual values (ULIDs are 26 characters).
fn tail_widths(with_aggregate: bool) -> Vec<usize> {
    let mut widths = vec![8];
    if with_aggregate {
        widths.push(20);
    }
    widths.extend([24, 16, 26, 6, 26, 26, 0]);
    widths
}

/// One row padded to `widths` (cells longer than their column push the
/// rest right); numeric columns (`>` in `columns`) right-aligned.
fn fixed_row(columns: &[&str], widths: &[usize], cells: &[String]) -> String {
    let mut line = String::new();
    for (i, cell) in cells.iter().enumerate() {
        if i > 0 {
            line.push_str("  ");
        }
        let pad = widths[i].saturating_sub(cell.chars().count());
        if columns[i].starts_with('>') {
            line.extend(std::iter::repeat_n(' ', pad));
            line.push_str(cell);
        } else {
            line.push_str(cell);
            line.extend(std::iter::repeat_n(' ', pad));
        }
    }
    line.trim_end().to_string()
}

async fn events_tail(store: &EventStore, target: &Target, args: &TailArgs, json: bool) -> anyhow::Result<()> {
    let stream = store.stream_name(target.category());
    let after = if args.new {
        match target {
            Target::Aggregate(aggregate) => store.version(aggregate).await,
            Target::Category(category) => match store.ensure_category(category).await {
                Ok(()) => store
                    .jetstream()
                    .stream_info(&stream)
                    .await
                    .map(|info| info.state.last_seq)
                    .map_err(herald_events::Error::from),
                Err(e) => Err(e),
            },
        }
        .map_err(|e| es_error(e, &stream))?
    } else {
        args.from.unwrap_or(1).saturating_sub(1)
    };
    let subscription = match target {
        Target::Aggregate(aggregate) => store.subscribe_aggregate(aggregate, after).await,
        Target::Category(category) => store.subscribe_category(category, after).await,
    };
    let mut subscription = subscription.map_err(|e| es_error(e, &stream))?;
    eprintln!("Tailing {target} from position {} (Ctrl-C to stop)", after + 1);
    let with_aggregate = target.is_category();
    let columns = columns(with_aggregate);
    let widths = tail_widths(with_aggregate);
    if !json {
        let header: Vec<String> = columns
            .iter()
            .map(|c| c.trim_start_matches('>').to_string())
            .collect();
        outln!("{}", fixed_row(&columns, &widths, &header));
    }
    let mut seen = 0u64;
    while args.count.is_none_or(|count| seen < count) {
        let event = tokio::select! {
            event = subscription.next() => event,
            _ = tokio::signal::ctrl_c() => break,
        };
        let event = event.map_err(|e| es_error(e, &stream))?;
        seen += 1;
        if json {
            outln!("{}", event_json(&event));
        } else {
            outln!("{}", fixed_row(&columns, &widths, &cells(&event, with_aggregate)));
        }
    }
    Ok(())
}

async fn events_categories(store: &EventStore, json: bool) -> anyhow::Result<()> {
    let categories = store.categories().await.map_err(|e| es_error(e, "stream list"))?;
    if json {
        let names: Vec<String> = categories.iter().map(|c| super::output::json_string(c)).collect();
        outln!(
            "{}",
            JsonObject::new()
                .raw("categories", &format!("[{}]", names.join(",")))
                .finish()
        );
        return Ok(());
    }
    if categories.is_empty() {
        outln!("No categories");
        return Ok(());
    }
    let streams = store
        .jetstream()
        .streams()
        .await
        .map_err(|e| js_error(e, "stream list"))?;
    let mut table = Table::new(&["Category", "Stream", ">Events", ">Last position"]);
    for category in categories {
        let name = store.stream_name(&category);
        let state = streams.iter().find(|s| s.config.name == name).map(|s| &s.state);
        table.row(vec![
            category,
            name,
            state.map_or("-".into(), |s| s.messages.to_string()),
            state.map_or("-".into(), |s| s.last_seq.to_string()),
        ]);
    }
    out!("{}", table.render());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_compacted_keeping_strings_and_key_order() {
        let pretty = b"{\n  \"z\": 1,\n  \"a\": \"x \\\" y\",\n  \"b\": [1, 2]\n}\n";
        assert_eq!(
            compact_json(pretty),
            br#"{"z":1,"a":"x \" y","b":[1,2]}"#.to_vec()
        );
    }

    #[test]
    fn media_types() {
        assert!(is_json("application/json"));
        assert!(is_json("application/cloudevents+json; charset=utf-8"));
        assert!(!is_json("application/cbor"));
    }

    #[test]
    fn targets() {
        assert!(matches!(Target::parse("accounts").unwrap(), Target::Category(_)));
        assert!(matches!(
            Target::parse("accounts.a-1").unwrap(),
            Target::Aggregate(_)
        ));
        let err = Target::parse("a.b.c").err().unwrap().to_string();
        assert!(err.contains("single dot"), "{err}");
        assert!(Target::parse("acc ounts").is_err());
        assert!(parse_aggregate("accounts").is_err());
    }

    #[test]
    fn times_to_the_millisecond() {
        let time = Timestamp::from_unix(1_700_000_000, 5_123_456);
        assert_eq!(time_cell(&time), "2023-11-14T22:13:20.005Z");
        assert_eq!(time_cell(&Timestamp::default()), "-");
    }
}
