//! The client side's HTTP/1.1 for the requests that make up nearly all of a proxy's traffic:
//! `GET` and `HEAD` over HTTP/1.1, without a body, not asking for an upgrade. Their head is
//! read with `httparse`, the request answered, and the response written from this one task,
//! without hyper's dispatcher and its state machine around every request.
//!
//! Anything else hands the connection over to hyper for the rest of its life, with the bytes
//! read so far: a request with `Content-Length` or `Transfer-Encoding` (any body, however
//! framed), `Upgrade` or `Expect`, another method, HTTP/1.0, HTTP/2's preface, absolute-form
//! targets, or a head that does not parse or has too many fields. hyper then answers exactly
//! as it did before this path existed (its 400s and 431s, `100-continue`, request bodies,
//! websockets). Requests are never smuggled between the two: the hand-over happens only where
//! a request starts, and a request with any body framing never takes this path. A head over
//! 64 KiB gets 431 here.
//!
//! Heads are parsed once an empty line has arrived (and on a head's first bytes), not on
//! every read, so a head sent a byte at a time costs linear work. A head must be whole within
//! 30 s of its first byte.
//!
//! Responses are framed as hyper frames them (`content-length` from the body's exact size,
//! chunked otherwise; no body for `HEAD`, 204 and 304, no `content-length` for 204; a `date`;
//! `connection: close` when the connection will close); one that cannot be framed as it is
//! (a bad `content-length`, a 1xx as the final status) becomes a 500. While a request is
//! answered and while its body streams, the connection is still read, as hyper reads it: a
//! client that goes away ends its request and its response. Pipelined requests followed by
//! the client's half-close are all answered first.

use std::convert::Infallible;
use std::future::{Future, poll_fn};
use std::mem::MaybeUninit;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri, Version, header};
use http_body_util::BodyExt;
use hyper::body::Body as _;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tracing::{debug, warn};

use crate::{Body, BoxError, RequestBody};

/// What answers a connection's requests (the proxy, for one client connection).
pub(crate) trait Answer: Send + Sync + 'static {
    fn answer(&self, req: Request<RequestBody>) -> impl Future<Output = Response<Body>> + Send + '_;
}

/// `answer` as a hyper service, for the connections hyper serves.
pub(crate) fn service<A: Answer>(
    answer: Arc<A>,
) -> impl hyper::service::Service<
    Request<hyper::body::Incoming>,
    Response = Response<Body>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<Body>, Infallible>> + Send,
> + Clone {
    hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
        let answer = answer.clone();
        async move { Ok::<_, Infallible>(answer.answer(req.map(RequestBody::Hyper)).await) }
    })
}

/// Most header fields in a request head (hyper's default; more: hyper answers 431).
const MAX_HEADERS: usize = 100;
/// Longest request target hyper accepts (longer: its 414).
const MAX_URI_LEN: usize = (u16::MAX - 1) as usize;
/// How long a request head may take to arrive once its first bytes have (the default of
/// hyper's `header_read_timeout`, which hyper applies only when given a timer).
pub(crate) const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// The size of a new read buffer.
const READ_SIZE: usize = 8 * 1024;
/// Least room a read is given.
const MIN_ROOM: usize = 1024;
/// Body data up to this size is copied behind the head, to go out in one write.
const COPY_AT_MOST: usize = 16 * 1024;
/// Buffered output is written out once it reaches this size.
const FLUSH_AT: usize = 64 * 1024;
/// Buffers larger than this are let go between requests.
const KEEP_AT_MOST: usize = 16 * 1024;

/// A client connection served by [`serve`], under a [`crate::drain::Drain`].
pub struct Lean {
    served: Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>,
    stop: Arc<AtomicBool>,
}

impl Lean {
    pub fn new<I, A>(io: I, answer: Arc<A>, builder: auto::Builder<TokioExecutor>) -> Lean
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        A: Answer,
    {
        let stop = Arc::new(AtomicBool::new(false));
        let served = Box::pin(serve(io, answer, builder, stop.clone()));
        Lean { served, stop }
    }
}

impl Future for Lean {
    type Output = Result<(), BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.served.as_mut().poll(cx)
    }
}

impl crate::drain::Graceful for Lean {
    type Error = BoxError;

    /// Idle: the connection closes. A request in flight finishes, its response says
    /// `connection: close`, and then it closes. (The drain polls the connection right after.)
    fn graceful_shutdown(self: Pin<&mut Self>) {
        self.stop.store(true, Ordering::Release);
    }
}

/// The client's side of a connection: what has been read and not yet used, and whether the
/// client has closed its sending side.
struct Wire<I> {
    io: I,
    buf: BytesMut,
    /// The client sent EOF after bytes still buffered (pipelined requests, then a
    /// half-close): those are answered, then the connection closes.
    eof: bool,
}

/// What a read while a request is answered found.
enum Watch {
    /// More of what comes next, or nothing more to watch for (buffer full, EOF after
    /// buffered requests).
    Going,
    /// The client went away with nothing buffered: its request is dropped.
    Gone,
}

impl<I: AsyncRead + AsyncWrite + Unpin> Wire<I> {
    /// Whether reading on may show the client going away. hyper stops watching once bytes
    /// are buffered, and so does this: a client that pipelines and half-closes is answered.
    fn watching(&self) -> bool {
        !self.eof && self.buf.is_empty()
    }

    /// One read while a request is answered (see [`Wire::watching`]).
    async fn watch(&mut self) -> Watch {
        match read_more(&mut self.io, &mut self.buf).await {
            Ok(0) | Err(_) if self.buf.is_empty() => Watch::Gone,
            Ok(0) | Err(_) => {
                self.eof = true;
                Watch::Going
            }
            Ok(_) => Watch::Going,
        }
    }
}

/// Serve the connection until it closes, hands over to hyper, or the drain stops it.
async fn serve<I, A>(
    io: I,
    answer: Arc<A>,
    builder: auto::Builder<TokioExecutor>,
    stop: Arc<AtomicBool>,
) -> Result<(), BoxError>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    A: Answer,
{
    let mut wire = Wire { io, buf: BytesMut::new(), eof: false };
    let mut out = Vec::new();
    let mut first = true;
    let mut head_by = None;
    // How much of the buffer is known to hold no end of a head: a head that arrives in
    // many small reads is parsed once it is whole, not once per read.
    let mut scanned = 0;
    loop {
        let (req, client_close) = loop {
            // The first bytes of a head are parsed at once too, so that what is not HTTP/1.1
            // (HTTP/2's preface, garbage) goes to hyper without waiting.
            if (scanned == 0 && !wire.buf.is_empty()) || head_may_end(&wire.buf, scanned) {
                match parse(&mut wire.buf) {
                    Head::Ready(req, close) => break (req, close),
                    Head::Partial if wire.buf.len() < crate::server::MAX_HEADER_BYTES => {}
                    Head::Partial | Head::TooLarge => return too_large(wire, &mut out).await,
                    Head::Unfit => return hand_over(wire.io, wire.buf, answer, builder, stop, first).await,
                }
            } else if wire.buf.len() >= crate::server::MAX_HEADER_BYTES {
                return too_large(wire, &mut out).await;
            }
            scanned = wire.buf.len();
            if wire.eof {
                let _ = wire.io.shutdown().await;
                return Ok(());
            }
            // Between requests the drain may close the connection; in a head it waits, for
            // at most HEAD_TIMEOUT from the head's first bytes (a client trickling a head
            // byte by byte would hold the connection forever).
            let idle = wire.buf.is_empty();
            if idle {
                head_by = None;
            } else if head_by.is_none() {
                head_by = Some(tokio::time::Instant::now() + HEAD_TIMEOUT);
            }
            let read = tokio::select! {
                biased;
                () = stopped(&stop), if idle => {
                    let _ = wire.io.shutdown().await;
                    return Ok(());
                }
                () = until(head_by) => {
                    debug!(after = ?HEAD_TIMEOUT, "closing a connection whose request head did not arrive in time");
                    let _ = wire.io.shutdown().await;
                    return Ok(());
                }
                read = read_more(&mut wire.io, &mut wire.buf) => read,
            };
            match read {
                Ok(0) | Err(_) => return Ok(()),
                Ok(_) => {}
            }
        };
        first = false;
        head_by = None;
        scanned = 0;
        let head_only = req.method() == Method::HEAD;
        let response = {
            let mut answering = pin!(answer.answer(req));
            loop {
                if !wire.watching() {
                    break answering.await;
                }
                tokio::select! {
                    biased;
                    response = &mut answering => break response,
                    // The next request (kept), or the client gone: as with hyper, the
                    // request is dropped, and with it the upstream request.
                    watched = wire.watch() => if let Watch::Gone = watched {
                        return Ok(());
                    },
                }
            }
        };
        let keep_alive = !client_close && !stop.load(Ordering::Acquire);
        if !write_response(&mut wire, &mut out, response, head_only, keep_alive).await? {
            let _ = wire.io.shutdown().await;
            return Ok(());
        }
        // A large response's buffer is not kept by an idle connection.
        if out.capacity() > KEEP_AT_MOST {
            out = Vec::new();
        }
        if wire.buf.is_empty() && wire.buf.capacity() > KEEP_AT_MOST {
            wire.buf = BytesMut::new();
        }
    }
}

/// Whether `buf`, known to hold no end of a head in its first `scanned` bytes, may hold
/// one now: an empty line (`\n\n` or `\n\r\n`; httparse takes bare line feeds too).
fn head_may_end(buf: &[u8], scanned: usize) -> bool {
    let from = scanned.saturating_sub(2);
    let mut rest = &buf[from.min(buf.len())..];
    while let Some(at) = rest.iter().position(|&b| b == b'\n') {
        rest = &rest[at + 1..];
        match rest {
            [b'\n', ..] | [b'\r', b'\n', ..] => return true,
            _ => {}
        }
    }
    false
}

/// A request head over [`crate::server::MAX_HEADER_BYTES`]: 431, as hyper answers it, and the
/// connection closes (what else the client sent is not read).
async fn too_large<I: AsyncWrite + Unpin>(mut wire: Wire<I>, out: &mut Vec<u8>) -> Result<(), BoxError> {
    debug!(limit = crate::server::MAX_HEADER_BYTES, "a request head too large; answering 431");
    send_closing(&mut wire.io, out, b"431 Request Header Fields Too Large").await?;
    let _ = wire.io.shutdown().await;
    Ok(())
}

/// An empty response with `status` (code and reason) that closes the connection, sent.
async fn send_closing<I: AsyncWrite + Unpin>(
    io: &mut I,
    out: &mut Vec<u8>,
    status: &[u8],
) -> std::io::Result<()> {
    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status);
    out.extend_from_slice(b"\r\ncontent-length: 0\r\nconnection: close\r\ndate: ");
    date(out);
    out.extend_from_slice(b"\r\n\r\n");
    send(io, out).await
}

/// Ready once the drain has asked the connection to stop. ([`Lean::graceful_shutdown`]
/// is followed by a poll, so no waker is kept.)
async fn stopped(stop: &AtomicBool) {
    poll_fn(|_| if stop.load(Ordering::Acquire) { Poll::Ready(()) } else { Poll::Pending }).await;
}

/// Ready at `deadline`; never without one.
async fn until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// One read into `buf`. Room is made only when little is left: the heads of requests in
/// flight share the buffer, so making room while they live means a new one.
async fn read_more<I: AsyncRead + Unpin>(io: &mut I, buf: &mut BytesMut) -> std::io::Result<usize> {
    if buf.capacity() - buf.len() < MIN_ROOM {
        buf.reserve(READ_SIZE);
    }
    io.read_buf(buf).await
}

/// `out`, written and flushed (a TLS stream may hold written bytes until flushed).
async fn send<I: AsyncWrite + Unpin>(io: &mut I, out: &mut Vec<u8>) -> std::io::Result<()> {
    io.write_all(out).await?;
    out.clear();
    io.flush().await
}

/// The rest of the connection goes to hyper, starting with the unparsed bytes in `buf`.
async fn hand_over<I, A>(
    io: I,
    buf: BytesMut,
    answer: Arc<A>,
    builder: auto::Builder<TokioExecutor>,
    stop: Arc<AtomicBool>,
    first: bool,
) -> Result<(), BoxError>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    A: Answer,
{
    // HTTP/2 (prior knowledge) only as a connection's first bytes, as hyper-util's auto
    // builder would have seen them.
    let builder = if first { builder } else { builder.http1_only() };
    let io = TokioIo::new(Replay { read: buf.freeze(), io });
    let served = builder.serve_connection_with_upgrades(io, service(answer));
    let mut served = pin!(served);
    let mut told = false;
    poll_fn(|cx| {
        if !told && stop.load(Ordering::Acquire) {
            told = true;
            served.as_mut().graceful_shutdown();
        }
        served.as_mut().poll(cx)
    })
    .await
}

/// A connection with bytes already read from it, read again first.
struct Replay<I> {
    read: Bytes,
    io: I,
}

impl<I: AsyncRead + Unpin> AsyncRead for Replay<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        dst: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.read.is_empty() {
            return Pin::new(&mut self.io).poll_read(cx, dst);
        }
        let n = self.read.len().min(dst.remaining());
        dst.put_slice(&self.read.split_to(n));
        Poll::Ready(Ok(()))
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Replay<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        src: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, src)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        src: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, src)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[allow(clippy::large_enum_variant)] // handed straight to the caller, never stored
enum Head {
    /// A request for this path, and whether the client asked to close after it. Its head
    /// is gone from the buffer.
    Ready(Request<RequestBody>, bool),
    /// Not all of the head yet.
    Partial,
    /// For hyper; the buffer is as it was.
    Unfit,
    /// A whole head, larger than a head may be.
    TooLarge,
}

/// Where a field's name and value lie in the head.
#[derive(Clone, Copy, Default)]
struct Field {
    name: (usize, usize),
    value: (usize, usize),
}

/// The request at the start of `buf`, if it is one for this path.
fn parse(buf: &mut BytesMut) -> Head {
    let mut fields = [Field::default(); MAX_HEADERS];
    let (len, method, path, count, close) = {
        let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut []);
        let len = match req.parse_with_uninit_headers(buf, &mut headers) {
            Ok(httparse::Status::Complete(len)) if len > crate::server::MAX_HEADER_BYTES => {
                return Head::TooLarge;
            }
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => return Head::Partial,
            Err(_) => return Head::Unfit,
        };
        if req.version != Some(1) {
            return Head::Unfit;
        }
        let method = match req.method {
            Some("GET") => Method::GET,
            Some("HEAD") => Method::HEAD,
            _ => return Head::Unfit,
        };
        let Some(path) = req.path.filter(|p| p.starts_with('/') && p.len() <= MAX_URI_LEN) else {
            return Head::Unfit;
        };
        let start = buf.as_ptr() as usize;
        let at = |s: &[u8]| {
            let from = s.as_ptr() as usize - start;
            (from, from + s.len())
        };
        let mut close = false;
        for (field, h) in fields.iter_mut().zip(req.headers.iter()) {
            let name = h.name.as_bytes();
            if [&b"content-length"[..], b"transfer-encoding", b"upgrade", b"expect"]
                .iter()
                .any(|n| n.eq_ignore_ascii_case(name))
            {
                return Head::Unfit;
            }
            if name.eq_ignore_ascii_case(b"connection") {
                close |= has_token(h.value, b"close");
            }
            *field = Field { name: at(name), value: at(h.value) };
        }
        (len, method, at(path.as_bytes()), req.headers.len(), close)
    };
    let head = buf.split_to(len).freeze();
    match request(&head, method, path, &fields[..count]) {
        Some(req) => Head::Ready(req, close),
        None => {
            // A target or field that http does not take: hyper answers it (400). Rare, so
            // the head is copied back rather than kept whole for this.
            let mut whole = BytesMut::with_capacity(head.len() + buf.len());
            whole.extend_from_slice(&head);
            whole.extend_from_slice(buf);
            *buf = whole;
            Head::Unfit
        }
    }
}

/// The request of `head`: target and field values share its bytes.
fn request(
    head: &Bytes,
    method: Method,
    path: (usize, usize),
    fields: &[Field],
) -> Option<Request<RequestBody>> {
    let uri = Uri::from_maybe_shared(head.slice(path.0..path.1)).ok()?;
    let mut headers = HeaderMap::with_capacity(fields.len());
    for f in fields {
        let name = HeaderName::from_bytes(&head[f.name.0..f.name.1]).ok()?;
        let value = HeaderValue::from_maybe_shared(head.slice(f.value.0..f.value.1)).ok()?;
        headers.append(name, value);
    }
    let mut req = Request::new(RequestBody::Empty);
    *req.method_mut() = method;
    *req.uri_mut() = uri;
    *req.version_mut() = Version::HTTP_11;
    *req.headers_mut() = headers;
    Some(req)
}

/// How the response body is delimited.
enum Framing {
    Length(u64),
    Chunked,
}

/// Write `response`. Ok(false): the connection closes after it. While the body streams, the
/// client is watched as while its request was answered.
async fn write_response<I: AsyncRead + AsyncWrite + Unpin>(
    wire: &mut Wire<I>,
    out: &mut Vec<u8>,
    response: Response<Body>,
    head_only: bool,
    keep_alive: bool,
) -> Result<bool, BoxError> {
    let (parts, mut body) = response.into_parts();
    let size = if body.is_end_stream() { Some(0) } else { body.size_hint().exact() };
    out.clear();
    let (framing, close) = match head(out, &parts, size, head_only, keep_alive) {
        Ok(done) => done,
        Err(problem) => {
            // Nothing is written yet: the client gets a 500, as hyper answers a response it
            // cannot frame, and the connection closes.
            warn!(
                status = parts.status.as_u16(),
                problem, "a response that cannot be sent as it is; answering 500"
            );
            send_closing(&mut wire.io, out, b"500 Internal Server Error").await?;
            return Ok(false);
        }
    };
    let mut left = match framing {
        None => {
            drop(body);
            send(&mut wire.io, out).await?;
            return Ok(!close);
        }
        Some(Framing::Length(n)) => Some(n),
        Some(Framing::Chunked) => None,
    };
    loop {
        // What the body has now; when it has nothing yet, what is buffered goes out first
        // (the head of a streamed response, the events so far).
        let frame = match poll_fn(|cx| Poll::Ready(Pin::new(&mut body).poll_frame(cx))).await {
            Poll::Ready(frame) => frame,
            Poll::Pending => {
                if !out.is_empty() {
                    send(&mut wire.io, out).await?;
                }
                loop {
                    if !wire.watching() {
                        break body.frame().await;
                    }
                    tokio::select! {
                        biased;
                        frame = body.frame() => break frame,
                        watched = wire.watch() => if let Watch::Gone = watched {
                            return Err("the client went away during the response".into());
                        },
                    }
                }
            }
        };
        let data = match frame {
            None => break,
            // The response is cut off; the connection closes, as hyper closes it.
            Some(Err(error)) => return Err(error),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) if !data.is_empty() => data,
                // Trailers are not sent (nor are they by hyper unless the client asks).
                _ => continue,
            },
        };
        match &mut left {
            Some(left) => {
                *left = left
                    .checked_sub(data.len() as u64)
                    .ok_or("a response body longer than its content-length")?;
            }
            None => {
                hex(out, data.len());
                out.extend_from_slice(b"\r\n");
            }
        }
        if data.len() > COPY_AT_MOST {
            wire.io.write_all(out).await?;
            out.clear();
            wire.io.write_all(&data).await?;
            wire.io.flush().await?;
        } else {
            out.extend_from_slice(&data);
        }
        if left.is_none() {
            out.extend_from_slice(b"\r\n");
        }
        if out.len() >= FLUSH_AT {
            send(&mut wire.io, out).await?;
        }
    }
    match left {
        Some(0) => {}
        Some(_) => return Err("a response body shorter than its content-length".into()),
        None => out.extend_from_slice(b"0\r\n\r\n"),
    }
    send(&mut wire.io, out).await?;
    Ok(!close)
}

/// The response head, into `out`: how the body is framed (None: no body is sent) and whether
/// the connection closes after it. Err: a response that cannot be framed as it is.
fn head(
    out: &mut Vec<u8>,
    parts: &http::response::Parts,
    size: Option<u64>,
    head_only: bool,
    keep_alive: bool,
) -> Result<(Option<Framing>, bool), &'static str> {
    let status = parts.status;
    if status.is_informational() {
        // A final response cannot be 1xx (hyper answers such a one with 500 too).
        return Err("an informational status as the final response");
    }
    // As hyper: no body for these, nor chunked framing; no content-length for 204, and a
    // 304's only as the upstream gave it.
    let no_length = status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED;
    let no_body = head_only || no_length;
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    match parts.extensions.get::<hyper::ext::ReasonPhrase>() {
        Some(reason) => out.extend_from_slice(reason.as_bytes()),
        None => out.extend_from_slice(status.canonical_reason().unwrap_or("<none>").as_bytes()),
    }
    out.extend_from_slice(b"\r\n");
    let mut framing = None;
    let mut close = !keep_alive;
    let mut says_close = false;
    let mut dated = false;
    for (name, value) in &parts.headers {
        match *name {
            header::CONTENT_LENGTH => {
                if status == StatusCode::NO_CONTENT {
                    continue;
                }
                match (crate::h1::length_digits(value.as_bytes()), &framing) {
                    (Some(n), None) => framing = Some(Framing::Length(n)),
                    (Some(n), Some(Framing::Length(m))) if n == *m => continue,
                    _ => return Err("a content-length that does not frame the body"),
                }
            }
            header::TRANSFER_ENCODING => {
                if no_body {
                    continue;
                }
                match framing {
                    Some(Framing::Length(_)) => return Err("both content-length and transfer-encoding"),
                    Some(Framing::Chunked) => return Err("more than one transfer-encoding field"),
                    None => {}
                }
                framing = Some(Framing::Chunked);
                let chunked = value
                    .as_bytes()
                    .rsplit(|&b| b == b',')
                    .next()
                    .is_some_and(|t| t.trim_ascii().eq_ignore_ascii_case(b"chunked"));
                field(out, name, value.as_bytes());
                if !chunked {
                    out.truncate(out.len() - 2);
                    out.extend_from_slice(b", chunked\r\n");
                }
                continue;
            }
            header::CONNECTION if has_token(value.as_bytes(), b"close") => {
                close = true;
                says_close = true;
            }
            header::DATE => dated = true,
            header::TRAILER if no_body => continue,
            _ => {}
        }
        field(out, name, value.as_bytes());
    }
    if close && !says_close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    let framing = match framing {
        Some(f) => f,
        None => match size {
            Some(0) => {
                if !no_body {
                    out.extend_from_slice(b"content-length: 0\r\n");
                }
                Framing::Length(0)
            }
            Some(n) => {
                if !no_length {
                    out.extend_from_slice(b"content-length: ");
                    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
                    out.extend_from_slice(b"\r\n");
                }
                Framing::Length(n)
            }
            None if no_body => Framing::Length(0),
            None => {
                out.extend_from_slice(b"transfer-encoding: chunked\r\n");
                Framing::Chunked
            }
        },
    };
    if !dated {
        out.extend_from_slice(b"date: ");
        date(out);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Ok((if no_body { None } else { Some(framing) }, close))
}

/// Whether the comma-separated `list` has `token` (case-insensitive).
fn has_token(list: &[u8], token: &[u8]) -> bool {
    list.split(|&b| b == b',').any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

fn field(out: &mut Vec<u8>, name: &HeaderName, value: &[u8]) {
    out.extend_from_slice(name.as_str().as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// A chunk size, in hex.
fn hex(out: &mut Vec<u8>, n: usize) {
    let digits = (usize::BITS - n.leading_zeros()).div_ceil(4).max(1);
    for i in (0..digits).rev() {
        out.push(b"0123456789abcdef"[(n >> (i * 4)) & 0xf]);
    }
}

/// The current time as an HTTP date, formatted once a second per thread.
fn date(out: &mut Vec<u8>) {
    thread_local! {
        static DATE: std::cell::RefCell<(u64, String)> = const { std::cell::RefCell::new((0, String::new())) };
    }
    let now = std::time::SystemTime::now();
    let second = now.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE.with_borrow_mut(|(at, text)| {
        if *at != second || text.is_empty() {
            *at = second;
            *text = httpdate::fmt_http_date(now);
        }
        out.extend_from_slice(text.as_bytes());
    });
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use bytes::{Bytes, BytesMut};
    use http::{Request, Response, StatusCode};
    use http_body_util::{BodyExt, Full, StreamBody};
    use hyper_util::rt::TokioExecutor;
    use hyper_util::server::conn::auto;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    use super::{Answer, Head, Lean, parse, write_response};
    use crate::{Body, RequestBody};

    /// Answers with `method path body-length`; `/slow` after 300 ms, `/hang` never (and
    /// says when that answer is dropped).
    #[derive(Default)]
    struct Echo {
        dropped: Arc<AtomicBool>,
    }

    struct OnDrop(Arc<AtomicBool>);

    impl Drop for OnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    /// A body that sends one chunk, then waits forever.
    struct Endless {
        sent: bool,
        _guard: OnDrop,
    }

    impl hyper::body::Body for Endless {
        type Data = Bytes;
        type Error = crate::BoxError;

        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, crate::BoxError>>> {
            if self.sent {
                return std::task::Poll::Pending;
            }
            self.sent = true;
            std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(Bytes::from_static(b"first")))))
        }
    }

    impl Answer for Echo {
        async fn answer(&self, req: Request<RequestBody>) -> Response<Body> {
            let (parts, body) = req.into_parts();
            match parts.uri.path() {
                "/slow" => tokio::time::sleep(Duration::from_millis(300)).await,
                "/hang" => {
                    let _guard = OnDrop(self.dropped.clone());
                    std::future::pending::<()>().await;
                }
                "/stream" => {
                    let body = Endless { sent: false, _guard: OnDrop(self.dropped.clone()) };
                    return Response::new(body.boxed());
                }
                _ => {}
            }
            let got = body.collect().await.map(|b| b.to_bytes().len()).unwrap_or(usize::MAX);
            Response::new(full_owned(format!("{} {} {got}", parts.method, parts.uri.path())))
        }
    }

    fn full_owned(text: String) -> Body {
        Full::new(Bytes::from(text)).map_err(|e| match e {}).boxed()
    }

    /// A connection served by [`Lean`] with [`Echo`], under `drain`; the client end.
    fn connect(
        drain: &crate::drain::Drain,
        echo: Arc<Echo>,
    ) -> (DuplexStream, tokio::task::JoinHandle<Result<(), String>>) {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let served = drain.watch(Lean::new(server, echo, auto::Builder::new(TokioExecutor::new())));
        (client, tokio::spawn(async move { served.await.map_err(|e| e.to_string()) }))
    }

    /// The next response's head and body (framed by content-length).
    async fn response(client: &mut DuplexStream, buf: &mut Vec<u8>) -> (String, String) {
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8(buf[..end].to_vec()).unwrap();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .map_or(0, |v| v.parse().unwrap());
                if buf.len() >= end + 4 + length {
                    let body = String::from_utf8(buf[end + 4..end + 4 + length].to_vec()).unwrap();
                    buf.drain(..end + 4 + length);
                    return (head, body);
                }
            }
            let mut chunk = [0u8; 4096];
            let n = client.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed before a whole response: {:?}", String::from_utf8_lossy(buf));
            buf.extend_from_slice(&chunk[..n]);
        }
    }

    #[tokio::test]
    async fn requests_with_bodies_hand_the_connection_to_hyper_which_reads_on_from_there() {
        let drain = crate::drain::Drain::default();
        let (mut client, _served) = connect(&drain, Arc::default());
        let mut buf = Vec::new();
        // A GET, then (in the same write) a POST with a body and a GET after it: hyper gets
        // the bytes already read and answers both, in order.
        client
            .write_all(b"GET /a HTTP/1.1\r\nHost: h\r\n\r\nPOST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nxyzGET /c HTTP/1.1\r\nHost: h\r\n\r\n")
            .await
            .unwrap();
        for want in ["GET /a 0", "POST /b 3", "GET /c 0"] {
            let (head, body) = response(&mut client, &mut buf).await;
            assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
            assert_eq!(body, want);
        }
    }

    #[tokio::test]
    async fn a_drain_closes_idle_connections_and_lets_a_request_in_flight_finish() {
        let drain = crate::drain::Drain::default();
        let (mut idle, idle_served) = connect(&drain, Arc::default());
        let (mut busy, _served) = connect(&drain, Arc::default());
        let mut buf = Vec::new();
        idle.write_all(b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n").await.unwrap();
        let (_, body) = response(&mut idle, &mut buf).await;
        assert_eq!(body, "GET /x 0");
        busy.write_all(b"GET /slow HTTP/1.1\r\nHost: h\r\n\r\n").await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let reader = tokio::spawn(async move {
            let mut all = Vec::new();
            busy.read_to_end(&mut all).await.unwrap();
            String::from_utf8(all).unwrap()
        });
        tokio::time::timeout(Duration::from_secs(5), drain.shutdown()).await.expect("drained");
        idle_served.await.unwrap().expect("served");
        let mut rest = Vec::new();
        assert_eq!(idle.read_to_end(&mut rest).await.unwrap(), 0, "the idle connection is closed");
        let all = reader.await.unwrap();
        assert!(all.starts_with("HTTP/1.1 200 OK\r\n"), "{all}");
        assert!(all.contains("\r\nconnection: close\r\n") && all.ends_with("GET /slow 0"), "{all}");
    }

    #[tokio::test]
    async fn a_client_that_goes_away_cancels_its_request() {
        let drain = crate::drain::Drain::default();
        let echo = Arc::new(Echo::default());
        let (mut client, served) = connect(&drain, echo.clone());
        client.write_all(b"GET /hang HTTP/1.1\r\nHost: h\r\n\r\n").await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!echo.dropped.load(Ordering::SeqCst), "the request is in flight");
        drop(client);
        let ended = tokio::time::timeout(Duration::from_secs(5), served).await.expect("the connection ended");
        ended.unwrap().expect("served");
        assert!(echo.dropped.load(Ordering::SeqCst), "the request was dropped with the connection");
    }

    #[tokio::test]
    async fn a_client_that_goes_away_during_a_streamed_response_ends_it() {
        let drain = crate::drain::Drain::default();
        let echo = Arc::new(Echo::default());
        let (mut client, served) = connect(&drain, echo.clone());
        client.write_all(b"GET /stream HTTP/1.1\r\nHost: h\r\n\r\n").await.unwrap();
        let mut got = Vec::new();
        while !got.ends_with(b"5\r\nfirst\r\n") {
            let mut chunk = [0u8; 1024];
            let n = client.read(&mut chunk).await.unwrap();
            assert!(n > 0);
            got.extend_from_slice(&chunk[..n]);
        }
        assert!(!echo.dropped.load(Ordering::SeqCst), "the body is streaming");
        drop(client);
        let ended = tokio::time::timeout(Duration::from_secs(5), served).await.expect("the connection ended");
        assert_eq!(ended.unwrap(), Err("the client went away during the response".to_owned()));
        assert!(echo.dropped.load(Ordering::SeqCst), "the body was dropped with the connection");
    }

    #[tokio::test]
    async fn pipelined_requests_then_a_half_close_are_all_answered() {
        let drain = crate::drain::Drain::default();
        let (mut client, served) = connect(&drain, Arc::default());
        client
            .write_all(b"GET /slow HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n")
            .await
            .unwrap();
        client.shutdown().await.unwrap();
        let mut all = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut all))
            .await
            .expect("closed")
            .unwrap();
        let all = String::from_utf8(all).unwrap();
        assert!(all.contains("GET /slow 0") && all.ends_with("GET /b 0"), "{all}");
        served.await.unwrap().expect("served");
    }

    #[tokio::test]
    async fn heads_are_read_however_they_are_cut_and_a_large_one_gets_431() {
        let drain = crate::drain::Drain::default();
        let (mut client, _served) = connect(&drain, Arc::default());
        let mut buf = Vec::new();
        for head in [&b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n"[..], b"GET /b HTTP/1.1\nHost: h\n\n"] {
            for byte in head {
                client.write_all(std::slice::from_ref(byte)).await.unwrap();
                tokio::task::yield_now().await;
            }
            let (_, body) = response(&mut client, &mut buf).await;
            assert_eq!(body.as_bytes()[..6], head[..6], "answered once whole: {body}");
        }

        let (mut client, _served) = connect(&drain, Arc::default());
        let big = format!("GET / HTTP/1.1\r\nHost: h\r\nX-Big: {}\r\n\r\n", "b".repeat(100 * 1024));
        let writer = tokio::spawn(async move {
            let _ = client.write_all(big.as_bytes()).await;
            client
        });
        // hyper answers while the head is still coming; it is read from the other end.
        let mut client = writer.await.unwrap_or_else(|_| panic!("writer"));
        let mut all = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut all)).await;
        assert!(all.starts_with(b"HTTP/1.1 431"), "{:?}", String::from_utf8_lossy(&all));
    }

    #[tokio::test(start_paused = true)]
    async fn a_head_that_trickles_in_is_given_thirty_seconds() {
        let drain = crate::drain::Drain::default();
        let (mut client, served) = connect(&drain, Arc::default());
        let started = tokio::time::Instant::now();
        client.write_all(b"GET / HTTP/1.1\r\nHost: h\r\n").await.unwrap();
        tokio::time::sleep(Duration::from_secs(20)).await;
        client.write_all(b"X-More: 1\r\n").await.unwrap();
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(60), client.read_to_end(&mut rest)).await;
        assert_eq!(read.expect("closed in time").unwrap(), 0, "closed without an answer");
        served.await.unwrap().expect("served");
        let took = started.elapsed();
        assert!(took >= Duration::from_secs(30) && took < Duration::from_secs(31), "{took:?}");

        // A whole head, however slow its bytes came, is answered; the next head's clock
        // starts at its own first byte.
        let (mut client, _served) = connect(&drain, Arc::default());
        let mut buf = Vec::new();
        client.write_all(b"GET /a HTTP/1.1\r\n").await.unwrap();
        tokio::time::sleep(Duration::from_secs(25)).await;
        client.write_all(b"Host: h\r\n\r\nGET /b HTTP/1.1\r\n").await.unwrap();
        assert_eq!(response(&mut client, &mut buf).await.1, "GET /a 0");
        tokio::time::sleep(Duration::from_secs(25)).await;
        client.write_all(b"Host: h\r\n\r\n").await.unwrap();
        assert_eq!(response(&mut client, &mut buf).await.1, "GET /b 0");
    }

    fn head(raw: &[u8]) -> (Head, BytesMut) {
        let mut buf = BytesMut::from(raw);
        (parse(&mut buf), buf)
    }

    #[test]
    fn a_plain_get_is_read_and_what_follows_is_kept() {
        let raw = b"GET /a?b=c HTTP/1.1\r\nHost: app.example\r\nCookie: x=y\r\nConnection: keep-alive, Close\r\n\r\nGET /next";
        let (parsed, rest) = head(raw);
        let Head::Ready(req, close) = parsed else { panic!("a plain GET is this path's") };
        assert!(close, "Connection: close is seen among other tokens");
        assert_eq!(req.method(), http::Method::GET);
        assert_eq!(req.uri().path(), "/a");
        assert_eq!(req.uri().query(), Some("b=c"));
        assert_eq!(req.headers()["host"], "app.example");
        assert_eq!(req.headers()["cookie"], "x=y");
        assert_eq!(req.version(), http::Version::HTTP_11);
        assert_eq!(&rest[..], b"GET /next", "a pipelined request stays buffered");
        assert!(matches!(head(b"GET / HTTP/1.1\r\nHost: a\r\n").0, Head::Partial));
        let Head::Ready(_, close) = head(b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n").0 else { panic!("HEAD too") };
        assert!(!close);
    }

    #[test]
    fn anything_with_a_body_or_an_upgrade_goes_to_hyper_untouched() {
        for raw in [
            &b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi"[..],
            b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\ncontent-length: 5\r\n\r\nGET /",
            b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n",
            b"GET / HTTP/1.0\r\nHost: a\r\n\r\n",
            b"GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n",
            b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
            b"DELETE / HTTP/1.1\r\nHost: a\r\n\r\n",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\x01b\r\n\r\n",
            b"GET /\x7f HTTP/1.1\r\nHost: a\r\n\r\n",
        ] {
            let (parsed, rest) = head(raw);
            assert!(matches!(parsed, Head::Unfit), "{:?} is hyper's", String::from_utf8_lossy(raw));
            assert_eq!(&rest[..], raw, "the buffer is as it was");
        }
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..101 {
            many.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert!(matches!(head(&many).0, Head::Unfit), "more than 100 fields: hyper's 431");
    }

    /// What `write_response` sends for `response`, and what it returned.
    async fn try_written(
        response: Response<Body>,
        head_only: bool,
        keep_alive: bool,
    ) -> (String, Result<bool, crate::BoxError>) {
        let (mut client, server) = tokio::io::duplex(1 << 20);
        let mut wire = super::Wire { io: server, buf: BytesMut::new(), eof: false };
        let mut out = Vec::new();
        let again = write_response(&mut wire, &mut out, response, head_only, keep_alive).await;
        drop(wire);
        let mut sent = Vec::new();
        client.read_to_end(&mut sent).await.unwrap();
        (String::from_utf8(sent).expect("text"), again)
    }

    async fn written(response: Response<Body>, head_only: bool, keep_alive: bool) -> (String, bool) {
        let (text, again) = try_written(response, head_only, keep_alive).await;
        (text, again.expect("written"))
    }

    fn full(body: &'static str) -> Body {
        Full::new(Bytes::from_static(body.as_bytes())).map_err(|e| match e {}).boxed()
    }

    fn stream(parts: &[&'static str]) -> Body {
        let frames: Vec<Result<_, crate::BoxError>> =
            parts.iter().map(|p| Ok(hyper::body::Frame::data(Bytes::from_static(p.as_bytes())))).collect();
        StreamBody::new(futures::stream::iter(frames)).boxed()
    }

    #[tokio::test]
    async fn responses_are_framed_as_hyper_frames_them() {
        let (text, again) = written(Response::new(full("hello")), false, true).await;
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(text.contains("\r\ncontent-length: 5\r\n"), "{text}");
        assert!(text.contains("\r\ndate: "), "{text}");
        assert!(text.ends_with("\r\n\r\nhello"), "{text}");
        assert!(again);

        let (text, _) = written(Response::new(stream(&["ab", "", "cdefghijklmnopq"])), false, true).await;
        assert!(text.contains("\r\ntransfer-encoding: chunked\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\n2\r\nab\r\nf\r\ncdefghijklmnopq\r\n0\r\n\r\n"), "{text}");

        // HEAD: the length of what GET would send, no body.
        let (text, _) = written(Response::new(full("hello")), true, true).await;
        assert!(text.contains("\r\ncontent-length: 5\r\n") && text.ends_with("\r\n\r\n"), "{text}");

        let mut no_content = Response::new(full(""));
        *no_content.status_mut() = StatusCode::NO_CONTENT;
        let (text, _) = written(no_content, false, true).await;
        assert!(
            text.starts_with("HTTP/1.1 204 No Content\r\n") && !text.contains("content-length"),
            "{text}"
        );

        // The upstream's own length, reason phrase and date are kept.
        let mut upstream = Response::new(stream(&["abc"]));
        upstream.headers_mut().insert("content-length", "3".parse().unwrap());
        upstream.headers_mut().insert("date", "Thu, 03 Dec 2026 22:00:00 GMT".parse().unwrap());
        upstream.extensions_mut().insert(hyper::ext::ReasonPhrase::try_from(&b"Fine"[..]).unwrap());
        let (text, _) = written(upstream, false, true).await;
        assert!(text.starts_with("HTTP/1.1 200 Fine\r\n"), "{text}");
        assert_eq!(text.matches("content-length").count(), 1, "{text}");
        assert_eq!(text.matches("date: ").count(), 1, "{text}");
        assert!(text.ends_with("\r\n\r\nabc"), "{text}");
    }

    #[tokio::test]
    async fn a_closing_connection_says_so_and_bad_framing_is_an_error() {
        let (text, again) = written(Response::new(full("x")), false, false).await;
        assert!(text.contains("\r\nconnection: close\r\n") && !again, "{text}");
        let mut closing = Response::new(full("x"));
        closing.headers_mut().insert("connection", "close".parse().unwrap());
        let (text, again) = written(closing, false, true).await;
        assert_eq!(text.matches("connection").count(), 1, "{text}");
        assert!(!again);

        // A body that does not match its length: cut off, the connection closes.
        for length in ["2", "4"] {
            let mut response = Response::new(stream(&["abc"]));
            response.headers_mut().insert("content-length", length.parse().unwrap());
            assert!(try_written(response, false, true).await.1.is_err(), "{length}");
        }
        // A response that cannot be framed as it is, or a 1xx as the final one: 500, closed.
        let mut bad = Vec::new();
        for length in ["x", "+3", " 3", "3, 4"] {
            let mut response = Response::new(stream(&["abc"]));
            response.headers_mut().insert("content-length", length.parse().unwrap());
            bad.push(response);
        }
        let mut both = Response::new(stream(&["abc"]));
        both.headers_mut().insert("content-length", "3".parse().unwrap());
        both.headers_mut().insert("transfer-encoding", "chunked".parse().unwrap());
        bad.push(both);
        let mut twice = Response::new(stream(&["abc"]));
        twice.headers_mut().append("transfer-encoding", "gzip".parse().unwrap());
        twice.headers_mut().append("transfer-encoding", "chunked".parse().unwrap());
        bad.push(twice);
        let mut early = Response::new(full(""));
        *early.status_mut() = StatusCode::CONTINUE;
        bad.push(early);
        for response in bad {
            let headers = format!("{:?} {:?}", response.status(), response.headers());
            let (text, again) = try_written(response, false, true).await;
            assert!(text.starts_with("HTTP/1.1 500 Internal Server Error\r\n"), "{headers}: {text}");
            assert!(text.contains("\r\nconnection: close\r\n") && text.ends_with("\r\n\r\n"), "{text}");
            assert!(!again.expect("answered"), "{headers}: closes after");
        }
        // 204 never carries a content-length, even the upstream's.
        let mut no_content = Response::new(full(""));
        *no_content.status_mut() = StatusCode::NO_CONTENT;
        no_content.headers_mut().insert("content-length", "0".parse().unwrap());
        let (text, _) = written(no_content, false, true).await;
        assert!(!text.contains("content-length"), "{text}");
    }

    #[test]
    fn the_end_of_a_head_is_looked_for_only_in_new_bytes() {
        use super::head_may_end;
        assert!(!head_may_end(b"", 0));
        assert!(!head_may_end(b"GET / HTTP/1.1\r\nHost: a\r\n", 0));
        assert!(head_may_end(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", 0));
        assert!(head_may_end(b"GET / HTTP/1.1\nHost: a\n\n", 0), "bare line feeds");
        // The empty line split across reads: found from two bytes back.
        let head = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        for cut in 1..head.len() {
            assert!(head_may_end(head, cut), "cut at {cut}");
        }
    }
}
