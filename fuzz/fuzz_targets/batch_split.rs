//! Feeds arbitrary bytes to the batch splitter: no panic, at most `count` items, nothing after an
//! error, and entries re-encode to the bytes they came from.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use pulsar_proto::batch;

fuzz_target!(|data: &[u8]| {
    let Some((count, rest)) = data.split_first() else {
        return;
    };
    let count = u32::from(*count);
    let input = Bytes::copy_from_slice(rest);
    let mut entries = batch::split(input.clone(), count);
    let mut reencoded = BytesMut::new();
    let mut items = 0;
    while let Some(item) = entries.next() {
        items += 1;
        match item {
            Ok(entry) => batch::encode_entry(&entry.metadata, &entry.payload, &mut reencoded),
            Err(_) => {
                assert!(entries.next().is_none());
                break;
            }
        }
    }
    assert!(items <= count);
    // Entries decoded without error re-encode to a batch that splits into the same entries.
    let again: Vec<_> = batch::split(reencoded.freeze(), count).take_while(Result::is_ok).collect();
    let first: Vec<_> = batch::split(input, count).take_while(Result::is_ok).collect();
    assert_eq!(again, first);
});
