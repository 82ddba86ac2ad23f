//! Herald's HTTP front end (`/v1`), driven by a real HTTP client (reqwest)
//! against the `herald` binary, with async-nats on the NATS side.
//!
//! Every test starts its own server process (free ports, its own data
//! directory), so tests run in parallel. These are Herald-only features:
//! nothing here runs against nats-server.

#[path = "../jetstream/server.rs"]
mod server;
mod util;

mod admin;
mod connections;
mod ingest;
mod push;
mod webhooks;
