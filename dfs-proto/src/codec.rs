//! The gRPC codec of the block service: prost's, with buffers sized for 1 MiB chunks.
//!
//! tonic starts each call's buffers at 8 KiB and prost grows the encode buffer as it writes, so
//! every chunk sent grew the buffer step by step and every growth copied what the buffer held
//! (perf of a streamed read: ~6% of the datanode's and the mount's CPU in `realloc` and buffer
//! growth). Here a message's whole encoded length is reserved before it is written, and a call's
//! buffers start large enough for a chunk.

use bytes::BufMut;
use prost::Message;
use std::marker::PhantomData;
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, EncodeBuf, Encoder};
use tonic_prost::ProstDecoder;

/// A call's encode and decode buffers start at this size: a whole chunk and its framing.
const BUFFER: usize = crate::TRANSFER_CHUNK + 64 * 1024;
/// Encoded messages gathered before they are handed to HTTP/2 (tonic's default).
const YIELD_THRESHOLD: usize = 32 * 1024;

fn settings() -> BufferSettings {
    BufferSettings::new(BUFFER, YIELD_THRESHOLD)
}

/// The codec the generated block service code uses (`codec_path` in `build.rs`).
#[derive(Debug, Clone)]
pub struct DataCodec<T, U> {
    _pd: PhantomData<(T, U)>,
}

impl<T, U> Default for DataCodec<T, U> {
    fn default() -> Self {
        DataCodec { _pd: PhantomData }
    }
}

impl<T, U> Codec for DataCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = DataEncoder<T>;
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        DataEncoder { _pd: PhantomData }
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstDecoder::new(settings())
    }
}

/// Encodes a message into room reserved for all of it at once.
#[derive(Debug)]
pub struct DataEncoder<T> {
    _pd: PhantomData<T>,
}

impl<T: Message> Encoder for DataEncoder<T> {
    type Item = T;
    type Error = Status;

    fn encode(&mut self, item: T, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        let len = item.encoded_len();
        buf.reserve(len);
        if buf.remaining_mut() < len {
            return Err(Status::internal("no room to encode a message"));
        }
        item.encode(buf)
            .map_err(|e| Status::internal(format!("encoding a message: {e}")))
    }

    fn buffer_settings(&self) -> BufferSettings {
        settings()
    }
}
