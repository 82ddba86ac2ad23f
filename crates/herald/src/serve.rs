//! `herald serve`: flags, config file, logging, signals.

use std::io::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use herald_server::{Config, Server};

/// Options of `herald serve`. Each overrides the key of the same name in
/// the `--config` file (dashes become underscores).
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// TOML config file; flags given here win over its keys.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 0.0.0.0].
    #[arg(long)]
    host: Option<IpAddr>,
    /// Client port; 0 picks a free one [default: 4333].
    #[arg(long)]
    port: Option<u16>,
    /// HTTP port: monitoring and the /v1 API (events, streams, webhooks); 0 picks a free one [default: 8333].
    #[arg(long)]
    http_port: Option<u16>,
    /// Directory for durable data, created if missing [default: ./data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Log filter: error, warn, info, debug, trace, or per-module directives [default: info].
    #[arg(long)]
    log_level: Option<String>,
    /// Server name shown to clients and in monitoring [default: the server id].
    #[arg(long)]
    server_name: Option<String>,
    /// Largest payload in bytes, headers included [default: 1048576].
    #[arg(long)]
    max_payload: Option<usize>,
    /// Longest control line in bytes [default: 4096].
    #[arg(long)]
    max_control_line: Option<usize>,
    /// Most simultaneous NATS client connections, and apart from them HTTP connections [default: 65536].
    #[arg(long)]
    max_connections: Option<usize>,
    /// Most subscriptions per connection, 0 for no limit [default: 0].
    #[arg(long)]
    max_subscriptions: Option<usize>,
    /// Most unsent bytes per connection before it is cut off as a slow consumer [default: 67108864].
    #[arg(long)]
    max_pending: Option<usize>,
    /// Keepalive PING interval in milliseconds [default: 120000].
    #[arg(long)]
    ping_interval_ms: Option<u64>,
    /// Unanswered PINGs before a connection is closed as stale [default: 2].
    #[arg(long)]
    max_pings_out: Option<u32>,
    /// Milliseconds a connection may stay unwritable with data pending [default: 10000].
    #[arg(long)]
    write_deadline_ms: Option<u64>,
    /// When stream writes reach the disk: always (fsync before each PubAck, concurrent
    /// publishes share one fsync), interval (fsync every --sync-interval-ms; PubAcks wait for
    /// the OS write, which survives a crash of the process), never [default: interval].
    /// A stream may override it with the metadata key herald.sync.
    #[arg(long, value_parser = parse_sync)]
    sync: Option<herald_server::SyncPolicy>,
    /// Milliseconds between fsyncs for sync policy interval [default: 1000].
    #[arg(long)]
    sync_interval_ms: Option<u64>,
    /// Subject of CloudEvents posted to /v1/events without one; {type}, {source} and {subject}
    /// are replaced by those attributes [default: {type}].
    #[arg(long)]
    http_subject_template: Option<String>,
    /// Milliseconds an HTTP client may take to send a request's headers, and an idle
    /// keep-alive HTTP connection stays open [default: 75000].
    #[arg(long)]
    http_idle_timeout_ms: Option<u64>,
}

fn parse_sync(text: &str) -> Result<herald_server::SyncPolicy, String> {
    herald_server::SyncPolicy::parse(text).ok_or_else(|| "expected always, interval or never".to_string())
}

impl ServeArgs {
    fn into_config(self) -> anyhow::Result<Config> {
        let mut config = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        macro_rules! apply {
            ($($field:ident),*) => {
                $(if let Some(value) = self.$field { config.$field = value; })*
            };
        }
        apply!(
            host,
            port,
            http_port,
            data_dir,
            log_level,
            max_payload,
            max_control_line,
            max_connections,
            max_subscriptions,
            max_pending,
            ping_interval_ms,
            max_pings_out,
            write_deadline_ms,
            sync,
            sync_interval_ms,
            http_subject_template,
            http_idle_timeout_ms
        );
        if self.server_name.is_some() {
            config.server_name = self.server_name;
        }
        config.validate()?;
        Ok(config)
    }
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let config = args.into_config()?;
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log_level)
        .with_context(|| format!("invalid --log-level {:?}", config.log_level))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("herald")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let server = Server::start(config).await?;
        // Handlers first: a signal sent as soon as the banner is out must
        // find them installed (it would kill the process otherwise).
        let stop = stop_signals()?;
        let mut stdout = std::io::stdout().lock();
        writeln!(
            stdout,
            "herald {} listening for clients on nats://{}",
            env!("CARGO_PKG_VERSION"),
            server.client_addr()
        )?;
        writeln!(
            stdout,
            "herald HTTP API and monitoring on http://{}",
            server.http_addr()
        )?;
        stdout.flush()?;
        drop(stdout);
        stop.await;
        tracing::info!("shutting down");
        server.shutdown().await;
        anyhow::Ok(())
    })
}

/// Installs the SIGTERM and SIGINT handlers; the future completes on either.
fn stop_signals() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}
