//! A minimal HTTP/1.1 client over `std::net::TcpStream` (plain HTTP only), enough for the broker's
//! admin REST API: one request per connection (`Connection: close`), fixed-length or chunked
//! bodies.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use super::error::SupportError;

/// Timeout for connecting and for each read or write.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Host and port of an `http://host:port[/]` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    pub(crate) host: String,
    pub(crate) port: u16,
}

impl Endpoint {
    pub(crate) fn parse(url: &str) -> Result<Self, SupportError> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| SupportError::BadUrl(url.to_owned()))?;
        let authority = rest.trim_end_matches('/');
        if authority.contains('/') {
            return Err(SupportError::BadUrl(url.to_owned()));
        }
        let (host, port) = authority
            .rsplit_once(':')
            .ok_or_else(|| SupportError::BadUrl(url.to_owned()))?;
        let port = port
            .parse()
            .map_err(|_| SupportError::BadUrl(url.to_owned()))?;
        Ok(Endpoint {
            host: host.to_owned(),
            port,
        })
    }

    fn socket_addr(&self) -> Result<SocketAddr, SupportError> {
        (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|e| SupportError::io(format!("resolving {}", self.host), e))?
            .next()
            .ok_or_else(|| SupportError::BadUrl(format!("{}:{}", self.host, self.port)))
    }
}

/// A response: status code and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Body, de-chunked.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The body as (lossy) UTF-8.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Sends one request and reads the whole response.
pub(crate) fn request(
    endpoint: &Endpoint,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Result<HttpResponse, SupportError> {
    let url = format!("http://{}:{}{}", endpoint.host, endpoint.port, path);
    let io_err = |e| SupportError::io(format!("HTTP {method} {url}"), e);
    let mut stream =
        TcpStream::connect_timeout(&endpoint.socket_addr()?, TIMEOUT).map_err(io_err)?;
    stream.set_read_timeout(Some(TIMEOUT)).map_err(io_err)?;
    stream.set_write_timeout(Some(TIMEOUT)).map_err(io_err)?;

    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}:{}\r\nConnection: close\r\nAccept: application/json\r\n",
        endpoint.host, endpoint.port
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    let body = body.unwrap_or_default();
    if !body.is_empty() || matches!(method, "PUT" | "POST") {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    stream.write_all(&out).map_err(io_err)?;

    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).map_err(io_err)?;
    parse_response(&raw).map_err(|reason| SupportError::BadHttp { url, reason })
}

/// Parses a complete `Connection: close` response.
fn parse_response(raw: &[u8]) -> Result<HttpResponse, String> {
    let head_end = find(raw, b"\r\n\r\n").ok_or("no end of headers")?;
    let head = std::str::from_utf8(raw.get(..head_end).unwrap_or_default())
        .map_err(|_| "headers are not UTF-8")?;
    let rest = raw.get(head_end + 4..).unwrap_or_default();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().ok_or("empty response")?;
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut chunked = false;
    let mut length = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.eq_ignore_ascii_case("chunked");
        } else if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.parse::<usize>().map_err(|_| "bad Content-Length")?);
        }
    }
    let body = if chunked {
        dechunk(rest)?
    } else if let Some(length) = length {
        rest.get(..length)
            .ok_or("body shorter than Content-Length")?
            .to_vec()
    } else {
        rest.to_vec()
    };
    Ok(HttpResponse { status, body })
}

fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let line_end = find(rest, b"\r\n").ok_or("chunk size line without CRLF")?;
        let line = std::str::from_utf8(rest.get(..line_end).unwrap_or_default())
            .map_err(|_| "chunk size is not UTF-8")?;
        let size_text = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        rest = rest.get(line_end + 2..).unwrap_or_default();
        if size == 0 {
            return Ok(body);
        }
        body.extend_from_slice(rest.get(..size).ok_or("truncated chunk")?);
        rest = rest.get(size + 2..).ok_or("chunk without trailing CRLF")?;
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fixed_length_and_chunked_bodies() {
        let fixed = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello");
        assert_eq!(
            fixed,
            Ok(HttpResponse {
                status: 200,
                body: b"hello".to_vec()
            })
        );
        let chunked = parse_response(
            b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n",
        );
        assert_eq!(
            chunked,
            Ok(HttpResponse {
                status: 404,
                body: b"abcde".to_vec()
            })
        );
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort").is_err());
        assert!(parse_response(b"garbage").is_err());
    }

    #[test]
    fn parses_endpoints() {
        assert_eq!(
            Endpoint::parse("http://127.0.0.1:8080/").ok(),
            Some(Endpoint {
                host: "127.0.0.1".into(),
                port: 8080
            })
        );
        assert!(Endpoint::parse("https://127.0.0.1:8443").is_err());
        assert!(Endpoint::parse("http://127.0.0.1").is_err());
        assert!(Endpoint::parse("http://127.0.0.1:80/admin").is_err());
    }
}
