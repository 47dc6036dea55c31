//! Data keys wrapped for EC keys as the Java client wraps them: BouncyCastle's `ECIES` cipher
//! with its defaults (an ephemeral ECDH key on the recipient's curve, KDF2 with SHA-1 over the
//! ephemeral point and the shared secret, no block cipher: the data key XORed with the derived
//! stream, an HMAC-SHA-1 tag over the ciphertext and an empty 8-byte length label).
//!
//! Layout: `V || C || T`: `V` the ephemeral public point (uncompressed), `C` the data key XORed
//! with 32 derived bytes, `T` the 20-byte tag; the derived bytes are the 16-byte MAC key first,
//! then the stream. Checked against messages the Java client 4.0.7 encrypted (P-256), both ways.
//! The primitives (ECDH, SHA-1, HMAC) are AWS-LC's; KDF2 is their composition.

use aws_lc_rs::agreement::{
    agree, agree_ephemeral, Algorithm, EphemeralPrivateKey, PrivateKey, UnparsedPublicKey,
    ECDH_P256, ECDH_P384, ECDH_P521,
};
use aws_lc_rs::digest::{Context, SHA1_FOR_LEGACY_USE_ONLY};
use aws_lc_rs::hmac;
use aws_lc_rs::rand::SystemRandom;
use zeroize::Zeroizing;

use crate::DATA_KEY_LEN;

const MAC_KEY_LEN: usize = 16;
const TAG_LEN: usize = 20;
/// The length label of BouncyCastle's IES MAC input: the encoding vector's bit length, none here.
const LENGTH_LABEL: [u8; 8] = [0; 8];

/// The curves AWS-LC does ECDH on.
const CURVES: [&Algorithm; 3] = [&ECDH_P256, &ECDH_P384, &ECDH_P521];

/// An EC public key: its curve and its `SubjectPublicKeyInfo`.
pub(crate) struct EcPublic {
    alg: &'static Algorithm,
    spki: Vec<u8>,
}

/// The EC public key of a `SubjectPublicKeyInfo`, on a curve AWS-LC supports.
pub(crate) fn ec_public(spki: &[u8]) -> Option<EcPublic> {
    CURVES.into_iter().find_map(|alg| {
        let parsed: Result<aws_lc_rs::agreement::ParsedPublicKey, _> =
            UnparsedPublicKey::new(alg, spki).try_into();
        parsed.ok().map(|_| EcPublic {
            alg,
            spki: spki.to_vec(),
        })
    })
}

/// The EC private key of a PKCS#8 or SEC 1 (`EC PRIVATE KEY`) DER. It lives in AWS-LC.
pub(crate) fn ec_private(der: &[u8]) -> Option<PrivateKey> {
    CURVES
        .into_iter()
        .find_map(|alg| PrivateKey::from_private_key_der(alg, der).ok())
}

/// KDF2 with SHA-1: the blocks `SHA-1(seed || counter)`, the counter from 1, big-endian.
fn kdf2_sha1(v: &[u8], z: &[u8], out: &mut [u8]) {
    for (i, block) in out.chunks_mut(20).enumerate() {
        let mut ctx = Context::new(&SHA1_FOR_LEGACY_USE_ONLY);
        ctx.update(v);
        ctx.update(z);
        ctx.update(&(i as u32 + 1).to_be_bytes());
        let digest = ctx.finish();
        block.copy_from_slice(&digest.as_ref()[..block.len()]);
    }
}

/// The MAC key and the stream for the ephemeral point `v` and the shared secret `z`.
fn derive(v: &[u8], z: &[u8]) -> Zeroizing<[u8; MAC_KEY_LEN + DATA_KEY_LEN]> {
    let mut k = Zeroizing::new([0u8; MAC_KEY_LEN + DATA_KEY_LEN]);
    kdf2_sha1(v, z, &mut k[..]);
    k
}

/// `C || length label`, what the tag covers.
fn mac_input(c: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(c.len() + LENGTH_LABEL.len());
    m.extend_from_slice(c);
    m.extend_from_slice(&LENGTH_LABEL);
    m
}

/// Wraps a data key for `public`.
pub(crate) fn wrap(public: &EcPublic, data_key: &[u8; DATA_KEY_LEN]) -> Result<Vec<u8>, ()> {
    let ephemeral =
        EphemeralPrivateKey::generate(public.alg, &SystemRandom::new()).map_err(drop)?;
    let v = ephemeral.compute_public_key().map_err(drop)?;
    let v = v.as_ref().to_vec();
    let peer = UnparsedPublicKey::new(public.alg, &public.spki);
    agree_ephemeral(ephemeral, peer, (), |z| {
        let k = derive(&v, z);
        let (mac_key, stream) = k.split_at(MAC_KEY_LEN);
        let c: Vec<u8> = data_key.iter().zip(stream).map(|(a, b)| a ^ b).collect();
        let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, mac_key);
        let tag = hmac::sign(&key, &mac_input(&c));
        let mut out = v.clone();
        out.extend_from_slice(&c);
        out.extend_from_slice(tag.as_ref());
        Ok(out)
    })
}

/// Unwraps a data key wrapped for `private`; `None` when it is malformed or not for this key.
pub(crate) fn unwrap(private: &PrivateKey, wrapped: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let point = private.compute_public_key().ok()?.as_ref().len();
    if wrapped.len() != point + DATA_KEY_LEN + TAG_LEN {
        return None;
    }
    let (v, rest) = wrapped.split_at(point);
    let (c, t) = rest.split_at(DATA_KEY_LEN);
    let peer = UnparsedPublicKey::new(private.algorithm(), v);
    agree(private, peer, (), |z| {
        let k = derive(v, z);
        let (mac_key, stream) = k.split_at(MAC_KEY_LEN);
        let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, mac_key);
        hmac::verify(&key, &mac_input(c), t).map_err(drop)?;
        Ok(Zeroizing::new(
            c.iter().zip(stream).map(|(a, b)| a ^ b).collect(),
        ))
    })
    .ok()
}
