//! Group commit for streams with `sync: always`: publishers append and
//! write, then queue their PubAcks here; one thread fsyncs and releases
//! every PubAck queued meanwhile, so concurrent publishes share one fsync.

use std::sync::{Arc, Weak};
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex};

use super::stream::{store_error, Stream};
use crate::publisher::OutMsg;

/// Sends messages on the server's behalf (routes them and flushes).
pub(crate) type SendFn = Box<dyn FnMut(Vec<OutMsg>) + Send>;

/// PubAcks waiting for an fsync.
#[derive(Default)]
struct Queue {
    acks: Vec<OutMsg>,
    closed: bool,
}

/// The group commit thread of one stream, started on first use (most
/// streams never sync on every publish, and KV buckets are streams too);
/// stops when dropped.
pub(crate) struct Committer {
    shared: Arc<(Mutex<Queue>, Condvar)>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// What the thread needs, until it is started.
    pending_start: Mutex<Option<(Weak<Stream>, SendFn)>>,
}

impl Committer {
    /// A committer for `stream`, whose PubAcks `send` routes.
    pub fn new(stream: Weak<Stream>, send: SendFn) -> Committer {
        Committer {
            shared: Arc::default(),
            thread: Mutex::new(None),
            pending_start: Mutex::new(Some((stream, send))),
        }
    }

    /// Starts the thread; it holds the stream weakly.
    fn start(&self, stream: Weak<Stream>, mut send: SendFn) {
        let shared = self.shared.clone();
        let name = stream.upgrade().map(|s| s.name.clone()).unwrap_or_default();
        let spawned = std::thread::Builder::new()
            .name(format!("herald-commit-{name}"))
            .spawn(move || loop {
                let acks = {
                    let (lock, ready) = &*shared;
                    let mut queue = lock.lock();
                    while queue.acks.is_empty() && !queue.closed {
                        ready.wait(&mut queue);
                    }
                    if queue.closed && queue.acks.is_empty() {
                        return;
                    }
                    std::mem::take(&mut queue.acks)
                };
                let Some(stream) = stream.upgrade() else {
                    return;
                };
                match stream.sync_now() {
                    Ok(()) => send(acks),
                    Err(e) => {
                        tracing::error!(stream = %stream.name, error = %e, "fsync failed");
                        let payload = store_error(e).pub_ack_json(&stream.name);
                        send(
                            acks.into_iter()
                                .map(|msg| OutMsg {
                                    payload: payload.clone(),
                                    ..msg
                                })
                                .collect(),
                        );
                    }
                }
            });
        match spawned {
            Ok(handle) => *self.thread.lock() = Some(handle),
            Err(e) => tracing::error!(error = %e, "cannot start the group commit thread"),
        }
    }

    /// Queues PubAcks to send after the next fsync.
    pub fn enqueue(&self, acks: Vec<OutMsg>) {
        if let Some((stream, send)) = self.pending_start.lock().take() {
            self.start(stream, send);
        }
        let (lock, ready) = &*self.shared;
        lock.lock().acks.extend(acks);
        ready.notify_one();
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        let (lock, ready) = &*self.shared;
        lock.lock().closed = true;
        ready.notify_one();
        // Not joined: the thread may be the one dropping the last stream
        // reference, and it exits on its own once the queue is drained.
        drop(self.thread.lock().take());
    }
}
