//! Authentication against a broker of the test's own (`scripts/pulsar-broker start --auth
//! --auth-refresh-seconds 2`, separate home directory and ports, stopped by PID at the end):
//! token (static, file, environment, supplier refreshed on AUTH_CHALLENGE), basic, and OAuth2
//! client credentials from a token endpoint on 127.0.0.1 run by the test.
//!
//! The core is driven by the test support's std-socket loop (`StdSockets`).

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use pulsar_auth_oauth2::{OAuth2Auth, OAuth2Config};
use pulsar_core::{
    AuthProvider, BasicAuth, Client, ClientConfig, ConnectionId, Error, Event, ProducerId,
    ProducerOptions, ServerErrorCode, TokenAuth,
};
use pulsar_tests::support::{unique_topic, unix_ms, BrokerOptions, BrokerProcess, StdSockets};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const REFRESH_SECONDS: u32 = 2;

// ------------------------------------------------------------------------------ minimal driver

/// Runs the core over std sockets; every event is kept in `events` for the test to inspect.
struct Driver {
    client: Client,
    io: StdSockets,
    events: VecDeque<Event>,
    /// Every event ever seen, in order.
    log: Vec<Event>,
}

impl Driver {
    fn new(service_url: &str, auth: Option<Box<dyn AuthProvider>>) -> Result<Driver, Error> {
        let mut config = ClientConfig::new(service_url);
        config.auth = auth;
        config.operation_timeout = Duration::from_secs(20);
        config.unix_time_ms = unix_ms();
        let client =
            Client::new(config, Instant::now()).map_err(|e| Error::InvalidState(leak(e)))?;
        Ok(Driver {
            client,
            io: StdSockets::new(),
            events: VecDeque::new(),
            log: Vec::new(),
        })
    }

    /// One round of I/O (see `StdSockets::turn`), sleeping a little when nothing happened.
    fn turn(&mut self) {
        let (events, log) = (&mut self.events, &mut self.log);
        let busy = self.io.turn(&mut self.client, |e| {
            log.push(e.clone());
            events.push_back(e);
        });
        // A usage error would be a bug of the loop: the test fails on its missing events.
        if !busy.unwrap_or(false) {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Turns until `pick` accepts an event (consumed) or `timeout` passes.
    fn wait_for<T>(
        &mut self,
        timeout: Duration,
        what: &str,
        mut pick: impl FnMut(&Event) -> Option<T>,
    ) -> Result<T, String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(i) = self.events.iter().position(|e| pick(e).is_some()) {
                let e = self.events.remove(i).ok_or("vanished")?;
                return pick(&e).ok_or_else(|| "vanished".into());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "no {what} within {timeout:?}; events: {:?}",
                    self.log
                ));
            }
            self.turn();
        }
    }

    /// Turns for `duration`.
    fn run_for(&mut self, duration: Duration) {
        let deadline = Instant::now() + duration;
        while Instant::now() < deadline {
            self.turn();
        }
    }

    /// Creates a producer; `Ok(Ok(id))` when ready, `Ok(Err(error))` when creation failed.
    fn producer(&mut self, topic: &str) -> Result<Result<ProducerId, Error>, String> {
        let id = self
            .client
            .create_producer(Instant::now(), topic, ProducerOptions::default())
            .map_err(|e| e.to_string())?;
        self.wait_for(Duration::from_secs(30), "producer outcome", |e| match e {
            Event::ProducerReady { producer, .. } if *producer == id => Some(Ok(id)),
            Event::ProducerFailed { producer, error } if *producer == id => {
                Some(Err(error.clone()))
            }
            _ => None,
        })
    }

    /// Sends one message and waits for its receipt.
    fn send(&mut self, producer: ProducerId, payload: &str) -> Result<(), String> {
        let send = self
            .client
            .send_payload(Instant::now(), producer, payload.as_bytes().to_vec())
            .map_err(|e| e.to_string())?;
        self.wait_for(Duration::from_secs(20), "send receipt", |e| match e {
            Event::SendCompleted {
                send: s, result, ..
            } if *s == send => Some(result.clone()),
            _ => None,
        })?
        .map(|_| ())
        .map_err(|e| format!("send failed: {e}"))
    }

    fn opened(&self) -> Vec<ConnectionId> {
        self.log
            .iter()
            .filter_map(|e| match e {
                Event::ConnectionOpened { conn, .. } => Some(*conn),
                _ => None,
            })
            .collect()
    }

    fn closed(&self) -> Vec<(ConnectionId, Error)> {
        self.log
            .iter()
            .filter_map(|e| match e {
                Event::ConnectionClosed { conn, reason, .. } => Some((*conn, reason.clone())),
                _ => None,
            })
            .collect()
    }
}

fn leak(e: impl std::fmt::Display) -> &'static str {
    Box::leak(e.to_string().into_boxed_str())
}

// ---------------------------------------------------------------------------------------- JWT

/// An HS256 JWT for `role`, signed with `secret`, expiring after `expiry` if given.
fn mint(secret: &[u8], role: &str, expiry: Option<Duration>) -> String {
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let mut claims = serde_json::json!({ "sub": role });
    if let Some(expiry) = expiry {
        claims["exp"] = serde_json::json!(unix_ms() / 1000 + expiry.as_secs());
    }
    let input = format!(
        "{}.{}",
        b64(br#"{"alg":"HS256","typ":"JWT"}"#),
        b64(claims.to_string().as_bytes())
    );
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let signature = ring::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", b64(signature.as_ref()))
}

// --------------------------------------------------------------------------- the test's broker

struct Broker {
    process: BrokerProcess,
    secret: Vec<u8>,
}

impl Broker {
    fn start() -> Result<Broker, Box<dyn std::error::Error>> {
        let process = BrokerProcess::start(
            BrokerOptions::new()
                .auth()
                .auth_refresh_seconds(REFRESH_SECONDS),
        )?;
        let auth = process
            .info()
            .auth
            .clone()
            .ok_or("broker without credentials")?;
        assert_eq!(auth.refresh_seconds, REFRESH_SECONDS);
        let secret = std::fs::read(&auth.secret_key)?;
        Ok(Broker { process, secret })
    }

    fn url(&self) -> &str {
        &self.process.info().service_url
    }

    fn client(&self, auth: impl AuthProvider + 'static) -> Result<Driver, Error> {
        Driver::new(self.url(), Some(Box::new(auth)))
    }
}

/// Connects with `auth`, creates a producer and sends one message.
fn produce_one(broker: &Broker, auth: impl AuthProvider + 'static) -> Result<(), String> {
    let mut d = broker.client(auth).map_err(|e| e.to_string())?;
    let producer = d
        .producer(&unique_topic("auth"))?
        .map_err(|e| format!("producer failed: {e}"))?;
    d.send(producer, "hello")
}

/// Creation must fail, promptly, with an authentication error, after at most a couple of
/// connection attempts (no retry loop).
fn expect_rejected(
    broker: &Broker,
    auth: impl AuthProvider + 'static,
    check: impl Fn(&Error) -> bool,
) -> Result<(), String> {
    let mut d = broker.client(auth).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let outcome = d.producer(&unique_topic("auth-rejected"))?;
    let took = started.elapsed();
    let error = match outcome {
        Ok(_) => return Err("a producer was created with bad credentials".into()),
        Err(e) => e,
    };
    if !check(&error) {
        return Err(format!("unexpected error type: {error:?}"));
    }
    if took > Duration::from_secs(10) {
        return Err(format!("rejection took {took:?}"));
    }
    // no retry loop afterwards either
    d.run_for(Duration::from_secs(2));
    let attempts = d.closed().len();
    if attempts > 2 {
        return Err(format!("{attempts} connection attempts: {:?}", d.closed()));
    }
    Ok(())
}

fn is_broker_auth_error(e: &Error) -> bool {
    e.server_code() == Some(ServerErrorCode::AuthenticationError)
}

// ------------------------------------------------------------------------------------ scenarios

fn valid_tokens(broker: &Broker) -> Result<(), String> {
    let token = mint(&broker.secret, "client", None);
    produce_one(broker, TokenAuth::new(token.clone())).map_err(|e| format!("static: {e}"))?;

    let file = std::env::temp_dir().join(format!("pulsar-auth-test-{}.token", std::process::id()));
    std::fs::write(&file, format!("{token}\n")).map_err(|e| e.to_string())?;
    let by_file =
        produce_one(broker, TokenAuth::from_file(&file)).map_err(|e| format!("file: {e}"));
    let _ = std::fs::remove_file(&file);
    by_file?;

    let var = format!("PULSAR_AUTH_TEST_TOKEN_{}", std::process::id());
    std::env::set_var(&var, &token);
    produce_one(broker, TokenAuth::from_env(&var)).map_err(|e| format!("env: {e}"))?;

    let info = broker.process.info().auth.clone().ok_or("no credentials")?;
    produce_one(broker, BasicAuth::new(info.basic_user, info.basic_password))
        .map_err(|e| format!("basic: {e}"))
}

fn wrong_credentials(broker: &Broker) -> Result<(), String> {
    let forged = mint(
        b"not-the-broker-secret-not-the-broker-secret",
        "client",
        None,
    );
    expect_rejected(broker, TokenAuth::new(forged), is_broker_auth_error)
        .map_err(|e| format!("forged token: {e}"))?;
    let expired = mint(&broker.secret, "client", Some(Duration::ZERO));
    std::thread::sleep(Duration::from_millis(1100));
    expect_rejected(broker, TokenAuth::new(expired), is_broker_auth_error)
        .map_err(|e| format!("expired token: {e}"))?;
    let info = broker.process.info().auth.clone().ok_or("no credentials")?;
    expect_rejected(
        broker,
        BasicAuth::new(info.basic_user, "wrong-password"),
        is_broker_auth_error,
    )
    .map_err(|e| format!("basic: {e}"))?;
    // a provider failing on the client side is an authentication error too
    expect_rejected(
        broker,
        TokenAuth::from_file("/nonexistent/pulsar.token"),
        |e| matches!(e, Error::Auth(_)),
    )
    .map_err(|e| format!("missing token file: {e}"))
}

/// A short-lived token: with a supplier minting a fresh one on every call, the broker's
/// AUTH_CHALLENGE is answered and the connection survives several expiries; with a fixed token
/// (the control) the broker drops the connection once it expired.
fn short_expiry(broker: &Broker) -> Result<(), String> {
    const LIFETIME: Duration = Duration::from_secs(6);
    let calls = Arc::new(AtomicU32::new(0));
    let (secret, counter) = (broker.secret.clone(), calls.clone());
    let refreshing = TokenAuth::from_supplier(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        Ok(mint(&secret, "client", Some(LIFETIME)))
    });
    let mut d = broker.client(refreshing).map_err(|e| e.to_string())?;
    let producer = d
        .producer(&unique_topic("auth-refresh"))?
        .map_err(|e| e.to_string())?;
    d.send(producer, "before expiry")?;
    let opened = d.opened();
    d.run_for(LIFETIME * 2 + Duration::from_secs(3));
    d.send(producer, "after two expiries")
        .map_err(|e| format!("refreshed: {e}"))?;
    if !d.closed().is_empty() || d.opened() != opened {
        return Err(format!("refreshed: the connection changed: {:?}", d.log));
    }
    if d.log
        .iter()
        .any(|e| matches!(e, Event::ProducerReconnecting { .. }))
    {
        return Err(format!("refreshed: the producer reconnected: {:?}", d.log));
    }
    let n = calls.load(Ordering::SeqCst);
    if n < 3 {
        return Err(format!(
            "refreshed: the supplier ran {n} times: challenges not answered?"
        ));
    }

    // control: the same lifetime without refresh loses the connection
    let fixed = mint(&broker.secret, "client", Some(LIFETIME));
    let mut d = broker
        .client(TokenAuth::new(fixed))
        .map_err(|e| e.to_string())?;
    let producer = d
        .producer(&unique_topic("auth-norefresh"))?
        .map_err(|e| e.to_string())?;
    d.send(producer, "before expiry")?;
    d.wait_for(
        LIFETIME * 2 + Duration::from_secs(5),
        "connection loss",
        |e| matches!(e, Event::ConnectionClosed { .. }).then_some(()),
    )
    .map_err(|e| format!("control: {e}"))?;
    Ok(())
}

// ---------------------------------------------------------------------- OAuth2 token endpoint

/// A token endpoint on 127.0.0.1: the discovery document and `/token`, issuing HS256 JWTs for
/// role `client_id` signed with the broker's secret, to the one client it knows.
struct TokenServer {
    base: String,
    issued: Arc<AtomicU32>,
}

impl TokenServer {
    fn start(
        secret: Vec<u8>,
        client_id: &str,
        client_secret: &str,
        lifetime: Duration,
    ) -> std::io::Result<TokenServer> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let base = format!("http://{}", listener.local_addr()?);
        let issued = Arc::new(AtomicU32::new(0));
        let (base2, issued2) = (base.clone(), issued.clone());
        let expected = format!("client_id={client_id}&client_secret={client_secret}");
        let role = client_id.to_string();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let _ = answer(
                    stream, &base2, &secret, &role, &expected, lifetime, &issued2,
                );
            }
        });
        Ok(TokenServer { base, issued })
    }
}

fn answer(
    stream: TcpStream,
    base: &str,
    secret: &[u8],
    role: &str,
    expected: &str,
    lifetime: Duration,
    issued: &AtomicU32,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let path = line
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string();
    let mut length = 0;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header)?;
        if header.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = header.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let body = String::from_utf8_lossy(&body);
    let (status, reply) = match path.as_str() {
        "/.well-known/openid-configuration" => (
            200,
            format!(r#"{{"issuer":"{base}","token_endpoint":"{base}/token"}}"#),
        ),
        "/token" if body.contains("grant_type=client_credentials") && body.contains(expected) => {
            issued.fetch_add(1, Ordering::SeqCst);
            let token = mint(secret, role, Some(lifetime));
            (
                200,
                format!(
                    r#"{{"access_token":"{token}","token_type":"Bearer","expires_in":{}}}"#,
                    lifetime.as_secs()
                ),
            )
        }
        "/token" => (401, r#"{"error":"invalid_client"}"#.to_string()),
        _ => (404, "{}".to_string()),
    };
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
        reply.len()
    )?;
    stream.flush()
}

/// OAuth2 client credentials: the broker accepts the endpoint's tokens; tokens refreshed in the
/// background keep the connection past their expiry; a wrong secret is an authentication error.
fn oauth2(broker: &Broker) -> Result<(), String> {
    const LIFETIME: Duration = Duration::from_secs(6);
    let server = TokenServer::start(broker.secret.clone(), "client", "s3cret", LIFETIME)
        .map_err(|e| e.to_string())?;

    // credentials file in the Java client's format, issuer from the file
    let creds =
        std::env::temp_dir().join(format!("pulsar-oauth2-test-{}.json", std::process::id()));
    let json = format!(
        r#"{{"type":"client_credentials","client_id":"client","client_secret":"s3cret","issuer_url":"{}"}}"#,
        server.base
    );
    std::fs::write(&creds, json).map_err(|e| e.to_string())?;
    let config = pulsar_auth_oauth2::CredentialsFile::load(&format!("file://{}", creds.display()))
        .and_then(|c| OAuth2Config::from_credentials(c, None));
    let _ = std::fs::remove_file(&creds);
    let mut config = config.map_err(|e| e.to_string())?;
    config.refresh_fraction = 0.5;
    let auth = OAuth2Auth::new(config).map_err(|e| e.to_string())?;

    let mut d = broker.client(auth).map_err(|e| e.to_string())?;
    let producer = d
        .producer(&unique_topic("auth-oauth2"))?
        .map_err(|e| format!("producer failed: {e}"))?;
    d.send(producer, "oauth2")?;
    let opened = d.opened();
    d.run_for(LIFETIME * 2 + Duration::from_secs(3));
    d.send(producer, "oauth2 after expiry")
        .map_err(|e| format!("after expiry: {e}"))?;
    if !d.closed().is_empty() || d.opened() != opened {
        return Err(format!("the connection changed: {:?}", d.log));
    }
    let issued = server.issued.load(Ordering::SeqCst);
    if issued < 3 {
        return Err(format!(
            "only {issued} tokens issued: no background refresh"
        ));
    }

    let wrong = OAuth2Auth::new(OAuth2Config::from_issuer(
        server.base.clone(),
        "client",
        "wrong",
    ))
    .map_err(|e| e.to_string())?;
    expect_rejected(
        broker,
        wrong,
        |e| matches!(e, Error::Auth(a) if a.0.contains("401") && a.0.contains("invalid_client")),
    )
    .map_err(|e| format!("wrong secret: {e}"))
}

type Scenario = fn(&Broker) -> Result<(), String>;

#[test]
fn authentication_against_a_token_broker() -> TestResult {
    let broker = Broker::start()?;
    // no credentials at all: rejected too
    let mut failures = Vec::new();
    {
        let mut d = Driver::new(broker.url(), None)?;
        match d.producer(&unique_topic("auth-none"))? {
            Ok(_) => failures.push("anonymous producer accepted".to_string()),
            Err(e) if is_broker_auth_error(&e) => {}
            Err(e) => failures.push(format!("anonymous: unexpected error {e:?}")),
        }
    }
    let scenarios: [(&str, Scenario); 4] = [
        ("valid tokens", valid_tokens),
        ("wrong credentials", wrong_credentials),
        ("short expiry", short_expiry),
        ("oauth2", oauth2),
    ];
    for (name, scenario) in scenarios {
        let started = Instant::now();
        let outcome = scenario(&broker);
        eprintln!(
            "{name}: {:?} in {:?}",
            outcome.as_ref().map(|_| "ok"),
            started.elapsed()
        );
        if let Err(e) = outcome {
            failures.push(format!("{name}: {e}"));
        }
    }
    drop(broker); // stops the broker by PID
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    Ok(())
}
