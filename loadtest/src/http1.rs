//! The smallest HTTP/1.1 client a poll needs: one GET at a time on a keep-alive connection (plain TCP or TLS),
//! the request bytes built once per target, the response head parsed in place and the body counted and
//! discarded as it streams, never buffered whole. A general client (hyper) runs a task per connection and hands
//! every request to it over a channel: two wake-ups per request that a load generator pays for in throughput.
//! Responses are framed by Content-Length, chunked encoding or the connection closing; every size a server
//! sends is checked arithmetic against a cap, so no answer can overflow, panic or exhaust memory.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

pub use crate::outcome::ErrorKind;

/// The response did not parse as HTTP/1.1 (bad status line or header, bad chunk size, conflicting lengths).
pub const BAD_RESPONSE: ErrorKind = "bad_response";
/// The body announced or sent more than [`MAX_BODY_BYTES`].
pub const BODY_TOO_LARGE: ErrorKind = "body_too_large";
/// The connection closed (or was reset) before the response was complete.
pub const CONNECTION_RESET: ErrorKind = "connection_reset";

/// The most body a poll may return. A stats response is a few kilobytes; a server that sends megabytes is
/// broken, and the body is counted as it streams, so this bounds time spent, not memory.
pub const MAX_BODY_BYTES: u64 = 8 * 1024 * 1024;
/// The most a response head (status line and headers), or a chunked body's trailers, may take.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// The most a chunk-size line may take (with extensions).
const MAX_LINE_BYTES: usize = 16 * 1024;

/// `GET path` to `host:port`, serialised once.
pub fn request_bytes(host: &str, port: u16, path: &str) -> Result<Vec<u8>, String> {
    if path.bytes().any(|b| b <= b' ' || b == 0x7f) || !path.starts_with('/') {
        return Err(format!("`{path}` is not a request path"));
    }
    if host.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(format!("`{host}` is not a host name"));
    }
    Ok(format!("GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: statsctl-loadtest\r\nAccept: */*\r\n\r\n").into_bytes())
}

/// The transport under a connection. An enum rather than a trait object: plain TCP, the common case, is one
/// predictable branch away from the socket, with no vtable and no TLS wrapper. The TLS state (kilobytes) is
/// boxed so an idle plain connection stays small.
enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// A keep-alive connection and the bytes read past the last response (none, unless a server misbehaves).
pub struct Conn {
    stream: Stream,
    buf: Vec<u8>,
    /// The largest the buffer has been, for tests that a body is never held whole.
    #[cfg(test)]
    peak: usize,
}

/// A response: its status, how many body bytes arrived, and whether the connection can carry the next request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body_bytes: u64,
    pub keep_alive: bool,
}

/// Opens a connection to `host:port`; with `tls`, completes a TLS handshake on it (whose failure is its own
/// error kind, see [`crate::tls::handshake_error`]).
pub async fn connect(
    host: &str,
    port: u16,
    tls: Option<&crate::tls::Client>,
) -> Result<Conn, ErrorKind> {
    let tcp = TcpStream::connect((host, port))
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::ConnectionRefused => "connect_refused",
            std::io::ErrorKind::TimedOut => "connect_timeout",
            _ => "connect_error",
        })?;
    let _ = tcp.set_nodelay(true);
    let stream = match tls {
        None => Stream::Plain(tcp),
        Some(client) => Stream::Tls(Box::new(
            client
                .connector
                .connect(client.name.clone(), tcp)
                .await
                .map_err(|e| crate::tls::handshake_error(&e))?,
        )),
    };
    Ok(Conn {
        stream,
        buf: Vec::new(),
        #[cfg(test)]
        peak: 0,
    })
}

fn io_kind(e: &std::io::Error) -> ErrorKind {
    match e.kind() {
        std::io::ErrorKind::ConnectionReset
        | std::io::ErrorKind::BrokenPipe
        | std::io::ErrorKind::ConnectionAborted
        | std::io::ErrorKind::UnexpectedEof => CONNECTION_RESET,
        _ => "io_error",
    }
}

impl Conn {
    /// Whether an idle connection is still open: the server may have closed it while it waited (keep-alive
    /// timeout). Never blocks.
    pub fn is_open(&mut self) -> bool {
        match &mut self.stream {
            Stream::Plain(s) => {
                let mut probe = [0u8; 1];
                match s.try_read(&mut probe) {
                    Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
                    // Closed (0), or bytes nobody asked for: either way not reusable.
                    Ok(_) => false,
                }
            }
            Stream::Tls(s) => {
                // Reading the socket directly would eat TLS records; a read through TLS with a waker that does
                // nothing processes what arrived (session tickets, a close_notify) and returns at once.
                let mut cx = Context::from_waker(std::task::Waker::noop());
                let mut probe = [0u8; 1];
                let mut probe = ReadBuf::new(&mut probe);
                matches!(
                    Pin::new(&mut **s).poll_read(&mut cx, &mut probe),
                    Poll::Pending
                )
            }
        }
    }

    async fn send(&mut self, request: &[u8]) -> std::io::Result<()> {
        match &mut self.stream {
            Stream::Plain(s) => s.write_all(request).await,
            Stream::Tls(s) => {
                s.write_all(request).await?;
                // Records rustls holds back go out now, not with the next write.
                s.flush().await
            }
        }
    }

    /// Reads more into the buffer; `Ok(false)` at end of stream.
    async fn fill(&mut self) -> Result<bool, ErrorKind> {
        if self.buf.capacity() - self.buf.len() < 1024 {
            self.buf.reserve(4096);
        }
        let read = match &mut self.stream {
            Stream::Plain(s) => s.read_buf(&mut self.buf).await,
            Stream::Tls(s) => s.read_buf(&mut self.buf).await,
        };
        #[cfg(test)]
        {
            self.peak = self.peak.max(self.buf.capacity());
        }
        match read {
            Ok(0) => Ok(false),
            Ok(_) => Ok(true),
            // A TLS peer that closes without close_notify: the end of the stream, as for TCP. Whether that
            // truncated a response is for the framing to say.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
            Err(e) => Err(io_kind(&e)),
        }
    }

    /// Sends `request` and reads the whole response. `on_sent` runs when the request has been written. Any
    /// error leaves the connection unusable: the caller drops it.
    pub async fn exchange(
        &mut self,
        request: &[u8],
        on_sent: impl FnOnce(),
    ) -> Result<Response, ErrorKind> {
        self.send(request).await.map_err(|e| io_kind(&e))?;
        on_sent();
        // The head.
        let (status, head_len, framing, keep_alive) = loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut resp = httparse::Response::new(&mut headers);
            match resp.parse(&self.buf) {
                Ok(httparse::Status::Complete(n)) => {
                    let status = resp.code.unwrap_or(0);
                    let (framing, keep_alive) =
                        framing(status, resp.version.unwrap_or(1), resp.headers)?;
                    // 1xx: an interim response (100 Continue); the real one follows.
                    if (100..200).contains(&status) && status != 101 {
                        self.buf.drain(..n);
                        continue;
                    }
                    break (status, n, framing, keep_alive);
                }
                Ok(httparse::Status::Partial) => {
                    if self.buf.len() > MAX_HEAD_BYTES {
                        return Err(BAD_RESPONSE);
                    }
                    if !self.fill().await? {
                        return Err(CONNECTION_RESET);
                    }
                }
                Err(_) => return Err(BAD_RESPONSE),
            }
        };
        self.buf.drain(..head_len);
        // The body, counted and discarded as it arrives.
        let (body_bytes, keep_alive) = match framing {
            Framing::Empty => (0, keep_alive),
            Framing::Length(n) => {
                if n > MAX_BODY_BYTES {
                    return Err(BODY_TOO_LARGE);
                }
                self.discard(n).await?;
                (n, keep_alive)
            }
            Framing::Chunked => (self.chunked().await?, keep_alive),
            Framing::UntilClose => {
                let mut n = 0u64;
                loop {
                    // Bounded by the cap plus one read: no overflow.
                    n += self.buf.len() as u64;
                    self.buf.clear();
                    if n > MAX_BODY_BYTES {
                        return Err(BODY_TOO_LARGE);
                    }
                    if !self.fill().await? {
                        break;
                    }
                }
                (n, false)
            }
        };
        if self.buf.is_empty() {
            // An idle connection holds no buffer: with one connection per viewer, 100k viewers would otherwise
            // keep 400 MB of them between polls.
            self.buf = Vec::new();
        }
        Ok(Response {
            status,
            body_bytes,
            keep_alive,
        })
    }

    /// Consumes exactly `n` body bytes: those already buffered, then as they arrive, keeping none.
    async fn discard(&mut self, mut n: u64) -> Result<(), ErrorKind> {
        loop {
            let take = n.min(self.buf.len() as u64) as usize;
            self.buf.drain(..take);
            n -= take as u64;
            if n == 0 {
                return Ok(());
            }
            if !self.fill().await? {
                return Err(CONNECTION_RESET);
            }
        }
    }

    /// A chunked body, up to and including its trailers; returns the data bytes.
    async fn chunked(&mut self) -> Result<u64, ErrorKind> {
        let mut total = 0u64;
        loop {
            let end = self.line(MAX_LINE_BYTES).await?;
            let size = chunk_size(&self.buf[..end]).ok_or(BAD_RESPONSE)?;
            self.buf.drain(..end + 2);
            if size == 0 {
                // Trailers, to the empty line, within the same bound as a head.
                let mut trailers = 0usize;
                loop {
                    let end = self.line(MAX_HEAD_BYTES.saturating_sub(trailers)).await?;
                    self.buf.drain(..end + 2);
                    if end == 0 {
                        return Ok(total);
                    }
                    trailers += end + 2;
                }
            }
            total = total
                .checked_add(size)
                .filter(|t| *t <= MAX_BODY_BYTES)
                .ok_or(BODY_TOO_LARGE)?;
            self.discard(size).await?;
            while self.buf.len() < 2 {
                if !self.fill().await? {
                    return Err(CONNECTION_RESET);
                }
            }
            if &self.buf[..2] != b"\r\n" {
                return Err(BAD_RESPONSE);
            }
            self.buf.drain(..2);
        }
    }

    /// Waits for a CRLF-terminated line at the start of the buffer, at most `max` bytes long; returns where its
    /// CRLF starts (the caller consumes it).
    async fn line(&mut self, max: usize) -> Result<usize, ErrorKind> {
        let mut from = 0;
        loop {
            if let Some(i) = self.buf[from..].windows(2).position(|w| w == b"\r\n") {
                // A line found in the read that went past `max` is still too long.
                return if from + i > max {
                    Err(BAD_RESPONSE)
                } else {
                    Ok(from + i)
                };
            }
            if self.buf.len() > max {
                return Err(BAD_RESPONSE);
            }
            from = self.buf.len().saturating_sub(1);
            if !self.fill().await? {
                return Err(CONNECTION_RESET);
            }
        }
    }
}

/// A chunk-size line (`1a`, `1a;name=value`): 1 to 16 hex digits, so it always fits in a u64; anything else
/// (a sign, spaces inside, 17 digits) is malformed.
fn chunk_size(line: &[u8]) -> Option<u64> {
    let size = line.split(|&b| b == b';').next().unwrap_or(&[]);
    // Whitespace before an extension is allowed (RFC 9112 §7.1.1, BWS).
    let size = size.trim_ascii_end();
    if size.is_empty() || size.len() > 16 || !size.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    u64::from_str_radix(std::str::from_utf8(size).ok()?, 16).ok()
}

/// A Content-Length value: decimal digits only (no sign, no spaces inside), within a u64.
fn content_length(value: &str) -> Option<u64> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Empty,
    Length(u64),
    Chunked,
    UntilClose,
}

/// How the body is delimited (RFC 9112 §6.3, for a response to GET) and whether the connection stays open.
fn framing(
    status: u16,
    version: u8,
    headers: &[httparse::Header],
) -> Result<(Framing, bool), ErrorKind> {
    let mut length = None;
    let mut chunked = false;
    let mut keep_alive = version >= 1;
    for h in headers {
        let value = std::str::from_utf8(h.value)
            .map_err(|_| BAD_RESPONSE)?
            .trim();
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = content_length(value).ok_or(BAD_RESPONSE)?;
            if length.is_some_and(|m| m != n) {
                return Err(BAD_RESPONSE);
            }
            length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value
                .rsplit(',')
                .next()
                .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
        } else if h.name.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case("keep-alive") {
                    keep_alive = true;
                }
            }
        }
    }
    let framing = if (100..200).contains(&status) || status == 204 || status == 304 {
        Framing::Empty
    } else if chunked {
        Framing::Chunked
    } else if let Some(n) = length {
        Framing::Length(n)
    } else {
        Framing::UntilClose
    };
    Ok((framing, keep_alive && framing != Framing::UntilClose))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// Serves `responses` on one connection, one per request head read, then closes; returns what the client
    /// made of each, and the largest its buffer grew.
    async fn exchange_all_peak(
        responses: Vec<Vec<u8>>,
    ) -> (Vec<Result<Response, ErrorKind>>, usize) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let n = responses.len();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            for r in responses {
                // Wait for a whole request head.
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    if s.read_buf(&mut buf).await.unwrap() == 0 {
                        return;
                    }
                }
                buf.clear();
                // Write in two pieces to exercise partial reads. The client may hang up early (a body over
                // the cap): not an error here.
                let (a, b) = r.split_at(r.len() / 2);
                if s.write_all(a).await.is_err() || s.flush().await.is_err() {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                if s.write_all(b).await.is_err() {
                    return;
                }
            }
        });
        let mut c = connect("127.0.0.1", port, None).await.unwrap();
        let req = request_bytes("127.0.0.1", port, "/x").unwrap();
        let mut out = Vec::new();
        for _ in 0..n {
            let r = c.exchange(&req, || {}).await;
            let failed = r.is_err();
            out.push(r);
            if failed {
                // A failed exchange leaves the connection unusable; the engine drops it.
                break;
            }
        }
        drop(c.stream);
        let _ = server.await;
        (out, c.peak)
    }

    async fn exchange_all(responses: Vec<&'static [u8]>) -> Vec<Result<Response, ErrorKind>> {
        exchange_all_peak(responses.into_iter().map(<[u8]>::to_vec).collect())
            .await
            .0
    }

    #[tokio::test]
    async fn framings() {
        let cases: Vec<(&str, &'static [u8], Result<Response, ErrorKind>)> = vec![
            ("content-length", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", Ok(Response { status: 200, body_bytes: 5, keep_alive: true })),
            ("chunked with extension and trailer", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nX-T: 1\r\n\r\n", Ok(Response { status: 200, body_bytes: 5, keep_alive: true })),
            ("204 has no body", b"HTTP/1.1 204 No Content\r\n\r\n", Ok(Response { status: 204, body_bytes: 0, keep_alive: true })),
            ("100 continue then 503", b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 503 Service Unavailable\r\nContent-Length: 2\r\nConnection: close\r\n\r\nno", Ok(Response { status: 503, body_bytes: 2, keep_alive: false })),
            ("HTTP/1.0 closes", b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx", Ok(Response { status: 200, body_bytes: 1, keep_alive: false })),
            ("until close", b"HTTP/1.1 200 OK\r\n\r\nabcdef", Ok(Response { status: 200, body_bytes: 6, keep_alive: false })),
            ("garbage", b"SMTP ready\r\n\r\n", Err(BAD_RESPONSE)),
            ("conflicting lengths", b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx", Err(BAD_RESPONSE)),
            ("signed length", b"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nxx", Err(BAD_RESPONSE)),
            ("bad chunk size", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", Err(BAD_RESPONSE)),
            ("chunk size past u64", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\nab\r\n", Err(BAD_RESPONSE)),
            // The size that overflowed `size + 2` and panicked the connection's task.
            ("chunk size u64::MAX", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\nab\r\n0\r\n\r\n", Err(BODY_TOO_LARGE)),
            ("chunks adding up past the cap", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n7fffff\r\nab\r\n", Err(BODY_TOO_LARGE)),
            ("chunk data without its CRLF", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY0\r\n\r\n", Err(BAD_RESPONSE)),
            ("content-length past the cap, announced", b"HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\n\r\nab", Err(BODY_TOO_LARGE)),
            ("content-length past u64", b"HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551616\r\n\r\nab", Err(BAD_RESPONSE)),
            ("truncated body", b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nshort", Err(CONNECTION_RESET)),
            ("truncated chunk", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n50\r\nshort", Err(CONNECTION_RESET)),
            ("closed before a head", b"", Err(CONNECTION_RESET)),
        ];
        for (name, bytes, want) in cases {
            let got = exchange_all(vec![bytes]).await;
            assert_eq!(got[0], want, "{name}");
        }
    }

    #[tokio::test]
    async fn bodies_stream_through_a_small_buffer_and_stop_at_the_cap() {
        let big = |head: &str, body_len: usize| {
            let mut r = head.as_bytes().to_vec();
            r.resize(r.len() + body_len, b'x');
            r
        };
        let six = 6 * 1024 * 1024;
        let chunked = |chunks: usize, size: usize| {
            let mut r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            for _ in 0..chunks {
                r.extend_from_slice(format!("{size:x}\r\n").as_bytes());
                r.resize(r.len() + size, b'y');
                r.extend_from_slice(b"\r\n");
            }
            r.extend_from_slice(b"0\r\n\r\n");
            r
        };
        let trailers = |lines: usize, size: usize| {
            let mut r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n".to_vec();
            for _ in 0..lines {
                r.extend_from_slice(b"X-T: ");
                r.resize(r.len() + size, b't');
                r.extend_from_slice(b"\r\n");
            }
            r.extend_from_slice(b"\r\n");
            r
        };
        let cases: Vec<(&str, Vec<u8>, Result<u64, ErrorKind>)> = vec![
            (
                "6 MiB by length",
                big(
                    &format!("HTTP/1.1 200 OK\r\nContent-Length: {six}\r\n\r\n"),
                    six,
                ),
                Ok(six as u64),
            ),
            ("6 MiB chunked", chunked(6, 1024 * 1024), Ok(six as u64)),
            (
                "6 MiB until close",
                big("HTTP/1.1 200 OK\r\n\r\n", six),
                Ok(six as u64),
            ),
            (
                "9 MiB chunked",
                chunked(9, 1024 * 1024),
                Err(BODY_TOO_LARGE),
            ),
            (
                "9 MiB until close",
                big("HTTP/1.1 200 OK\r\n\r\n", 9 * 1024 * 1024),
                Err(BODY_TOO_LARGE),
            ),
            ("70 KB of trailers", trailers(70, 1000), Err(BAD_RESPONSE)),
            ("one 70 KB trailer", trailers(1, 70_000), Err(BAD_RESPONSE)),
            (
                "a 70 KB chunk-size line",
                {
                    let mut r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;".to_vec();
                    r.resize(r.len() + 70_000, b'e');
                    r.extend_from_slice(b"\r\nx\r\n0\r\n\r\n");
                    r
                },
                Err(BAD_RESPONSE),
            ),
            ("trailers within bounds", trailers(10, 1000), Ok(0)),
        ];
        for (name, response, want) in cases {
            let (got, peak) = exchange_all_peak(vec![response]).await;
            assert_eq!(got[0].map(|r| r.body_bytes), want, "{name}");
            // Read and discarded as it streams: the buffer never held more than a head or a trailer section may
            // take (and the read that went past it), whatever the body's size.
            assert!(
                peak <= 2 * MAX_HEAD_BYTES,
                "{name}: the buffer grew to {peak} bytes"
            );
        }
    }

    #[test]
    fn chunk_sizes_and_lengths_parse_strictly() {
        for (line, want) in [
            (&b"0"[..], Some(0)),
            (b"1a", Some(26)),
            (b"1A;name=value", Some(26)),
            (b"1a ;x", Some(26)),
            (b"ffffffffffffffff", Some(u64::MAX)),
            (b"10000000000000000", None),
            (b"", None),
            (b"+1", None),
            (b"-1", None),
            (b" 1", None),
            (b"1 2", None),
            (b"0x10", None),
        ] {
            assert_eq!(
                chunk_size(line),
                want,
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
        for (value, want) in [
            ("0", Some(0)),
            ("42", Some(42)),
            ("18446744073709551615", Some(u64::MAX)),
            ("18446744073709551616", None),
            ("+1", None),
            ("-1", None),
            ("", None),
            ("1 2", None),
        ] {
            assert_eq!(content_length(value), want, "{value:?}");
        }
    }

    #[tokio::test]
    async fn keep_alive_carries_several_requests() {
        let r: &'static [u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        let got = exchange_all(vec![r, r, r]).await;
        assert!(
            got.iter().all(|g| *g
                == Ok(Response {
                    status: 200,
                    body_bytes: 2,
                    keep_alive: true
                })),
            "{got:?}"
        );
    }

    #[tokio::test]
    async fn a_closed_idle_connection_is_noticed() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut c = connect("127.0.0.1", port, None).await.unwrap();
        let (s, _) = listener.accept().await.unwrap();
        assert!(c.is_open());
        drop(s);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!c.is_open());
    }

    #[test]
    fn request_bytes_refuse_what_would_break_the_request_line() {
        assert_eq!(request_bytes("h", 80, "/a?b=1").unwrap(), b"GET /a?b=1 HTTP/1.1\r\nHost: h:80\r\nUser-Agent: statsctl-loadtest\r\nAccept: */*\r\n\r\n");
        assert!(request_bytes("h", 80, "/a b").is_err());
        assert!(request_bytes("h", 80, "a").is_err());
        assert!(request_bytes("h\r\nX: y", 80, "/").is_err());
    }
}
