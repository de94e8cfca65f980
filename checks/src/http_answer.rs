//! How far an HTTP/1.1 answer read so far goes — its status, and whether its body is complete by its framing
//! (Content-Length, chunked, to the end of the connection) — for preflight's service probes, which must tell a
//! service that answers from one that sends its headers and then stalls. Pure: bytes in, a verdict out.

use crate::service_healthy::Outcome;

/// The most of an answer read (head, body and chunk framing): a health or stats answer is a few kilobytes, and
/// the whole answer is read so that one that stalls after its headers is seen.
pub const PROBE_MAX_ANSWER: usize = 256 * 1024;
/// The most a status line and headers may take.
pub const PROBE_MAX_HEAD: usize = 16 * 1024;

/// How far the bytes of an answer read so far go.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// The status line and headers are not all here yet.
    Head,
    /// The head came with this status; the body is not complete yet.
    Body(u16),
    /// The whole answer: its status and how many body bytes it had.
    Complete { status: u16, body: usize },
    /// Not an HTTP answer, or one that cannot complete (closed early, malformed framing, too large).
    Bad(String),
}

/// Where an answer stands, from the bytes read so far and whether the connection has ended (`eof`). Pure: the
/// framings (Content-Length, chunked, to the end of the connection, none for 204/304) are table cases. Never
/// `Head` or `Body` at `eof`.
pub fn answer_progress(bytes: &[u8], eof: bool) -> Answer {
    let closed_early =
        || Answer::Bad("closed the connection before the answer was complete".to_string());
    let Some(head_len) = find(bytes, b"\r\n\r\n", 0) else {
        if bytes.contains(&b'\n') && status_code(bytes).is_none() {
            return Answer::Bad("the answer is not an HTTP status line".into());
        }
        if bytes.len() > PROBE_MAX_HEAD {
            return Answer::Bad(format!(
                "the status line and headers are larger than {} KiB",
                PROBE_MAX_HEAD / 1024
            ));
        }
        return match eof {
            false => Answer::Head,
            true if bytes.is_empty() => {
                Answer::Bad("closed the connection without answering".into())
            }
            true => closed_early(),
        };
    };
    let head = &bytes[..head_len];
    let body = &bytes[head_len + 4..];
    let Some(status) = status_code(head) else {
        return Answer::Bad("the answer is not an HTTP status line".into());
    };
    // An interim answer (100 Continue): the real one follows it.
    if (100..200).contains(&status) && status != 101 {
        return answer_progress(body, eof);
    }
    let mut length: Option<usize> = None;
    let mut chunked = false;
    for line in head.split(|b| *b == b'\n').skip(1) {
        let line = String::from_utf8_lossy(line);
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("content-length") {
            let n = value
                .bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| value.parse::<usize>().ok())
                .flatten();
            match (n, length) {
                (None, _) => return Answer::Bad(format!("bad Content-Length `{value}`")),
                (Some(n), Some(m)) if n != m => {
                    return Answer::Bad("conflicting Content-Length headers".into())
                }
                (n, _) => length = n,
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value
                .rsplit(',')
                .next()
                .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
        }
    }
    let more = |eof: bool| {
        if eof {
            closed_early()
        } else {
            Answer::Body(status)
        }
    };
    if status == 204 || status == 304 {
        return Answer::Complete { status, body: 0 };
    }
    if chunked {
        return match chunked_body(body) {
            Ok(Some(n)) => Answer::Complete { status, body: n },
            Ok(None) => more(eof),
            Err(e) => Answer::Bad(e),
        };
    }
    match length {
        Some(n) if n > PROBE_MAX_ANSWER => Answer::Bad(format!(
            "the answer announces {n} body bytes, more than the {} KiB the probe reads",
            PROBE_MAX_ANSWER / 1024
        )),
        Some(n) if body.len() >= n => Answer::Complete { status, body: n },
        Some(_) => more(eof),
        // No length: the body runs to the end of the connection.
        None if eof => Answer::Complete {
            status,
            body: body.len(),
        },
        None => Answer::Body(status),
    }
}

/// A chunked body's data length once its last chunk and trailers are here (`Ok(None)`: not yet).
fn chunked_body(body: &[u8]) -> Result<Option<usize>, String> {
    let (mut at, mut total) = (0usize, 0usize);
    loop {
        let Some(end) = find(body, b"\r\n", at) else {
            return Ok(None);
        };
        let line = String::from_utf8_lossy(&body[at..end]);
        let digits = line.split(';').next().unwrap_or("").trim();
        let size = (!digits.is_empty() && digits.len() <= 8)
            .then(|| usize::from_str_radix(digits, 16).ok())
            .flatten()
            .ok_or_else(|| format!("bad chunk size `{digits}`"))?;
        at = end + 2;
        if size == 0 {
            // Trailers, up to an empty line.
            loop {
                let Some(end) = find(body, b"\r\n", at) else {
                    return Ok(None);
                };
                if end == at {
                    return Ok(Some(total));
                }
                at = end + 2;
            }
        }
        total += size;
        if body.len() < at + size + 2 {
            return Ok(None);
        }
        if &body[at + size..at + size + 2] != b"\r\n" {
            return Err("a chunk does not end where its size says".into());
        }
        at += size + 2;
    }
}

/// Where `needle` first occurs in `hay` at or after `from`.
fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| from + i)
}

/// `HTTP/1.1 503 Service Unavailable\r\n…` → 503.
pub fn status_code(answer: &[u8]) -> Option<u16> {
    let line = answer.split(|b| *b == b'\n').next()?;
    let text = std::str::from_utf8(line).ok()?;
    let mut words = text.split_whitespace();
    words.next().filter(|v| v.starts_with("HTTP/"))?;
    words.next()?.parse().ok()
}

/// How reading an answer ended.
#[derive(Debug, Clone, PartialEq)]
pub enum ReadEnd {
    /// The answer timeout passed first.
    TimedOut,
    /// Writing the request or reading failed (the error's text).
    Failed(String),
    /// The answer was complete or bad, or the connection ended.
    Stopped,
}

/// A probe request's outcome from how its read ended, whether any byte came back, and where the answer stood;
/// `answer_timeout_ms` is named in the outcome when the head did not complete in time. Pure.
pub fn outcome(end: ReadEnd, any_byte: bool, state: Answer, answer_timeout_ms: u128) -> Outcome {
    match (end, state) {
        (ReadEnd::TimedOut, _) if !any_byte => Outcome::NoAnswer,
        (ReadEnd::TimedOut, Answer::Body(status)) => Outcome::BodyStalled { status },
        (ReadEnd::TimedOut, _) => Outcome::BadAnswer {
            error: format!("no complete status line and headers within {answer_timeout_ms} ms"),
        },
        (ReadEnd::Failed(error), _) => Outcome::BadAnswer { error },
        (ReadEnd::Stopped, Answer::Complete { status, .. }) => Outcome::Answered { status },
        (ReadEnd::Stopped, Answer::Bad(error)) => Outcome::BadAnswer { error },
        (ReadEnd::Stopped, _) => Outcome::BadAnswer {
            error: "closed the connection before the answer was complete".into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_complete_by_their_framing() {
        let ok = |body| Answer::Complete { status: 200, body };
        let bad = |e: &str| Answer::Bad(e.to_string());
        let early = || bad("closed the connection before the answer was complete");
        let cases: Vec<(&str, &[u8], bool, Answer)> = vec![
            ("nothing yet", b"", false, Answer::Head),
            ("nothing, closed", b"", true, bad("closed the connection without answering")),
            ("half a status line", b"HTTP/1.1 2", false, Answer::Head),
            ("half a head", b"HTTP/1.1 200 OK\r\nContent-Le", false, Answer::Head),
            ("half a head, closed", b"HTTP/1.1 200 OK\r\n", true, early()),
            ("not HTTP", b"SSH-2.0-OpenSSH\r\n", false, bad("the answer is not an HTTP status line")),
            ("length, all here", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false, ok(2)),
            ("length, headers only", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n", false, Answer::Body(200)),
            ("length, part of the body", b"HTTP/1.1 503 No\r\ncontent-length: 5\r\n\r\nab", false, Answer::Body(503)),
            ("length, closed short", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab", true, early()),
            ("length zero", b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false, ok(0)),
            ("bad length", b"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok", false, bad("bad Content-Length `+2`")),
            ("conflicting lengths", b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nok", false, bad("conflicting Content-Length headers")),
            ("length past the cap", b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n", false, bad("the answer announces 99999999999 body bytes, more than the 256 KiB the probe reads")),
            ("until close, open", b"HTTP/1.1 200 OK\r\n\r\nabc", false, Answer::Body(200)),
            ("until close, closed", b"HTTP/1.1 200 OK\r\n\r\nabc", true, ok(3)),
            ("204 has no body", b"HTTP/1.1 204 No Content\r\n\r\n", false, Answer::Complete { status: 204, body: 0 }),
            ("100 then the answer", b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx", false, ok(1)),
            ("100, then nothing yet", b"HTTP/1.1 100 Continue\r\n\r\n", false, Answer::Head),
            ("chunked, complete with trailer", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nX-T: 1\r\n\r\n", false, ok(5)),
            ("chunked, mid-chunk", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", false, Answer::Body(200)),
            ("chunked, no last chunk", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n", false, Answer::Body(200)),
            ("chunked, closed early", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n", true, early()),
            ("chunked, bad size", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", false, bad("bad chunk size `zz`")),
            ("chunked, huge size", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n", false, bad("bad chunk size `ffffffffffffffff`")),
            ("chunked, data past its size", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabcd\r\n0\r\n\r\n", false, bad("a chunk does not end where its size says")),
        ];
        for (name, bytes, eof, want) in cases {
            assert_eq!(answer_progress(bytes, eof), want, "{name}");
        }
        let huge_head = [b"HTTP/1.1 200 OK\r\nX: ".as_slice(), &[b'a'; 20_000]].concat();
        assert_eq!(
            answer_progress(&huge_head, false),
            bad("the status line and headers are larger than 16 KiB")
        );
    }

    #[test]
    fn status_lines() {
        for (answer, want) in [
            (&b"HTTP/1.1 200 OK\r\n"[..], Some(200)),
            (b"HTTP/1.0 503 Service Unavailable\r\nx", Some(503)),
            (b"SSH-2.0-OpenSSH\r\n", None),
            (b"HTTP/1.1 abc\r\n", None),
            (b"", None),
        ] {
            assert_eq!(status_code(answer), want, "{answer:?}");
        }
    }

    #[test]
    fn outcomes_by_how_the_read_ended() {
        let bad = |e: &str| Outcome::BadAnswer {
            error: e.to_string(),
        };
        let complete = Answer::Complete {
            status: 200,
            body: 2,
        };
        // (case, how the read ended, any byte, where the answer stood, outcome)
        let cases = [
            (
                "silence",
                ReadEnd::TimedOut,
                false,
                Answer::Head,
                Outcome::NoAnswer,
            ),
            (
                "headers, then the body stalled",
                ReadEnd::TimedOut,
                true,
                Answer::Body(503),
                Outcome::BodyStalled { status: 503 },
            ),
            (
                "half a head, then nothing",
                ReadEnd::TimedOut,
                true,
                Answer::Head,
                bad("no complete status line and headers within 2000 ms"),
            ),
            (
                "reset",
                ReadEnd::Failed("connection reset".into()),
                true,
                Answer::Head,
                bad("connection reset"),
            ),
            (
                "whole",
                ReadEnd::Stopped,
                true,
                complete,
                Outcome::Answered { status: 200 },
            ),
            (
                "malformed",
                ReadEnd::Stopped,
                true,
                Answer::Bad("bad chunk size `zz`".into()),
                bad("bad chunk size `zz`"),
            ),
            (
                "closed mid-body",
                ReadEnd::Stopped,
                true,
                Answer::Body(200),
                bad("closed the connection before the answer was complete"),
            ),
        ];
        for (case, end, any_byte, state, want) in cases {
            assert_eq!(outcome(end, any_byte, state, 2000), want, "{case}");
        }
    }
}
