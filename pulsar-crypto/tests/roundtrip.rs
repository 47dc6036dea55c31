//! Encryption and decryption without a broker: round trips with PKCS#1 and PKCS#8 keys, the
//! metadata the encryptor writes, rotation, the data-key cache, and the typed errors of a wrong
//! key, a corrupted ciphertext, a truncated `encryption_param` and malformed metadata.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use pulsar_core::proto::pb;
use pulsar_crypto::{
    CryptoError, Decryptor, Encryptor, MessageDecryptor, MessageEncryptor, PemKeyReader,
    RandomSource,
};

type R = Result<(), Box<dyn std::error::Error>>;

fn key(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/keys")
        .join(name)
}

fn reader(k: &str) -> Arc<PemKeyReader> {
    Arc::new(PemKeyReader::files(
        Some(key(&format!("{k}.public.pem"))),
        Some(key(&format!("{k}.private.pem"))),
    ))
}

fn seal(enc: &Encryptor, now: Instant, payload: &[u8]) -> (pb::MessageMetadata, Vec<u8>) {
    let mut metadata = pb::MessageMetadata::default();
    let out = enc.encrypt(now, &mut metadata, payload).expect("encrypts");
    (metadata, out)
}

#[test]
fn round_trips_with_pkcs1_and_pkcs8_keys_and_several_key_names() -> R {
    let now = Instant::now();
    for k in ["rsa-a", "rsa-b", "ec-p256", "ec-p384"] {
        let enc = Encryptor::new([k], reader(k));
        let dec = Decryptor::new(reader(k));
        for payload in [&b""[..], b"hello", &[7u8; 65536]] {
            let (metadata, sealed) = seal(&enc, now, payload);
            assert_eq!(sealed.len(), payload.len() + 16, "ciphertext + 128-bit tag");
            assert_eq!(metadata.encryption_keys.len(), 1);
            assert_eq!(metadata.encryption_keys[0].key, k);
            // RSA-2048 OAEP; ECIES: the ephemeral point, the XORed key, the HMAC-SHA-1 tag
            let wrapped = match k {
                "ec-p256" => 65 + 32 + 20,
                "ec-p384" => 97 + 32 + 20,
                _ => 256,
            };
            assert_eq!(metadata.encryption_keys[0].value.len(), wrapped, "{k}");
            assert_eq!(metadata.encryption_param.as_ref().map(Bytes::len), Some(12));
            assert_eq!(dec.decrypt(now, &metadata, &sealed)?, payload);
        }
    }
    // two key names: either private key decrypts
    let both = Arc::new(PemKeyReader::files(Some(key("rsa-a.public.pem")), None));
    let enc = Encryptor::new(["x", "y"], both);
    let (metadata, sealed) = seal(&enc, now, b"two");
    let names: Vec<_> = metadata
        .encryption_keys
        .iter()
        .map(|k| k.key.as_str())
        .collect();
    assert_eq!(names, ["x", "y"]);
    assert_eq!(
        Decryptor::new(reader("rsa-a")).decrypt(now, &metadata, &sealed)?,
        b"two"
    );
    Ok(())
}

#[test]
fn one_data_key_until_the_rotation_and_one_unwrap_per_data_key() -> R {
    let t0 = Instant::now();
    let enc = Encryptor::new(["rsa-a"], reader("rsa-a")).with_rotation(Duration::from_secs(10));
    let dec = Decryptor::new(reader("rsa-a"));
    let (m1, s1) = seal(&enc, t0, b"1");
    let (m2, s2) = seal(&enc, t0 + Duration::from_secs(9), b"2");
    assert_eq!(m1.encryption_keys, m2.encryption_keys, "same data key");
    assert_ne!(
        m1.encryption_param, m2.encryption_param,
        "a fresh IV per entry"
    );
    let (m3, s3) = seal(&enc, t0 + Duration::from_secs(10), b"3");
    assert_ne!(
        m1.encryption_keys[0].value, m3.encryption_keys[0].value,
        "rotated"
    );
    for (m, s, p) in [(&m1, &s1, b"1"), (&m2, &s2, b"2"), (&m3, &s3, b"3")] {
        assert_eq!(dec.decrypt(t0, m, s)?, p);
    }
    assert_eq!(dec.cached_keys(), 2);
    Ok(())
}

#[test]
fn wrong_key_corruption_and_truncation_are_typed_errors() {
    let now = Instant::now();
    let enc = Encryptor::new(["rsa-a"], reader("rsa-a"));
    let (metadata, sealed) = seal(&enc, now, b"secret payload");

    for other in ["rsa-b", "ec-p256"] {
        let wrong = Decryptor::new(reader(other));
        assert_eq!(
            wrong.decrypt(now, &metadata, &sealed),
            Err(CryptoError::NoDataKey {
                keys: "rsa-a".into()
            })
        );
    }
    // an EC-wrapped key: the wrong EC key, and a flipped tag
    let ec = Encryptor::new(["ec"], reader("ec-p256"));
    let (mut ec_metadata, ec_sealed) = seal(&ec, now, b"ec");
    assert!(Decryptor::new(reader("ec-p384"))
        .decrypt(now, &ec_metadata, &ec_sealed)
        .is_err());
    let mut value = ec_metadata.encryption_keys[0].value.to_vec();
    let last = value.len() - 1;
    value[last] ^= 1;
    ec_metadata.encryption_keys[0].value = Bytes::from(value);
    assert_eq!(
        Decryptor::new(reader("ec-p256")).decrypt(now, &ec_metadata, &ec_sealed),
        Err(CryptoError::NoDataKey { keys: "ec".into() })
    );

    let dec = Decryptor::new(reader("rsa-a"));
    let mut corrupt = sealed.clone();
    corrupt[3] ^= 1;
    assert_eq!(
        dec.decrypt(now, &metadata, &corrupt),
        Err(CryptoError::Authentication)
    );
    // the same once the data key is cached
    assert!(dec.decrypt(now, &metadata, &sealed).is_ok());
    assert_eq!(
        dec.decrypt(now, &metadata, &corrupt),
        Err(CryptoError::Authentication)
    );
    assert_eq!(
        dec.decrypt(now, &metadata, &sealed[..10]),
        Err(CryptoError::Truncated(10))
    );

    let mut short = metadata.clone();
    short.encryption_param = Some(Bytes::from_static(&[1, 2, 3]));
    assert_eq!(
        dec.decrypt(now, &short, &sealed),
        Err(CryptoError::BadParam(3))
    );
    let mut none = metadata.clone();
    none.encryption_param = None;
    assert_eq!(
        dec.decrypt(now, &none, &sealed),
        Err(CryptoError::BadParam(0))
    );

    // a wrapped key that is garbage, or of the wrong length
    let fresh = Decryptor::new(reader("rsa-a"));
    for value in [
        Bytes::new(),
        Bytes::from(vec![0u8; 256]),
        Bytes::from(vec![1u8; 7]),
    ] {
        let mut bad = metadata.clone();
        bad.encryption_keys[0].value = value;
        assert!(matches!(
            fresh.decrypt(now, &bad, &sealed),
            Err(CryptoError::NoDataKey { .. })
        ));
    }
    // no private key configured
    let public_only = Decryptor::new(Arc::new(PemKeyReader::files(
        Some(key("rsa-a.public.pem")),
        None,
    )));
    assert!(matches!(
        public_only.decrypt(now, &metadata, &sealed),
        Err(CryptoError::KeyUnavailable { .. })
    ));
    // a public key where a private key is expected
    let swapped = Decryptor::new(Arc::new(PemKeyReader::files(
        None,
        Some(key("rsa-a.public.pem")),
    )));
    assert!(matches!(
        swapped.decrypt(now, &metadata, &sealed),
        Err(CryptoError::InvalidKey { .. })
    ));
}

#[test]
fn producer_side_errors_are_typed() {
    let now = Instant::now();
    let mut metadata = pb::MessageMetadata::default();
    let none = Encryptor::new(Vec::<String>::new(), reader("rsa-a"));
    assert_eq!(
        none.encrypt(now, &mut metadata, b"x"),
        Err(CryptoError::NoKeyNames)
    );
    let missing = Encryptor::new(["k"], Arc::new(PemKeyReader::files(None, None)));
    assert!(matches!(
        missing.encrypt(now, &mut metadata, b"x"),
        Err(CryptoError::KeyUnavailable { .. })
    ));
    let private = Arc::new(PemKeyReader::files(Some(key("rsa-a.private.pem")), None));
    assert!(matches!(
        Encryptor::new(["k"], private).encrypt(now, &mut metadata, b"x"),
        Err(CryptoError::InvalidKey { .. })
    ));
    assert!(metadata.encryption_keys.is_empty());
}

/// A counter as the random source: the IVs and data keys are the application's to choose.
#[derive(Debug, Default)]
struct Counter(AtomicU8);

impl RandomSource for Counter {
    fn fill(&self, dest: &mut [u8]) -> Result<(), CryptoError> {
        for b in dest {
            *b = self.0.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }
}

#[test]
fn the_random_source_can_be_supplied() -> R {
    let now = Instant::now();
    let enc = Encryptor::new(["rsa-a"], reader("rsa-a")).with_random(Arc::new(Counter::default()));
    let (metadata, sealed) = seal(&enc, now, b"p");
    // 32 bytes of data key first, then the IV
    let iv: Vec<u8> = (32..44).collect();
    assert_eq!(metadata.encryption_param.as_deref(), Some(&iv[..]));
    assert_eq!(
        Decryptor::new(reader("rsa-a")).decrypt(now, &metadata, &sealed)?,
        b"p"
    );
    Ok(())
}

/// A fuzz input for `fuzz/fuzz_targets/decrypt.rs`: the metadata's length (u16, big-endian),
/// the encoded metadata, the payload.
fn fuzz_input(metadata: &pb::MessageMetadata, payload: &[u8]) -> Vec<u8> {
    use prost::Message as _;
    let m = metadata.encode_to_vec();
    let mut out = u16::try_from(m.len())
        .unwrap_or(u16::MAX)
        .to_be_bytes()
        .to_vec();
    out.extend_from_slice(&m);
    out.extend_from_slice(payload);
    out
}

/// Writes the fuzz seeds (a valid entry, a wrong key, a corrupted ciphertext, a truncated
/// `encryption_param`, a truncated payload) into `$PULSAR_FUZZ_SEEDS`:
/// `PULSAR_FUZZ_SEEDS=fuzz/seeds/decrypt cargo test -p pulsar-crypto --test roundtrip -- --ignored`.
#[test]
#[ignore = "writes the fuzz seeds"]
fn write_fuzz_seeds() -> R {
    let dir = PathBuf::from(std::env::var("PULSAR_FUZZ_SEEDS")?);
    std::fs::create_dir_all(&dir)?;
    let enc = Encryptor::new(["rsa-a"], reader("rsa-a"));
    let (metadata, sealed) = seal(&enc, Instant::now(), b"fuzz seed payload");
    let mut corrupt = sealed.clone();
    corrupt[0] ^= 0x80;
    let mut short_iv = metadata.clone();
    short_iv.encryption_param = Some(Bytes::from_static(&[0; 5]));
    let mut wrong_key = metadata.clone();
    wrong_key.encryption_keys[0].value = Bytes::from(vec![0x42; 256]);
    let seeds = [
        ("valid", fuzz_input(&metadata, &sealed)),
        ("corrupt", fuzz_input(&metadata, &corrupt)),
        ("short_iv", fuzz_input(&short_iv, &sealed)),
        ("wrong_key", fuzz_input(&wrong_key, &sealed)),
        ("truncated", fuzz_input(&metadata, &sealed[..7])),
    ];
    for (name, bytes) in seeds {
        std::fs::write(dir.join(name), bytes)?;
    }
    Ok(())
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Arbitrary metadata bytes and payloads, and valid entries with bytes flipped: typed errors,
    /// never a panic, and a flipped entry never decrypts to something else.
    #[test]
    fn malformed_input_never_panics(
        raw in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
        payload in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
        flip in 0usize..400,
    ) {
        use prost::Message as _;
        let now = Instant::now();
        let dec = Decryptor::new(reader("rsa-a"));
        if let Ok(metadata) = pb::MessageMetadata::decode(&raw[..]) {
            let _ = dec.decrypt(now, &metadata, &payload);
        }
        let enc = Encryptor::new(["rsa-a"], reader("rsa-a"));
        let (metadata, sealed) = seal(&enc, now, b"some payload");
        let mut input = fuzz_input(&metadata, &sealed);
        let at = 2 + flip % (input.len() - 2);
        input[at] ^= 0x01;
        let len = usize::from(u16::from_be_bytes([input[0], input[1]]));
        if let Ok(m) = pb::MessageMetadata::decode(&input[2..2 + len]) {
            if let Ok(plain) = dec.decrypt(now, &m, &input[2 + len..]) {
                // only flips outside what is authenticated (the key name, say) may pass
                proptest::prop_assert_eq!(plain, b"some payload".to_vec());
            }
        }
    }
}
