//! A route's `idle_timeout`: a response body or websocket that goes quiet for that long is
//! closed, so a stalled upstream cannot hold a client (and a proxy task) forever.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::BoxError;

/// A response body that fails once no frame has arrived for `idle`. The timer is made only
/// when the body first has to wait, so bodies that are ready at once cost nothing.
pub(crate) struct IdleBody<B> {
    inner: B,
    idle: Duration,
    timer: Option<Pin<Box<Sleep>>>,
    /// A frame arrived since the timer was last armed.
    progressed: bool,
    route: usize,
}

impl<B> IdleBody<B> {
    pub(crate) fn new(inner: B, idle: Duration, route: usize) -> Self {
        IdleBody { inner, idle, timer: None, progressed: false, route }
    }
}

#[derive(Debug)]
struct IdleTimeout(Duration);

impl std::fmt::Display for IdleTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the upstream sent nothing for {:?} (the route's idle_timeout)", self.0)
    }
}

impl std::error::Error for IdleTimeout {}

impl<B> HttpBody for IdleBody<B>
where
    B: HttpBody<Data = Bytes, Error = BoxError> + Unpin,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            this.progressed = true;
            return Poll::Ready(frame);
        }
        let progressed = std::mem::take(&mut this.progressed);
        let idle = this.idle;
        let timer = match &mut this.timer {
            Some(timer) => {
                if progressed {
                    timer.as_mut().reset(Instant::now() + idle);
                }
                timer
            }
            None => this.timer.insert(Box::pin(tokio::time::sleep(idle))),
        };
        ready!(timer.as_mut().poll(cx));
        let error = IdleTimeout(this.idle);
        tracing::warn!(route = this.route, "closing the response: {error}");
        Poll::Ready(Some(Err(Box::new(error))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Copy both ways between a websocket's client and upstream until either closes, or until
/// neither has sent a byte for `idle`.
pub(crate) async fn copy_bidirectional<A, B>(
    client: A,
    upstream: B,
    idle: Option<Duration>,
    route: usize,
) -> std::io::Result<()>
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let Some(idle) = idle else {
        let (mut client, mut upstream) = (client, upstream);
        return tokio::io::copy_bidirectional(&mut client, &mut upstream).await.map(drop);
    };
    let start = Instant::now();
    let last = Arc::new(AtomicU64::new(0));
    let mut client = Active { io: client, start, last: last.clone() };
    let mut upstream = Active { io: upstream, start, last: last.clone() };
    let copy = tokio::io::copy_bidirectional(&mut client, &mut upstream);
    let watch = async {
        loop {
            let seen = last.load(Ordering::Relaxed);
            tokio::time::sleep_until(start + Duration::from_millis(seen) + idle).await;
            if last.load(Ordering::Relaxed) == seen {
                return;
            }
        }
    };
    tokio::select! {
        r = copy => r.map(drop),
        () = watch => {
            tracing::info!(route, "closing a websocket: nothing sent either way for {idle:?} (the route's idle_timeout)");
            Ok(())
        }
    }
}

/// An IO that records when it last read anything (milliseconds since `start`).
struct Active<T> {
    io: T,
    start: Instant,
    last: Arc<AtomicU64>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Active<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.io).poll_read(cx, buf))?;
        if buf.filled().len() > before {
            let now = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
            self.last.store(now, Ordering::Relaxed);
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Active<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
