//! A connection's outbound side: the bounded buffer other connections append
//! messages to, and the non-blocking flush that any task may run.
//!
//! Small messages are copied into one contiguous buffer, so a burst becomes one
//! `write`; payloads of [`SHARE_PAYLOAD_MIN`] bytes or more are not copied but
//! kept as shared [`Bytes`] slices of the publisher's read buffer and written
//! with `writev`. Whoever appends may flush right away (the publisher's task,
//! at the end of its read buffer) so that no task switch stands between a
//! publish and its delivery; when the socket would block, the owner task is
//! woken to wait for writability. One flag makes sure only one task writes to
//! the socket at a time; no lock is held during a system call.

use std::io::{self, IoSlice};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::net::TcpStream;
use tokio::sync::Notify;

/// Payloads at least this large are shared instead of copied per subscriber.
pub const SHARE_PAYLOAD_MIN: usize = 2048;
/// Most buffers handed to one `writev`.
const IOVECS_MAX: usize = 64;
/// A drained buffer larger than this is freed rather than kept for reuse,
/// so a burst does not pin memory on an idle connection.
const RETAIN_CAPACITY_MAX: usize = 256 * 1024;

/// Message data to append: borrowed (copied into the buffer) or shared.
pub enum Data<'a> {
    /// Copied into the outbound buffer.
    Borrowed(&'a [u8]),
    /// Referenced without copying.
    Shared(&'a Bytes),
}

impl Data<'_> {
    fn len(&self) -> usize {
        match self {
            Data::Borrowed(b) => b.len(),
            Data::Shared(b) => b.len(),
        }
    }
}

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// The message is queued.
    Queued,
    /// The connection is closing; the message was dropped.
    Closed,
    /// This append exceeded the pending limit: the connection is now a slow
    /// consumer and is being closed. Reported once per connection.
    BecameSlow,
}

/// Result of a flush attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flushed {
    /// Everything queued was written.
    Done,
    /// Another task is writing; it will pick up what was queued.
    Busy,
    /// The socket would block; data remains and the owner must wait.
    WouldBlock,
}

/// Queued bytes: an inline buffer plus shared payloads inserted at offsets.
#[derive(Default)]
struct Batch {
    inline: Vec<u8>,
    /// `(offset in inline, bytes)`: the shared bytes go before `inline[offset..]`.
    shared: Vec<(usize, Bytes)>,
    /// Bytes of this batch already written.
    written: usize,
}

impl Batch {
    fn len(&self) -> usize {
        self.inline.len() + self.shared.iter().map(|(_, b)| b.len()).sum::<usize>()
    }

    fn is_empty(&self) -> bool {
        self.inline.is_empty() && self.shared.is_empty()
    }

    fn reset(&mut self) {
        self.inline.clear();
        self.shared.clear();
        self.written = 0;
        if self.inline.capacity() > RETAIN_CAPACITY_MAX {
            self.inline = Vec::new();
        }
    }

    /// Fills `slices` with the unwritten part, in order.
    fn slices<'a>(&'a self, slices: &mut Vec<IoSlice<'a>>) {
        let mut skip = self.written;
        let mut push = |s: &'a [u8], slices: &mut Vec<IoSlice<'a>>| {
            if s.is_empty() || slices.len() == IOVECS_MAX {
                return;
            }
            if skip >= s.len() {
                skip -= s.len();
                return;
            }
            slices.push(IoSlice::new(&s[skip..]));
            skip = 0;
        };
        let mut start = 0;
        for (offset, bytes) in &self.shared {
            push(&self.inline[start..*offset], slices);
            push(bytes, slices);
            start = *offset;
        }
        push(&self.inline[start..], slices);
    }

    /// Writes as much as the socket takes. `Ok(true)` when all is written.
    fn write_to(&mut self, stream: &TcpStream, total: usize) -> io::Result<(bool, usize)> {
        let mut wrote = 0;
        loop {
            if self.written == total {
                return Ok((true, wrote));
            }
            let result = if self.shared.is_empty() {
                stream.try_write(&self.inline[self.written..])
            } else {
                let mut slices = Vec::with_capacity(IOVECS_MAX);
                self.slices(&mut slices);
                stream.try_write_vectored(&slices)
            };
            match result {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.written += n;
                    wrote += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok((false, wrote)),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

struct State {
    /// Appended and not yet taken by a flusher.
    pending: Batch,
    /// Taken by a flusher, possibly partly written.
    inflight: Batch,
    /// Bytes in `pending` plus unwritten bytes of `inflight`.
    queued_bytes: usize,
    /// A task is writing to the socket.
    flushing: bool,
    /// No more appends are accepted.
    closed: bool,
    /// Closed because the pending limit was exceeded.
    slow: bool,
}

/// The outbound side of one connection.
pub struct Outbound {
    state: Mutex<State>,
    stream: Arc<TcpStream>,
    /// Wakes the owner task: data to write after a would-block, or a close.
    wake_owner: Notify,
    max_pending: usize,
}

impl Outbound {
    /// A new outbound side for `stream`, cut off at `max_pending` queued bytes.
    pub fn new(stream: Arc<TcpStream>, max_pending: usize) -> Outbound {
        Outbound {
            state: Mutex::new(State {
                pending: Batch::default(),
                inflight: Batch::default(),
                queued_bytes: 0,
                flushing: false,
                closed: false,
                slow: false,
            }),
            stream,
            wake_owner: Notify::new(),
            max_pending,
        }
    }

    /// The socket.
    pub fn stream(&self) -> &Arc<TcpStream> {
        &self.stream
    }

    /// Appends a `MSG`/`HMSG` frame.
    #[inline]
    pub fn push_msg(
        &self,
        subject: &[u8],
        sid: &[u8],
        reply: Option<&[u8]>,
        header_len: Option<usize>,
        data: Data<'_>,
    ) -> Appended {
        // Control line: verb, subject, sid, reply, two sizes, separators.
        let line_max = 32 + subject.len() + sid.len() + reply.map_or(0, <[u8]>::len);
        let frame_max = line_max + data.len() + 2;
        let mut state = self.state.lock();
        if state.closed {
            return Appended::Closed;
        }
        if state.queued_bytes + frame_max > self.max_pending {
            return self.mark_slow(state);
        }
        let pending = &mut state.pending;
        let before = pending.inline.len();
        herald_protocol::encode::msg_line(&mut pending.inline, subject, sid, reply, header_len, data.len());
        match data {
            Data::Borrowed(bytes) => pending.inline.extend_from_slice(bytes),
            Data::Shared(bytes) => pending.shared.push((pending.inline.len(), bytes.clone())),
        }
        pending.inline.extend_from_slice(b"\r\n");
        let added = pending.inline.len() - before
            + match data {
                Data::Shared(bytes) => bytes.len(),
                Data::Borrowed(_) => 0,
            };
        state.queued_bytes += added;
        Appended::Queued
    }

    /// Appends raw protocol bytes (`PONG`, `+OK`, `-ERR`, `INFO`). They count
    /// toward `max_pending` like messages: a client that sends PINGs and
    /// never reads the PONGs is a slow consumer too.
    pub fn push_raw(&self, bytes: &[u8]) -> Appended {
        let mut state = self.state.lock();
        if state.closed {
            return Appended::Closed;
        }
        if state.queued_bytes + bytes.len() > self.max_pending {
            return self.mark_slow(state);
        }
        state.pending.inline.extend_from_slice(bytes);
        state.queued_bytes += bytes.len();
        Appended::Queued
    }

    /// Appends the last bytes before a close (an `-ERR`), even when closed.
    pub fn push_final(&self, bytes: &[u8]) {
        let mut state = self.state.lock();
        state.pending.inline.extend_from_slice(bytes);
        state.queued_bytes += bytes.len();
    }

    /// Cuts the connection off as a slow consumer: no more appends, and what
    /// was queued but not started is dropped.
    pub fn cut_off(&self) {
        let state = self.state.lock();
        if !state.slow {
            self.mark_slow(state);
        }
    }

    fn mark_slow(&self, mut state: parking_lot::MutexGuard<'_, State>) -> Appended {
        state.closed = true;
        state.slow = true;
        // What was never started is dropped; a partly written batch is
        // finished so the client sees whole frames before the error.
        state.queued_bytes -= state.pending.len();
        state.pending.reset();
        drop(state);
        self.wake_owner.notify_one();
        Appended::BecameSlow
    }

    /// Whether this connection was cut off as a slow consumer.
    pub fn is_slow(&self) -> bool {
        self.state.lock().slow
    }

    /// Whether appends are refused.
    pub fn is_closed(&self) -> bool {
        self.state.lock().closed
    }

    /// Refuses further appends (the connection is closing).
    pub fn close(&self) {
        self.state.lock().closed = true;
        self.wake_owner.notify_one();
    }

    /// Bytes queued and not yet written.
    pub fn queued_bytes(&self) -> usize {
        self.state.lock().queued_bytes
    }

    /// Wakes the owner task.
    pub fn wake_owner(&self) {
        self.wake_owner.notify_one();
    }

    /// Waits until the owner is woken.
    pub async fn owner_woken(&self) {
        self.wake_owner.notified().await
    }

    /// Writes what is queued without blocking. Safe to call from any task.
    pub fn flush(&self) -> io::Result<Flushed> {
        let mut state = self.state.lock();
        if state.flushing {
            return Ok(Flushed::Busy);
        }
        if state.queued_bytes == 0 {
            return Ok(Flushed::Done);
        }
        state.flushing = true;
        loop {
            if state.inflight.is_empty() {
                if state.pending.is_empty() {
                    state.flushing = false;
                    return Ok(Flushed::Done);
                }
                let State {
                    pending, inflight, ..
                } = &mut *state;
                std::mem::swap(pending, inflight);
            }
            let mut batch = std::mem::take(&mut state.inflight);
            drop(state);
            let total = batch.len();
            let result = batch.write_to(&self.stream, total);
            state = self.state.lock();
            match result {
                Ok((done, wrote)) => {
                    state.queued_bytes -= wrote;
                    if done {
                        // Back as the (empty) inflight batch: the next swap
                        // hands its capacity to `pending`, so two buffers
                        // alternate and steady state allocates nothing.
                        batch.reset();
                        state.inflight = batch;
                    } else {
                        state.inflight = batch;
                        state.flushing = false;
                        return Ok(Flushed::WouldBlock);
                    }
                }
                Err(e) => {
                    state.inflight = batch;
                    state.flushing = false;
                    return Err(e);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    async fn pair() -> (Arc<TcpStream>, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (Arc::new(server), client)
    }

    async fn read_exactly(peer: &mut TcpStream, n: usize) -> Vec<u8> {
        let mut buf = vec![0; n];
        peer.read_exact(&mut buf).await.unwrap();
        buf
    }

    #[tokio::test]
    async fn inline_and_shared_payloads_keep_their_order() {
        let (stream, mut peer) = pair().await;
        let outbound = Outbound::new(stream, 1 << 20);
        let big = Bytes::from(vec![b'x'; 4096]);
        assert_eq!(
            outbound.push_msg(b"a", b"1", None, None, Data::Borrowed(b"one")),
            Appended::Queued
        );
        assert_eq!(
            outbound.push_msg(b"a", b"1", Some(b"r"), None, Data::Shared(&big)),
            Appended::Queued
        );
        assert_eq!(
            outbound.push_msg(b"a", b"1", None, None, Data::Borrowed(b"two")),
            Appended::Queued
        );
        let expected = [
            b"MSG a 1 3\r\none\r\n".to_vec(),
            b"MSG a 1 r 4096\r\n".to_vec(),
            big.to_vec(),
            b"\r\nMSG a 1 3\r\ntwo\r\n".to_vec(),
        ]
        .concat();
        assert_eq!(outbound.queued_bytes(), expected.len());
        assert_eq!(outbound.flush().unwrap(), Flushed::Done);
        assert_eq!(outbound.queued_bytes(), 0);
        assert_eq!(read_exactly(&mut peer, expected.len()).await, expected);
    }

    #[tokio::test]
    async fn exceeding_max_pending_marks_slow_once_and_drops_unstarted_data() {
        let (stream, _peer) = pair().await;
        let outbound = Outbound::new(stream, 1000);
        let payload = [0u8; 300];
        let mut results = Vec::new();
        for _ in 0..5 {
            results.push(outbound.push_msg(b"s", b"1", None, None, Data::Borrowed(&payload)));
        }
        assert_eq!(&results[..3], &[Appended::Queued; 3]);
        assert_eq!(results[3], Appended::BecameSlow);
        assert_eq!(results[4], Appended::Closed);
        assert!(outbound.is_slow());
        assert_eq!(outbound.queued_bytes(), 0);
    }

    #[tokio::test]
    async fn would_block_keeps_the_rest_for_the_next_flush() {
        let (stream, mut peer) = pair().await;
        let outbound = Outbound::new(stream.clone(), 64 << 20);
        let payload = vec![7u8; 60_000];
        let mut expected = Vec::new();
        // Far more than the socket buffers hold while the peer does not read.
        for i in 0..200u32 {
            let sid = i.to_string();
            outbound.push_msg(b"big", sid.as_bytes(), None, None, Data::Borrowed(&payload));
            encode_expected(&mut expected, &sid, &payload);
        }
        assert_eq!(outbound.flush().unwrap(), Flushed::WouldBlock);
        assert!(outbound.queued_bytes() > 0);
        let reader = tokio::spawn(async move { read_exactly(&mut peer, expected.len()).await == expected });
        loop {
            match outbound.flush().unwrap() {
                Flushed::Done => break,
                _ => stream.writable().await.unwrap(),
            }
        }
        assert!(reader.await.unwrap(), "bytes arrived in order and complete");
    }

    fn encode_expected(out: &mut Vec<u8>, sid: &str, payload: &[u8]) {
        herald_protocol::encode::msg(out, b"big", sid.as_bytes(), None, None, payload);
    }
}
