//! JetStream and key-value tests of the `herald` binary, driven through the
//! `async-nats` client.
//!
//! Every test starts its own server process (free loopback port, its own
//! temporary data directory), so tests run in parallel. The suite runs
//! against either server:
//!
//! - `herald serve` (the default): `cargo test -p herald --test jetstream`;
//! - the reference `nats-server` with JetStream, to prove the tests
//!   themselves right: `HERALD_TEST_NATS_SERVER=/path/to/nats-server cargo
//!   test -p herald --test jetstream` (started as `nats-server -a 127.0.0.1
//!   -p <port> -js -sd <dir>`).
//!
//! Every wait is bounded; redelivery tests use short ack waits.

mod server;
mod util;

mod api_garbage;
mod batch;
mod batch_extra;
mod consumer_update;
mod crash;
mod dead_letter;
mod errors;
mod flow_control;
mod kv;
mod messages;
mod monitoring;
mod publish;
mod pull;
mod pull_delivery;
mod push;
mod recovery;
mod restart;
mod retention;
mod sealed;
mod streams;
mod ttl;
