//! The protobuf codec every generated service and client uses: prost's encoder, and a decoder that
//! answers a body it cannot decode (truncated varints, impossible lengths, invalid UTF-8, nesting
//! past prost's limit) with INVALID_ARGUMENT and an `ErrorInfo` reason `MALFORMED_REQUEST`, never
//! with INTERNAL or the decoder's own words.

use std::marker::PhantomData;

use prost::Message;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic::{Code, Status};
use tonic_prost::ProstEncoder;
use tonic_types::{ErrorDetails, StatusExt};

/// The ErrorInfo domain of errors raised by shared infrastructure (as `kernel::error::KERNEL_DOMAIN`).
const KERNEL_DOMAIN: &str = "promo.kernel";

/// `application/grpc+proto` with prost, answering undecodable bodies as the caller's error.
#[derive(Debug, Clone)]
pub struct ProtoCodec<T, U> {
    _types: PhantomData<(T, U)>,
}

impl<T, U> Default for ProtoCodec<T, U> {
    fn default() -> Self {
        ProtoCodec {
            _types: PhantomData,
        }
    }
}

impl<T, U> Codec for ProtoCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = ProtoDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::new(BufferSettings::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProtoDecoder { _type: PhantomData }
    }
}

/// Decodes `U`, mapping a decode failure to [`malformed_request`].
#[derive(Debug, Clone)]
pub struct ProtoDecoder<U> {
    _type: PhantomData<U>,
}

impl<U: Message + Default> Decoder for ProtoDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        U::decode(buf).map(Some).map_err(|error| {
            tracing::debug!(%error, "undecodable message");
            malformed_request()
        })
    }
}

/// INVALID_ARGUMENT `MALFORMED_REQUEST`: the body is not a protobuf message of the method's type.
pub fn malformed_request() -> Status {
    let mut details = ErrorDetails::new();
    details.set_error_info(
        "MALFORMED_REQUEST",
        KERNEL_DOMAIN,
        std::collections::HashMap::new(),
    );
    Status::with_error_details(
        Code::InvalidArgument,
        "the request body is not a valid protobuf message of this method's request type",
        details,
    )
}
