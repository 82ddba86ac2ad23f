//! `herald bench`: workload generator for any NATS-protocol server.

/// Options of `herald bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {}

/// Runs the benchmark described by `args`.
pub fn run(_args: BenchArgs) -> anyhow::Result<()> {
    anyhow::bail!("not yet")
}
