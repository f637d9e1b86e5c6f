//! HTTP/1.1 to plain-HTTP upstreams for requests without a body, in the request's own task.
//!
//! hyper's client connection runs a task per connection, hands each request to it over a
//! channel and its answer back over another, and frames the message in a second dispatcher:
//! about a third of the proxy's own work on an authorized request. A request without a body
//! needs none of that: its head is written in one go and the response read back in the same
//! task. The response is read as strictly as hyper reads it (RFC 9112 §6.3):
//!
//! - `httparse` parses the head; 1xx answers are skipped, a 101 is refused.
//! - HEAD answers, 204 and 304 have no body, whatever their headers say.
//! - `Transfer-Encoding` ending in `chunked` is decoded; any other coding is read until the
//!   upstream closes. With `Transfer-Encoding`, a `Content-Length` is dropped and the
//!   connection is not reused (the upstream framed the message two ways).
//! - `Content-Length` must be one decimal number, repeated values equal; anything else is a
//!   bad gateway. Without either header the body ends when the upstream closes.
//! - A connection is reused only after an HTTP/1.1 answer without `Connection: close` was
//!   read exactly to its end, with no stray bytes after it.
//!
//! Requests with a body, TLS upstreams and websockets keep going through hyper.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Method, StatusCode, Version};
use hyper::body::{Frame, SizeHint};
use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::TcpStream;

/// Largest response head (hyper's own client limit).
const MAX_HEAD_BYTES: usize = 400 * 1024;
/// Most headers in a response head (hyper's default).
const MAX_HEADERS: usize = 100;
/// Longest chunk-size line, extensions included.
const MAX_CHUNK_LINE: usize = 4096;
/// Largest trailer section (hyper's limit).
const MAX_TRAILER_BYTES: usize = 16 * 1024;
/// Most trailer fields.
const MAX_TRAILERS: usize = 32;
/// How much room each read from the upstream gets at least.
const READ_ROOM: usize = 8 * 1024;

/// What went wrong talking to the upstream; never carries the upstream's bytes.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("upstream I/O: {0}")]
    Io(#[from] io::Error),
    #[error("the upstream closed the connection before it answered")]
    ClosedBeforeAnswer,
    #[error("the upstream closed the connection in the middle of the body")]
    ClosedMidBody,
    #[error("the upstream sent an invalid response head: {0}")]
    Head(httparse::Error),
    #[error("the upstream's response head is larger than {MAX_HEAD_BYTES} bytes")]
    HeadTooLarge,
    #[error("the upstream sent an invalid Content-Length")]
    ContentLength,
    #[error("the upstream sent Transfer-Encoding in an HTTP/1.0 response")]
    TransferEncodingOn10,
    #[error("the upstream switched protocols without being asked")]
    UnaskedSwitch,
    #[error("the upstream sent an invalid chunk")]
    Chunk,
    #[error("the upstream sent invalid or too large trailer fields")]
    Trailers,
}

/// One connection to an upstream, with what has been read from it and not used yet.
pub struct Wire {
    stream: TcpStream,
    buf: BytesMut,
    /// The last answer had no body (HEAD, 204, 304) and was handed back as soon as its head
    /// was read: an upstream that wrongly sends a body anyway sends it right then, maybe
    /// before the runtime has seen the socket turn readable, so the check before reuse asks
    /// the kernel itself.
    ended_at_head: bool,
    names: Names,
}

impl Wire {
    pub fn new(stream: TcpStream) -> Wire {
        Wire { stream, buf: BytesMut::new(), ended_at_head: false, names: Names::default() }
    }

    /// Whether the upstream has closed this idle connection or sent something unasked (an
    /// answer to no request, which must never reach the next request), as far as the
    /// socket's readiness tells; reads only when it says readable.
    pub fn closed_while_idle(&self) -> bool {
        if self.ended_at_head {
            // A peek that does not wait: anything there, or the end of the stream, and the
            // connection is not reused.
            let mut probe = [std::mem::MaybeUninit::uninit(); 1];
            return !matches!(
                socket2::SockRef::from(&self.stream).peek(&mut probe),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock
            );
        }
        let mut probe = [0u8; 1];
        match self.stream.try_read(&mut probe) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
            // End of stream, unexpected bytes, or an error: not usable.
            _ => true,
        }
    }

    /// Read what the socket has into `buf`. A read that does not fill the room drained the
    /// kernel's buffer, so the socket's readiness is cleared then (as tokio's own `poll_read`
    /// does, against the readiness seen before the read, so that nothing arriving meanwhile
    /// is missed): an idle connection then reads as ready again only when the upstream sent
    /// or closed something, which [`Wire::closed_while_idle`] sees without a system call.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.stream.poll_read_ready(cx))?;
            if self.buf.capacity() - self.buf.len() < READ_ROOM / 2 {
                self.buf.reserve(READ_ROOM);
            }
            let room = self.buf.capacity() - self.buf.len();
            let (stream, buf) = (&self.stream, &mut self.buf);
            let mut got = None;
            let tried = stream.try_io(Interest::READABLE, || {
                let n = stream.try_read_buf(buf)?;
                got = Some(n);
                if n > 0 && n < room { Err(io::ErrorKind::WouldBlock.into()) } else { Ok(n) }
            });
            match (got, tried) {
                (Some(n), _) => return Poll::Ready(Ok(n)),
                (None, Err(e)) if e.kind() == io::ErrorKind::WouldBlock => continue,
                (None, Err(e)) => return Poll::Ready(Err(e)),
                (None, Ok(n)) => return Poll::Ready(Ok(n)),
            }
        }
    }

    async fn fill(&mut self) -> io::Result<usize> {
        std::future::poll_fn(|cx| self.poll_fill(cx)).await
    }
}

/// How the response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// This many bytes are left.
    Length(u64),
    Chunked(Chunk),
    /// Until the upstream closes.
    UntilClose,
}

/// Where the chunked decoder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Before a chunk-size line.
    Size,
    /// Inside a chunk, this many bytes left.
    Data(u64),
    /// After a chunk's data: its CRLF.
    DataEnd,
    /// After the last chunk: trailer lines until an empty one.
    Trailers,
}

/// A sent request's answer: its head, and its body still to be read from the connection.
pub struct Answer {
    pub head: http::response::Parts,
    pub body: WireBody,
}

/// What failed, and whether it may be tried again on a fresh connection: only when nothing
/// of an answer arrived.
pub struct Failed {
    pub error: WireError,
    pub nothing_answered: bool,
}

/// A request without a body, as written to the upstream.
pub struct Head<'a> {
    pub method: &'a Method,
    /// Origin form (`/path?query`).
    pub target: &'a http::Uri,
    /// `Host` included.
    pub fields: &'a [(HeaderName, HeaderValue)],
}

/// Write `head` on `wire` and read the answer's head. The body is read as the caller polls
/// it.
pub async fn exchange(mut wire: Wire, head: &Head<'_>) -> Result<Answer, Failed> {
    let failed = |error: WireError, nothing_answered: bool| Failed { error, nothing_answered };
    let mut out = Vec::with_capacity(head_len(head));
    encode_head(head, &mut out);
    if let Err(e) = wire.stream.write_all(&out).await {
        return Err(failed(e.into(), true));
    }
    let is_head = *head.method == Method::HEAD;
    debug_assert!(wire.buf.is_empty(), "a connection is reused only with nothing left over");
    wire.buf.clear();
    // A 1xx came: the upstream has the request, which must not be sent again.
    let mut informed = false;
    loop {
        if !wire.buf.is_empty() {
            match parse_head(&mut wire.buf, is_head, &mut wire.names) {
                Ok(Some(Parsed::Informational)) => {
                    informed = true;
                    continue;
                }
                Ok(Some(Parsed::Final { parts, framing, reusable })) => {
                    wire.ended_at_head = framing.is_none();
                    let body =
                        WireBody { wire: Some(wire), framing, reusable, release: None, trailers: Vec::new() };
                    return Ok(Answer { head: parts, body });
                }
                Ok(None) if wire.buf.len() >= MAX_HEAD_BYTES => {
                    return Err(failed(WireError::HeadTooLarge, false));
                }
                Ok(None) => {}
                Err(e) => return Err(failed(e, false)),
            }
        }
        match wire.fill().await {
            Ok(0) => {
                let nothing = wire.buf.is_empty() && !informed;
                return Err(failed(WireError::ClosedBeforeAnswer, nothing));
            }
            Ok(_) => {}
            Err(e) => {
                let nothing = wire.buf.is_empty() && !informed;
                return Err(failed(e.into(), nothing));
            }
        }
    }
}

/// How long `encode_head` makes `head` at most (the identity JWT alone is most of a
/// kilobyte, so a guess would mean growing the buffer).
fn head_len(head: &Head<'_>) -> usize {
    let target = head.target.path_and_query().map_or(1, |p| p.as_str().len());
    let fields: usize = head.fields.iter().map(|(n, v)| n.as_str().len() + v.len() + 4).sum();
    head.method.as_str().len() + 1 + target + 11 + fields + 2
}

/// `METHOD target HTTP/1.1`, the headers, the empty line. Every part was validated when it
/// was made (`Method`, `Uri`, `HeaderName`, `HeaderValue` refuse CR and LF). The request has
/// no body, so no header may announce one: `Transfer-Encoding`, and a `Content-Length` other
/// than 0 (a route's `set_request_headers` could add either), are left out, as hyper leaves
/// them out, so the upstream cannot wait for a body that never comes, or take the next
/// request for one.
fn encode_head(head: &Head<'_>, out: &mut Vec<u8>) {
    out.extend_from_slice(head.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(head.target.path_and_query().map_or("/", |p| p.as_str()).as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in head.fields {
        if *name == header::TRANSFER_ENCODING || (*name == header::CONTENT_LENGTH && value != "0") {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

enum Parsed {
    /// A 1xx answer, consumed; the real one follows.
    Informational,
    Final {
        parts: http::response::Parts,
        framing: Option<Framing>,
        reusable: bool,
    },
}

/// Parse a complete head at the start of `buf` and take it off (`None`: not complete yet).
/// `framing` is `None` when the answer has no body.
fn parse_head(buf: &mut BytesMut, is_head: bool, names: &mut Names) -> Result<Option<Parsed>, WireError> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut slots);
    let len = match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(WireError::Head(e)),
    };
    let code = response.code.unwrap_or(0);
    let status = StatusCode::from_u16(code).map_err(|_| WireError::Head(httparse::Error::Status))?;
    let version = if response.version == Some(0) { Version::HTTP_10 } else { Version::HTTP_11 };
    // Copied only when it is not the standard one (it borrows the buffer).
    let reason = response
        .reason
        .filter(|r| !r.is_empty() && Some(*r) != status.canonical_reason())
        .map(|r| r.as_bytes().to_vec());
    // Each header's name, and where its value sits in the head, so that the values can
    // share the head's bytes.
    let base = buf.as_ptr() as usize;
    let mut entries = Vec::with_capacity(response.headers.len());
    for (at, h) in response.headers.iter().enumerate() {
        let name = names.name(at, h.name.as_bytes()).ok_or(WireError::Head(httparse::Error::HeaderName))?;
        entries.push((name, h.value.as_ptr() as usize - base, h.value.len()));
    }
    let head = buf.split_to(len).freeze();
    // Room for the response headers the proxy adds (see `forward::set_response_headers`),
    // so that adding them does not grow the map.
    let mut headers = HeaderMap::with_capacity(entries.len() + 6);
    for (name, start, n) in entries {
        let value = HeaderValue::from_maybe_shared(head.slice(start..start + n))
            .map_err(|_| WireError::Head(httparse::Error::HeaderValue))?;
        headers.append(name, value);
    }
    match code {
        101 => return Err(WireError::UnaskedSwitch),
        100..=199 => return Ok(Some(Parsed::Informational)),
        _ => {}
    }
    let mut reusable = version == Version::HTTP_11 && !lists_close(&headers);
    let framing = if is_head || code == 204 || code == 304 {
        None
    } else if headers.contains_key(header::TRANSFER_ENCODING) {
        if version == Version::HTTP_10 {
            return Err(WireError::TransferEncodingOn10);
        }
        if headers.remove(header::CONTENT_LENGTH).is_some() {
            reusable = false;
        }
        if ends_chunked(&headers) {
            Some(Framing::Chunked(Chunk::Size))
        } else {
            reusable = false;
            Some(Framing::UntilClose)
        }
    } else if headers.contains_key(header::CONTENT_LENGTH) {
        Some(Framing::Length(content_length(&headers)?))
    } else {
        reusable = false;
        Some(Framing::UntilClose)
    };
    let mut parts = http::Response::new(()).into_parts().0;
    // A reason phrase of the upstream's own reaches the client, as hyper passes it on.
    if let Some(reason) = reason
        && let Ok(phrase) = hyper::ext::ReasonPhrase::try_from(reason)
    {
        parts.extensions.insert(phrase);
    }
    parts.status = status;
    parts.version = version;
    parts.headers = headers;
    Ok(Some(Parsed::Final { parts, framing, reusable }))
}

/// `Connection` lists `close`.
fn lists_close(headers: &HeaderMap) -> bool {
    crate::header_tokens(headers, header::CONNECTION).any(|t| t.eq_ignore_ascii_case("close"))
}

/// The last transfer coding is `chunked`.
fn ends_chunked(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::TRANSFER_ENCODING)
        .iter()
        .next_back()
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("chunked"))
}

/// A `Content-Length` value that is digits only (no sign, no spaces, no list), at most 19 of
/// them (so it fits a `u64`).
pub(crate) fn length_digits(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(value.iter().fold(0, |n, d| n * 10 + u64::from(d - b'0')))
}

/// The one length all `Content-Length` values (and comma-separated items) agree on.
fn content_length(headers: &HeaderMap) -> Result<u64, WireError> {
    let mut values = headers.get_all(header::CONTENT_LENGTH).iter();
    // The usual case: one value, all digits.
    if let (Some(only), None) = (values.next(), values.next())
        && let Some(n) = length_digits(only.as_bytes())
    {
        return Ok(n);
    }
    let mut length = None;
    for value in headers.get_all(header::CONTENT_LENGTH) {
        let text = value.to_str().map_err(|_| WireError::ContentLength)?;
        for item in text.split(',') {
            let item = item.trim();
            if item.is_empty() || item.len() > 19 || !item.bytes().all(|b| b.is_ascii_digit()) {
                return Err(WireError::ContentLength);
            }
            let n: u64 = item.parse().map_err(|_| WireError::ContentLength)?;
            if length.is_some_and(|l| l != n) {
                return Err(WireError::ContentLength);
            }
            length = Some(n);
        }
    }
    length.ok_or(WireError::ContentLength)
}

/// Where a connection goes back once its answer has been read to the end: the pool, and
/// the upstream address it is kept under.
pub type Release = (std::sync::Arc<crate::upstream::Pool>, std::sync::Arc<str>);

/// The response body, read from the connection as it is polled. Read exactly to its end on a
/// reusable connection, it hands the connection to `release`; dropped earlier, or after an
/// error, it closes it.
pub struct WireBody {
    wire: Option<Wire>,
    /// `None`: no body.
    framing: Option<Framing>,
    reusable: bool,
    release: Option<Release>,
    /// The trailer section of a chunked body, as read so far.
    trailers: Vec<u8>,
}

impl WireBody {
    /// Give the connection to `release` when the body has been read to its end.
    pub fn on_end(&mut self, release: Release) {
        self.release = Some(release);
        if self.framing.is_none() || self.framing == Some(Framing::Length(0)) {
            self.finish();
        }
    }

    fn finish(&mut self) {
        self.framing = None;
        let Some(wire) = self.wire.take() else { return };
        // Bytes after the end of the answer: the upstream is out of step; never reused.
        if self.reusable
            && wire.buf.is_empty()
            && let Some((pool, address)) = self.release.take()
        {
            pool.give_back_wire(&address, wire);
        }
    }

    fn fail(&mut self, error: WireError) -> Poll<Option<Result<Frame<Bytes>, crate::BoxError>>> {
        self.framing = None;
        self.wire = None;
        Poll::Ready(Some(Err(Box::new(error))))
    }
}

impl hyper::body::Body for WireBody {
    type Data = Bytes;
    type Error = crate::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, crate::BoxError>>> {
        let this = &mut *self;
        loop {
            let Some(framing) = this.framing else { return Poll::Ready(None) };
            let Some(wire) = this.wire.as_mut() else { return Poll::Ready(None) };
            // Hand out what the buffer holds for the body; with nothing there, read more.
            match framing {
                Framing::Length(0) => {
                    this.finish();
                    return Poll::Ready(None);
                }
                Framing::Length(left) if !wire.buf.is_empty() => {
                    let n = left.min(wire.buf.len() as u64);
                    let data = wire.buf.split_to(n as usize).freeze();
                    this.framing = Some(Framing::Length(left - n));
                    if left == n {
                        this.finish();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Framing::UntilClose if !wire.buf.is_empty() => {
                    return Poll::Ready(Some(Ok(Frame::data(wire.buf.split().freeze()))));
                }
                Framing::Chunked(chunk) => match decode(&mut wire.buf, chunk, &mut this.trailers) {
                    Ok(Decoded::Data(data, next)) => {
                        this.framing = Some(Framing::Chunked(next));
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    Ok(Decoded::Moved(next)) => {
                        this.framing = Some(Framing::Chunked(next));
                        continue;
                    }
                    Ok(Decoded::End(trailers)) => {
                        this.finish();
                        return Poll::Ready(trailers.map(|t| Ok(Frame::trailers(t))));
                    }
                    Ok(Decoded::NeedMore) => {}
                    Err(e) => return this.fail(e),
                },
                Framing::Length(_) | Framing::UntilClose => {}
            }
            match ready!(wire.poll_fill(cx)) {
                Ok(0) if framing == Framing::UntilClose => {
                    this.framing = None;
                    this.wire = None;
                    return Poll::Ready(None);
                }
                Ok(0) => return this.fail(WireError::ClosedMidBody),
                Ok(_) => {}
                Err(e) => return this.fail(e.into()),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.framing, None | Some(Framing::Length(0)))
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing {
            None => SizeHint::with_exact(0),
            Some(Framing::Length(n)) => SizeHint::with_exact(n),
            Some(_) => SizeHint::default(),
        }
    }
}

enum Decoded {
    Data(Bytes, Chunk),
    /// Framing consumed, no data; go on from here.
    Moved(Chunk),
    /// The body ended, with these trailer fields if it had any.
    End(Option<HeaderMap>),
    NeedMore,
}

/// One step of chunked decoding over what `buf` holds; trailer lines gather in `trailers`.
fn decode(buf: &mut BytesMut, chunk: Chunk, trailers: &mut Vec<u8>) -> Result<Decoded, WireError> {
    match chunk {
        Chunk::Size => {
            let Some(line) = take_line(buf, MAX_CHUNK_LINE)? else { return Ok(Decoded::NeedMore) };
            let size = chunk_size(&line)?;
            Ok(Decoded::Moved(if size == 0 { Chunk::Trailers } else { Chunk::Data(size) }))
        }
        Chunk::Data(left) => {
            if buf.is_empty() {
                return Ok(Decoded::NeedMore);
            }
            let n = left.min(buf.len() as u64);
            let data = buf.split_to(n as usize).freeze();
            let next = if left == n { Chunk::DataEnd } else { Chunk::Data(left - n) };
            Ok(Decoded::Data(data, next))
        }
        Chunk::DataEnd => {
            if buf.len() < 2 {
                return Ok(Decoded::NeedMore);
            }
            if &buf[..2] != b"\r\n" {
                return Err(WireError::Chunk);
            }
            buf.advance(2);
            Ok(Decoded::Moved(Chunk::Size))
        }
        // Trailer fields are passed on (hyper's server sends them to clients that can take
        // them), checked as header fields and bounded like hyper bounds them.
        Chunk::Trailers => {
            let room = MAX_TRAILER_BYTES.saturating_sub(trailers.len());
            let Some(line) = take_line(buf, room).map_err(|_| WireError::Trailers)? else {
                return Ok(Decoded::NeedMore);
            };
            if !line.is_empty() {
                trailers.extend_from_slice(&line);
                trailers.extend_from_slice(b"\r\n");
                return Ok(Decoded::Moved(Chunk::Trailers));
            }
            if trailers.is_empty() {
                return Ok(Decoded::End(None));
            }
            trailers.extend_from_slice(b"\r\n");
            let mut slots = [httparse::EMPTY_HEADER; MAX_TRAILERS];
            let fields = match httparse::parse_headers(trailers, &mut slots) {
                Ok(httparse::Status::Complete((_, fields))) => fields,
                _ => return Err(WireError::Trailers),
            };
            let mut map = HeaderMap::with_capacity(fields.len());
            for field in fields {
                let name = HeaderName::from_bytes(field.name.as_bytes()).map_err(|_| WireError::Trailers)?;
                let value = HeaderValue::from_bytes(field.value).map_err(|_| WireError::Trailers)?;
                map.append(name, value);
            }
            Ok(Decoded::End(Some(map)))
        }
    }
}

/// The header names of a connection's recent answers, as sent. An upstream sends the same
/// names in much the same order answer after answer, so a name is first compared with the
/// one sent at its place last time, then with the others remembered, before it is parsed
/// (and lower-cased) again.
#[derive(Default)]
struct Names(Vec<(Box<[u8]>, HeaderName)>);

impl Names {
    /// Most names remembered.
    const PLACES: usize = 32;
    /// Longest name remembered.
    const LONGEST: usize = 64;

    /// The name sent as `raw` at place `at`; `None` if it is not a valid name.
    fn name(&mut self, at: usize, raw: &[u8]) -> Option<HeaderName> {
        if let Some((seen, name)) = self.0.get(at)
            && **seen == *raw
        {
            return Some(name.clone());
        }
        if let Some((_, name)) = self.0.iter().find(|(seen, _)| **seen == *raw) {
            return Some(name.clone());
        }
        let name = HeaderName::from_bytes(raw).ok()?;
        if raw.len() <= Self::LONGEST {
            let entry = (Box::from(raw), name.clone());
            if at < self.0.len() {
                self.0[at] = entry;
            } else if self.0.len() < Self::PLACES {
                self.0.push(entry);
            }
        }
        Some(name)
    }
}

/// The next CRLF-terminated line (without it), if complete; longer than `max`: an error.
fn take_line(buf: &mut BytesMut, max: usize) -> Result<Option<Bytes>, WireError> {
    match buf.windows(2).position(|w| w == b"\r\n") {
        Some(i) if i <= max => {
            let line = buf.split_to(i).freeze();
            buf.advance(2);
            Ok(Some(line))
        }
        Some(_) => Err(WireError::Chunk),
        None if buf.len() > max => Err(WireError::Chunk),
        None => Ok(None),
    }
}

/// `chunk-size [ chunk-ext ]`: hex digits, then nothing or `;` extensions (ignored).
fn chunk_size(line: &[u8]) -> Result<u64, WireError> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 || digits > 15 {
        return Err(WireError::Chunk);
    }
    let rest = &line[digits..];
    let rest_ok = rest.iter().position(|&b| b != b' ' && b != b'\t').is_none_or(|i| rest[i] == b';');
    if !rest_ok || rest.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0) {
        return Err(WireError::Chunk);
    }
    let text = std::str::from_utf8(&line[..digits]).map_err(|_| WireError::Chunk)?;
    u64::from_str_radix(text, 16).map_err(|_| WireError::Chunk)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &[u8], is_head: bool) -> Result<Option<Parsed>, WireError> {
        parse_head(&mut BytesMut::from(raw), is_head, &mut Names::default())
    }

    #[test]
    fn the_head_fits_the_room_made_for_it() {
        let target: http::Uri = "/a/b?c=d".parse().unwrap();
        let fields = vec![
            (header::HOST, HeaderValue::from_static("up:8080")),
            (
                HeaderName::from_static("x-portcullis-jwt-assertion"),
                HeaderValue::from_str(&"j".repeat(900)).unwrap(),
            ),
            (header::CONTENT_LENGTH, HeaderValue::from_static("5")),
        ];
        for method in [Method::GET, Method::OPTIONS] {
            let head = Head { method: &method, target: &target, fields: &fields };
            let mut out = Vec::with_capacity(head_len(&head));
            let room = out.capacity();
            encode_head(&head, &mut out);
            assert!(out.len() <= head_len(&head));
            assert_eq!(out.capacity(), room, "the buffer did not grow");
        }
    }

    #[test]
    fn remembered_names_are_the_names_sent() {
        let mut names = Names::default();
        assert_eq!(names.name(0, b"Content-Type"), Some(header::CONTENT_TYPE));
        assert_eq!(names.name(1, b"X-Custom"), Some(HeaderName::from_static("x-custom")));
        // Same place, same bytes: the remembered name.
        assert_eq!(names.name(0, b"Content-Type"), Some(header::CONTENT_TYPE));
        assert_eq!(names.name(1, b"X-Custom"), Some(HeaderName::from_static("x-custom")));
        // Same place, other bytes (also only in case): parsed again, and remembered instead.
        assert_eq!(names.name(0, b"content-length"), Some(header::CONTENT_LENGTH));
        assert_eq!(names.name(0, b"CONTENT-LENGTH"), Some(header::CONTENT_LENGTH));
        assert_eq!(names.name(1, b"X-Other"), Some(HeaderName::from_static("x-other")));
        // Invalid names stay invalid, and do not replace what is remembered.
        assert_eq!(names.name(1, b"bad name"), None);
        assert_eq!(names.name(1, b"X-Other"), Some(HeaderName::from_static("x-other")));
        // A name that moved is found where it is remembered, without replacing anything.
        assert_eq!(names.name(3, b"X-Other"), Some(HeaderName::from_static("x-other")));
        assert_eq!(names.0.len(), 2);
        // A new name past the end is remembered after the others; long names are not.
        let long = "x".repeat(Names::LONGEST + 1);
        assert!(names.name(2, long.as_bytes()).is_some());
        assert_eq!(names.0.len(), 2);
        assert_eq!(names.name(5, b"X-Far"), Some(HeaderName::from_static("x-far")));
        assert_eq!(names.0.len(), 3);
        // At most PLACES names.
        for i in 0..100 {
            let raw = format!("x-n{i}");
            assert_eq!(names.name(100 + i, raw.as_bytes()), HeaderName::from_bytes(raw.as_bytes()).ok());
        }
        assert_eq!(names.0.len(), Names::PLACES);
    }

    fn framing(raw: &[u8]) -> (Option<Framing>, bool, HeaderMap) {
        match parse(raw, false) {
            Ok(Some(Parsed::Final { parts, framing, reusable })) => (framing, reusable, parts.headers),
            _ => panic!("not a final answer"),
        }
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let (f, reuse, _) = framing(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n");
        assert_eq!((f, reuse), (Some(Framing::Length(5)), true));
        // Repeated equal lengths are one length; differing ones are refused.
        let (f, _, _) = framing(b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\nContent-Length: 5\r\n\r\n");
        assert_eq!(f, Some(Framing::Length(5)));
        for bad in [&b"5, 6"[..], b"-1", b"+5", b"0x5", b"", b"5 5", b"99999999999999999999"] {
            let mut raw = b"HTTP/1.1 200 OK\r\nContent-Length: ".to_vec();
            raw.extend_from_slice(bad);
            raw.extend_from_slice(b"\r\n\r\n");
            assert!(matches!(parse(&raw, false), Err(WireError::ContentLength)), "{bad:?}");
        }
        // Transfer-Encoding wins over Content-Length, which is dropped; no reuse.
        let (f, reuse, headers) =
            framing(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!((f, reuse), (Some(Framing::Chunked(Chunk::Size)), false));
        assert!(headers.get(header::CONTENT_LENGTH).is_none());
        let (f, reuse, _) = framing(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
        assert_eq!((f, reuse), (Some(Framing::Chunked(Chunk::Size)), true));
        let (f, reuse, _) = framing(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n");
        assert_eq!((f, reuse), (Some(Framing::UntilClose), false));
        assert!(matches!(
            parse(b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false),
            Err(WireError::TransferEncodingOn10)
        ));
        // No length at all, HTTP/1.0, or `Connection: close`: read to the end, never reused.
        assert_eq!(framing(b"HTTP/1.1 200 OK\r\n\r\n").0, Some(Framing::UntilClose));
        assert!(!framing(b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n").1);
        assert!(!framing(b"HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 1\r\n\r\n").1);
        // No body: 204, 304, and any answer to HEAD.
        assert_eq!(framing(b"HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n").0, None);
        assert_eq!(framing(b"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n").0, None);
        match parse(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", true) {
            Ok(Some(Parsed::Final { framing, parts, .. })) => {
                assert_eq!(framing, None);
                assert_eq!(parts.headers.get(header::CONTENT_LENGTH).map(|v| v.as_bytes()), Some(&b"9"[..]));
            }
            _ => panic!("HEAD answer"),
        }
    }

    #[test]
    fn heads_are_parsed_strictly() {
        assert!(matches!(parse(b"HTTP/1.1 200 OK\r\nContent-", false), Ok(None)));
        assert!(matches!(parse(b"HTTP/1.1 100 Continue\r\n\r\n", false), Ok(Some(Parsed::Informational))));
        assert!(matches!(parse(b"HTTP/1.1 101 Switching\r\n\r\n", false), Err(WireError::UnaskedSwitch)));
        // The upstream's own reason phrase is kept; the standard one needs no copy.
        let reason = |raw: &[u8]| match parse(raw, false) {
            Ok(Some(Parsed::Final { parts, .. })) => {
                parts.extensions.get::<hyper::ext::ReasonPhrase>().map(|r| r.as_bytes().to_vec())
            }
            _ => panic!("not a final answer"),
        };
        assert_eq!(
            reason(b"HTTP/1.1 200 Fine Thanks\r\ncontent-length: 0\r\n\r\n"),
            Some(b"Fine Thanks".to_vec())
        );
        assert_eq!(reason(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"), None);
        for bad in [
            &b"HTTP/1.1 200 OK\r\nX Y: 1\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nX-A: 1\rX-B: 2\r\n\r\n",
            b"HTTP/2 200 OK\r\n\r\n",
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\n X-Folded: 1\r\n\r\n",
        ] {
            assert!(parse(bad, false).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        let mut many = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            many.extend_from_slice(format!("x-h{i}: v\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert!(parse(&many, false).is_err());
    }

    #[test]
    fn chunked_bodies_decode_and_bad_chunks_are_refused() {
        let decode_all = |raw: &[u8]| -> Result<(Vec<u8>, Option<HeaderMap>), WireError> {
            let mut buf = BytesMut::from(raw);
            let (mut chunk, mut body, mut trailers) = (Chunk::Size, Vec::new(), Vec::new());
            loop {
                match decode(&mut buf, chunk, &mut trailers)? {
                    Decoded::Data(d, next) => {
                        body.extend_from_slice(&d);
                        chunk = next;
                    }
                    Decoded::Moved(next) => chunk = next,
                    Decoded::End(t) => {
                        assert!(buf.is_empty());
                        return Ok((body, t));
                    }
                    Decoded::NeedMore => panic!("all bytes were there"),
                }
            }
        };
        let (body, trailers) =
            decode_all(b"5;ext=1\r\nhello\r\n6 ; x\r\n world\r\n0\r\nTrailer: t\r\nX-Sum: 1\r\n\r\n")
                .expect("decodes");
        assert_eq!(body, b"hello world");
        let trailers = trailers.expect("trailers");
        assert_eq!(trailers.get("trailer").map(|v| v.as_bytes()), Some(&b"t"[..]));
        assert_eq!(trailers.get("x-sum").map(|v| v.as_bytes()), Some(&b"1"[..]));
        assert_eq!(decode_all(b"1\r\na\r\n0\r\n\r\n").expect("decodes"), (b"a".to_vec(), None));
        // Trailer fields that are not header fields, or too many bytes of them.
        assert!(matches!(decode_all(b"0\r\nno colon\r\n\r\n"), Err(WireError::Trailers)));
        let mut big = b"0\r\n".to_vec();
        for i in 0..2000 {
            big.extend_from_slice(format!("x-t{i}: vvvvvv\r\n").as_bytes());
        }
        big.extend_from_slice(b"\r\n");
        assert!(matches!(decode_all(&big), Err(WireError::Trailers)));
        for bad in [&b"g\r\n"[..], b"\r\n", b"-1\r\n", b"5x\r\n", b"5;a\0\r\n", b"1000000000000000\r\n"] {
            let mut buf = BytesMut::from(bad);
            assert!(
                matches!(decode(&mut buf, Chunk::Size, &mut Vec::new()), Err(WireError::Chunk)),
                "{bad:?}"
            );
        }
        // A bare LF does not end a line: the decoder waits for CRLF (and the line limit).
        assert!(matches!(
            decode(&mut BytesMut::from(&b"5\nhello"[..]), Chunk::Size, &mut Vec::new()),
            Ok(Decoded::NeedMore)
        ));
        // Data not followed by CRLF.
        let mut buf = BytesMut::from(&b"1\r\nab\r\n"[..]);
        let t = &mut Vec::new();
        assert!(matches!(decode(&mut buf, Chunk::Size, t), Ok(Decoded::Moved(Chunk::Data(1)))));
        assert!(matches!(decode(&mut buf, Chunk::Data(1), t), Ok(Decoded::Data(_, Chunk::DataEnd))));
        assert!(matches!(decode(&mut buf, Chunk::DataEnd, t), Err(WireError::Chunk)));
        // A size line that never ends.
        let mut buf = BytesMut::from(vec![b'1'; MAX_CHUNK_LINE + 10].as_slice());
        assert!(matches!(decode(&mut buf, Chunk::Size, &mut Vec::new()), Err(WireError::Chunk)));
    }

    /// A request's parts as the owner of a [`Head`].
    pub(crate) struct Owned(Method, http::Uri, Vec<(HeaderName, HeaderValue)>);

    impl Owned {
        pub(crate) fn head(&self) -> Head<'_> {
            Head { method: &self.0, target: &self.1, fields: &self.2 }
        }
    }

    pub(crate) fn parts_head(parts: &http::request::Parts) -> Owned {
        let fields = parts.headers.iter().map(|(n, v)| (n.clone(), v.clone())).collect();
        Owned(parts.method.clone(), parts.uri.clone(), fields)
    }

    #[test]
    fn request_heads_are_written_in_origin_form() {
        let mut req = http::Request::get("/a/b?c=d").body(()).expect("request");
        req.headers_mut().insert(header::HOST, HeaderValue::from_static("up:8080"));
        req.headers_mut().append("x-two", HeaderValue::from_static("1"));
        req.headers_mut().append("x-two", HeaderValue::from_static("2"));
        // Nothing may announce a body the request does not have.
        req.headers_mut().insert(header::TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        req.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from_static("5"));
        let (parts, ()) = req.into_parts();
        let mut out = Vec::new();
        encode_head(&parts_head(&parts).head(), &mut out);
        assert_eq!(out, b"GET /a/b?c=d HTTP/1.1\r\nhost: up:8080\r\nx-two: 1\r\nx-two: 2\r\n\r\n");
        let mut req = http::Request::post("/").body(()).expect("request");
        req.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
        let mut out = Vec::new();
        encode_head(&parts_head(&req.into_parts().0).head(), &mut out);
        assert_eq!(out, b"POST / HTTP/1.1\r\ncontent-length: 0\r\n\r\n");
    }
}
