//! Subscriptions as streams of messages.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::mpsc;

use crate::shared::Handle;
use crate::Message;

/// The messages of one subscription, as a [`futures_core::Stream`] (or with
/// the [`Subscriber::next`] convenience).
///
/// Each subscriber has a bounded queue
/// ([`crate::ConnectOptions::subscription_capacity`]); when it is full, new
/// messages are dropped and counted by [`Subscriber::dropped`] rather than
/// slowing the connection down for everyone.
///
/// The stream ends after [`Subscriber::unsubscribe_after`]'s count, after a
/// [`crate::Client::drain`], or when the client closes. Dropping the
/// subscriber unsubscribes; it also keeps the connection open, like a
/// [`crate::Client`] clone.
pub struct Subscriber {
    pub(crate) sid: u64,
    pub(crate) rx: mpsc::Receiver<Message>,
    pub(crate) handle: Arc<Handle>,
    pub(crate) dropped: Arc<AtomicU64>,
    /// Unsubscribed for good (no `UNSUB` needed on drop).
    pub(crate) ended: bool,
}

impl Subscriber {
    /// The next message, or `None` once the subscription has ended and
    /// every message it received has been read.
    pub async fn next(&mut self) -> Option<Message> {
        self.rx.recv().await
    }

    /// Ends the subscription now; messages not yet read are discarded.
    pub fn unsubscribe(mut self) {
        self.ended = self.handle.shared.unsubscribe(self.sid, None);
    }

    /// Ends the subscription once `max` messages in total have been received
    /// (counting those already received), by sending `UNSUB <sid> <max>`.
    /// The stream ends after the last of them.
    pub fn unsubscribe_after(&mut self, max: u64) {
        self.ended = self.handle.shared.unsubscribe(self.sid, Some(max));
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
        if !self.ended {
            self.handle.shared.unsubscribe(self.sid, None);
        }
    }
}

impl std::fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriber")
            .field("sid", &self.sid)
            .field("dropped", &self.dropped())
            .finish_non_exhaustive()
    }
}
