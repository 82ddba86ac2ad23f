//! Subscriptions as streams of messages.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::mpsc;

use crate::shared::Shared;
use crate::Message;

/// The messages of one subscription, as a [`futures_core::Stream`].
///
/// The stream ends after [`Subscriber::unsubscribe_after`]'s count, after a
/// drain, or when the client closes. Dropping it unsubscribes.
pub struct Subscriber {
    pub(crate) sid: u64,
    pub(crate) rx: mpsc::Receiver<Message>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) dropped: Arc<AtomicU64>,
    pub(crate) unsubscribed: bool,
}

impl Subscriber {
    /// The next message, or `None` once the subscription has ended.
    pub async fn next(&mut self) -> Option<Message> {
        self.rx.recv().await
    }

    /// Ends the subscription now.
    pub fn unsubscribe(mut self) {
        self.unsubscribed = true;
        self.shared.unsubscribe(self.sid, None);
    }

    /// Ends the subscription once `max` messages in total have been delivered
    /// to it (counting those already delivered).
    pub fn unsubscribe_after(&mut self, max: u64) {
        let done = {
            let mut subs = self.shared.subs.lock();
            match subs.get_mut(&self.sid) {
                Some(entry) if entry.delivered < max => {
                    entry.max = Some(max);
                    false
                }
                Some(_) => {
                    subs.remove(&self.sid);
                    true
                }
                None => true,
            }
        };
        self.unsubscribed = done;
        self.shared
            .unsubscribe(self.sid, if done { None } else { Some(max) });
    }

    /// Messages dropped because this subscriber's queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl futures_core::Stream for Subscriber {
    type Item = Message;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        self.rx.poll_recv(cx)
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        if !self.unsubscribed && self.shared.subs.lock().contains_key(&self.sid) {
            self.shared.unsubscribe(self.sid, None);
        }
    }
}

impl std::fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriber")
            .field("sid", &self.sid)
            .finish_non_exhaustive()
    }
}
