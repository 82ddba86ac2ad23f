//! JetStream figures for monitoring: per stream and per consumer, served
//! as JSON on `/jsz` and as Prometheus series on `/metrics`.

use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;

use serde::Serialize;

use super::JetStream;

/// What `/jsz` answers.
#[derive(Debug, Serialize)]
pub(crate) struct Jsz {
    pub streams: Vec<StreamStats>,
}

/// One stream.
#[derive(Debug, Serialize)]
pub(crate) struct StreamStats {
    pub name: String,
    pub storage: &'static str,
    pub sync: &'static str,
    pub subjects: Vec<String>,
    pub messages: u64,
    pub bytes: u64,
    pub first_seq: u64,
    pub last_seq: u64,
    pub num_subjects: u64,
    pub num_deleted: u64,
    /// Publishes stored since the server started.
    pub stored_total: u64,
    /// Publishes acknowledged as duplicates since the server started.
    pub duplicates_total: u64,
    /// Publishes refused (failed expectations, limits) since the server started.
    pub rejected_total: u64,
    pub consumers: Vec<ConsumerStats>,
}

/// One consumer.
#[derive(Debug, Serialize)]
pub(crate) struct ConsumerStats {
    pub name: String,
    pub durable: bool,
    pub push: bool,
    pub num_pending: u64,
    pub num_ack_pending: u64,
    pub num_redelivered: u64,
    pub num_waiting: u64,
    pub delivered_stream_seq: u64,
    pub delivered_consumer_seq: u64,
    pub ack_floor_stream_seq: u64,
    /// Messages given up after max_deliver or terminated (dead-lettered).
    pub dead_lettered: u64,
}

impl JetStream {
    /// Gathers the figures of every stream and consumer.
    pub fn stats(&self) -> Jsz {
        let streams: Vec<_> = self.streams.read().values().cloned().collect();
        let mut out = Vec::with_capacity(streams.len());
        for stream in streams {
            let consumers = self
                .consumers_of(&stream.name)
                .iter()
                .map(|consumer| {
                    let inner = consumer.inner.lock();
                    let delivered = inner.machine.delivered();
                    ConsumerStats {
                        name: consumer.name.clone(),
                        durable: inner.settings.durable,
                        push: inner.settings.deliver_subject.is_some(),
                        num_pending: inner.num_pending(consumer),
                        num_ack_pending: inner.machine.ack_pending(),
                        num_redelivered: inner.machine.redelivered(),
                        num_waiting: inner.waiting.len() as u64,
                        delivered_stream_seq: delivered.stream_seq,
                        delivered_consumer_seq: delivered.consumer_seq,
                        ack_floor_stream_seq: inner.machine.ack_floor().stream_seq,
                        dead_lettered: inner.dead_lettered,
                    }
                })
                .collect();
            let inner = stream.inner.lock();
            let state = inner.store.state();
            out.push(StreamStats {
                name: stream.name.clone(),
                storage: if inner.settings.memory { "memory" } else { "file" },
                sync: inner.settings.sync.as_str(),
                subjects: inner.settings.subjects.clone(),
                messages: state.msgs,
                bytes: state.bytes,
                first_seq: state.first_seq,
                last_seq: state.last_seq,
                num_subjects: state.num_subjects,
                num_deleted: state.num_deleted,
                stored_total: stream.counters.stored.load(Relaxed),
                duplicates_total: stream.counters.duplicates.load(Relaxed),
                rejected_total: stream.counters.rejected.load(Relaxed),
                consumers,
            });
        }
        Jsz { streams: out }
    }
}

/// One Prometheus series: name, type, help, and how to read its value.
type Series<T> = (&'static str, &'static str, &'static str, fn(&T) -> u64);

/// Appends the Prometheus series of `jsz` to `out`.
pub(crate) fn write_prometheus(jsz: &Jsz, out: &mut String) {
    let stream_series: [Series<StreamStats>; 8] = [
        (
            "herald_stream_messages",
            "gauge",
            "Messages stored in the stream.",
            |s| s.messages,
        ),
        (
            "herald_stream_bytes",
            "gauge",
            "Bytes stored in the stream.",
            |s| s.bytes,
        ),
        (
            "herald_stream_first_seq",
            "gauge",
            "First sequence stored.",
            |s| s.first_seq,
        ),
        ("herald_stream_last_seq", "gauge", "Last sequence given.", |s| {
            s.last_seq
        }),
        (
            "herald_stream_consumers",
            "gauge",
            "Consumers of the stream.",
            |s| s.consumers.len() as u64,
        ),
        (
            "herald_stream_stored_total",
            "counter",
            "Publishes stored.",
            |s| s.stored_total,
        ),
        (
            "herald_stream_duplicates_total",
            "counter",
            "Publishes acknowledged as duplicates.",
            |s| s.duplicates_total,
        ),
        (
            "herald_stream_rejected_total",
            "counter",
            "Publishes refused.",
            |s| s.rejected_total,
        ),
    ];
    for (name, kind, help, value) in stream_series {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for stream in &jsz.streams {
            let _ = writeln!(out, "{name}{{stream=\"{}\"}} {}", stream.name, value(stream));
        }
    }
    let consumer_series: [Series<ConsumerStats>; 5] = [
        (
            "herald_consumer_pending",
            "gauge",
            "Messages not yet delivered.",
            |c| c.num_pending,
        ),
        (
            "herald_consumer_ack_pending",
            "gauge",
            "Deliveries waiting for an ack.",
            |c| c.num_ack_pending,
        ),
        (
            "herald_consumer_redelivered",
            "gauge",
            "Pending messages delivered more than once.",
            |c| c.num_redelivered,
        ),
        (
            "herald_consumer_waiting",
            "gauge",
            "Waiting pull requests.",
            |c| c.num_waiting,
        ),
        (
            "herald_consumer_dead_lettered_total",
            "counter",
            "Messages given up (max deliveries or terminated).",
            |c| c.dead_lettered,
        ),
    ];
    for (name, kind, help, value) in consumer_series {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for stream in &jsz.streams {
            for consumer in &stream.consumers {
                let _ = writeln!(
                    out,
                    "{name}{{stream=\"{}\",consumer=\"{}\"}} {}",
                    stream.name,
                    consumer.name,
                    value(consumer)
                );
            }
        }
    }
}
