//! Frames over tokio's `AsyncRead`/`AsyncWrite` (feature `tokio`): what an async child reads
//! from and writes to its parent channel.
//!
//! Reading is the model's [`FrameDecoder`] fed by `poll_read`: there is one decoder, the
//! one every other reader of a channel uses. [`FrameReader::poll_frame`] is cancel-safe:
//! the only place it waits is the read, and bytes read are in the decoder before it returns,
//! so a caller that stops polling (a `select` that took another branch) loses nothing.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use harrow_model::wire::{FrameDecoder, FrameError, Message};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

/// The read buffer: a frame larger than this arrives in several reads.
const READ_BUF: usize = 4096;

/// Why a frame could not be read or written.
#[derive(Debug)]
pub(crate) enum FrameIoError {
    /// The bytes are not a valid frame (or the stream ended inside one): the channel is out
    /// of step and must be closed.
    Frame(FrameError),
    /// The stream itself failed.
    Io(io::Error),
}

impl fmt::Display for FrameIoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameIoError::Frame(e) => e.fmt(f),
            FrameIoError::Io(e) => write!(
                f,
                "the channel failed: {e}; the peer is gone or the descriptor is broken, so \
                 close the channel"
            ),
        }
    }
}

impl std::error::Error for FrameIoError {}

impl From<FrameError> for FrameIoError {
    fn from(e: FrameError) -> Self {
        FrameIoError::Frame(e)
    }
}

impl From<io::Error> for FrameIoError {
    fn from(e: io::Error) -> Self {
        FrameIoError::Io(e)
    }
}

/// Reads whole messages from a byte stream.
#[derive(Debug)]
pub(crate) struct FrameReader<R> {
    io: R,
    decoder: FrameDecoder,
    buf: Box<[u8]>,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// A reader of `io` that refuses any frame whose body exceeds `max_frame` bytes.
    pub(crate) fn new(io: R, max_frame: u32) -> Self {
        FrameReader {
            io,
            decoder: FrameDecoder::new(max_frame),
            buf: vec![0; READ_BUF].into_boxed_slice(),
        }
    }

    /// The next message; `Ok(None)` once the stream has ended cleanly, between two frames;
    /// `Pending` only when the stream has nothing to read and no whole frame is buffered.
    ///
    /// An error is final: after a malformed frame nothing more can be trusted (every later
    /// call says [`FrameError::Desynchronized`]); a stream that ends inside a frame is
    /// [`FrameError::EofInsideFrame`].
    pub(crate) fn poll_frame(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<Message>, FrameIoError>> {
        // Each turn either returns or buffers more of one frame, which the decoder bounds.
        loop {
            if let Some(message) = self.decoder.next_message()? {
                return Poll::Ready(Ok(Some(message)));
            }
            let mut read = ReadBuf::new(&mut self.buf);
            ready!(Pin::new(&mut self.io).poll_read(cx, &mut read))?;
            let n = read.filled().len();
            if n == 0 {
                return Poll::Ready(self.decoder.finish().map(|()| None).map_err(Into::into));
            }
            self.decoder.push(&self.buf[..n])?;
        }
    }
}

/// Writes `message` as one frame, or, if it is too large, what a child sends in its place
/// ([`Message::encode_fitted`]): a reply whose payload is over `max_frame` becomes an error
/// reply saying so, so its caller gets an answer rather than silence.
pub(crate) async fn write_frame<W: AsyncWrite + Unpin>(
    io: &mut W,
    message: &Message,
    max_frame: u32,
) -> Result<(), FrameIoError> {
    Ok(io.write_all(&message.encode_fitted(max_frame)).await?)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use harrow_model::RequestId;
    use harrow_model::wire::RemoteError;
    use tokio_test::io::Builder;

    use super::*;

    const MAX: u32 = 1024;

    /// Runs `test` on a current-thread runtime, failing if it takes over five seconds: every
    /// case must end (a hang is a failure, not a stuck test run).
    fn run<F: Future<Output = ()>>(test: F) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(5), test)
                .await
                .expect("the frame reader or writer hung")
        });
    }

    fn request(id: u64, payload: &[u8]) -> Message {
        Message::Request {
            id: RequestId(id),
            payload: payload.to_vec(),
        }
    }

    /// The next frame, read as the child's loop does (polled until ready).
    async fn read<R: AsyncRead + Unpin>(
        reader: &mut FrameReader<R>,
    ) -> Result<Option<Message>, FrameIoError> {
        std::future::poll_fn(|cx| reader.poll_frame(cx)).await
    }

    fn frame(m: &Message) -> Vec<u8> {
        m.encode(MAX).unwrap()
    }

    #[test]
    fn a_frame_split_at_every_byte_boundary_reads_whole() {
        let m = request(7, b"hello, frames");
        let bytes = frame(&m);
        for cut in 1..bytes.len() {
            run(async {
                let io = Builder::new()
                    .read(&bytes[..cut])
                    .wait(Duration::from_millis(1))
                    .read(&bytes[cut..])
                    .build();
                let mut reader = FrameReader::new(io, MAX);
                assert_eq!(
                    read(&mut reader).await.unwrap(),
                    Some(m.clone()),
                    "cut {cut}"
                );
                assert_eq!(read(&mut reader).await.unwrap(), None, "cut {cut}");
            });
        }
    }

    #[test]
    fn a_frame_fed_one_byte_per_read_reads_whole() {
        let m = request(8, b"byte by byte");
        let mut mock = Builder::new();
        for byte in frame(&m) {
            mock.read(&[byte]);
        }
        run(async {
            let mut reader = FrameReader::new(mock.build(), MAX);
            assert_eq!(read(&mut reader).await.unwrap(), Some(m));
            assert_eq!(read(&mut reader).await.unwrap(), None);
        });
    }

    #[test]
    fn several_frames_in_one_read_come_out_one_by_one() {
        let messages = [request(1, b"a"), Message::Cancel, request(2, b"")];
        let bytes: Vec<u8> = messages.iter().flat_map(frame).collect();
        run(async {
            let mut reader = FrameReader::new(Builder::new().read(&bytes).build(), MAX);
            for m in &messages {
                assert_eq!(read(&mut reader).await.unwrap().as_ref(), Some(m));
            }
            assert_eq!(read(&mut reader).await.unwrap(), None);
        });
    }

    #[test]
    fn an_oversize_length_is_refused_from_its_header() {
        // A header announcing one byte over the limit, and no body: refused at once.
        let header = (MAX + 1).to_le_bytes();
        run(async {
            let mut reader = FrameReader::new(Builder::new().read(&header).build(), MAX);
            match read(&mut reader).await {
                Err(FrameIoError::Frame(FrameError::Oversize { len, max })) => {
                    assert_eq!((len, max), (u64::from(MAX) + 1, MAX));
                }
                other => panic!("an oversize header read as {other:?}"),
            }
            assert!(matches!(
                read(&mut reader).await,
                Err(FrameIoError::Frame(FrameError::Desynchronized))
            ));
        });
    }

    #[test]
    fn eof_mid_frame_says_how_much_of_it_came() {
        let bytes = frame(&request(3, b"cut short"));
        run(async {
            let mut reader = FrameReader::new(Builder::new().read(&bytes[..6]).build(), MAX);
            match read(&mut reader).await {
                Err(FrameIoError::Frame(FrameError::EofInsideFrame { received: 6 })) => {}
                other => panic!("EOF inside a frame read as {other:?}"),
            }
        });
    }

    #[test]
    fn eof_between_frames_is_a_clean_end() {
        let m = request(4, b"last");
        run(async {
            let mut reader = FrameReader::new(Builder::new().read(&frame(&m)).build(), MAX);
            assert_eq!(read(&mut reader).await.unwrap(), Some(m));
            assert_eq!(read(&mut reader).await.unwrap(), None);
            let mut empty = FrameReader::new(Builder::new().build(), MAX);
            assert_eq!(read(&mut empty).await.unwrap(), None);
        });
    }

    #[test]
    fn a_read_error_is_returned_typed_after_the_frames_before_it() {
        let m = request(5, b"before");
        run(async {
            let io = Builder::new()
                .read(&frame(&m))
                .read_error(io::Error::new(io::ErrorKind::ConnectionReset, "reset"))
                .build();
            let mut reader = FrameReader::new(io, MAX);
            assert_eq!(read(&mut reader).await.unwrap(), Some(m));
            match read(&mut reader).await {
                Err(FrameIoError::Io(e)) => assert_eq!(e.kind(), io::ErrorKind::ConnectionReset),
                other => panic!("a read error read as {other:?}"),
            }
        });
    }

    #[test]
    fn a_malformed_body_is_a_frame_error() {
        let bytes = [1u8, 0, 0, 0, 99];
        run(async {
            let mut reader = FrameReader::new(Builder::new().read(&bytes).build(), MAX);
            assert!(matches!(
                read(&mut reader).await,
                Err(FrameIoError::Frame(FrameError::UnknownTag(99)))
            ));
        });
    }

    #[test]
    fn frames_are_written_whole_and_a_write_error_is_typed() {
        let m = request(6, b"out");
        run(async {
            let mut io = Builder::new()
                .write(&frame(&m))
                .write_error(io::Error::new(io::ErrorKind::BrokenPipe, "gone"))
                .build();
            write_frame(&mut io, &m, MAX).await.unwrap();
            match write_frame(&mut io, &Message::Cancel, MAX).await {
                Err(FrameIoError::Io(e)) => assert_eq!(e.kind(), io::ErrorKind::BrokenPipe),
                other => panic!("a write error wrote as {other:?}"),
            }
        });
    }

    #[test]
    fn an_oversize_message_is_written_as_the_error_reply_that_says_so() {
        let big = Message::Reply {
            id: RequestId(9),
            result: Ok(vec![0; MAX as usize]),
        };
        let fitted = big.encode_fitted(MAX);
        assert!(fitted.len() < MAX as usize);
        run(async {
            // The mock panics at any byte written other than the fitted frame's.
            let mut io = Builder::new().write(&fitted).build();
            write_frame(&mut io, &big, MAX).await.unwrap();
            let mut reader = FrameReader::new(Builder::new().read(&fitted).build(), MAX);
            match read(&mut reader).await.unwrap() {
                Some(Message::Reply {
                    id: RequestId(9),
                    result: Err(RemoteError { .. }),
                }) => {}
                other => panic!("a fitted oversize reply read as {other:?}"),
            }
        });
    }
}
