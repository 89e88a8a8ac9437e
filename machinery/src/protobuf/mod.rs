//! Kubernetes protobuf request bodies (`Content-Type: application/vnd.kubernetes.protobuf`),
//! decoded into the JSON form the Kubernetes API uses.
//!
//! kubectl's typed clients (`kubectl create configmap|secret|deployment|…`, `kubectl run`, the
//! evictions of `kubectl drain`, …) send protobuf. A body is the magic `k8s\0` and then a
//! `runtime.Unknown` message: `typeMeta` (1: `apiVersion`, 2: `kind`), `raw` (the object,
//! encoded as its Go type's message in the upstream `generated.proto` files),
//! `contentEncoding` and `contentType`. [`decode()`] walks `raw` with a generated table of those
//! messages (`generated.rs`, written by `scripts/gen-k8s-proto-table` from the `k8s-pb` and
//! `k8s-openapi` sources) and writes the JSON Kubernetes' own JSON encoding gives the same Go
//! object:
//!
//! - JSON names are the API's (`podIP`, `targetPort`); embedded structs (`Volume`'s
//!   `VolumeSource`, `Probe`'s handler, `LocalObjectReference`s) are flattened into their parent;
//! - zero scalars are dropped where Go's JSON drops them (`omitempty` fields that are not
//!   pointers, which Go's protobuf encoding nevertheless always writes) and kept where it keeps
//!   them (`replicas: 0`, `runAsUser: 0`, `storageClassName: ""`); structs are always written
//!   (`"status": {}`); repeated fields and maps only when not empty;
//! - `Quantity` is its canonical string, `IntOrString` a number or a string, `Time` RFC 3339
//!   (`null` when zero, as `creationTimestamp` of a new object), `MicroTime` RFC 3339 with
//!   microseconds, `Duration` Go's duration string (`1h0m0s`), `RawExtension` and `FieldsV1`
//!   the JSON they carry, `bytes` base64;
//! - `int64` values are JSON numbers; fields the table does not know are skipped.
//!
//! The supported kinds are the stable built-in ones (core, apps, batch, coordination,
//! discovery, events, policy, autoscaling, rbac, networking, storage, scheduling, node,
//! certificates, authentication, authorization, admissionregistration, flowcontrol), the
//! subresource bodies `policy/v1 Eviction`, `autoscaling/v1 Scale` and
//! `authentication.k8s.io/v1 TokenRequest`, and `DeleteOptions` under any apiVersion;
//! [`supported_kinds`] lists them.

mod decode;
mod format;
mod generated;
mod table;
pub(crate) mod wire;

#[cfg(test)]
mod tests;

use serde_json::Value;

/// The media type of Kubernetes protobuf bodies.
pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The four bytes every Kubernetes protobuf body starts with.
pub const MAGIC: &[u8] = b"k8s\0";

/// How deeply messages may nest (including objects embedded in `RawExtension`s).
pub const MAX_DEPTH: usize = 100;

/// Why a protobuf body could not be decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtoError {
    /// The body does not start with [`MAGIC`].
    #[error("not a Kubernetes protobuf body: it does not start with the magic bytes \"k8s\\0\"")]
    MissingMagic,
    /// The input ends inside a field key.
    #[error("truncated field key in message {message}")]
    TruncatedKey {
        /// The message being read.
        message: &'static str,
    },
    /// The input ends inside a field's value (or a varint has more than ten bytes).
    #[error("truncated {what} at field {field} of message {message}")]
    Truncated {
        /// The message being read.
        message: &'static str,
        /// The field number.
        field: u32,
        /// What was being read: `varint`, `length`, `bytes`, `fixed64`, …
        what: &'static str,
    },
    /// A field key has number 0 or one beyond protobuf's range.
    #[error("invalid field number {number} in message {message}")]
    InvalidFieldNumber {
        /// The message being read.
        message: &'static str,
        /// The number.
        number: u64,
    },
    /// A field uses a wire type that Kubernetes messages never do (groups, 6, 7).
    #[error("unsupported wire type {wire_type} at field {field} of message {message}")]
    UnsupportedWireType {
        /// The message being read.
        message: &'static str,
        /// The field number.
        field: u32,
        /// The wire type.
        wire_type: u8,
    },
    /// A known field has another wire type than its declaration gives.
    #[error(
        "wire-type mismatch at field {field} ({json}) of message {message}: expected {expected}, found wire type {found}"
    )]
    WireType {
        /// The message being read.
        message: &'static str,
        /// The field number.
        field: u32,
        /// The field's JSON name.
        json: &'static str,
        /// The expected encoding: `varint`, `fixed64` or `length-delimited`.
        expected: &'static str,
        /// The wire type found.
        found: u8,
    },
    /// A well-formed value that has no JSON form (a bad quantity, an out-of-range time, …).
    #[error("invalid value at field {field} of message {message}: {reason}")]
    InvalidValue {
        /// The message being read.
        message: &'static str,
        /// The field number.
        field: u32,
        /// What is wrong.
        reason: String,
    },
    /// The body's kind has no message in the table.
    #[error("unknown kind {api_version} {kind}")]
    UnknownKind {
        /// The apiVersion.
        api_version: String,
        /// The kind.
        kind: String,
    },
    /// The envelope names no kind and the caller expected none ([`decode()`]).
    #[error("the body's typeMeta has no apiVersion and kind")]
    MissingTypeMeta,
    /// The envelope's `contentEncoding` is set (Kubernetes never sets it).
    #[error("unsupported contentEncoding {0:?}")]
    UnsupportedContentEncoding(String),
    /// The envelope's `contentType` is neither protobuf nor JSON.
    #[error("unsupported contentType {0:?}")]
    UnsupportedContentType(String),
    /// Messages nest more than [`MAX_DEPTH`] levels.
    #[error("messages nest more than {MAX_DEPTH} levels (in {message})")]
    TooDeep {
        /// The message that was one level too deep.
        message: &'static str,
    },
}

/// Decodes a protobuf body into the object's Kubernetes JSON, with `apiVersion` and `kind`
/// from the envelope's `typeMeta` (kubectl always sets them); fails with
/// [`ProtoError::MissingTypeMeta`] when the envelope has none — use [`decode_as`] then.
pub fn decode(body: &[u8]) -> Result<Value, ProtoError> {
    decode::Decoder::new().body(body, None)
}

/// Decodes a protobuf body like [`decode()`], but when the envelope's `typeMeta` is empty, reads
/// the object as the `api_version` `kind` the caller expects (e.g. from the request path) and
/// returns it without `apiVersion` and `kind`, for the caller to fill in. When the envelope
/// names a kind, that kind is used, and set in the object, as in a JSON body: checking it
/// against the expected one is the caller's business.
pub fn decode_as(body: &[u8], api_version: &str, kind: &str) -> Result<Value, ProtoError> {
    decode::Decoder::new().body(body, Some((api_version, kind)))
}

/// Whether bodies of this kind can be decoded.
pub fn supports(api_version: &str, kind: &str) -> bool {
    table::root(api_version, kind).is_some()
}

/// Every supported `(apiVersion, kind)`, sorted (`DeleteOptions` is also accepted under any
/// other apiVersion).
pub fn supported_kinds() -> impl Iterator<Item = (&'static str, &'static str)> {
    table::roots()
}
