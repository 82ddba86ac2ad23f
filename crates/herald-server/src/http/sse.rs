//! The Server-Sent Events transport of a push subscription.
//!
//! A pump task reads the subscription's events and hands frames to the
//! response body through a channel of [`SSE_QUEUE_FRAMES`]; the body is
//! polled by the connection only as fast as the socket takes data, so the
//! channel filling up is the sign of a slow reader. A frame that cannot be
//! queued within [`PUSH_WRITE_TIMEOUT_MS`] (or, live, an overflowed
//! backlog) cuts the client off: an `event: error` frame with a problem is
//! its last.
//!
//! Frames: `id: <stream seq>` (stream mode only), then `data: <CloudEvent
//! JSON>` on one line; no `event:` field, so EventSource's `onmessage`
//! fires. A `: keep-alive` comment is sent after [`PUSH_KEEP_ALIVE_MS`]
//! of silence.
//!
//! Acks (durable explicit-ack consumers): SSE has no way back from the
//! client, so a delivery is acked when the body hands it to the connection.
//! That is at most once per delivery attempt: a frame lost with a broken
//! connection after that is not redelivered. Deliveries pulled but not yet
//! handed over when the client goes are handed back (negatively acked) for
//! the next client. WebSocket with client acks is the at-least-once way.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;
use tokio::sync::mpsc;

use super::problem::Problem;
use super::push::{overflow, slow_problem, Push, PUSH_KEEP_ALIVE_MS, PUSH_WRITE_TIMEOUT_MS};
use super::push_source::{Delivery, End, Returned};
use super::stopped;
use crate::local::Local;

/// Frames queued between the pump and the response body.
const SSE_QUEUE_FRAMES: usize = 8;
/// The keep-alive comment.
const KEEP_ALIVE: &[u8] = b": keep-alive\n\n";

/// One piece of the body, and the ack subject to ack once it is handed over.
struct Frame {
    bytes: Bytes,
    ack: Option<String>,
}

impl Frame {
    fn event(delivery: Delivery) -> Frame {
        let seq = delivery.seq;
        let ack = delivery.ack.clone();
        let json = delivery.into_json(None);
        let mut text = String::with_capacity(json.len() + 32);
        if let Some(seq) = seq {
            text.push_str(&format!("id: {seq}\n"));
        }
        text.push_str("data: ");
        text.push_str(&json);
        text.push_str("\n\n");
        Frame {
            bytes: Bytes::from(text),
            ack,
        }
    }
}

/// `event: error` with `problem` as its data.
fn error_frame(problem: &Problem) -> Bytes {
    let json = serde_json::to_string(problem).unwrap_or_default();
    Bytes::from(format!("event: error\ndata: {json}\n\n"))
}

/// The SSE response of `push`: headers now, events as they come.
pub(crate) fn respond(push: Push) -> Response {
    let (tx, rx) = mpsc::channel(SSE_QUEUE_FRAMES);
    let last_words = Arc::new(Mutex::new(None));
    let body = Outgoing {
        rx,
        last_words: last_words.clone(),
        returned: push.source.returned(),
        local: push.local.clone(),
    };
    tokio::spawn(pump(push, tx, last_words));
    let stream = futures_util::stream::unfold(body, |mut body| async move {
        let bytes = body.next().await?;
        Some((Ok::<_, Infallible>(bytes), body))
    });
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
            // Proxies that buffer responses (nginx) would hold events back.
            (header::HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}

/// The body's side of the channel.
struct Outgoing {
    rx: mpsc::Receiver<Frame>,
    /// The final frame (an error), written after everything queued.
    last_words: Arc<Mutex<Option<Bytes>>>,
    returned: Returned,
    local: Arc<Local>,
}

impl Outgoing {
    async fn next(&mut self) -> Option<Bytes> {
        match self.rx.recv().await {
            Some(frame) => {
                if let Some(ack) = &frame.ack {
                    self.local.publish(ack.as_bytes(), None, &[], b"+ACK");
                }
                Some(frame.bytes)
            }
            None => self.last_words.lock().take(),
        }
    }
}

impl Drop for Outgoing {
    fn drop(&mut self) {
        // The client is gone: what was queued was never handed over. Done
        // before the receiver drops, which is what stops the pump, so the
        // pump's clean-up finds these.
        let mut returned = self.returned.lock();
        while let Ok(frame) = self.rx.try_recv() {
            returned.extend(frame.ack);
        }
    }
}

/// Why a frame was not queued.
enum Cut {
    /// The client went away.
    Gone,
    /// No room for [`PUSH_WRITE_TIMEOUT_MS`].
    Stalled,
    /// The live backlog overflowed while waiting for room.
    Overflowed,
}

/// Moves events from the subscription into the body until the client
/// goes, falls behind, the source ends or the server stops.
async fn pump(mut push: Push, tx: mpsc::Sender<Frame>, last_words: Arc<Mutex<Option<Bytes>>>) {
    let returned = push.source.returned();
    let keep_alive_every = Duration::from_millis(PUSH_KEEP_ALIVE_MS);
    let mut keep_alive =
        tokio::time::interval_at(tokio::time::Instant::now() + keep_alive_every, keep_alive_every);
    let mut shutdown = push.shutdown.clone();
    let end = loop {
        let next = tokio::select! {
            _ = tx.closed() => break None,
            _ = stopped(&mut shutdown) => break None,
            _ = keep_alive.tick() => None,
            next = push.source.next() => Some(next),
        };
        let is_event = next.is_some();
        let frame = match next {
            None => Frame {
                bytes: Bytes::from_static(KEEP_ALIVE),
                ack: None,
            },
            Some(Ok(delivery)) => Frame::event(delivery),
            Some(Err(End::Slow(detail))) => {
                push.slow();
                break Some(slow_problem(detail));
            }
            Some(Err(End::Failed(detail))) => {
                break Some(Problem::new(
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    "subscription-ended",
                    detail,
                ));
            }
        };
        let ack = frame.ack.clone();
        match hand_over(&tx, frame, &push).await {
            Ok(()) => {
                if is_event {
                    push.sent();
                    keep_alive.reset();
                }
            }
            Err(cut) => {
                returned.lock().extend(ack);
                match cut {
                    Cut::Gone => break None,
                    Cut::Stalled => {
                        push.slow();
                        break Some(slow_problem(format!(
                            "slow consumer: no event could be written for {PUSH_WRITE_TIMEOUT_MS} ms"
                        )));
                    }
                    Cut::Overflowed => {
                        push.slow();
                        break Some(slow_problem(
                            "slow consumer: the live backlog overflowed while the connection was blocked",
                        ));
                    }
                }
            }
        }
    };
    if let Some(problem) = end {
        *last_words.lock() = Some(error_frame(&problem));
    }
    // Dropping `tx` ends the body after what is queued and the last words;
    // dropping `push` cleans its source up.
}

/// Queues `frame`, waiting for room at most [`PUSH_WRITE_TIMEOUT_MS`].
async fn hand_over(tx: &mpsc::Sender<Frame>, frame: Frame, push: &Push) -> Result<(), Cut> {
    let timeout = Duration::from_millis(PUSH_WRITE_TIMEOUT_MS);
    tokio::select! {
        permit = tokio::time::timeout(timeout, tx.reserve()) => match permit {
            Ok(Ok(permit)) => {
                permit.send(frame);
                Ok(())
            }
            Ok(Err(_)) => Err(Cut::Gone),
            Err(_) => Err(Cut::Stalled),
        },
        _ = overflow(&push.source) => Err(Cut::Overflowed),
    }
}
