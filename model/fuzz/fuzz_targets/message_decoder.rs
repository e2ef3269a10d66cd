//! The message decoder over any frame body: no panic, and what decodes re-encodes to the
//! very same bytes (a body has one meaning, and one encoding per message).

#![no_main]

use harrow_model::wire::{DEFAULT_MAX_FRAME, Message};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    if let Ok(m) = Message::decode_body(body) {
        let frame = m
            .encode(DEFAULT_MAX_FRAME)
            .expect("a decoded body fits the limit");
        assert_eq!(&frame[4..], body, "{m:?}");
    }
});
