//! Just enough HTTP/1.1 for a scrape endpoint: read a bounded request head, parse its request
//! line, write a complete response and close. No keep-alive, no request bodies, no chunking.

use std::io::{self, Read};

/// The largest request head accepted (request line and headers); Prometheus sends ~300 bytes.
pub(crate) const MAX_HEAD_BYTES: usize = 8 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    Get,
    Head,
}

/// A parsed request line; `path` has its query string removed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Request<'a> {
    pub(crate) method: Method,
    pub(crate) path: &'a str,
}

/// Why a request head could not be read.
#[derive(Debug)]
pub(crate) enum HeadError {
    /// The peer closed before sending anything: nothing to answer.
    Empty,
    /// The peer closed in the middle of the head.
    Truncated,
    /// The head is longer than [`MAX_HEAD_BYTES`].
    TooLarge,
    /// The peer was too slow (read timeout).
    TimedOut,
    /// Any other read failure (reset by the peer, ...).
    Io,
}

/// Reads until the blank line that ends the head. Bytes after it (a body) are left unread.
pub(crate) fn read_head(reader: &mut impl Read) -> Result<Vec<u8>, HeadError> {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        let n = match reader.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(HeadError::TimedOut);
            }
            Err(_) => return Err(HeadError::Io),
        };
        if n == 0 {
            return Err(if head.is_empty() {
                HeadError::Empty
            } else {
                HeadError::Truncated
            });
        }
        // Only the newly read bytes (and the three before them) can complete the terminator.
        let search_from = head.len().saturating_sub(3);
        head.extend_from_slice(&chunk[..n]);
        if let Some(end) = head_end(&head[search_from..]) {
            head.truncate(search_from + end);
            return Ok(head);
        }
        if head.len() > MAX_HEAD_BYTES {
            return Err(HeadError::TooLarge);
        }
    }
}

/// The length up to and including the blank line (`\r\n\r\n`, or a bare `\n\n` from lax
/// clients), if `bytes` contains one.
fn head_end(bytes: &[u8]) -> Option<usize> {
    bytes.windows(2).enumerate().find_map(|(i, pair)| {
        (pair == b"\n\n")
            .then_some(i + 2)
            .or_else(|| (i >= 2 && &bytes[i - 2..i + 2] == b"\r\n\r\n").then_some(i + 2))
    })
}

/// A request that cannot be served, with the status that says why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    BadRequest,
    MethodNotAllowed,
    VersionNotSupported,
}

impl Refusal {
    pub(crate) fn response(self) -> Response {
        match self {
            Refusal::BadRequest => Response::text(400, "bad request"),
            Refusal::MethodNotAllowed => Response::text(405, "method not allowed"),
            Refusal::VersionNotSupported => Response::text(505, "http version not supported"),
        }
    }
}

/// Parses the request line of `head`: `METHOD SP target SP HTTP/1.x`.
pub(crate) fn parse_request(head: &[u8]) -> Result<Request<'_>, Refusal> {
    let line_end = head
        .iter()
        .position(|&b| b == b'\n')
        .ok_or(Refusal::BadRequest)?;
    let line = head[..line_end]
        .strip_suffix(b"\r")
        .unwrap_or(&head[..line_end]);
    let line = std::str::from_utf8(line).map_err(|_| Refusal::BadRequest)?;
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Refusal::BadRequest);
    };
    if !version.starts_with("HTTP/") {
        return Err(Refusal::BadRequest);
    }
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(Refusal::VersionNotSupported);
    }
    if !target.starts_with('/') {
        return Err(Refusal::BadRequest);
    }
    let method = match method {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        m if !m.is_empty() && m.bytes().all(|b| b.is_ascii_uppercase()) => {
            return Err(Refusal::MethodNotAllowed);
        }
        _ => return Err(Refusal::BadRequest),
    };
    let path = target.split_once('?').map_or(target, |(path, _)| path);
    Ok(Request { method, path })
}

/// A complete response; always sent with `Connection: close`.
#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) content_type: &'static str,
    pub(crate) body: String,
}

impl Response {
    pub(crate) fn text(status: u16, body: impl Into<String>) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
        }
    }

    /// Status line, headers and (unless answering `HEAD`) the body, ready to write.
    pub(crate) fn to_bytes(&self, with_body: bool) -> Vec<u8> {
        let mut head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.status,
            reason_phrase(self.status),
            self.content_type,
            self.body.len(),
        );
        if self.status == 405 {
            head.push_str("Allow: GET, HEAD\r\n");
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        if with_body {
            bytes.extend_from_slice(self.body.as_bytes());
        }
        bytes
    }
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_request_lines() {
        assert_eq!(
            parse_request(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Ok(Request {
                method: Method::Get,
                path: "/metrics"
            })
        );
        assert_eq!(
            parse_request(b"HEAD /readyz?verbose=1 HTTP/1.0\n\n"),
            Ok(Request {
                method: Method::Head,
                path: "/readyz"
            })
        );
        assert_eq!(
            parse_request(b"POST /metrics HTTP/1.1\r\n\r\n"),
            Err(Refusal::MethodNotAllowed)
        );
        assert_eq!(
            parse_request(b"GET /metrics HTTP/2.0\r\n\r\n"),
            Err(Refusal::VersionNotSupported)
        );
        for bad in [
            &b"GET /metrics\r\n\r\n"[..],
            b"GET  /metrics HTTP/1.1\r\n\r\n",
            b"GET metrics HTTP/1.1\r\n\r\n",
            b"get /metrics HTTP/1.1\r\n\r\n",
            b"GET /metrics FTP/1.1\r\n\r\n",
            b"GET /\xff HTTP/1.1\r\n\r\n",
            b"\r\n\r\n",
            b"no newline",
        ] {
            assert_eq!(parse_request(bad), Err(Refusal::BadRequest), "{bad:?}");
        }
    }

    #[test]
    fn reads_a_head_in_pieces_and_stops_at_the_blank_line() {
        // A reader that hands out one byte at a time exercises the terminator across reads.
        struct Trickle<'a>(&'a [u8]);
        impl Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let Some((&first, rest)) = self.0.split_first() else {
                    return Ok(0);
                };
                buf[0] = first;
                self.0 = rest;
                Ok(1)
            }
        }
        let request = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nBODY";
        let head = read_head(&mut Trickle(request)).unwrap();
        assert_eq!(head, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        let head = read_head(&mut &b"GET / HTTP/1.1\n\nrest"[..]).unwrap();
        assert_eq!(head, b"GET / HTTP/1.1\n\n");
    }

    #[test]
    fn head_errors() {
        assert!(matches!(read_head(&mut &b""[..]), Err(HeadError::Empty)));
        assert!(matches!(
            read_head(&mut &b"GET / HTTP/1.1\r\n"[..]),
            Err(HeadError::Truncated)
        ));
        let huge = vec![b'a'; MAX_HEAD_BYTES + 2048];
        assert!(matches!(
            read_head(&mut huge.as_slice()),
            Err(HeadError::TooLarge)
        ));
    }

    #[test]
    fn response_bytes() {
        let response = Response::text(503, "rebalancing\n");
        let text = String::from_utf8(response.to_bytes(true)).unwrap();
        assert_eq!(
            text,
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Length: 12\r\nConnection: close\r\n\r\nrebalancing\n"
        );
        let head_only =
            String::from_utf8(Refusal::MethodNotAllowed.response().to_bytes(false)).unwrap();
        assert!(head_only.contains("Allow: GET, HEAD\r\n"));
        assert!(head_only.ends_with("\r\n\r\n"));
        assert!(head_only.contains("Content-Length: 18\r\n"));
    }
}
