//! End-to-end tests of the `herald` binary.
//!
//! Every test starts the real binary (`herald serve` on loopback, free ports,
//! its own temporary data directory) and drives it from the outside: with the
//! official `async-nats` client, with raw protocol bytes over TCP, and with
//! plain HTTP requests to the monitoring endpoints. Nothing here links the
//! server crates. Shared helpers live in [`support`]; each other module covers
//! one feature.
//!
//! Synchronisation is by protocol round trips (a `PING`/`PONG` on raw
//! connections, a message a client sends to itself with `async-nats`, whose
//! `flush` only empties its socket buffer), never by sleeping; every wait is
//! bounded so that a hang fails fast.

mod support;

mod cli;
mod cli_events;
mod cli_jetstream;
mod drain;
mod headers;
mod limits;
mod monitoring;
mod pubsub;
mod queue;
mod regressions;
mod request_reply;
mod robustness;
mod sdk;
mod serve_cli;
mod unsubscribe;
mod wildcards;
