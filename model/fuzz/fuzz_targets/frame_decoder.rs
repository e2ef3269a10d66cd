//! The frame decoder over any byte stream, cut into reads of any size: no panic, no
//! unbounded buffering, every decoded message re-encodes to the bytes it came from, and a
//! failed decoder stays failed.

#![no_main]

use harrow_model::wire::{FrameDecoder, FrameError};
use libfuzzer_sys::fuzz_target;

/// A small frame limit, so that the fuzzer reaches both sides of it.
const MAX_FRAME: u32 = 256;

/// Bytes of the length header.
const HEADER: usize = 4;

fuzz_target!(|data: &[u8]| {
    // The first byte sets the read size (1..=256); the rest is the stream.
    let Some((&cut, stream)) = data.split_first() else {
        return;
    };
    let mut dec = FrameDecoder::new(MAX_FRAME);
    let mut failed = false;
    let mut consumed = 0;
    for read in stream.chunks(usize::from(cut) + 1) {
        let pushed = dec.push(read);
        if failed {
            assert_eq!(pushed, Err(FrameError::Desynchronized));
            continue;
        }
        failed = pushed.is_err();
        while !failed {
            match dec.next_message() {
                Ok(Some(m)) => {
                    let frame = m
                        .encode(MAX_FRAME)
                        .expect("a decoded message fits its limit");
                    let end = consumed + frame.len();
                    assert_eq!(&stream[consumed..end], frame.as_slice(), "{m:?}");
                    consumed = end;
                }
                Ok(None) => break,
                Err(_) => failed = true,
            }
        }
        if !failed {
            // At most one unfinished frame is held, never more than its limit.
            assert!(dec.buffered() < HEADER + MAX_FRAME as usize);
        }
    }
});
