//! Where encoded payloads are written: a per-thread block of 64 KiB that successive payloads are
//! cut from (`BytesMut::split`), so encoding a message allocates nothing of its own beyond what the
//! serializer does (a `Vec`'s buffer turned into `Bytes` costs one more allocation whenever its
//! length differs from its capacity). A block is freed when the last payload cut from it is
//! dropped; a payload larger than what is left gets a block of its own size.

use std::cell::RefCell;

use bytes::{Bytes, BytesMut};

/// The size of a fresh block.
const BLOCK: usize = 64 * 1024;

/// Below this much room a fresh block is taken before writing.
const LOW: usize = 1024;

thread_local! {
    static ARENA: RefCell<BytesMut> = RefCell::new(BytesMut::new());
}

/// Runs `write` on an empty buffer and returns what it wrote, cut from this thread's block.
pub(crate) fn encode<E>(write: impl FnOnce(&mut BytesMut) -> Result<(), E>) -> Result<Bytes, E> {
    ARENA.with(|arena| match arena.try_borrow_mut() {
        Ok(mut buf) => {
            if buf.capacity() < LOW {
                *buf = BytesMut::with_capacity(BLOCK);
            }
            match write(&mut buf) {
                Ok(()) => Ok(buf.split().freeze()),
                Err(e) => {
                    buf.clear();
                    Err(e)
                }
            }
        }
        // a serializer encoding from inside a serializer: a buffer of its own
        Err(_) => {
            let mut own = BytesMut::new();
            write(&mut own).map(|()| own.freeze())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut;

    #[test]
    fn payloads_are_cut_from_one_block_and_stay_intact() {
        let a = encode::<()>(|b| {
            b.put_slice(b"first");
            Ok(())
        })
        .unwrap();
        let b = encode::<()>(|b| {
            b.put_slice(b"second");
            Ok(())
        })
        .unwrap();
        assert_eq!((&a[..], &b[..]), (&b"first"[..], &b"second"[..]));
        let big = encode::<()>(|b| {
            b.put_bytes(7, 3 * BLOCK);
            Ok(())
        })
        .unwrap();
        assert_eq!(big.len(), 3 * BLOCK);
        assert!(big.iter().all(|x| *x == 7));
        let failed = encode(|b| {
            b.put_slice(b"half");
            Err("no")
        });
        assert_eq!(failed, Err("no"));
        let after = encode::<()>(|b| {
            b.put_slice(b"next");
            Ok(())
        })
        .unwrap();
        assert_eq!(&after[..], b"next", "a failed write leaves nothing behind");
        assert_eq!(&a[..], b"first");
    }
}
