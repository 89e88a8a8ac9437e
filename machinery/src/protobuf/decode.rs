//! Walking encoded messages with the table and writing their Kubernetes JSON.
//!
//! Go's protobuf encoding of the API types writes every non-pointer field, zero or not, while
//! its JSON encoding drops zero `omitempty` scalars; the table's [`OMIT_ZERO`] flag tells which,
//! so zero values are dropped or kept as Kubernetes' own JSON would. Messages are always
//! written (Go's JSON never drops a struct), repeated fields and maps only when they have
//! entries. A field seen twice merges as protobuf says: the last scalar wins, messages merge,
//! repeated fields append.
//!
//! [`OMIT_ZERO`]: super::table::OMIT_ZERO

use base64::Engine as _;
use serde_json::{Map, Number, Value};

use super::format::{GO_ZERO_TIME_SECONDS, go_duration, rfc3339};
use super::table::{self, FieldDef, Kind, MessageDef, Special};
use super::wire::{Fields, WireValue, packed_fixed64, packed_varints};
use super::{CONTENT_TYPE, MAGIC, MAX_DEPTH, ProtoError};

/// The envelope's message name, in errors.
const UNKNOWN: &str = "k8s.io.apimachinery.pkg.runtime.Unknown";
/// The envelope's type message name, in errors.
const TYPE_META: &str = "k8s.io.apimachinery.pkg.runtime.TypeMeta";

/// A `runtime.Unknown` envelope, without the magic.
#[derive(Debug, Default)]
struct Envelope<'a> {
    api_version: String,
    kind: String,
    raw: &'a [u8],
    content_encoding: String,
    content_type: String,
}

/// Decodes messages, tracking how deeply they nest.
pub(super) struct Decoder {
    depth: usize,
}

impl Decoder {
    /// A decoder at the top level.
    pub fn new() -> Self {
        Decoder { depth: 0 }
    }

    /// The object in a body (magic and envelope), typed by the envelope's `typeMeta`, else by
    /// `expected` (`(apiVersion, kind)`). The object gets `apiVersion` and `kind` from the
    /// envelope when it has them.
    pub fn body(
        &mut self,
        body: &[u8],
        expected: Option<(&str, &str)>,
    ) -> Result<Value, ProtoError> {
        let rest = body.strip_prefix(MAGIC).ok_or(ProtoError::MissingMagic)?;
        let envelope = parse_envelope(rest)?;
        if !envelope.content_encoding.is_empty() {
            return Err(ProtoError::UnsupportedContentEncoding(
                envelope.content_encoding,
            ));
        }
        let (api_version, kind) = match (envelope.api_version.as_str(), envelope.kind.as_str()) {
            ("", _) | (_, "") => {
                let (ev, ek) = expected.ok_or(ProtoError::MissingTypeMeta)?;
                (
                    non_empty_or(&envelope.api_version, ev),
                    non_empty_or(&envelope.kind, ek),
                )
            }
            (v, k) => (v, k),
        };
        let mut object = match envelope.content_type.as_str() {
            "" | CONTENT_TYPE => {
                let def =
                    table::root(api_version, kind).ok_or_else(|| ProtoError::UnknownKind {
                        api_version: api_version.to_string(),
                        kind: kind.to_string(),
                    })?;
                self.value(envelope.raw, def)?
            }
            "application/json" => {
                serde_json::from_slice(envelope.raw).map_err(|e| ProtoError::InvalidValue {
                    message: UNKNOWN,
                    field: 2,
                    reason: format!("raw is not JSON: {e}"),
                })?
            }
            other => return Err(ProtoError::UnsupportedContentType(other.to_string())),
        };
        if let Value::Object(map) = &mut object {
            if !envelope.api_version.is_empty() {
                map.insert("apiVersion".into(), Value::String(envelope.api_version));
            }
            if !envelope.kind.is_empty() {
                map.insert("kind".into(), Value::String(envelope.kind));
            }
        }
        Ok(object)
    }

    /// The JSON of an encoded message.
    pub fn value(&mut self, buf: &[u8], def: &'static MessageDef) -> Result<Value, ProtoError> {
        if def.special != Special::None {
            return self.special(buf, def);
        }
        let mut map = Map::new();
        self.fields_into(buf, def, &mut map)?;
        Ok(Value::Object(map))
    }

    /// Adds the fields of an encoded message to `out`.
    fn fields_into(
        &mut self,
        buf: &[u8],
        def: &'static MessageDef,
        out: &mut Map<String, Value>,
    ) -> Result<(), ProtoError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ProtoError::TooDeep { message: def.name });
        }
        for item in Fields::new(buf, def.name) {
            let (tag, value) = item?;
            // Fields this table does not know (newer than it) are skipped.
            if let Some(field) = def.field(tag) {
                self.field(def, field, value, out)?;
            }
        }
        self.depth -= 1;
        Ok(())
    }

    fn field(
        &mut self,
        def: &'static MessageDef,
        field: &'static FieldDef,
        value: WireValue<'_>,
        out: &mut Map<String, Value>,
    ) -> Result<(), ProtoError> {
        let key = field.json;
        match field.kind {
            Kind::Message(index) => {
                let bytes = length_delimited(def, field, value)?;
                let sub = lookup(def, field, index)?;
                if field.inline() {
                    self.fields_into(bytes, sub, out)
                } else if field.repeated() {
                    let element = self.value(bytes, sub)?;
                    push(out, key, element);
                    Ok(())
                } else if sub.special != Special::None {
                    let element = self.value(bytes, sub)?;
                    out.insert(key.to_string(), element);
                    Ok(())
                } else {
                    let slot = out.entry(key).or_insert_with(|| Value::Object(Map::new()));
                    if !slot.is_object() {
                        *slot = Value::Object(Map::new());
                    }
                    match slot {
                        Value::Object(map) => self.fields_into(bytes, sub, map),
                        _ => Ok(()),
                    }
                }
            }
            Kind::MapString | Kind::MapBytes | Kind::MapMessage(_) => {
                let entry = length_delimited(def, field, value)?;
                let (k, v) = self.map_entry(def, field, entry)?;
                let slot = out.entry(key).or_insert_with(|| Value::Object(Map::new()));
                if !slot.is_object() {
                    *slot = Value::Object(Map::new());
                }
                if let Value::Object(map) = slot {
                    map.insert(k, v);
                }
                Ok(())
            }
            Kind::String | Kind::Bool | Kind::Int32 | Kind::Int64 | Kind::Double | Kind::Bytes => {
                if field.repeated() {
                    for element in scalars(def, field, value)? {
                        push(out, key, element);
                    }
                } else {
                    let v = scalar(def, field, value)?;
                    if field.omit_zero() && is_zero(&v) {
                        out.remove(key);
                    } else {
                        out.insert(key.to_string(), v);
                    }
                }
                Ok(())
            }
        }
    }

    /// The key and JSON value of one map entry (`1: key, 2: value`; absent ones are empty).
    fn map_entry(
        &mut self,
        def: &'static MessageDef,
        field: &'static FieldDef,
        entry: &[u8],
    ) -> Result<(String, Value), ProtoError> {
        let mut key = String::new();
        let mut value: Option<&[u8]> = None;
        for item in Fields::new(entry, def.name) {
            match item? {
                (1, WireValue::Bytes(b)) => key = String::from_utf8_lossy(b).into_owned(),
                (2, WireValue::Bytes(b)) => value = Some(b),
                (n @ (1 | 2), other) => {
                    return Err(ProtoError::WireType {
                        message: def.name,
                        field: field.tag,
                        json: if n == 1 { "(map key)" } else { "(map value)" },
                        expected: "length-delimited",
                        found: other.wire_type(),
                    });
                }
                _ => {}
            }
        }
        let raw = value.unwrap_or_default();
        let value = match field.kind {
            Kind::MapMessage(index) => self.value(raw, lookup(def, field, index)?)?,
            Kind::MapBytes => Value::String(base64::engine::general_purpose::STANDARD.encode(raw)),
            _ => Value::String(String::from_utf8_lossy(raw).into_owned()),
        };
        Ok((key, value))
    }

    /// The JSON of a message with a form of its own.
    fn special(&mut self, buf: &[u8], def: &'static MessageDef) -> Result<Value, ProtoError> {
        let invalid = |field: u32, reason: String| ProtoError::InvalidValue {
            message: def.name,
            field,
            reason,
        };
        let parts = SpecialFields::read(buf, def)?;
        let int = |tag: usize| parts.varints.get(tag).copied().flatten().unwrap_or(0);
        let bytes = |tag: usize| parts.bytes.get(tag).copied().flatten();
        let text =
            |tag: usize| String::from_utf8_lossy(bytes(tag).unwrap_or_default()).into_owned();
        Ok(match def.special {
            Special::Quantity => match bytes(1) {
                // Go's zero Quantity.
                None => Value::String("0".into()),
                Some(_) => {
                    let text = text(1);
                    let quantity = crate::quantity::Quantity::parse(&text)
                        .map_err(|e| invalid(1, format!("quantity {text:?}: {e}")))?;
                    Value::String(quantity.to_k8s_string())
                }
            },
            Special::IntOrString => match int(1) {
                0 => Value::from(int(2) as i32),
                1 => Value::String(text(3)),
                other => return Err(invalid(1, format!("IntOrString type {other}"))),
            },
            Special::Time => {
                // Kubernetes drops the nanoseconds of a Time when decoding it.
                let seconds = int(1) as i64;
                if buf.is_empty() || seconds == GO_ZERO_TIME_SECONDS {
                    Value::Null
                } else {
                    Value::String(
                        rfc3339(seconds, None)
                            .ok_or_else(|| invalid(1, format!("time {seconds}s out of range")))?,
                    )
                }
            }
            Special::MicroTime if buf.is_empty() => Value::Null,
            Special::MicroTime => {
                // Truncated to microseconds (towards zero), then normalized as Go's time.Unix
                // does.
                let nanos = i64::from(int(2) as i32);
                let nanos = nanos - nanos % 1_000;
                let seconds = (int(1) as i64)
                    .checked_add(nanos.div_euclid(1_000_000_000))
                    .ok_or_else(|| invalid(1, "time out of range".into()))?;
                let nanos = nanos.rem_euclid(1_000_000_000);
                if seconds == GO_ZERO_TIME_SECONDS && nanos == 0 {
                    Value::Null
                } else {
                    let micros = u32::try_from(nanos / 1_000).unwrap_or(0);
                    Value::String(
                        rfc3339(seconds, Some(micros))
                            .ok_or_else(|| invalid(1, format!("time {seconds}s out of range")))?,
                    )
                }
            }
            Special::Duration => Value::String(go_duration(int(1) as i64)),
            Special::FieldsV1 => match bytes(1) {
                None | Some([]) => Value::Null,
                Some(raw) => serde_json::from_slice(raw)
                    .map_err(|e| invalid(1, format!("fieldsV1 is not JSON: {e}")))?,
            },
            Special::RawExtension => match bytes(1) {
                None | Some([]) => Value::Null,
                Some(raw) if raw.starts_with(MAGIC) => {
                    self.depth += 1;
                    if self.depth > MAX_DEPTH {
                        return Err(ProtoError::TooDeep { message: def.name });
                    }
                    let object = self.body(raw, None)?;
                    self.depth -= 1;
                    object
                }
                Some(raw) => serde_json::from_slice(raw)
                    .map_err(|e| invalid(1, format!("raw is not JSON: {e}")))?,
            },
            Special::StringList => Value::Array(
                parts
                    .list
                    .iter()
                    .map(|b| Value::String(String::from_utf8_lossy(b).into_owned()))
                    .collect(),
            ),
            Special::None => Value::Null,
        })
    }
}

/// Field 1 to 3 of a special message, read without a table; the last occurrence wins, and
/// `list` keeps every occurrence of field 1 (for [`Special::StringList`]).
struct SpecialFields<'a> {
    varints: [Option<u64>; 4],
    bytes: [Option<&'a [u8]>; 4],
    list: Vec<&'a [u8]>,
}

impl<'a> SpecialFields<'a> {
    fn read(buf: &'a [u8], def: &'static MessageDef) -> Result<Self, ProtoError> {
        let mut parts = SpecialFields {
            varints: [None; 4],
            bytes: [None; 4],
            list: Vec::new(),
        };
        for item in Fields::new(buf, def.name) {
            let (tag, value) = item?;
            let Some((name, want_bytes)) = special_field(def.special, tag) else {
                continue;
            };
            let slot = usize::try_from(tag).unwrap_or(0);
            match value {
                WireValue::Bytes(b) if want_bytes => {
                    parts.list.push(b);
                    if let Some(s) = parts.bytes.get_mut(slot) {
                        *s = Some(b);
                    }
                }
                WireValue::Varint(v) if !want_bytes => {
                    if let Some(s) = parts.varints.get_mut(slot) {
                        *s = Some(v);
                    }
                }
                other => {
                    return Err(ProtoError::WireType {
                        message: def.name,
                        field: tag,
                        json: name,
                        expected: if want_bytes {
                            "length-delimited"
                        } else {
                            "varint"
                        },
                        found: other.wire_type(),
                    });
                }
            }
        }
        Ok(parts)
    }
}

/// The name of a special message's field and whether it is length-delimited (else a varint).
fn special_field(special: Special, tag: u32) -> Option<(&'static str, bool)> {
    Some(match (special, tag) {
        (Special::Quantity, 1) => ("string", true),
        (Special::IntOrString, 1) => ("type", false),
        (Special::IntOrString, 2) => ("intVal", false),
        (Special::IntOrString, 3) => ("strVal", true),
        (Special::Time | Special::MicroTime, 1) => ("seconds", false),
        (Special::Time | Special::MicroTime, 2) => ("nanos", false),
        (Special::Duration, 1) => ("duration", false),
        (Special::FieldsV1 | Special::RawExtension, 1) => ("raw", true),
        (Special::StringList, 1) => ("items", true),
        _ => return None,
    })
}

fn non_empty_or<'a>(value: &'a str, fallback: &'a str) -> &'a str {
    if value.is_empty() { fallback } else { value }
}

/// Reads the envelope (after the magic).
fn parse_envelope(buf: &[u8]) -> Result<Envelope<'_>, ProtoError> {
    let mut envelope = Envelope::default();
    let text =
        |field: u32, json: &'static str, value: WireValue<'_>, message: &'static str| match value {
            WireValue::Bytes(b) => Ok(String::from_utf8_lossy(b).into_owned()),
            other => Err(ProtoError::WireType {
                message,
                field,
                json,
                expected: "length-delimited",
                found: other.wire_type(),
            }),
        };
    for item in Fields::new(buf, UNKNOWN) {
        match item? {
            (1, WireValue::Bytes(type_meta)) => {
                for item in Fields::new(type_meta, TYPE_META) {
                    match item? {
                        (1, v) => envelope.api_version = text(1, "apiVersion", v, TYPE_META)?,
                        (2, v) => envelope.kind = text(2, "kind", v, TYPE_META)?,
                        _ => {}
                    }
                }
            }
            (2, WireValue::Bytes(raw)) => envelope.raw = raw,
            (3, v) => envelope.content_encoding = text(3, "contentEncoding", v, UNKNOWN)?,
            (4, v) => envelope.content_type = text(4, "contentType", v, UNKNOWN)?,
            (n @ (1 | 2), other) => {
                return Err(ProtoError::WireType {
                    message: UNKNOWN,
                    field: n,
                    json: if n == 1 { "typeMeta" } else { "raw" },
                    expected: "length-delimited",
                    found: other.wire_type(),
                });
            }
            _ => {}
        }
    }
    Ok(envelope)
}

/// The bytes of a length-delimited field, or a wire-type error.
fn length_delimited<'a>(
    def: &'static MessageDef,
    field: &'static FieldDef,
    value: WireValue<'a>,
) -> Result<&'a [u8], ProtoError> {
    match value {
        WireValue::Bytes(b) => Ok(b),
        other => Err(mismatch(def, field, "length-delimited", other)),
    }
}

fn mismatch(
    def: &'static MessageDef,
    field: &'static FieldDef,
    expected: &'static str,
    found: WireValue<'_>,
) -> ProtoError {
    ProtoError::WireType {
        message: def.name,
        field: field.tag,
        json: field.json,
        expected,
        found: found.wire_type(),
    }
}

/// The message a field refers to.
fn lookup(
    def: &'static MessageDef,
    field: &'static FieldDef,
    index: u16,
) -> Result<&'static MessageDef, ProtoError> {
    table::message(index).ok_or_else(|| ProtoError::InvalidValue {
        message: def.name,
        field: field.tag,
        reason: format!("message table has no entry {index}"),
    })
}

/// One scalar value as JSON.
fn scalar(
    def: &'static MessageDef,
    field: &'static FieldDef,
    value: WireValue<'_>,
) -> Result<Value, ProtoError> {
    Ok(match (field.kind, value) {
        (Kind::String, WireValue::Bytes(b)) => {
            Value::String(String::from_utf8_lossy(b).into_owned())
        }
        (Kind::Bytes, WireValue::Bytes(b)) => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(b))
        }
        (Kind::Bool, WireValue::Varint(v)) => Value::Bool(v != 0),
        (Kind::Int32, WireValue::Varint(v)) => Value::from(v as i32),
        (Kind::Int64, WireValue::Varint(v)) => Value::from(v as i64),
        (Kind::Double, WireValue::Fixed64(v)) => double(def, field, f64::from_bits(v))?,
        (Kind::String | Kind::Bytes, other) => {
            return Err(mismatch(def, field, "length-delimited", other));
        }
        (Kind::Double, other) => return Err(mismatch(def, field, "fixed64", other)),
        (_, other) => return Err(mismatch(def, field, "varint", other)),
    })
}

/// The values of a repeated scalar field's occurrence, packed or not.
fn scalars(
    def: &'static MessageDef,
    field: &'static FieldDef,
    value: WireValue<'_>,
) -> Result<Vec<Value>, ProtoError> {
    match (field.kind, value) {
        (Kind::Bool | Kind::Int32 | Kind::Int64, WireValue::Bytes(b)) => {
            packed_varints(b, def.name, field.tag)?
                .into_iter()
                .map(|v| scalar(def, field, WireValue::Varint(v)))
                .collect()
        }
        (Kind::Double, WireValue::Bytes(b)) => packed_fixed64(b, def.name, field.tag)?
            .into_iter()
            .map(|v| scalar(def, field, WireValue::Fixed64(v)))
            .collect(),
        _ => Ok(vec![scalar(def, field, value)?]),
    }
}

/// A float as Go's JSON writes it: whole numbers without a fraction.
fn double(def: &'static MessageDef, field: &'static FieldDef, v: f64) -> Result<Value, ProtoError> {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        return Ok(Value::from(v as i64));
    }
    Number::from_f64(v)
        .map(Value::Number)
        .ok_or_else(|| ProtoError::InvalidValue {
            message: def.name,
            field: field.tag,
            reason: format!("{v} has no JSON form"),
        })
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::String(s) => s.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        _ => false,
    }
}

/// Appends to the array at `key`, creating it.
fn push(out: &mut Map<String, Value>, key: &str, element: Value) {
    let slot = out.entry(key).or_insert_with(|| Value::Array(Vec::new()));
    if !slot.is_array() {
        *slot = Value::Array(Vec::new());
    }
    if let Value::Array(items) = slot {
        items.push(element);
    }
}
