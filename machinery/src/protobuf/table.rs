//! The shapes of the generated message table ([`super::generated`]) and look-ups in it.
//!
//! A message is a list of fields sorted by tag; a field says how its wire value becomes JSON:
//! its JSON name, its [`Kind`] and flags. Messages refer to each other by index into
//! [`super::generated::MESSAGES`], so the table is plain static data.

use super::generated::{MESSAGES, ROOTS};

/// The field is `repeated`: its values make a JSON array.
pub(super) const REPEATED: u8 = 1;
/// A scalar whose zero value (`""`, `0`, `false`, no bytes) Go's JSON encoding drops
/// (`omitempty` on a non-pointer field). Go's protobuf encoding writes such fields always.
pub(super) const OMIT_ZERO: u8 = 2;
/// A message embedded inline (`json:",inline"`): its fields go into the enclosing JSON object.
pub(super) const INLINE: u8 = 4;

/// How a field's wire value is read and written as JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// `string`: a JSON string.
    String,
    /// `bool`: JSON `true`/`false`.
    Bool,
    /// `int32`: a JSON number.
    Int32,
    /// `int64`: a JSON number.
    Int64,
    /// `double`: a JSON number.
    #[allow(
        dead_code,
        reason = "no double field is reachable from the supported kinds today"
    )]
    Double,
    /// `bytes`: a base64 JSON string, as Go encodes `[]byte`.
    Bytes,
    /// An embedded message, by index into `MESSAGES`.
    Message(u16),
    /// `map<string, string>`: a JSON object of strings.
    MapString,
    /// `map<string, bytes>`: a JSON object of base64 strings.
    MapBytes,
    /// `map<string, message>`: a JSON object of the messages' JSON, by index into `MESSAGES`.
    MapMessage(u16),
}

/// A message whose JSON form is not an object of its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Special {
    /// An ordinary message: a JSON object of its fields.
    None,
    /// `resource.Quantity` (1: string): the canonical quantity string.
    Quantity,
    /// `intstr.IntOrString` (1: type, 2: intVal, 3: strVal): a number or a string.
    IntOrString,
    /// `meta/v1.Time` (1: seconds, 2: nanos, ignored): RFC 3339 in whole seconds, or `null`.
    Time,
    /// `meta/v1.MicroTime` (1: seconds, 2: nanos): RFC 3339 with microseconds, or `null`.
    MicroTime,
    /// `meta/v1.Duration` (1: nanoseconds): Go's duration string, e.g. `1h0m0s`.
    #[allow(
        dead_code,
        reason = "no Duration is reachable from the supported kinds today"
    )]
    Duration,
    /// `meta/v1.FieldsV1` (1: raw JSON): that JSON.
    FieldsV1,
    /// `runtime.RawExtension` (1: raw, JSON or an embedded protobuf object): that object.
    RawExtension,
    /// A Go string slice type (`ExtraValue`), wrapped as `repeated string items = 1`: an array.
    StringList,
}

/// A message of the table.
#[derive(Debug)]
pub(super) struct MessageDef {
    /// The full protobuf name, e.g. `k8s.io.api.core.v1.Pod`.
    pub name: &'static str,
    /// How the message turns into JSON, when not field by field.
    pub special: Special,
    /// The fields, sorted by tag.
    pub fields: &'static [FieldDef],
}

/// A field of a [`MessageDef`].
#[derive(Debug)]
pub(super) struct FieldDef {
    /// The protobuf field number.
    pub tag: u32,
    /// The JSON field name (for an inline field, its protobuf name, used in errors only).
    pub json: &'static str,
    /// How the value is read and written.
    pub kind: Kind,
    /// [`REPEATED`], [`OMIT_ZERO`] and [`INLINE`].
    pub flags: u8,
}

impl FieldDef {
    /// Whether the field is repeated.
    pub fn repeated(&self) -> bool {
        self.flags & REPEATED != 0
    }

    /// Whether Go's JSON drops the field's zero value.
    pub fn omit_zero(&self) -> bool {
        self.flags & OMIT_ZERO != 0
    }

    /// Whether the field is a message embedded inline.
    pub fn inline(&self) -> bool {
        self.flags & INLINE != 0
    }
}

impl MessageDef {
    /// The field with protobuf number `tag`, if the message has one.
    pub fn field(&self, tag: u32) -> Option<&'static FieldDef> {
        let fields: &'static [FieldDef] = self.fields;
        fields
            .binary_search_by_key(&tag, |f| f.tag)
            .ok()
            .and_then(|i| fields.get(i))
    }
}

/// A kind a request body may carry, and its message.
#[derive(Debug)]
pub(super) struct Root {
    /// `apiVersion`, e.g. `apps/v1` (`v1` for the core group).
    pub api_version: &'static str,
    /// `kind`, e.g. `Deployment`.
    pub kind: &'static str,
    /// Index into `MESSAGES`.
    pub message: u16,
}

/// The message with the given index (indices in the generated table are always valid).
pub(super) fn message(index: u16) -> Option<&'static MessageDef> {
    MESSAGES.get(usize::from(index))
}

/// The message of a kind. `DeleteOptions` is accepted under any apiVersion, as Kubernetes
/// registers it in every group version.
pub(super) fn root(api_version: &str, kind: &str) -> Option<&'static MessageDef> {
    let find = |api_version: &str, kind: &str| {
        ROOTS
            .binary_search_by(|r| (r.api_version, r.kind).cmp(&(api_version, kind)))
            .ok()
            .and_then(|i| ROOTS.get(i))
            .and_then(|r| message(r.message))
    };
    find(api_version, kind).or_else(|| {
        if kind == "DeleteOptions" {
            find("meta.k8s.io/v1", kind)
        } else {
            None
        }
    })
}

/// Every supported kind, as `(apiVersion, kind)`.
pub(super) fn roots() -> impl Iterator<Item = (&'static str, &'static str)> {
    ROOTS.iter().map(|r| (r.api_version, r.kind))
}
