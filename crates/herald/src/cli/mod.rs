//! `herald pub|sub|req|reply`: the command-line client, built on herald-client.

/// Options of `herald pub`.
#[derive(Debug, clap::Args)]
pub struct PubArgs {}
/// Options of `herald sub`.
#[derive(Debug, clap::Args)]
pub struct SubArgs {}
/// Options of `herald req`.
#[derive(Debug, clap::Args)]
pub struct ReqArgs {}
/// Options of `herald reply`.
#[derive(Debug, clap::Args)]
pub struct ReplyArgs {}

pub fn run_pub(_args: PubArgs) -> anyhow::Result<()> {
    anyhow::bail!("not yet")
}
pub fn run_sub(_args: SubArgs) -> anyhow::Result<()> {
    anyhow::bail!("not yet")
}
pub fn run_req(_args: ReqArgs) -> anyhow::Result<()> {
    anyhow::bail!("not yet")
}
pub fn run_reply(_args: ReplyArgs) -> anyhow::Result<()> {
    anyhow::bail!("not yet")
}
