//! The smallest HTTP/1.1 client a poll needs: one GET at a time on a keep-alive connection, the request bytes
//! built once per target, the response read in place. A general client (hyper) runs a task per connection and
//! hands every request to it over a channel: two wake-ups per request that a load generator pays for in
//! throughput. Responses are framed by Content-Length, chunked encoding or the connection closing.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What a read or parse failure counts as, in the load test's error kinds.
pub type ErrorKind = &'static str;

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

/// A keep-alive connection and the bytes read past the last response (none, unless a server misbehaves).
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

/// A response: its status, how many body bytes arrived, and whether the connection can carry the next request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body_bytes: u64,
    pub keep_alive: bool,
}

pub async fn connect(host: &str, port: u16) -> Result<Conn, ErrorKind> {
    let stream = TcpStream::connect((host, port))
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::ConnectionRefused => "connect_refused",
            std::io::ErrorKind::TimedOut => "connect_timeout",
            _ => "connect_error",
        })?;
    let _ = stream.set_nodelay(true);
    Ok(Conn {
        stream,
        buf: Vec::new(),
    })
}

fn io_kind(e: &std::io::Error) -> ErrorKind {
    match e.kind() {
        std::io::ErrorKind::ConnectionReset
        | std::io::ErrorKind::BrokenPipe
        | std::io::ErrorKind::ConnectionAborted
        | std::io::ErrorKind::UnexpectedEof => "connection_reset",
        _ => "io_error",
    }
}

impl Conn {
    /// Whether an idle connection is still open: the server may have closed it while it waited (keep-alive
    /// timeout). Never blocks.
    pub fn is_open(&self) -> bool {
        let mut probe = [0u8; 1];
        match self.stream.try_read(&mut probe) {
            Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
            // Closed (0), or bytes nobody asked for: either way not reusable.
            Ok(_) => false,
        }
    }

    /// Reads more into the buffer; `Ok(false)` at end of stream.
    async fn fill(&mut self) -> Result<bool, ErrorKind> {
        if self.buf.capacity() - self.buf.len() < 1024 {
            self.buf.reserve(4096);
        }
        match self.stream.read_buf(&mut self.buf).await {
            Ok(0) => Ok(false),
            Ok(_) => Ok(true),
            Err(e) => Err(io_kind(&e)),
        }
    }

    /// Sends `request` and reads the whole response. `on_sent` runs when the request has been written.
    pub async fn exchange(
        &mut self,
        request: &[u8],
        on_sent: impl FnOnce(),
    ) -> Result<Response, ErrorKind> {
        self.stream
            .write_all(request)
            .await
            .map_err(|e| io_kind(&e))?;
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
                    if self.buf.len() > 64 * 1024 {
                        return Err("http_error");
                    }
                    if !self.fill().await? {
                        return Err("connection_reset");
                    }
                }
                Err(_) => return Err("http_error"),
            }
        };
        self.buf.drain(..head_len);
        // The body.
        let (body_bytes, keep_alive) = match framing {
            Framing::Empty => (0, keep_alive),
            Framing::Length(n) => {
                while (self.buf.len() as u64) < n {
                    if !self.fill().await? {
                        return Err("connection_reset");
                    }
                }
                self.buf.drain(..n as usize);
                (n, keep_alive)
            }
            Framing::Chunked => (self.chunked().await?, keep_alive),
            Framing::UntilClose => {
                let mut n = self.buf.len() as u64;
                self.buf.clear();
                while self.fill().await? {
                    n += self.buf.len() as u64;
                    self.buf.clear();
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

    /// A chunked body, up to and including its trailers; returns the data bytes.
    async fn chunked(&mut self) -> Result<u64, ErrorKind> {
        let mut total = 0u64;
        loop {
            let line = self.line().await?;
            let size_text = line.split(|&b| b == b';').next().unwrap_or(&[]);
            let size = std::str::from_utf8(size_text)
                .ok()
                .and_then(|s| u64::from_str_radix(s.trim(), 16).ok())
                .ok_or("http_error")?;
            if size == 0 {
                // Trailers, to the empty line.
                while !self.line().await?.is_empty() {}
                return Ok(total);
            }
            while (self.buf.len() as u64) < size + 2 {
                if !self.fill().await? {
                    return Err("connection_reset");
                }
            }
            if &self.buf[size as usize..size as usize + 2] != b"\r\n" {
                return Err("http_error");
            }
            self.buf.drain(..size as usize + 2);
            total += size;
        }
    }

    /// One CRLF-terminated line, consumed, without its CRLF.
    async fn line(&mut self) -> Result<Vec<u8>, ErrorKind> {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = self.buf[..i].to_vec();
                self.buf.drain(..i + 2);
                return Ok(line);
            }
            if self.buf.len() > 16 * 1024 {
                return Err("http_error");
            }
            if !self.fill().await? {
                return Err("connection_reset");
            }
        }
    }
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
            .map_err(|_| "http_error")?
            .trim();
        if h.name.eq_ignore_ascii_case("content-length") {
            let n: u64 = value.parse().map_err(|_| "http_error")?;
            if length.is_some_and(|m| m != n) {
                return Err("http_error");
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

    /// Serves `responses` on one connection, one per request head read, then closes.
    async fn exchange_all(responses: Vec<&'static [u8]>) -> Vec<Result<Response, ErrorKind>> {
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
                // Write in two pieces to exercise partial reads.
                let (a, b) = r.split_at(r.len() / 2);
                s.write_all(a).await.unwrap();
                s.flush().await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                s.write_all(b).await.unwrap();
            }
        });
        let mut c = connect("127.0.0.1", port).await.unwrap();
        let req = request_bytes("127.0.0.1", port, "/x").unwrap();
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(c.exchange(&req, || {}).await);
        }
        server.await.unwrap();
        out
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
            ("garbage", b"SMTP ready\r\n\r\n", Err("http_error")),
            ("conflicting lengths", b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx", Err("http_error")),
            ("bad chunk size", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", Err("http_error")),
            ("truncated body", b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nshort", Err("connection_reset")),
        ];
        for (name, bytes, want) in cases {
            let got = exchange_all(vec![bytes]).await;
            assert_eq!(got[0], want, "{name}");
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
        let c = connect("127.0.0.1", port).await.unwrap();
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
