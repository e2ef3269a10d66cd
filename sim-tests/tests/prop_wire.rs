//! The frame and message decoders under random, mutated and truncated input: the bounded,
//! fixed-seed version of the fuzz targets in `model/fuzz` (same properties, run in CI).
//!
//! - frames: any stream, cut into reads of any size, never panics, never holds more than one
//!   unfinished frame, decodes messages that re-encode to exactly the bytes they came from,
//!   and once failed stays failed;
//! - messages: any body either fails to decode or re-encodes to exactly itself.
//!
//! The streams are drawn from valid frames that are then mutated (bytes flipped, a cut, a
//! length header rewritten) as well as from plain random bytes, so that both the accepting
//! and the refusing paths are reached.

use harrow_model::RequestId;
use harrow_model::wire::{FrameDecoder, FrameError, Message, RemoteError, RemoteErrorKind, Role};
use proptest::prelude::*;
use proptest::test_runner::RngSeed;

/// A small frame limit, so that both sides of it are reached.
const MAX_FRAME: u32 = 256;

/// Bytes of the length header.
const HEADER: usize = 4;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 2000,
        failure_persistence: None,
        // The same cases every CI run.
        rng_seed: RngSeed::Fixed(0x7769_7265),
        ..ProptestConfig::default()
    }
}

fn remote() -> impl Strategy<Value = RemoteError> {
    let kind = prop_oneof![
        Just(RemoteErrorKind::Error),
        Just(RemoteErrorKind::Panic),
        Just(RemoteErrorKind::Refused),
    ];
    (kind, ".{0,40}").prop_map(|(kind, message)| RemoteError::new(kind, message))
}

fn result() -> impl Strategy<Value = Result<Vec<u8>, RemoteError>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64).prop_map(Ok),
        remote().prop_map(Err)
    ]
}

/// Every message kind, with small random fields.
fn message() -> impl Strategy<Value = Message> {
    let role = prop_oneof![Just(Role::Daemon), Just(Role::RunToResult)];
    prop_oneof![
        ("[a-z]{1,16}", role).prop_map(|(actor, role)| Message::SpawnSpec { actor, role }),
        (any::<u64>(), prop::collection::vec(any::<u8>(), 0..64)).prop_map(|(id, payload)| {
            Message::Request {
                id: RequestId(id),
                payload,
            }
        }),
        Just(Message::Cancel),
        (any::<u16>(), any::<u32>()).prop_map(|(version, pid)| Message::Handshake { version, pid }),
        (any::<u64>(), result()).prop_map(|(id, result)| Message::Reply {
            id: RequestId(id),
            result,
        }),
        result().prop_map(|result| Message::Finished { result }),
        remote().prop_map(Message::Failed),
        Just(Message::CancelAck),
    ]
}

/// One way to damage a valid stream.
#[derive(Clone, Debug)]
enum Mutation {
    Flip { at: usize, bits: u8 },
    Cut { at: usize },
    Length { frame_at: usize, len: u32 },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1..=255u8).prop_map(|(at, bits)| Mutation::Flip { at, bits }),
        any::<usize>().prop_map(|at| Mutation::Cut { at }),
        (any::<usize>(), any::<u32>())
            .prop_map(|(frame_at, len)| Mutation::Length { frame_at, len }),
    ]
}

fn damage(stream: &mut Vec<u8>, m: &Mutation) {
    if stream.is_empty() {
        return;
    }
    match *m {
        Mutation::Flip { at, bits } => {
            let i = at % stream.len();
            stream[i] ^= bits;
        }
        Mutation::Cut { at } => stream.truncate(at % stream.len()),
        Mutation::Length { frame_at, len } => {
            let i = frame_at % stream.len();
            let end = (i + HEADER).min(stream.len());
            stream[i..end].copy_from_slice(&len.to_le_bytes()[..end - i]);
        }
    }
}

/// A stream: valid frames, then damaged; or plain random bytes.
fn stream() -> impl Strategy<Value = Vec<u8>> {
    let damaged = (
        prop::collection::vec(message(), 0..8),
        prop::collection::vec(mutation(), 0..3),
    )
        .prop_map(|(messages, mutations)| {
            let mut stream = Vec::new();
            for m in &messages {
                // A message over the small limit is simply left out.
                let _ = m.encode_into(&mut stream, MAX_FRAME);
            }
            for m in &mutations {
                damage(&mut stream, m);
            }
            stream
        });
    prop_oneof![damaged, prop::collection::vec(any::<u8>(), 0..600)]
}

/// Feeds `stream` in reads of `read` bytes and checks every property on the way.
fn check_stream(stream: &[u8], read: usize) -> Result<(), TestCaseError> {
    let mut dec = FrameDecoder::new(MAX_FRAME);
    let mut failed = false;
    let mut consumed = 0;
    let mut arrived = 0;
    for chunk in stream.chunks(read) {
        arrived += chunk.len();
        let pushed = dec.push(chunk);
        if failed {
            prop_assert_eq!(pushed, Err(FrameError::Desynchronized));
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
                    prop_assert_eq!(&stream[consumed..end], frame.as_slice(), "{:?}", m);
                    consumed = end;
                }
                Ok(None) => break,
                Err(_) => failed = true,
            }
        }
        if !failed {
            // Exactly the bytes not yet decoded are held: at most one unfinished frame.
            prop_assert_eq!(dec.buffered(), arrived - consumed);
            prop_assert!(dec.buffered() < HEADER + MAX_FRAME as usize);
        }
    }
    if !failed {
        // What is left is exactly the unfinished tail: end of stream says so, or all is well.
        let left = stream.len() - consumed;
        prop_assert_eq!(dec.buffered(), left);
        prop_assert_eq!(dec.finish().is_ok(), left == 0);
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    /// Any stream, in reads of any size: see the module doc.
    #[test]
    fn frame_decoder_holds_on_random_mutated_and_cut_streams(
        stream in stream(),
        read in 1..300usize,
    ) {
        check_stream(&stream, read)?;
    }

    /// Any body decodes to a message that re-encodes to exactly itself, or fails.
    #[test]
    fn message_decoder_is_exact_on_random_and_mutated_bodies(
        body in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..200),
            (message(), mutation()).prop_map(|(m, mutation)| {
                let mut frame = m.encode(MAX_FRAME).unwrap_or_default();
                damage(&mut frame, &mutation);
                frame.get(HEADER..).map(<[u8]>::to_vec).unwrap_or_default()
            }),
        ],
    ) {
        if let Ok(m) = Message::decode_body(&body) {
            let frame = m.encode(u32::MAX).expect("encodes");
            prop_assert_eq!(&frame[HEADER..], body.as_slice(), "{:?}", m);
        }
    }
}
