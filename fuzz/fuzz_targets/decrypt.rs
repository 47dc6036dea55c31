//! Feeds arbitrary encrypted entries to pulsar-crypto's decryptor: the input is the metadata's
//! length (u16, big-endian), the encoded `MessageMetadata`, then the payload.
//!
//! Oracles: no panic; pulsar-proto's hand-written `MessageMetadata` parser (encryption keys
//! included) takes only what prost takes, and gives prost's result; an entry that decrypts
//! under the test key (tests/keys/rsa-a) decrypts to the seeds' payload (the only plaintext
//! ever sealed under a key the seeds carry).
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use prost::Message as _;
use pulsar_crypto::{Decryptor, MessageDecryptor, PemKeyReader};
use pulsar_proto::pb;

const PRIVATE: &[u8] = include_bytes!("../../tests/keys/rsa-a.private.pem");

fn decryptor() -> &'static Decryptor {
    static D: OnceLock<Decryptor> = OnceLock::new();
    D.get_or_init(|| {
        Decryptor::new(Arc::new(PemKeyReader::pems(None, Some(PRIVATE.to_vec()))))
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((len, rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let len = usize::from(u16::from_be_bytes(*len)).min(rest.len());
    let (metadata, payload) = rest.split_at(len);
    let by_hand = pulsar_proto::fast::try_decode_message_metadata(metadata);
    let Ok(metadata) = pb::MessageMetadata::decode(metadata) else {
        assert!(by_hand.is_none(), "the hand parser took what prost rejects");
        return;
    };
    if let Some(by_hand) = by_hand {
        assert_eq!(by_hand, metadata, "the hand parser and prost disagree");
    }
    if let Ok(plain) = decryptor().decrypt(Instant::now(), &metadata, payload) {
        assert_eq!(plain, b"fuzz seed payload");
    }
});
