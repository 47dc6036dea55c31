//! Plain-HTTP requests to the broker's admin REST API, one `ureq` agent per request (no TLS, no
//! proxy: the broker is local).

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
}

/// A response: status code and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Body, de-chunked.
    pub body: Vec<u8>,
    /// The `Location` header (of a redirect), if any.
    pub location: Option<String>,
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

/// Sends one request and reads the whole response, whatever its status. The body goes with a
/// `Content-Length` when there is one, and always for `PUT` and `POST`.
pub(crate) fn request(
    endpoint: &Endpoint,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Result<HttpResponse, SupportError> {
    let url = format!("http://{}:{}{}", endpoint.host, endpoint.port, path);
    let failed = |source| SupportError::Http {
        method: method.to_owned(),
        url: url.clone(),
        source: Box::new(source),
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .max_redirects(0)
        .timeout_connect(Some(TIMEOUT))
        .timeout_per_read(Some(TIMEOUT))
        .timeout_per_write(Some(TIMEOUT))
        .build()
        .into();
    let mut builder = ureq::http::Request::builder()
        .method(method)
        .uri(&url)
        .header("Accept", "application/json");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let body = body.unwrap_or_default();
    let sent = if body.is_empty() && !matches!(method, "PUT" | "POST") {
        builder.body(()).map(|r| agent.run(r))
    } else {
        builder.body(body).map(|r| agent.run(r))
    };
    let mut response = sent
        .map_err(|e| SupportError::BadUrl(format!("{url}: {e}")))?
        .map_err(failed)?;
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = response
        .body_mut()
        .with_config()
        .limit(u64::MAX)
        .read_to_vec()
        .map_err(failed)?;
    Ok(HttpResponse {
        status,
        body,
        location,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;

    /// Serves one connection with `answer`; returns the port and the request head it received.
    fn serve_once(answer: &'static str) -> (u16, std::thread::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = String::new();
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line.trim().is_empty() {
                    break;
                }
                head.push_str(&line);
            }
            let mut stream = stream;
            stream.write_all(answer.as_bytes()).unwrap();
            head
        });
        (port, server)
    }

    #[test]
    fn sends_headers_and_reads_chunked_bodies_of_any_status() {
        let (port, server) = serve_once(
            "HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
             3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n",
        );
        let endpoint = Endpoint {
            host: "127.0.0.1".into(),
            port,
        };
        let response = request(
            &endpoint,
            "PUT",
            "/admin/v2/x",
            &[("Authorization", "Bearer t")],
            None,
        )
        .unwrap();
        assert_eq!(
            response,
            HttpResponse {
                status: 404,
                body: b"abcde".to_vec(),
                location: None,
            }
        );
        let head = server.join().unwrap().to_ascii_lowercase();
        assert!(head.starts_with("put /admin/v2/x http/1.1\r\n"), "{head}");
        assert!(head.contains("authorization: bearer t\r\n"), "{head}");
        assert!(head.contains("content-length: 0\r\n"), "{head}");
    }

    #[test]
    fn reads_fixed_length_bodies_and_fails_on_refused_connections() {
        let (port, server) =
            serve_once("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello");
        let endpoint = Endpoint {
            host: "127.0.0.1".into(),
            port,
        };
        let response = request(&endpoint, "GET", "/", &[], None).unwrap();
        assert!(response.is_success());
        assert_eq!(response.text(), "hello");
        assert!(!server
            .join()
            .unwrap()
            .to_ascii_lowercase()
            .contains("content-length"));
        // Nothing listens there any more.
        assert!(request(&endpoint, "GET", "/", &[], None).is_err());
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
