//! Integration tests of herald-events against a real server process (the
//! workspace's `herald` binary, or what `HERALD_TEST_SERVER` names; see
//! the SDK's `support.rs`, shared here).
//!
//! One test binary; its modules live in `tests/events/`.

#[path = "../../herald-client/tests/client/support.rs"]
#[allow(dead_code)]
mod support;

#[path = "events/bank.rs"]
mod bank;

#[path = "events/aggregate.rs"]
mod aggregate;
#[path = "events/command.rs"]
mod command;
#[path = "events/example.rs"]
mod example;
#[path = "events/projection.rs"]
mod projection;
#[path = "events/replica.rs"]
mod replica;
#[path = "events/store.rs"]
mod store;
