//! Accepting and serving HTTP connections, with the limits hyper leaves
//! to its user.
//!
//! - `TCP_NODELAY`: answers leave at once. With Nagle's algorithm a
//!   response written in two parts waits for the client's delayed ACK
//!   (40 ms on Linux).
//! - A write deadline ([`WriteDeadline`]): hyper has no write timeout. A
//!   client that stops reading (an SSE tab on a sleeping laptop, a stuck
//!   proxy) would otherwise hold its connection, its socket buffers and
//!   what hyper still has to write for as long as the kernel keeps the TCP
//!   connection. A write blocked for `--write-deadline-ms` (the limit NATS
//!   connections have too) fails, and hyper closes the connection.
//! - A header read timeout (`--http-idle-timeout-ms`): a request head must
//!   arrive whole within it, counted from when the connection starts
//!   waiting for it, so it is also the idle timeout of keep-alive
//!   connections and the limit on clients that trickle headers in.
//! - A bound: at most `max_connections` HTTP connections (counted apart
//!   from NATS connections); one more is closed as soon as it is accepted.
//! - Graceful shutdown: when the server stops, idle connections close and
//!   requests in progress finish (push streams end on their own then).

use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::time::{sleep, Instant, Sleep};

use super::stopped;
use crate::ServerState;

/// Pause after an accept error that is not one connection's (out of file
/// descriptors, say), so the loop does not spin on it.
const ACCEPT_ERROR_PAUSE_MS: u64 = 1_000;

/// Serves `app` on `listener` until `shutdown` turns true, then waits for
/// the connections to finish.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    state: Arc<ServerState>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(state.config.http_idle_timeout_ms));
    let write_deadline = Duration::from_millis(state.config.write_deadline_ms);
    // Every connection task holds a sender; all dropped = all finished.
    let (open, mut all_closed) = mpsc::channel::<()>(1);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    tracing::error!(error = %e, "cannot accept HTTP connections; retrying");
                    sleep(Duration::from_millis(ACCEPT_ERROR_PAUSE_MS)).await;
                    continue;
                }
            },
            _ = stopped(&mut shutdown) => break,
        };
        if state.http_stats.connections.load(Relaxed) >= state.config.max_connections as u64 {
            // Closed unanswered: reading a request to refuse it would be
            // the work the bound is there to spare.
            state.http_stats.connections_refused.fetch_add(1, Relaxed);
            tracing::debug!("HTTP connection refused: max_connections reached");
            continue;
        }
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY on an HTTP connection");
        }
        let io = WriteDeadline::new(stream, write_deadline).counted(Counted::new(state.clone()));
        let service = TowerToHyperService::new(app.clone());
        let connection = http1.serve_connection(TokioIo::new(io), service).with_upgrades();
        let (open, mut shutdown) = (open.clone(), shutdown.clone());
        tokio::spawn(async move {
            let mut connection = std::pin::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                _ = stopped(&mut shutdown) => {
                    // Closes the connection once its current request is answered.
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "HTTP connection ended with an error");
            }
            drop(open);
        });
    }
    drop(open);
    let _ = all_closed.recv().await;
}

/// Errors of one connection that `accept` reports; the listener is fine.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}

/// An IO stream whose writes fail with [`io::ErrorKind::TimedOut`] once they
/// have been blocked for `deadline` without writing a byte.
pub(crate) struct WriteDeadline<T> {
    inner: T,
    deadline: Duration,
    /// Armed while a write, flush or shutdown is blocked; boxed so the
    /// stream stays `Unpin`, and kept between stalls to reuse its allocation.
    timer: Option<Pin<Box<Sleep>>>,
    armed: bool,
    counted: Option<Counted>,
}

/// Keeps `herald_http_connections` and `herald_http_write_timeouts_total`.
pub(crate) struct Counted(Arc<ServerState>);

impl Counted {
    fn new(state: Arc<ServerState>) -> Self {
        state.http_stats.connections.fetch_add(1, Relaxed);
        Self(state)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.http_stats.connections.fetch_sub(1, Relaxed);
    }
}

impl<T> WriteDeadline<T> {
    pub(crate) fn new(inner: T, deadline: Duration) -> Self {
        Self {
            inner,
            deadline,
            timer: None,
            armed: false,
            counted: None,
        }
    }

    fn counted(mut self, counted: Counted) -> Self {
        self.counted = Some(counted);
        self
    }

    /// Passes `result` on, disarming the timer when a write went through
    /// (`wrote`) and failing it when the deadline has passed while blocked.
    ///
    /// Only a completed write disarms: a socket's flush completes at once
    /// even when nothing can be written, and hyper flushes between its
    /// attempts to write.
    fn watch<R>(
        &mut self,
        cx: &mut Context<'_>,
        result: Poll<io::Result<R>>,
        wrote: bool,
    ) -> Poll<io::Result<R>> {
        if result.is_ready() {
            if wrote {
                self.armed = false;
            }
            return result;
        }
        let at = Instant::now() + self.deadline;
        let timer = self.timer.get_or_insert_with(|| Box::pin(sleep(self.deadline)));
        if !self.armed {
            timer.as_mut().reset(at);
            self.armed = true;
        }
        ready!(timer.as_mut().poll(cx));
        if let Some(counted) = &self.counted {
            counted.0.http_stats.write_timeouts.fetch_add(1, Relaxed);
        }
        tracing::debug!(
            deadline_ms = self.deadline.as_millis() as u64,
            "closing an HTTP connection: writes blocked"
        );
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the client accepted no data within the write deadline",
        )))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WriteDeadline<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.watch(cx, result, true)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.watch(cx, result, true)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_flush(cx);
        this.watch(cx, result, false)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.watch(cx, result, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    #[tokio::test(start_paused = true)]
    async fn a_write_blocked_past_the_deadline_fails_and_progress_rearms_it() {
        // A 64-byte pipe: the writer blocks as soon as the reader stops reading.
        let (near, mut far) = tokio::io::duplex(64);
        let mut stream = WriteDeadline::new(near, Duration::from_secs(10));
        stream.write_all(&[1; 64]).await.unwrap();

        // Blocked for 9 s, then the reader drains: the write completes.
        let reader = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(9)).await;
            let mut buf = [0; 64];
            far.read_exact(&mut buf).await.unwrap();
            far
        });
        stream.write_all(&[2; 64]).await.unwrap();
        let _far = reader.await.unwrap();

        // Blocked again with nobody reading: the deadline starts anew and
        // fires after 10 s, though flushes complete in between (as hyper's do).
        let started = Instant::now();
        let blocked = async {
            loop {
                let written = tokio::time::timeout(Duration::from_secs(1), stream.write_all(&[3; 64])).await;
                if let Ok(result) = written {
                    return result;
                }
                stream.flush().await.unwrap();
            }
        };
        let err = tokio::time::timeout(Duration::from_secs(60), blocked)
            .await
            .expect("the write deadline fired")
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(10));
    }
}
