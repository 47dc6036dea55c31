//! The OAuth2 provider against a small token server on 127.0.0.1 run by the test.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pulsar_auth_oauth2::{OAuth2Auth, OAuth2Config, OAuth2Error, TokenFetcher};
use pulsar_core::AuthProvider;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// What the server answers to a token request.
#[derive(Clone)]
enum Behaviour {
    /// `tok-N` tokens with this `expires_in` (seconds).
    Issue(u64),
    /// HTTP 401 `invalid_client`.
    Reject,
}

/// A token server: `/.well-known/openid-configuration` and `/oauth/token`.
struct Server {
    base: String,
    behaviour: Arc<Mutex<Behaviour>>,
    /// Form fields of every token request, in order.
    requests: Arc<Mutex<Vec<BTreeMap<String, String>>>>,
    discoveries: Arc<Mutex<u32>>,
}

impl Server {
    fn start(behaviour: Behaviour) -> std::io::Result<Server> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let base = format!("http://{}", listener.local_addr()?);
        let server = Server {
            base: base.clone(),
            behaviour: Arc::new(Mutex::new(behaviour)),
            requests: Arc::default(),
            discoveries: Arc::default(),
        };
        let (behaviour, requests, discoveries) = (
            server.behaviour.clone(),
            server.requests.clone(),
            server.discoveries.clone(),
        );
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let _ = serve(stream, &base, &behaviour, &requests, &discoveries);
            }
        });
        Ok(server)
    }

    fn token_requests(&self) -> Vec<BTreeMap<String, String>> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

fn serve(
    stream: TcpStream,
    base: &str,
    behaviour: &Mutex<Behaviour>,
    requests: &Mutex<Vec<BTreeMap<String, String>>>,
    discoveries: &Mutex<u32>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header)?;
        if header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let (status, reply) = match path.as_str() {
        "/.well-known/openid-configuration" => {
            *discoveries.lock().map_err(|_| std::io::ErrorKind::Other)? += 1;
            (
                200,
                format!(r#"{{"issuer":"{base}/","token_endpoint":"{base}/oauth/token"}}"#),
            )
        }
        "/oauth/token" => {
            let form: BTreeMap<String, String> = String::from_utf8_lossy(&body)
                .split('&')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (form_decode(k), form_decode(v)))
                .collect();
            let mut all = requests.lock().map_err(|_| std::io::ErrorKind::Other)?;
            all.push(form);
            let n = all.len();
            match behaviour
                .lock()
                .map(|b| b.clone())
                .map_err(|_| std::io::ErrorKind::Other)?
            {
                Behaviour::Issue(expires) => (
                    200,
                    format!(
                        r#"{{"access_token":"tok-{n}","token_type":"Bearer","expires_in":{expires}}}"#
                    ),
                ),
                Behaviour::Reject => (
                    401,
                    r#"{"error":"invalid_client","error_description":"unknown client"}"#
                        .to_string(),
                ),
            }
        }
        _ => (404, "not found".to_string()),
    };
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
        reply.len()
    )?;
    stream.flush()
}

/// `application/x-www-form-urlencoded` decoding: `+` is a space, `%XX` a byte.
fn form_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn token(auth: &mut OAuth2Auth) -> Result<String, Box<dyn std::error::Error>> {
    Ok(String::from_utf8(auth.auth_data()?.to_vec())?)
}

#[test]
fn discovery_and_form_fields() -> TestResult {
    let server = Server::start(Behaviour::Issue(3600))?;
    let config = OAuth2Config::from_issuer(format!("{}/", server.base), "my-client", "my secret")
        .with_audience("urn:pulsar:test")
        .with_scope("a b");
    let mut fetcher = TokenFetcher::new(config)?;
    assert_eq!(
        fetcher.token_endpoint()?,
        format!("{}/oauth/token", server.base)
    );
    let first = fetcher.fetch()?;
    let second = fetcher.fetch()?;
    assert_eq!(first.token, "tok-1");
    assert_eq!(second.token, "tok-2");
    assert_eq!(first.expires_in, Some(Duration::from_secs(3600)));
    assert_eq!(
        *server.discoveries.lock().map_err(|_| "poisoned")?,
        1,
        "discovery is cached"
    );
    let form = server.token_requests().remove(0);
    assert_eq!(
        form.get("grant_type").map(String::as_str),
        Some("client_credentials")
    );
    assert_eq!(form.get("client_id").map(String::as_str), Some("my-client"));
    assert_eq!(
        form.get("client_secret").map(String::as_str),
        Some("my secret")
    );
    assert_eq!(
        form.get("audience").map(String::as_str),
        Some("urn:pulsar:test")
    );
    assert_eq!(form.get("scope").map(String::as_str), Some("a b"));
    Ok(())
}

#[test]
fn direct_token_endpoint_skips_discovery() -> TestResult {
    let server = Server::start(Behaviour::Issue(60))?;
    let config =
        OAuth2Config::from_token_endpoint(format!("{}/oauth/token", server.base), "c", "s");
    let token = TokenFetcher::new(config)?.fetch()?;
    assert_eq!(token.token, "tok-1");
    assert_eq!(*server.discoveries.lock().map_err(|_| "poisoned")?, 0);
    let form = server.token_requests().remove(0);
    assert!(!form.contains_key("audience") && !form.contains_key("scope"));
    Ok(())
}

#[test]
fn provider_refreshes_in_the_background() -> TestResult {
    // 2 s tokens refreshed at half their life: a new token about every second.
    let server = Server::start(Behaviour::Issue(2))?;
    let mut config = OAuth2Config::from_issuer(server.base.clone(), "c", "s");
    config.refresh_fraction = 0.5;
    let mut auth = OAuth2Auth::new(config)?;
    assert_eq!(auth.method_name(), "token");
    assert_eq!(token(&mut auth)?, "tok-1");
    std::thread::sleep(Duration::from_millis(3500));
    let started = Instant::now();
    let later = token(&mut auth)?;
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(100),
        "a cached token is returned at once, took {took:?}"
    );
    let n: u32 = later.trim_start_matches("tok-").parse()?;
    assert!(n >= 3, "refreshed in the background: got {later}");
    // a challenge answers with the current token too
    let challenged = String::from_utf8(auth.challenge(&Default::default())?.to_vec())?;
    assert!(challenged.starts_with("tok-"));

    // dropping the provider stops the thread: no more token requests
    drop(auth);
    std::thread::sleep(Duration::from_millis(300));
    let before = server.token_requests().len();
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        server.token_requests().len(),
        before,
        "refresh thread stopped"
    );
    Ok(())
}

#[test]
fn rejected_credentials_are_an_auth_error() -> TestResult {
    let server = Server::start(Behaviour::Reject)?;
    let mut auth = OAuth2Auth::new(OAuth2Config::from_issuer(server.base.clone(), "c", "wrong"))?;
    let started = Instant::now();
    let error = auth
        .auth_data()
        .err()
        .ok_or("a rejected client got a token")?;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "bounded: {:?}",
        started.elapsed()
    );
    assert!(
        error.0.contains("401") && error.0.contains("invalid_client"),
        "{error}"
    );
    match auth.wait_for_token(Duration::from_secs(2)) {
        Err(OAuth2Error::Status { status: 401, .. }) => {}
        other => return Err(format!("expected a 401 status error, got {other:?}").into()),
    }
    // once the server issues tokens again, the provider recovers
    *server.behaviour.lock().map_err(|_| "poisoned")? = Behaviour::Issue(60);
    let recovered = auth.wait_for_token(Duration::from_secs(5));
    assert!(recovered.is_ok(), "{recovered:?}");
    Ok(())
}

#[test]
fn unreachable_endpoint_fails_within_the_timeout() -> TestResult {
    let mut config = OAuth2Config::from_issuer("http://127.0.0.1:1", "c", "s");
    config.http_timeout = Duration::from_secs(2);
    let mut auth = OAuth2Auth::new(config)?;
    let started = Instant::now();
    let error = auth.auth_data().err().ok_or("got a token from nowhere")?;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(error.0.contains("127.0.0.1:1"), "{error}");
    Ok(())
}
