//! Delivering one webhook: a task pulls from the webhook's durable consumer
//! through the server's own client and POSTs each message, signed, to the
//! endpoint, at most `concurrency` at a time.
//!
//! The consumer holds the retry state: a failed attempt is answered with
//! `-NAK {"delay": ns}` (the backoff), so JetStream redelivers it later, and
//! the delivery count in the ack subject is the attempt number. That state
//! is on disk, so a restart in the middle of a retry schedule resumes it
//! (the retry then comes after the consumer's ack wait). After the last
//! attempt, or once the message is older than `max_age_ms`, it is published
//! to the dead-letter subject and terminated (`+TERM`).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use herald_protocol::cloudevents::{CloudEvent, Defaults};
use herald_protocol::jetstream::{AckMetadata, Timestamp};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use super::config::WebhookConfig;
use super::signature::Secret;
use super::stats::WebhookStats;
use super::{retry, setup};
use crate::local::{Local, LocalInbox, LocalMsg};

/// How long one pull request waits for messages.
const PULL_EXPIRES_MS: u64 = 5_000;
/// How much longer than its expiry a pull's end may take to arrive before
/// the pull is taken as lost and another is sent.
const PULL_GRACE_MS: u64 = 2_000;
/// First and longest wait before setting the consumer up again after a
/// failure (the stream may be missing, or JetStream busy).
const SETUP_RETRY_MS_MIN: u64 = 500;
const SETUP_RETRY_MS_MAX: u64 = 30_000;
/// Least time between two refreshes of the pending count.
const PENDING_REFRESH_MS: u64 = 1_000;
/// Inbox room beyond the messages asked for (end-of-pull statuses).
const INBOX_SPARE: usize = 16;
/// Most response body read from an endpoint (read so the connection is
/// reused; the rest is dropped with the connection).
const RESPONSE_BODY_BYTES_MAX: usize = 64 * 1024;
/// Longest header value written into a dead letter.
const HEADER_VALUE_CHARS_MAX: usize = 300;
/// Longest event id used as `webhook-id`.
const WEBHOOK_ID_BYTES_MAX: usize = 256;
/// Longest wait for a dead letter's PubAck, when a stream captures it.
const DEAD_LETTER_ACK_TIMEOUT: Duration = Duration::from_secs(5);

/// What the delivery task and its attempts share.
pub(crate) struct Delivery {
    local: Arc<Local>,
    config: Arc<WebhookConfig>,
    secret: Secret,
    client: reqwest::Client,
    stats: Arc<WebhookStats>,
}

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// 2xx.
    Delivered,
    /// Anything else: the status when there was a response, else the error.
    Failed {
        status: Option<u16>,
        error: Option<String>,
    },
}

impl Delivery {
    /// Everything needed to deliver `config`'s messages.
    pub fn new(
        local: Arc<Local>,
        config: Arc<WebhookConfig>,
        stats: Arc<WebhookStats>,
    ) -> Result<Delivery, String> {
        let secret = Secret::parse(&config.secret).map_err(|e| format!("invalid secret: {e}"))?;
        let client = reqwest::Client::builder()
            // A redirect is a failed attempt: the signature is for this URL.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_millis(config.timeout_ms))
            .pool_max_idle_per_host(config.effective_concurrency() as usize)
            .user_agent(concat!("Herald-Webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Delivery {
            local,
            config,
            secret,
            client,
            stats,
        })
    }

    /// Starts the delivery task; it runs until `stop` turns true.
    pub fn spawn(self: Arc<Self>, stop: watch::Receiver<bool>) -> JoinHandle<()> {
        tokio::spawn(self.run(stop))
    }

    async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        if !self.set_up(&mut stop).await {
            return;
        }
        let concurrency = self.config.effective_concurrency() as usize;
        let pull_subject = format!(
            "$JS.API.CONSUMER.MSG.NEXT.{}.{}",
            self.config.stream,
            self.config.consumer_name()
        );
        let mut inbox = self.local.inbox(concurrency + INBOX_SPARE);
        let mut attempts: JoinSet<()> = JoinSet::new();
        // Messages the open pull request may still bring, and when its end
        // is overdue.
        let mut pull: Option<(usize, Instant)> = None;
        let mut refreshed: Option<Instant> = None;
        let pull_wait = Duration::from_millis(PULL_EXPIRES_MS + PULL_GRACE_MS);
        loop {
            if *stop.borrow() {
                break;
            }
            if refreshed.is_none_or(|t| t.elapsed() >= Duration::from_millis(PENDING_REFRESH_MS)) {
                self.refresh_pending().await;
                refreshed = Some(Instant::now());
            }
            if inbox.overflowed() {
                // Lost deliveries stay pending and come again after the ack wait.
                inbox = self.local.inbox(concurrency + INBOX_SPARE);
                pull = None;
            }
            if pull.is_none() {
                let free = concurrency.saturating_sub(attempts.len());
                if free > 0 {
                    let request = format!(r#"{{"batch":{free},"expires":{}}}"#, PULL_EXPIRES_MS * 1_000_000);
                    self.local.publish(
                        pull_subject.as_bytes(),
                        Some(inbox.subject.as_bytes()),
                        &[],
                        request.as_bytes(),
                    );
                    pull = Some((free, Instant::now() + pull_wait));
                }
            }
            let wait = pull.map_or(pull_wait, |(_, due)| {
                due.saturating_duration_since(Instant::now())
            });
            tokio::select! {
                _ = stop.changed() => break,
                Some(joined) = attempts.join_next(), if !attempts.is_empty() => {
                    if let Err(e) = joined {
                        if e.is_panic() {
                            tracing::error!(webhook = %self.config.name, "a delivery attempt panicked");
                        }
                    }
                }
                received = next(&mut inbox, wait) => match received {
                    None => {
                        if pull.is_some_and(|(_, due)| Instant::now() >= due) {
                            pull = None;
                        }
                    }
                    Some(msg) if is_delivery(&msg) => {
                        if let Some((left, due)) = pull {
                            pull = (left > 1).then_some((left - 1, due));
                        }
                        attempts.spawn(self.clone().attempt(msg));
                    }
                    Some(msg) => {
                        pull = None;
                        // 408: the pull expired (the normal idle case); 404:
                        // nothing to deliver. Anything else (the consumer is
                        // gone, JetStream refuses) needs the setup again.
                        if !matches!(msg.status(), Some(408 | 404)) {
                            tracing::warn!(
                                webhook = %self.config.name,
                                status = ?msg.status(),
                                "pull request refused; setting the consumer up again"
                            );
                            if stopped_within(&mut stop, Duration::from_millis(SETUP_RETRY_MS_MIN)).await
                                || !self.set_up(&mut stop).await
                            {
                                break;
                            }
                        }
                    }
                },
            }
        }
        // Unacknowledged deliveries come again after the ack wait.
        attempts.abort_all();
    }

    /// Creates the consumer (and stream) if missing, retrying with backoff;
    /// false when stopped first.
    async fn set_up(&self, stop: &mut watch::Receiver<bool>) -> bool {
        let mut wait_ms = SETUP_RETRY_MS_MIN;
        loop {
            match setup::ensure(&self.local, &self.config).await {
                Ok(()) => return true,
                Err(e) => {
                    tracing::warn!(webhook = %self.config.name, error = %e, "cannot set up the webhook's consumer");
                    self.stats
                        .set_last_error(&format!("cannot set up the consumer: {e}"));
                }
            }
            if stopped_within(stop, Duration::from_millis(wait_ms)).await {
                return false;
            }
            wait_ms = (wait_ms * 2).min(SETUP_RETRY_MS_MAX);
        }
    }

    async fn refresh_pending(&self) {
        if let Ok(pending) = setup::pending(&self.local, &self.config).await {
            self.stats.pending.store(pending, Relaxed);
        }
    }

    /// One attempt at one delivery, and what follows from its outcome: ack,
    /// retry later, or dead letter.
    async fn attempt(self: Arc<Self>, msg: LocalMsg) {
        let Some(reply) = msg.reply.as_ref().and_then(|r| std::str::from_utf8(r).ok()) else {
            return;
        };
        let Ok(meta) = AckMetadata::parse_str(reply) else {
            tracing::warn!(webhook = %self.config.name, reply, "delivery with an unreadable ack subject");
            return;
        };
        let fallback_id = format!("{}-{}", meta.stream, meta.stream_seq);
        let stored = Timestamp::from_unix_nanos(meta.timestamp).to_rfc3339();
        let headers = msg.parsed_headers();
        let event = CloudEvent::from_message(
            headers.as_ref(),
            &msg.payload,
            Defaults {
                subject: msg.shown_str(),
                id: &fallback_id,
                time: Some(&stored),
            },
        );
        let body = match serde_json::to_vec(&event.to_json()) {
            Ok(body) => body,
            Err(e) => {
                tracing::error!(webhook = %self.config.name, error = %e, "cannot encode the event");
                return;
            }
        };
        let id = event
            .attribute("id")
            .filter(|id| is_header_token(id))
            .unwrap_or(&fallback_id)
            .to_string();
        let outcome = self.post(&id, body).await;
        if outcome == Outcome::Delivered {
            self.stats.delivered.fetch_add(1, Relaxed);
            self.reply(reply, b"+ACK");
            return;
        }
        self.stats.failed_attempts.fetch_add(1, Relaxed);
        let attempt = meta.delivered.max(1);
        let age_ms = u64::try_from(unix_now_ns().saturating_sub(meta.timestamp) / 1_000_000).unwrap_or(0);
        let config = &self.config;
        if attempt >= u64::from(config.max_attempts) || age_ms >= config.max_age_ms {
            match self.dead_letter(&msg, &meta, attempt, &outcome).await {
                Ok(()) => {
                    self.stats.dead_lettered.fetch_add(1, Relaxed);
                    self.reply(reply, b"+TERM");
                }
                Err(e) => {
                    // Keep the message: the next attempt ends here again.
                    tracing::warn!(webhook = %config.name, error = %e, "dead letter not stored");
                    self.stats.set_last_error(&format!("dead letter not stored: {e}"));
                    self.nak(reply, config.backoff_max_ms);
                }
            }
            return;
        }
        let delay_ms = retry::delay_ms(
            config.backoff_initial_ms,
            config.backoff_max_ms,
            attempt,
            fastrand::f64(),
        );
        // The last retry comes no later than the message's maximum age.
        let remaining_ms = config.max_age_ms - age_ms;
        self.nak(reply, delay_ms.min(remaining_ms).max(1));
    }

    /// POSTs the event, signed; counts and times the request.
    async fn post(&self, id: &str, body: Vec<u8>) -> Outcome {
        let timestamp = unix_now_ns() / 1_000_000_000;
        let signature = self.secret.sign(id, timestamp, &body);
        self.stats.attempts.fetch_add(1, Relaxed);
        let started = Instant::now();
        let sent = self
            .client
            .post(&self.config.url)
            .timeout(Duration::from_millis(self.config.timeout_ms))
            .header(reqwest::header::CONTENT_TYPE, "application/cloudevents+json")
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await;
        let outcome = match sent {
            Ok(mut response) => {
                let status = response.status();
                let mut read = 0;
                // Drain a bounded body so the connection can be reused.
                while read < RESPONSE_BODY_BYTES_MAX {
                    match response.chunk().await {
                        Ok(Some(chunk)) => read += chunk.len(),
                        _ => break,
                    }
                }
                self.stats.set_last_status(status.as_u16());
                if status.is_success() {
                    Outcome::Delivered
                } else {
                    Outcome::Failed {
                        status: Some(status.as_u16()),
                        error: None,
                    }
                }
            }
            Err(e) => {
                let error = describe(&e, self.config.timeout_ms);
                self.stats.set_last_error(&error);
                Outcome::Failed {
                    status: None,
                    error: Some(error),
                }
            }
        };
        self.stats.latency.observe(started.elapsed());
        outcome
    }

    /// Publishes the message to the dead-letter subject with its original
    /// headers and why it was given up; when a stream captures that subject,
    /// waits until it is stored.
    async fn dead_letter(
        &self,
        msg: &LocalMsg,
        meta: &AckMetadata<'_>,
        attempts: u64,
        outcome: &Outcome,
    ) -> Result<(), String> {
        let mut headers = msg.parsed_headers().unwrap_or_default();
        headers.append("Herald-Webhook", &self.config.name);
        headers.append("Herald-Webhook-Attempts", attempts.to_string());
        if let Outcome::Failed { status, error } = outcome {
            if let Some(status) = status {
                headers.append("Herald-Webhook-Last-Status", status.to_string());
            }
            if let Some(error) = error {
                headers.append("Herald-Webhook-Last-Error", header_value(error));
            }
        }
        headers.append("Herald-Original-Subject", msg.shown_str());
        headers.append("Herald-Original-Stream", meta.stream);
        headers.append("Herald-Original-Sequence", meta.stream_seq.to_string());
        let block = headers.to_bytes();
        let subject = self.config.dead_letter_subject.as_bytes();
        let (_, ack) = self.local.publish_for_ack(subject, &block, &msg.payload);
        let Some(mut ack) = ack else { return Ok(()) };
        let reply = ack
            .next(DEAD_LETTER_ACK_TIMEOUT)
            .await
            .ok_or_else(|| format!("no PubAck within {DEAD_LETTER_ACK_TIMEOUT:?}"))?;
        if let Ok(refused) =
            serde_json::from_slice::<herald_protocol::jetstream::error::ErrorResponse>(&reply.payload)
        {
            return Err(refused.error.description);
        }
        Ok(())
    }

    fn nak(&self, reply: &str, delay_ms: u64) {
        let body = format!(r#"-NAK {{"delay":{}}}"#, delay_ms.saturating_mul(1_000_000));
        self.reply(reply, body.as_bytes());
    }

    fn reply(&self, reply: &str, body: &[u8]) {
        self.local.publish(reply.as_bytes(), None, &[], body);
    }
}

/// The next inbox message within `wait`.
async fn next(inbox: &mut LocalInbox, wait: Duration) -> Option<LocalMsg> {
    inbox.next(wait).await
}

/// A consumer delivery (it carries its ack subject), not a pull status.
fn is_delivery(msg: &LocalMsg) -> bool {
    msg.reply.as_ref().is_some_and(|r| r.starts_with(b"$JS.ACK."))
}

/// Waits `wait` unless `stop` turns true first (then true).
async fn stopped_within(stop: &mut watch::Receiver<bool>, wait: Duration) -> bool {
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        changed = stop.changed() => changed.is_err() || *stop.borrow(),
        _ = tokio::time::sleep(wait) => false,
    }
}

fn unix_now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// Whether `text` can be sent as a header value as it is (visible ASCII).
fn is_header_token(text: &str) -> bool {
    !text.is_empty() && text.len() <= WEBHOOK_ID_BYTES_MAX && text.bytes().all(|b| (0x21..0x7f).contains(&b))
}

/// `text` on one line, bounded, for a NATS header.
fn header_value(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(HEADER_VALUE_CHARS_MAX)
        .collect()
}

/// A request error for people: what failed, with its causes.
fn describe(error: &reqwest::Error, timeout_ms: u64) -> String {
    if error.is_timeout() {
        return format!("no response within {timeout_ms} ms");
    }
    let mut text = if error.is_connect() {
        "cannot connect".to_string()
    } else {
        "request failed".to_string()
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_are_one_bounded_line() {
        assert_eq!(header_value("a\r\nb"), "a  b");
        assert_eq!(header_value(&"x".repeat(1000)).len(), HEADER_VALUE_CHARS_MAX);
    }

    #[test]
    fn only_visible_ascii_ids_are_used_as_webhook_ids() {
        assert!(is_header_token("evt-1"));
        assert!(!is_header_token(""));
        assert!(!is_header_token("a b"));
        assert!(!is_header_token("é"));
        assert!(!is_header_token(&"x".repeat(WEBHOOK_ID_BYTES_MAX + 1)));
    }
}
