//! Plain-HTTP upstream connections of one serving thread: HTTP/1.1 keep-alive connections,
//! kept per upstream authority and reused in the request's own task. Requests without a
//! body go over [`crate::h1`] (head written and answer read in the request's task); requests
//! with one over hyper's client connection, which streams the body.
//!
//! hyper-util's pooled client does the same job for every upstream, but pays on each request
//! for a shared pool keyed by scheme and authority, a connector clone, and a spawned task
//! that waits for the connection to become idle again. Here a connection goes back to its
//! thread's list the moment its response body ends; a body abandoned midway closes it.
//! TLS upstreams and websockets keep using hyper-util's client.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tracing::debug;
// Keyed by the configuration's upstream addresses: a fast unkeyed hash is safe.
use rustc_hash::FxHashMap as HashMap;

use crate::{Body, BoxError, h1};

/// Idle connections kept per upstream authority (as hyper-util's client is configured).
const MAX_IDLE_PER_UPSTREAM: usize = 256;
/// An idle connection older than this is closed rather than reused.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// How often idle connections past [`IDLE_TIMEOUT`] are closed.
const SWEEP_EVERY: Duration = Duration::from_secs(30);
/// Connecting to an upstream.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

struct Idle {
    sender: http1::SendRequest<Body>,
    since: Instant,
}

struct IdleWire {
    wire: h1::Wire,
    since: Instant,
}

/// The thread's idle connections, by `host:port`: hyper's, and [`h1`]'s.
#[derive(Default)]
pub struct Pool {
    idle: Mutex<HashMap<String, Vec<Idle>>>,
    wires: Mutex<HashMap<String, Vec<IdleWire>>>,
}

impl Pool {
    pub fn new() -> Arc<Pool> {
        Arc::new(Pool::default())
    }

    /// An idle connection to `authority` that is open and ready for a request.
    fn take(&self, authority: &str) -> Option<http1::SendRequest<Body>> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let list = idle.get_mut(authority)?;
        let now = Instant::now();
        // Connections given back a moment ago whose task has not yet read the end of the
        // last message: usable soon, not now.
        let mut finishing = Vec::new();
        let mut found = None;
        while let Some(c) = list.pop() {
            if c.sender.is_closed() || now.duration_since(c.since) > IDLE_TIMEOUT {
                continue;
            }
            if c.sender.is_ready() {
                found = Some(c.sender);
                break;
            }
            finishing.push(c);
        }
        list.extend(finishing);
        found
    }

    /// Close the connections idle longer than [`IDLE_TIMEOUT`] at `now`, and forget those the
    /// upstream closed (an upstream that keeps idle connections open forever would otherwise
    /// hold them, and their sockets, until the next request to it).
    fn sweep(&self, now: Instant) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        for list in idle.values_mut() {
            // Dropping the last handle of an idle connection makes hyper close it.
            list.retain(|c| !c.sender.is_closed() && now.duration_since(c.since) <= IDLE_TIMEOUT);
        }
        idle.retain(|_, list| !list.is_empty());
        drop(idle);
        let mut wires = self.wires.lock().unwrap_or_else(PoisonError::into_inner);
        for list in wires.values_mut() {
            list.retain(|c| now.duration_since(c.since) <= IDLE_TIMEOUT && !c.wire.closed_while_idle());
        }
        wires.retain(|_, list| !list.is_empty());
    }

    fn idle_count(&self) -> usize {
        let hyper: usize =
            self.idle.lock().unwrap_or_else(PoisonError::into_inner).values().map(Vec::len).sum();
        let wires: usize =
            self.wires.lock().unwrap_or_else(PoisonError::into_inner).values().map(Vec::len).sum();
        hyper + wires
    }

    /// The most recently used idle [`h1`] connection to `authority` that the socket does not
    /// report closed or carrying stray bytes.
    fn take_wire(&self, authority: &str) -> Option<h1::Wire> {
        let mut wires = self.wires.lock().unwrap_or_else(PoisonError::into_inner);
        let list = wires.get_mut(authority)?;
        let now = Instant::now();
        while let Some(c) = list.pop() {
            if now.duration_since(c.since) > IDLE_TIMEOUT || c.wire.closed_while_idle() {
                continue;
            }
            return Some(c.wire);
        }
        None
    }

    pub(crate) fn give_back_wire(&self, authority: &str, wire: h1::Wire) {
        let mut wires = self.wires.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(list) = wires.get_mut(authority) {
            if list.len() < MAX_IDLE_PER_UPSTREAM {
                list.push(IdleWire { wire, since: Instant::now() });
            }
            return;
        }
        wires.insert(authority.to_owned(), vec![IdleWire { wire, since: Instant::now() }]);
    }

    /// A request without a body over [`h1`]. On a reused connection that turns out closed
    /// before any answer arrived (the upstream closed it as the request went out), an
    /// idempotent request goes once more on a fresh one, as nginx retries them; any other
    /// gets a bad gateway rather than risk being carried out twice.
    pub async fn send_head(
        self: &Arc<Self>,
        authority: &Arc<str>,
        head: &h1::Head<'_>,
    ) -> Result<http::Response<Body>, BoxError> {
        let idempotent = head.method.is_idempotent();
        if let Some(wire) = self.take_wire(authority) {
            match h1::exchange(wire, head).await {
                Ok(answer) => return Ok(self.wired(authority, answer)),
                Err(failed) if failed.nothing_answered && idempotent => {
                    debug!(error = %failed.error, "idle upstream connection was closed; reconnecting");
                }
                Err(failed) => return Err(failed.error.into()),
            }
        }
        let wire = h1::Wire::new(connect_tcp(authority).await?);
        match h1::exchange(wire, head).await {
            Ok(answer) => Ok(self.wired(authority, answer)),
            Err(failed) => Err(failed.error.into()),
        }
    }

    fn wired(self: &Arc<Self>, authority: &Arc<str>, answer: h1::Answer) -> http::Response<Body> {
        let mut body = answer.body;
        body.on_end((self.clone(), authority.clone()));
        http::Response::from_parts(answer.head, http_body_util::BodyExt::boxed(body))
    }

    fn give_back(&self, authority: &str, sender: http1::SendRequest<Body>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let list = idle.entry(authority.to_owned()).or_default();
        if list.len() < MAX_IDLE_PER_UPSTREAM {
            list.push(Idle { sender, since: Instant::now() });
        }
    }

    /// Send `req` (origin-form URI, `Host` set) to `authority` (`host:port`) over an idle
    /// connection or a new one. A request that an idle connection could not take (the
    /// upstream closed it meanwhile) goes once more, on a new connection: hyper hands it back
    /// only when none of it was written, so its body has not been read yet.
    pub async fn send(
        self: &Arc<Self>,
        authority: &Arc<str>,
        req: http::Request<Body>,
    ) -> Result<http::Response<Body>, BoxError> {
        if goes_over_h1(req.method(), req.body()) {
            let (parts, _) = req.into_parts();
            let fields: Vec<_> = parts.headers.iter().map(|(n, v)| (n.clone(), v.clone())).collect();
            let head = h1::Head { method: &parts.method, target: &parts.uri, fields: &fields };
            return self.send_head(authority, &head).await;
        }
        let mut req = req;
        if let Some(mut sender) = self.take(authority) {
            match sender.try_send_request(req).await {
                Ok(resp) => return Ok(self.wrap(authority, sender, resp)),
                Err(mut e) => match e.take_message() {
                    // Never written: safe to send again on a fresh connection.
                    Some(r) => {
                        debug!(error = %e.error(), "idle upstream connection could not take the request; reconnecting");
                        req = r;
                    }
                    None => return Err(e.into_error().into()),
                },
            }
        }
        let mut sender = connect(authority).await?;
        let resp = sender.send_request(req).await?;
        Ok(self.wrap(authority, sender, resp))
    }

    fn wrap(
        self: &Arc<Self>,
        authority: &str,
        sender: http1::SendRequest<Body>,
        resp: http::Response<Incoming>,
    ) -> http::Response<Body> {
        let (parts, body) = resp.into_parts();
        let back = Some((self.clone(), authority.to_owned(), sender));
        let mut body = PooledBody { inner: body, back };
        // Nothing to read (a HEAD, a 204, an empty body): the connection is free already.
        if body.inner.is_end_stream() {
            body.release();
        }
        http::Response::from_parts(parts, http_body_util::BodyExt::boxed(body))
    }
}

/// Whether a request goes over [`h1`]: it has no body, and is not a CONNECT (which turns the
/// connection into a tunnel: hyper's client knows that).
pub fn goes_over_h1(method: &http::Method, body: &impl HttpBody) -> bool {
    body.is_end_stream() && method != http::Method::CONNECT
}

/// Sweep `pool` every [`SWEEP_EVERY`] until `shutdown` (one task per serving thread).
pub async fn sweep(pool: Arc<Pool>, shutdown: portcullis_runtime::Shutdown) {
    while !shutdown.sleep_or_stop(SWEEP_EVERY).await {
        pool.sweep(Instant::now());
        debug!(idle = pool.idle_count(), "upstream connections swept");
    }
}

async fn connect_tcp(authority: &str) -> Result<TcpStream, BoxError> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(authority))
        .await
        .map_err(|_| format!("connecting to {authority} timed out"))??;
    stream.set_nodelay(true)?;
    Ok(stream)
}

async fn connect(authority: &str) -> Result<http1::SendRequest<Body>, BoxError> {
    let stream = connect_tcp(authority).await?;
    let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        if let Err(error) = conn.await {
            debug!(%error, "upstream connection ended with an error");
        }
    });
    Ok(sender)
}

/// An upstream response body that gives its connection back once it has been read to the
/// end. Dropped before the end, it takes the connection with it (hyper closes it).
struct PooledBody {
    inner: Incoming,
    back: Option<(Arc<Pool>, String, http1::SendRequest<Body>)>,
}

impl PooledBody {
    fn release(&mut self) {
        if let Some((pool, authority, sender)) = self.back.take() {
            pool.give_back(&authority, sender);
        }
    }
}

impl HttpBody for PooledBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.release(),
            Poll::Ready(Some(Ok(_))) if self.inner.is_end_stream() => self.release(),
            // A broken body leaves the connection in an unknown state: never reused.
            Poll::Ready(Some(Err(_))) => self.back = None,
            _ => {}
        }
        polled.map(|f| f.map(|r| r.map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        if self.inner.is_end_stream() {
            self.release();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    /// A real HTTP/1.1 upstream on loopback that answers `ok` and keeps connections alive.
    async fn upstream() -> (Arc<str>, Arc<std::sync::atomic::AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("addr").to_string();
        let open = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = open.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let counter = counter.clone();
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(|_req| async {
                        Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(
                            Bytes::from_static(b"ok"),
                        )))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                    // The connection ended (the proxy closed it).
                    counter.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                });
            }
        });
        (address.into(), open)
    }

    fn get(address: &str) -> http::Request<Body> {
        http::Request::builder()
            .uri("/")
            .header(http::header::HOST, address)
            .body(http_body_util::Empty::new().map_err(Into::into).boxed())
            .expect("request")
    }

    /// A request with a body (it goes over hyper's client connection).
    fn post(address: &str) -> http::Request<Body> {
        http::Request::builder()
            .method(http::Method::POST)
            .uri("/")
            .header(http::header::HOST, address)
            .body(http_body_util::Full::new(Bytes::from_static(b"hi")).map_err(Into::into).boxed())
            .expect("request")
    }

    #[tokio::test]
    async fn connections_are_reused_after_their_body_ends_and_closed_after_the_idle_timeout() {
        reuse_and_idle_timeout(get).await;
    }

    #[tokio::test]
    async fn connections_carrying_request_bodies_are_reused_and_closed_the_same_way() {
        reuse_and_idle_timeout(post).await;
    }

    async fn reuse_and_idle_timeout(request: fn(&str) -> http::Request<Body>) {
        let get = request;
        let (address, open) = upstream().await;
        let pool = Pool::new();
        for _ in 0..3 {
            let response = pool.send(&address, get(&address)).await.expect("answer");
            let body = response.into_body().collect().await.expect("body").to_bytes();
            assert_eq!(&body[..], b"ok");
        }
        assert_eq!(pool.idle_count(), 1, "three requests in a row over one connection");
        assert_eq!(open.load(std::sync::atomic::Ordering::SeqCst), 1);

        // A body dropped before its end takes its connection with it.
        let response = pool.send(&address, get(&address)).await.expect("answer");
        drop(response);
        assert_eq!(pool.idle_count(), 0);

        let response = pool.send(&address, get(&address)).await.expect("answer");
        response.into_body().collect().await.expect("body");
        assert_eq!(pool.idle_count(), 1);
        pool.sweep(Instant::now());
        assert_eq!(pool.idle_count(), 1, "not idle for long yet");
        pool.sweep(Instant::now() + IDLE_TIMEOUT + Duration::from_secs(1));
        assert_eq!(pool.idle_count(), 0, "swept after the idle timeout");
        // The upstream sees both connections closed.
        for _ in 0..100 {
            if open.load(std::sync::atomic::Ordering::SeqCst) == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{} upstream connections still open", open.load(std::sync::atomic::Ordering::SeqCst));
    }

    /// An upstream that answers one request per connection and then closes it without saying
    /// so (as one whose keep-alive timeout expires does): the pool must notice, in the sweep
    /// and when the next request comes, and send that request on a new connection.
    #[tokio::test]
    async fn an_idle_connection_the_upstream_closed_is_not_used() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address: Arc<str> = listener.local_addr().expect("addr").to_string().into();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let mut seen = Vec::new();
                    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => seen.extend_from_slice(&buf[..n]),
                        }
                    }
                    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                });
            }
        });
        let pool = Pool::new();
        let response = pool.send(&address, get(&address)).await.expect("answer");
        response.into_body().collect().await.expect("body");
        assert_eq!(pool.idle_count(), 1);
        tokio::time::sleep(Duration::from_millis(200)).await;
        pool.sweep(Instant::now());
        assert_eq!(pool.idle_count(), 0, "the sweep drops a connection the upstream closed");

        let response = pool.send(&address, get(&address)).await.expect("answer");
        response.into_body().collect().await.expect("body");
        tokio::time::sleep(Duration::from_millis(200)).await;
        // Closed again while idle; this time the request itself finds out.
        let response = pool.send(&address, get(&address)).await.expect("a new connection answers");
        let body = response.into_body().collect().await.expect("body").to_bytes();
        assert_eq!(&body[..], b"ok");
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 3);
    }

    /// An upstream speaking raw HTTP/1.1: the answer depends on the path, and some answers
    /// arrive in pieces. It runs on a thread of its own, so that it keeps sending while the
    /// test's runtime is blocked.
    async fn raw_upstream() -> Arc<str> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let address = listener.local_addr().expect("addr").to_string();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        std::thread::spawn(move || {
            runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut seen = Vec::new();
                    let mut buf = vec![0u8; 4096];
                    loop {
                        let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") else {
                            match stream.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => seen.extend_from_slice(&buf[..n]),
                            }
                            continue;
                        };
                        let head = String::from_utf8_lossy(&seen[..end]).into_owned();
                        seen.drain(..end + 4);
                        let path = head.split(' ').nth(1).unwrap_or_default().to_owned();
                        let pieces: &[&[u8]] = match path.as_str() {
                            "/head-with-body" => &[b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\n", b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nstolen"],
                            "/length" | "/late-extra" => &[b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhel", b"lo"],
                            "/chunked" => &[
                                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r",
                                b"\nhel",
                                b"lo\r\n6;x=y\r\n world\r\n0\r\nx-trailer: 1\r\n\r\n",
                            ],
                            "/continue" => &[b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"],
                            "/close" => &[b"HTTP/1.1 200 OK\r\n\r\nhello", b" world"],
                            "/both" => &[b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"],
                            "/two-lengths" => &[b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello!"],
                            "/short" => &[b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhello"],
                            "/bad-chunk" => &[b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"],
                            "/extra" => &[b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n\r\n"],
                            _ => &[b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"],
                        };
                        for piece in pieces {
                            if stream.write_all(piece).await.is_err() {
                                return;
                            }
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                        if matches!(path.as_str(), "/close" | "/short" | "/bad-chunk" | "/both") {
                            return;
                        }
                        if path == "/late-extra" {
                            tokio::time::sleep(Duration::from_millis(30)).await;
                            let _ =
                                stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nstolen").await;
                        }
                    }
                });
            }
        })
        });
        address.into()
    }

    fn get_path(address: &str, path: &str) -> http::Request<Body> {
        http::Request::builder()
            .uri(path)
            .header(http::header::HOST, address)
            .body(http_body_util::Empty::new().map_err(Into::into).boxed())
            .expect("request")
    }

    #[tokio::test]
    async fn answers_framed_each_way_arrive_whole_and_only_clean_ends_are_reused() {
        let address = raw_upstream().await;
        let pool = Pool::new();
        for (path, body, reused) in [
            ("/length", &b"hello"[..], true),
            ("/chunked", b"hello world", true),
            ("/continue", b"ok", true),
            ("/close", b"hello world", false),
            ("/both", b"hello", false),
            ("/extra", b"ok", false),
        ] {
            let response = pool.send(&address, get_path(&address, path)).await.expect(path);
            assert_eq!(response.status(), 200, "{path}");
            if path == "/both" {
                assert!(response.headers().get(http::header::CONTENT_LENGTH).is_none(), "{path}");
            }
            let got = response.into_body().collect().await.expect(path).to_bytes();
            assert_eq!(&got[..], body, "{path}");
            assert_eq!(pool.idle_count(), usize::from(reused), "{path}");
            pool.wires.lock().expect("lock").clear();
        }
        // An answer to no request that arrives while the connection is idle never reaches
        // the next request: that connection is dropped.
        let response = pool.send(&address, get_path(&address, "/late-extra")).await.expect("answer");
        response.into_body().collect().await.expect("body");
        assert_eq!(pool.idle_count(), 1);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let response = pool.send(&address, get_path(&address, "/length")).await.expect("answer");
        let got = response.into_body().collect().await.expect("body").to_bytes();
        assert_eq!(&got[..], b"hello");
        pool.wires.lock().expect("lock").clear();
        // A HEAD answered with a body anyway (as a separate segment, right after the head):
        // the connection is not reused even at once, before the runtime saw it readable.
        let head = http::Request::builder()
            .method(http::Method::HEAD)
            .uri("/head-with-body")
            .header(http::header::HOST, &*address)
            .body(http_body_util::Empty::new().map_err(Into::into).boxed())
            .expect("request");
        let response = pool.send(&address, head).await.expect("answer");
        assert_eq!(
            response.headers().get(http::header::CONTENT_LENGTH).map(|v| v.as_bytes()),
            Some(&b"6"[..])
        );
        response.into_body().collect().await.expect("no body");
        // Blocking, so that this runtime does not look at its sockets meanwhile.
        std::thread::sleep(Duration::from_millis(30));
        let response = pool.send(&address, get_path(&address, "/length")).await.expect("answer");
        let got = response.into_body().collect().await.expect("body").to_bytes();
        assert_eq!(&got[..], b"hello", "the stray answer never reaches the next request");
        pool.wires.lock().expect("lock").clear();
        // A head that frames its body two ways is a bad gateway.
        assert!(pool.send(&address, get_path(&address, "/two-lengths")).await.is_err());
        // A body cut short, or a broken chunk, fails the body and frees nothing.
        for path in ["/short", "/bad-chunk"] {
            let response = pool.send(&address, get_path(&address, path)).await.expect(path);
            assert!(response.into_body().collect().await.is_err(), "{path}");
            assert_eq!(pool.idle_count(), 0, "{path}");
        }
    }
}
