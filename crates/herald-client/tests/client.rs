//! Integration tests of the SDK against a real server process on a loopback
//! port: Herald's own binary by default, or the reference nats-server. See
//! `client/support.rs` for how the binary is chosen.
//!
//! One test binary; its modules live in `tests/client/`.

#[path = "client/support.rs"]
mod support;

#[path = "client/jetstream.rs"]
mod jetstream;
#[path = "client/lifecycle.rs"]
mod lifecycle;
#[path = "client/pubsub.rs"]
mod pubsub;
#[path = "client/reconnect.rs"]
mod reconnect;
#[path = "client/request.rs"]
mod request;
