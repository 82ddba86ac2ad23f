//! `herald`: the event router's one binary — the server, a CLI for
//! publishing, subscribing and requests, and the benchmark tool.

mod cli;
mod serve;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};

/// Herald, the event router. Speaks the NATS client protocol.
#[derive(Debug, Parser)]
#[command(name = "herald", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the server.
    Serve(serve::ServeArgs),
    /// Publish a message.
    Pub(cli::PubArgs),
    /// Subscribe and print every message received.
    Sub(cli::SubArgs),
    /// Send a request and print the reply.
    Req(cli::ReqArgs),
    /// Answer every request on a subject with a fixed response.
    Reply(cli::ReplyArgs),
    /// Manage JetStream streams: add, ls, info, rm, purge, get.
    Stream(cli::StreamArgs),
    /// Manage JetStream consumers and pull messages: add, ls, info, rm, next.
    Consumer(cli::ConsumerArgs),
    /// Key-value buckets on JetStream: put, get, del, watch, ls.
    Kv(cli::KvArgs),
    /// Event sourcing on JetStream: append, read and tail aggregates and categories.
    Events(cli::EventsArgs),
    /// Webhook subscriptions over the HTTP API: add, ls, info, rm.
    Webhook(cli::WebhookArgs),
    /// Measure throughput, latency and memory of any NATS-protocol server, JetStream included.
    Bench(herald_bench::BenchArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Pub(args) => cli::run_pub(args),
        Command::Sub(args) => cli::run_sub(args),
        Command::Req(args) => cli::run_req(args),
        Command::Reply(args) => cli::run_reply(args),
        Command::Stream(args) => cli::run_stream(args),
        Command::Consumer(args) => cli::run_consumer(args),
        Command::Kv(args) => cli::run_kv(args),
        Command::Events(args) => cli::run_events(args),
        Command::Webhook(args) => cli::run_webhook(args),
        Command::Bench(args) => herald_bench::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
