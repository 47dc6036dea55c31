//! JWT authentication of the embedded broker (`pulsar-embedded`): tokens minted as the project's
//! scripts mint them for Apache Pulsar (`scripts/lib/credentials.sh` `mint_token`, HS256) and
//! RS256 tokens signed with `openssl`, presented by this project's client and by the official
//! Python client; the role is the `sub` claim, expired and badly signed tokens are refused.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use pulsar_async::core::{ServerErrorCode, TokenAuth};
use pulsar_async::{ClientOptions, Error, OutgoingMessage};
use pulsar_embedded::core::JwtConfig;
use pulsar_embedded::{BrokerHandle, EmbeddedBroker};
use pulsar_tests::facade::{Env, Rt};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn broker_runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime")
    })
}

fn start(jwt: JwtConfig) -> BrokerHandle {
    let b = EmbeddedBroker::builder().bind("127.0.0.1:0").jwt(jwt);
    broker_runtime()
        .block_on(b.start())
        .expect("embedded broker starts")
}

fn scratch(name: &str) -> std::io::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("pulsar-embedded-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn bash(script: &str, args: &[&str]) -> Result<String, Box<dyn std::error::Error>> {
    let out = Command::new("bash")
        .arg("-c")
        .arg(script)
        .arg("bash")
        .args(args)
        .output()?;
    if !out.status.success() {
        return Err(format!("{script}: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(String::from_utf8(out.stdout)?.trim().to_owned())
}

/// `mint_token SECRET_FILE ROLE [EXPIRY_SECONDS]` of the project's scripts.
fn mint_hs256(
    secret: &Path,
    role: &str,
    expiry: Option<i64>,
) -> Result<String, Box<dyn std::error::Error>> {
    let lib = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/lib/credentials.sh");
    let exp = expiry.map(|e| e.to_string());
    let mut args = vec![lib, secret.to_str().ok_or("path")?, role];
    args.extend(exp.as_deref());
    bash(r#". "$1"; shift; mint_token "$@""#, &args)
}

/// An RS256 token for `role` signed with the PEM private key `key` (openssl does the RSA).
fn mint_rs256(key: &Path, role: &str) -> Result<String, Box<dyn std::error::Error>> {
    let script = r#"b64() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
input="$(printf '%s' '{"alg":"RS256","typ":"JWT"}' | b64).$(printf '{"sub":"%s"}' "$2" | b64)"
printf '%s.%s' "$input" "$(printf '%s' "$input" | openssl dgst -sha256 -sign "$1" | b64)""#;
    bash(script, &[key.to_str().ok_or("path")?, role])
}

fn client_with(
    broker: &BrokerHandle,
    env: &Env,
    token: &str,
) -> Result<pulsar_tests::facade::TClient, Error> {
    let mut o = ClientOptions::new(broker.service_url());
    o.core.operation_timeout = Duration::from_secs(10);
    o.core.auth = Some(Box::new(TokenAuth::new(token)));
    env.client(o)
}

fn refused(r: Result<pulsar_tests::facade::TProducer, Error>) -> bool {
    match r {
        Err(Error::Client(e)) => e.server_code() == Some(ServerErrorCode::AuthenticationError),
        _ => false,
    }
}

/// HS256 tokens minted by the project's `mint_token`: the role is `sub` (seen in `clients()`),
/// an expired token, a token signed with another secret and an opaque string are refused with
/// AuthenticationError; the official Python client authenticates with the same token.
#[test]
fn hs256_tokens_as_apache_pulsar_mints_them() -> TestResult {
    let dir = scratch("jwt-hs")?;
    let secret = dir.join("secret.key");
    std::fs::write(&secret, b"0123456789abcdef0123456789abcdef")?;
    let other = dir.join("other.key");
    std::fs::write(&other, b"fedcba9876543210fedcba9876543210")?;
    let broker = start(JwtConfig::secret(std::fs::read(&secret)?));
    let env = Env::new(Rt::Blocking);

    let alice = client_with(&broker, &env, &mint_hs256(&secret, "alice", Some(600))?)?;
    let p = alice.producer("jwt-hs")?;
    p.send(OutgoingMessage::new(b"hi".to_vec()))?;
    let roles: Vec<Option<String>> = broker.clients().into_iter().map(|c| c.role).collect();
    assert!(roles.contains(&Some("alice".into())), "{roles:?}");

    let expired = client_with(&broker, &env, &mint_hs256(&secret, "bob", Some(-5))?)?;
    assert!(refused(expired.producer("jwt-hs")), "an expired token");
    let forged = client_with(&broker, &env, &mint_hs256(&other, "bob", None)?)?;
    assert!(refused(forged.producer("jwt-hs")), "another secret");
    let opaque = client_with(&broker, &env, "not-a-jwt")?;
    assert!(refused(opaque.producer("jwt-hs")), "an opaque token");

    let token = mint_hs256(&secret, "py-user", Some(600))?;
    let code = r#"
import sys, pulsar
c = pulsar.Client(sys.argv[1], authentication=pulsar.AuthenticationToken(sys.argv[2]),
                  operation_timeout_seconds=10)
cons = c.subscribe("jwt-py", "s", initial_position=pulsar.InitialPosition.Earliest)
p = c.create_producer("jwt-py")
p.send(b"from python")
m = cons.receive(timeout_millis=10000)
assert m.data() == b"from python", m.data()
cons.acknowledge(m)
try:
    bad = pulsar.Client(sys.argv[1], authentication=pulsar.AuthenticationToken(sys.argv[3]),
                        operation_timeout_seconds=5)
    bad.create_producer("jwt-py")
    raise SystemExit("the expired token was accepted")
except pulsar.PulsarException as e:
    print("refused:", e)
c.close()
print("all ok")
"#;
    let expired_token = mint_hs256(&secret, "py-user", Some(-5))?;
    let out = pulsar_tests::support::python_command()
        .args(["-c", code, &broker.service_url(), &token, &expired_token])
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("all ok"),
        "python client: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    alice.close()?;
    broker_runtime().block_on(broker.shutdown());
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// RS256 tokens checked with the RSA public key, DER (Apache Pulsar's `tokenPublicKey` file) or
/// PEM; a token signed with another key is refused.
#[test]
fn rs256_tokens_with_a_public_key() -> TestResult {
    let dir = scratch("jwt-rs")?;
    let d = dir.to_str().ok_or("path")?;
    bash(
        r#"cd "$1" && for k in key other; do
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out $k.pem 2>/dev/null; done
openssl pkey -in key.pem -pubout -outform DER -out key.pub.der
openssl pkey -in key.pem -pubout -out key.pub.pem"#,
        &[d],
    )?;
    for public in ["key.pub.der", "key.pub.pem"] {
        let broker = start(JwtConfig::rsa_public_key(std::fs::read(dir.join(public))?)?);
        let env = Env::new(Rt::Tokio);
        let carol = client_with(&broker, &env, &mint_rs256(&dir.join("key.pem"), "carol")?)?;
        carol
            .producer("jwt-rs")?
            .send(OutgoingMessage::new(b"x".to_vec()))?;
        assert!(broker
            .clients()
            .iter()
            .any(|c| c.role.as_deref() == Some("carol")));
        let forged = client_with(&broker, &env, &mint_rs256(&dir.join("other.pem"), "carol")?)?;
        assert!(refused(forged.producer("jwt-rs")), "{public}: another key");
        carol.close()?;
        broker_runtime().block_on(broker.shutdown());
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
