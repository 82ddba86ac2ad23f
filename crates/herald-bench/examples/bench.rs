//! `herald bench` without the `herald` binary:
//! `cargo run -p herald-bench --release --example bench -- pubsub --server 127.0.0.1:4222`.

use clap::Parser;

/// Workload generator for any server speaking the NATS client protocol.
#[derive(Debug, Parser)]
#[command(name = "bench")]
struct Cli {
    #[command(flatten)]
    args: herald_bench::BenchArgs,
}

fn main() -> std::process::ExitCode {
    match herald_bench::run(Cli::parse().args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
