//! The encryption flags (`-ekn`, `-ekv`): key URIs as Apache's `pulsar-client` takes them.

use std::sync::Arc;

use base64::Engine as _;
use pulsar_blocking::core::{ConsumerCrypto, MessageEncryptor};
use pulsar_crypto::{Decryptor, Encryptor, PemKeyReader};

use crate::error::CliError;

/// The key a URI names: `file:///path`, `data:<type>;base64,<data>`, or a plain path.
pub fn key_bytes(uri: &str) -> Result<Vec<u8>, CliError> {
    if let Some(data) = uri.strip_prefix("data:") {
        let Some((_, b64)) = data.split_once(";base64,") else {
            return Err(CliError::Usage(
                "a data: key URI must be data:<type>;base64,<data>".into(),
            ));
        };
        return base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|e| CliError::Usage(format!("the data: key URI is not base64: {e}")));
    }
    let path = uri.strip_prefix("file://").unwrap_or(uri);
    std::fs::read(path).map_err(|source| CliError::Io {
        context: format!("reading the key {path}"),
        source,
    })
}

/// The producer's encryptor for `names` with the public key at `uri` (`None` without names).
pub fn encryptor(
    names: &[String],
    uri: Option<&str>,
) -> Result<Option<Arc<dyn MessageEncryptor>>, CliError> {
    match (names.is_empty(), uri) {
        (true, None) => Ok(None),
        (true, Some(_)) => Err(CliError::Usage(
            "--encryption-key-value-file (-ekv) needs --encryption-key-name (-ekn)".into(),
        )),
        (false, None) => Err(CliError::Usage(
            "--encryption-key-name (-ekn) needs --encryption-key-value-file (-ekv)".into(),
        )),
        (false, Some(uri)) => {
            let reader = Arc::new(PemKeyReader::pems(Some(key_bytes(uri)?), None));
            Ok(Some(Arc::new(Encryptor::new(
                names.iter().cloned(),
                reader,
            ))))
        }
    }
}

/// The consumer's decryption with the private key at `uri` (the default, FAIL without a key).
pub fn decryption(uri: Option<&str>) -> Result<ConsumerCrypto, CliError> {
    let mut crypto = ConsumerCrypto::default();
    if let Some(uri) = uri {
        let reader = Arc::new(PemKeyReader::pems(None, Some(key_bytes(uri)?)));
        crypto.decryptor = Some(Arc::new(Decryptor::new(reader)));
    }
    Ok(crypto)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_uris() {
        assert_eq!(
            key_bytes("data:application/x-pem-file;base64,aGVsbG8=").unwrap(),
            b"hello"
        );
        assert!(key_bytes("data:application/x-pem-file,hello").is_err());
        assert!(key_bytes("file:///nonexistent/key.pem").is_err());
        assert!(encryptor(&["k".into()], None).is_err());
        assert!(encryptor(&[], Some("x")).is_err());
        assert!(encryptor(&[], None).unwrap().is_none());
    }
}
