//! Draining a serving thread's connections at shutdown. hyper-util's `GracefulShutdown` gives
//! each connection a watch-channel receiver and polls its `changed()` every time the
//! connection is polled, twice per request, taking the channel's waiter lock each time. Here a
//! connection checks one flag when polled and hands its waker over only when it changes (a
//! spawned connection's waker does not), so a request costs an atomic load.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use hyper_util::server::graceful::GracefulConnection;
use tokio::sync::Notify;

/// A connection that can be asked to finish: hyper's, or `serve_h1`'s.
pub trait Graceful: Future<Output = Result<(), Self::Error>> {
    type Error;

    /// Finish what is in flight, then close.
    fn graceful_shutdown(self: Pin<&mut Self>);
}

impl<C: GracefulConnection> Graceful for C {
    type Error = <C as GracefulConnection>::Error;

    fn graceful_shutdown(self: Pin<&mut Self>) {
        GracefulConnection::graceful_shutdown(self);
    }
}

/// One serving thread's open connections.
#[derive(Default)]
pub struct Drain {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    /// Set once, at shutdown; read on every poll of every connection.
    stopping: AtomicBool,
    open: Mutex<Open>,
    /// The last connection has gone.
    empty: Notify,
}

#[derive(Default)]
struct Open {
    next: u64,
    /// Every open connection by id, with the waker it was last polled with (`None` before its
    /// first poll).
    wakers: HashMap<u64, Option<Waker>>,
}

impl Shared {
    fn open(&self) -> MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drain {
    /// `conn`, served until it ends, or shut down gracefully once [`Drain::shutdown`] is called.
    pub fn watch<C: Graceful>(&self, conn: C) -> Watched<C> {
        self.entry().watch(conn)
    }

    /// A place for a connection that is not ready to serve yet (a TLS handshake): shutdown
    /// waits for it too.
    pub fn entry(&self) -> Entry {
        let mut open = self.shared.open();
        let id = open.next;
        open.next += 1;
        open.wakers.insert(id, None);
        Entry { shared: self.shared.clone(), id }
    }

    /// Asks every connection to finish (in-flight requests complete, idle ones close) and
    /// waits until all have ended.
    pub async fn shutdown(&self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        let wakers: Vec<Waker> = self.shared.open().wakers.values().flatten().cloned().collect();
        wakers.into_iter().for_each(Waker::wake);
        loop {
            let empty = self.shared.empty.notified();
            if self.shared.open().wakers.is_empty() {
                return;
            }
            empty.await;
        }
    }

    /// How many connections are open.
    #[cfg(test)]
    fn open(&self) -> usize {
        self.shared.open().wakers.len()
    }
}

/// A connection's place in a [`Drain`]; leaving it (drop) ends the connection's count.
pub struct Entry {
    shared: Arc<Shared>,
    id: u64,
}

impl Entry {
    pub fn watch<C: Graceful>(self, conn: C) -> Watched<C> {
        Watched { conn: Box::pin(conn), entry: self, waker: None, shutting: false }
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        let mut open = self.shared.open();
        open.wakers.remove(&self.id);
        if open.wakers.is_empty() {
            self.shared.empty.notify_waiters();
        }
    }
}

/// A connection under a [`Drain`].
pub struct Watched<C> {
    conn: Pin<Box<C>>,
    entry: Entry,
    /// The waker the drain holds for this connection.
    waker: Option<Waker>,
    shutting: bool,
}

impl<C: Graceful> Future for Watched<C> {
    type Output = Result<(), C::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if !this.shutting {
            let shared = &this.entry.shared;
            let mut stopping = shared.stopping.load(Ordering::Acquire);
            if !stopping && !this.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                // Under the lock `shutdown` wakes from: either it sees this waker, or this
                // sees that it is stopping.
                let mut open = shared.open();
                stopping = shared.stopping.load(Ordering::Acquire);
                if !stopping {
                    open.wakers.insert(this.entry.id, Some(cx.waker().clone()));
                    this.waker = Some(cx.waker().clone());
                }
            }
            if stopping {
                this.shutting = true;
                this.conn.as_mut().graceful_shutdown();
            }
        }
        this.conn.as_mut().poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http_body_util::Empty;
    use hyper::body::Bytes;
    use hyper::service::service_fn;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::Drain;

    /// One served connection whose requests take `delay`; the client end.
    async fn serve_one(drain: &Drain, delay: Duration) -> (TcpStream, tokio::task::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (stream, _) = listener.accept().await.unwrap();
        let service = service_fn(move |_req| async move {
            tokio::time::sleep(delay).await;
            Ok::<_, std::convert::Infallible>(http::Response::new(Empty::<Bytes>::new()))
        });
        let conn = auto::Builder::new(TokioExecutor::new())
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let conn = drain.watch(conn);
        (
            client,
            tokio::spawn(async move {
                let _ = conn.await;
            }),
        )
    }

    #[tokio::test]
    async fn an_idle_connection_is_closed_and_shutdown_returns() {
        let drain = Drain::default();
        let (mut client, served) = serve_one(&drain, Duration::ZERO).await;
        client.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await.unwrap();
        let mut buf = [0u8; 1024];
        let n = client.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        assert_eq!(drain.open(), 1);
        tokio::time::timeout(Duration::from_secs(5), drain.shutdown()).await.expect("drained");
        assert_eq!(client.read(&mut buf).await.unwrap(), 0, "the idle connection is closed");
        served.await.unwrap();
        assert_eq!(drain.open(), 0);
    }

    #[tokio::test]
    async fn a_request_in_flight_finishes_before_shutdown_returns() {
        let drain = Drain::default();
        let (mut client, _served) = serve_one(&drain, Duration::from_millis(300)).await;
        client.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await.unwrap();
        // Let the connection take the request before the drain starts.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let reader = tokio::spawn(async move {
            let mut all = Vec::new();
            client.read_to_end(&mut all).await.unwrap();
            all
        });
        tokio::time::timeout(Duration::from_secs(5), drain.shutdown()).await.expect("drained");
        let all = reader.await.unwrap();
        assert!(all.starts_with(b"HTTP/1.1 200"), "the answer came before the close");
    }

    #[tokio::test]
    async fn shutdown_waits_for_an_entry_not_yet_serving() {
        let drain = Drain::default();
        let entry = drain.entry();
        let later = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            drop(entry);
        });
        let started = tokio::time::Instant::now();
        tokio::time::timeout(Duration::from_secs(5), drain.shutdown()).await.expect("drained");
        assert!(started.elapsed() >= Duration::from_millis(150), "shutdown waited for the entry");
        later.await.unwrap();
    }

    #[tokio::test]
    async fn shutdown_with_nothing_open_returns_at_once() {
        let drain = Drain::default();
        tokio::time::timeout(Duration::from_secs(1), drain.shutdown()).await.expect("nothing to wait for");
    }
}
