//! Generated protobuf types and gRPC stubs. Nothing outside `api` and the
//! client uses them: the domain and the store never see a prost type.

#![allow(missing_docs, clippy::all, clippy::pedantic)]

tonic::include_proto!("customer_context.v1");

/// The encoded `FileDescriptorSet` of every proto in `proto/`, for server
/// reflection and for the client's JSON rendering.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/customer_context_descriptor.bin"));
