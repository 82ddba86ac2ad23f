//! The WebSocket transport of a push subscription.
//!
//! One text frame per event (CloudEvents structured JSON). With a durable
//! consumer that wants acks, every frame carries an opaque `heraldackid`
//! and the client answers with text frames `{"ack":"<id>"}`,
//! `{"nak":"<id>","delay_ms":N}` or `{"term":"<id>"}`; what it leaves
//! unacked is redelivered by the consumer after its `ack_wait`, and handed
//! back at once when the client goes. A control frame that cannot be
//! applied is answered with `{"error":<problem>}`.
//!
//! A write that makes no progress for [`PUSH_WRITE_TIMEOUT_MS`], or a live
//! backlog that overflows, closes the socket with 1008 and the reason.
//! Pings are answered (by the protocol layer); the server pings after
//! [`PUSH_KEEP_ALIVE_MS`] without traffic.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::problem::Problem;
use super::push::{overflow, Push, PUSH_KEEP_ALIVE_MS, PUSH_WRITE_TIMEOUT_MS};
use super::push_source::{Delivery, End};
use super::stopped;

/// Largest frame or message a client may send (control frames are tiny).
const WS_INCOMING_BYTES_MAX: usize = 64 * 1024;
/// Deliveries awaiting the client's ack on one socket; past this the oldest
/// id is forgotten (its message is redelivered after the consumer's
/// `ack_wait`, which also bounds it by `max_ack_pending`).
const WS_UNACKED_MAX: usize = 4096;
/// Longest wait for the close handshake.
const CLOSE_TIMEOUT_MS: u64 = 1_000;
/// Longest close reason the protocol allows (bytes).
const CLOSE_REASON_BYTES_MAX: usize = 123;

/// Close codes (RFC 6455, 7.4.1).
const CLOSE_GOING_AWAY: u16 = 1001;
const CLOSE_POLICY: u16 = 1008;
const CLOSE_ERROR: u16 = 1011;

/// The 101 answer; the subscription runs on the upgraded socket.
pub(crate) fn respond(push: Push, upgrade: WebSocketUpgrade) -> Response {
    upgrade
        .max_message_size(WS_INCOMING_BYTES_MAX)
        .max_frame_size(WS_INCOMING_BYTES_MAX)
        .on_upgrade(move |socket| run(push, socket))
}

/// A control frame from the client.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Control {
    ack: Option<String>,
    nak: Option<String>,
    term: Option<String>,
    delay_ms: Option<u64>,
}

/// Ack ids given out on one socket and their `$JS.ACK` subjects.
#[derive(Default)]
struct Unacked {
    next_id: u64,
    by_id: BTreeMap<u64, String>,
}

impl Unacked {
    fn insert(&mut self, ack: String) -> String {
        self.next_id += 1;
        self.by_id.insert(self.next_id, ack);
        while self.by_id.len() > WS_UNACKED_MAX {
            self.by_id.pop_first();
        }
        self.next_id.to_string()
    }

    fn take(&mut self, id: &str) -> Option<String> {
        self.by_id.remove(&id.parse().ok()?)
    }
}

/// What woke the loop.
enum Step {
    Incoming(Option<Result<Message, axum::Error>>),
    Event(Result<Delivery, End>),
    KeepAlive,
    Stop,
}

/// Why a write failed.
enum Cut {
    Gone,
    Stalled,
    Overflowed,
}

async fn run(mut push: Push, mut socket: WebSocket) {
    let client_acks = push.source.acks();
    let returned = push.source.returned();
    let mut unacked = Unacked::default();
    let keep_alive_every = Duration::from_millis(PUSH_KEEP_ALIVE_MS);
    let mut keep_alive =
        tokio::time::interval_at(tokio::time::Instant::now() + keep_alive_every, keep_alive_every);
    let mut shutdown = push.shutdown.clone();
    // The close frame to send, if any, and whether to wait for the answer.
    let close: Option<(u16, String)> = loop {
        let step = tokio::select! {
            incoming = socket.recv() => Step::Incoming(incoming),
            next = push.source.next() => Step::Event(next),
            _ = keep_alive.tick() => Step::KeepAlive,
            _ = stopped(&mut shutdown) => Step::Stop,
        };
        let out = match step {
            Step::Stop => break Some((CLOSE_GOING_AWAY, "server shutting down".into())),
            Step::Incoming(None | Some(Err(_))) => break None,
            Step::Incoming(Some(Ok(Message::Close(_)))) => {
                // Reading on lets the protocol layer send its close reply.
                let _ = tokio::time::timeout(Duration::from_millis(CLOSE_TIMEOUT_MS), socket.recv()).await;
                break None;
            }
            Step::Incoming(Some(Ok(Message::Text(text)))) => {
                match control(&push, &mut unacked, client_acks, text.as_str()) {
                    Ok(()) => continue,
                    Err(problem) => error_message(&problem),
                }
            }
            Step::Incoming(Some(Ok(Message::Binary(_)))) => error_message(&Problem::bad_request(
                "invalid-control",
                "binary frames are not understood; send acks as JSON text frames",
            )),
            // Pings are answered by the protocol layer.
            Step::Incoming(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            Step::KeepAlive => Message::Ping(Default::default()),
            Step::Event(Ok(delivery)) => {
                let ack_id = match (&delivery.ack, client_acks) {
                    (Some(ack), true) => Some(unacked.insert(ack.clone())),
                    _ => None,
                };
                let frame = Message::Text(delivery.into_json(ack_id).into());
                match write(&mut socket, frame, &push).await {
                    Ok(()) => {
                        push.sent();
                        keep_alive.reset();
                        continue;
                    }
                    Err(cut) => break cut_off(&push, cut),
                }
            }
            Step::Event(Err(End::Slow(reason))) => {
                push.slow();
                break Some((CLOSE_POLICY, reason));
            }
            Step::Event(Err(End::Failed(reason))) => break Some((CLOSE_ERROR, reason)),
        };
        if let Err(cut) = write(&mut socket, out, &push).await {
            break cut_off(&push, cut);
        }
    };
    if let Some((code, reason)) = close {
        let frame = CloseFrame {
            code,
            reason: truncate(&reason, CLOSE_REASON_BYTES_MAX).into(),
        };
        let wait = Duration::from_millis(CLOSE_TIMEOUT_MS);
        if let Ok(Ok(())) = tokio::time::timeout(wait, socket.send(Message::Close(Some(frame)))).await {
            // The client's close reply ends the handshake.
            let _ =
                tokio::time::timeout(wait, async { while let Some(Ok(_)) = socket.recv().await {} }).await;
        }
    }
    // Dropping the socket closes it; what the client did not ack goes back
    // to the consumer for the next client.
    returned
        .lock()
        .extend(std::mem::take(&mut unacked.by_id).into_values());
}

/// The close frame for a failed write.
fn cut_off(push: &Push, cut: Cut) -> Option<(u16, String)> {
    match cut {
        Cut::Gone => None,
        Cut::Stalled => {
            push.slow();
            Some((
                CLOSE_POLICY,
                format!("slow consumer: no event could be written for {PUSH_WRITE_TIMEOUT_MS} ms"),
            ))
        }
        Cut::Overflowed => {
            push.slow();
            Some((
                CLOSE_POLICY,
                "slow consumer: the live backlog overflowed while the connection was blocked".into(),
            ))
        }
    }
}

/// Sends `message`, giving up after [`PUSH_WRITE_TIMEOUT_MS`] without
/// progress or when the live backlog overflows meanwhile.
async fn write(socket: &mut WebSocket, message: Message, push: &Push) -> Result<(), Cut> {
    let timeout = Duration::from_millis(PUSH_WRITE_TIMEOUT_MS);
    tokio::select! {
        sent = tokio::time::timeout(timeout, socket.send(message)) => match sent {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Cut::Gone),
            Err(_) => Err(Cut::Stalled),
        },
        _ = overflow(&push.source) => Err(Cut::Overflowed),
    }
}

/// Applies one control frame: an ack, nak or term of a delivery.
fn control(push: &Push, unacked: &mut Unacked, client_acks: bool, text: &str) -> Result<(), Problem> {
    if !client_acks {
        return Err(Problem::bad_request(
            "no-acks",
            "this subscription takes no acks: only a durable consumer with ack policy explicit or all does",
        ));
    }
    let control: Control = serde_json::from_str(text).map_err(|e| {
        Problem::bad_request(
            "invalid-control",
            format!("expected {{\"ack\":id}}, {{\"nak\":id,\"delay_ms\":n}} or {{\"term\":id}}: {e}"),
        )
    })?;
    let (id, body) = match (&control.ack, &control.nak, &control.term) {
        (Some(id), None, None) if control.delay_ms.is_none() => (id, "+ACK".to_string()),
        (None, Some(id), None) => {
            let body = match control.delay_ms {
                Some(ms) => format!("-NAK {{\"delay\":{}}}", ms.saturating_mul(1_000_000)),
                None => "-NAK".to_string(),
            };
            (id, body)
        }
        (None, None, Some(id)) if control.delay_ms.is_none() => (id, "+TERM".to_string()),
        _ => {
            return Err(Problem::bad_request(
                "invalid-control",
                "a control frame has exactly one of `ack`, `nak`, `term` (`delay_ms` with `nak` only)",
            ))
        }
    };
    let subject = unacked.take(id).ok_or_else(|| {
        Problem::new(
            StatusCode::NOT_FOUND,
            "unknown-ack-id",
            format!("no delivery awaits an ack with id `{id}` (already acked, or too old)"),
        )
    })?;
    push.local.publish(subject.as_bytes(), None, &[], body.as_bytes());
    Ok(())
}

/// `{"error":<problem>}`.
fn error_message(problem: &Problem) -> Message {
    let json = serde_json::json!({ "error": problem });
    Message::Text(json.to_string().into())
}

/// `text` cut to at most `max` bytes at a character boundary.
fn truncate(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unacked_ids_are_bounded_and_taken_once() {
        let mut unacked = Unacked::default();
        let first = unacked.insert("$JS.ACK.a".into());
        for _ in 0..WS_UNACKED_MAX {
            unacked.insert("$JS.ACK.b".into());
        }
        assert_eq!(unacked.by_id.len(), WS_UNACKED_MAX);
        assert_eq!(unacked.take(&first), None, "the oldest id was forgotten");
        let last = unacked.next_id.to_string();
        assert_eq!(unacked.take(&last).as_deref(), Some("$JS.ACK.b"));
        assert_eq!(unacked.take(&last), None);
        assert_eq!(unacked.take("not-a-number"), None);
    }

    #[test]
    fn close_reasons_are_cut_at_a_character_boundary() {
        assert_eq!(truncate("abc", 2), "ab");
        assert_eq!(truncate("é", 1), "");
        assert_eq!(truncate("abc", 123), "abc");
    }
}
