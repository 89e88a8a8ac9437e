//! The Swagger 2.0 document (`/openapi/v2`) in its protobuf encoding: the `openapi.v2.Document`
//! message of gnostic's `OpenAPIv2.proto`, which Kubernetes serves for
//! `Accept: application/com.github.proto-openapi.spec.v2@v1.0+protobuf`.
//!
//! kubectl asks for nothing else when it falls back to client-side validation: for a `v1/List`
//! (what `kubectl get -o yaml` writes, so what users apply back), and for every kind whose
//! OpenAPI v3 operation does not advertise server-side field validation. It parses the body as
//! protobuf, and a JSON answer fails with "proto: cannot parse invalid wire-format data".
//!
//! [`encode`] converts the JSON document: every object becomes the message gnostic maps that
//! part of a Swagger 2.0 document to, field for field. Values gnostic keeps as `Any` (vendor
//! extensions `x-…`, `default`, `example`, `enum` members) carry their JSON text in `Any.yaml`
//! (JSON is YAML), which is how kube-openapi reads `x-kubernetes-group-version-kind` and the
//! patch extensions back. Proto3 defaults (empty strings, `false`, zero) are left out, as
//! protobuf encoders do.

use serde_json::{Map, Value};

/// The media type kubectl asks for (client-go's `openAPIV2mimePb`).
pub const MEDIA_TYPE: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";
/// The media type of the answer, as Kubernetes writes it.
pub const CONTENT_TYPE: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// Whether an `Accept` header asks for the protobuf document (either spelling of its media type
/// Kubernetes accepts).
pub fn accepts_protobuf(accept: &str) -> bool {
    accept.split(',').any(|part| {
        let media = part.split(';').next().unwrap_or("").trim();
        media.eq_ignore_ascii_case(MEDIA_TYPE)
            || media
                .eq_ignore_ascii_case("application/com.github.proto-openapi.spec.v2.v1.0+protobuf")
    })
}

/// Encodes a Swagger 2.0 document (as [`super::openapi_v2`] builds it) as an
/// `openapi.v2.Document` message.
pub fn encode(doc: &Value) -> Vec<u8> {
    let mut w = Writer::default();
    let Some(doc) = doc.as_object() else {
        return w.buf;
    };
    w.string(1, str_of(doc, "swagger"));
    if let Some(info) = doc.get("info").and_then(Value::as_object) {
        w.message(2, |w| self::info(w, info));
    }
    w.string(3, str_of(doc, "host"));
    w.string(4, str_of(doc, "basePath"));
    w.strings(5, doc.get("schemes"));
    w.strings(6, doc.get("consumes"));
    w.strings(7, doc.get("produces"));
    if let Some(paths) = doc.get("paths").and_then(Value::as_object) {
        w.message(8, |w| {
            extensions(w, 1, paths);
            for (path, item) in paths.iter().filter(|(k, _)| !k.starts_with("x-")) {
                if let Some(item) = item.as_object() {
                    w.named(2, path, |w| path_item(w, item));
                }
            }
        });
    }
    if let Some(defs) = doc.get("definitions").and_then(Value::as_object) {
        w.message(9, |w| {
            for (name, schema) in defs {
                w.named(1, name, |w| self::schema(w, schema));
            }
        });
    }
    if let Some(params) = doc.get("parameters").and_then(Value::as_object) {
        w.message(10, |w| {
            for (name, p) in params {
                w.named(1, name, |w| parameter(w, p));
            }
        });
    }
    if let Some(responses) = doc.get("responses").and_then(Value::as_object) {
        w.message(11, |w| {
            for (name, r) in responses {
                if let Some(r) = r.as_object() {
                    w.named(1, name, |w| response(w, r));
                }
            }
        });
    }
    for requirement in array(doc.get("security")) {
        if let Some(requirement) = requirement.as_object() {
            w.message(12, |w| security_requirement(w, requirement));
        }
    }
    if let Some(defs) = doc.get("securityDefinitions").and_then(Value::as_object) {
        w.message(13, |w| {
            for (name, def) in defs {
                if let Some(def) = def.as_object() {
                    w.named(1, name, |w| security_definition(w, def));
                }
            }
        });
    }
    for tag in array(doc.get("tags")) {
        if let Some(tag) = tag.as_object() {
            w.message(14, |w| {
                w.string(1, str_of(tag, "name"));
                w.string(2, str_of(tag, "description"));
                external_docs(w, 3, tag);
                extensions(w, 4, tag);
            });
        }
    }
    external_docs(&mut w, 15, doc);
    extensions(&mut w, 16, doc);
    w.buf
}

fn info(w: &mut Writer, info: &Map<String, Value>) {
    w.string(1, str_of(info, "title"));
    w.string(2, str_of(info, "version"));
    w.string(3, str_of(info, "description"));
    w.string(4, str_of(info, "termsOfService"));
    if let Some(contact) = info.get("contact").and_then(Value::as_object) {
        w.message(5, |w| {
            w.string(1, str_of(contact, "name"));
            w.string(2, str_of(contact, "url"));
            w.string(3, str_of(contact, "email"));
            extensions(w, 4, contact);
        });
    }
    if let Some(license) = info.get("license").and_then(Value::as_object) {
        w.message(6, |w| {
            w.string(1, str_of(license, "name"));
            w.string(2, str_of(license, "url"));
            extensions(w, 3, license);
        });
    }
    extensions(w, 7, info);
}

/// `PathItem`: `$ref`, one `Operation` per method, shared parameters.
fn path_item(w: &mut Writer, item: &Map<String, Value>) {
    w.string(1, str_of(item, "$ref"));
    for (field, method) in [
        (2, "get"),
        (3, "put"),
        (4, "post"),
        (5, "delete"),
        (6, "options"),
        (7, "head"),
        (8, "patch"),
    ] {
        if let Some(op) = item.get(method).and_then(Value::as_object) {
            w.message(field, |w| operation(w, op));
        }
    }
    for p in array(item.get("parameters")) {
        w.message(9, |w| parameters_item(w, p));
    }
    extensions(w, 10, item);
}

fn operation(w: &mut Writer, op: &Map<String, Value>) {
    w.strings(1, op.get("tags"));
    w.string(2, str_of(op, "summary"));
    w.string(3, str_of(op, "description"));
    external_docs(w, 4, op);
    w.string(5, str_of(op, "operationId"));
    w.strings(6, op.get("produces"));
    w.strings(7, op.get("consumes"));
    for p in array(op.get("parameters")) {
        w.message(8, |w| parameters_item(w, p));
    }
    if let Some(responses) = op.get("responses").and_then(Value::as_object) {
        w.message(9, |w| {
            for (code, r) in responses.iter().filter(|(k, _)| !k.starts_with("x-")) {
                let Some(r) = r.as_object() else { continue };
                // ResponseValue: a response (1) or a reference (2).
                w.named(1, code, |w| match r.get("$ref").and_then(Value::as_str) {
                    Some(target) => w.message(2, |w| json_reference(w, target, r)),
                    None => w.message(1, |w| response(w, r)),
                });
            }
            extensions(w, 2, responses);
        });
    }
    w.strings(10, op.get("schemes"));
    w.bool(11, bool_of(op, "deprecated"));
    for requirement in array(op.get("security")) {
        if let Some(requirement) = requirement.as_object() {
            w.message(12, |w| security_requirement(w, requirement));
        }
    }
    extensions(w, 13, op);
}

/// `ParametersItem`: a parameter (1) or a reference to one (2).
fn parameters_item(w: &mut Writer, p: &Value) {
    let Some(obj) = p.as_object() else { return };
    match obj.get("$ref").and_then(Value::as_str) {
        Some(target) => w.message(2, |w| json_reference(w, target, obj)),
        None => w.message(1, |w| parameter(w, p)),
    }
}

fn json_reference(w: &mut Writer, target: &str, obj: &Map<String, Value>) {
    w.string(1, target);
    w.string(2, str_of(obj, "description"));
}

/// `Parameter`: a body parameter (1) or a non-body one (2), which is a header (1), form data
/// (2), query (3) or path (4) parameter.
fn parameter(w: &mut Writer, p: &Value) {
    let Some(p) = p.as_object() else { return };
    let location = str_of(p, "in");
    if location == "body" {
        w.message(1, |w| {
            w.string(1, str_of(p, "description"));
            w.string(2, str_of(p, "name"));
            w.string(3, location);
            w.bool(4, bool_of(p, "required"));
            if let Some(schema) = p.get("schema") {
                w.message(5, |w| self::schema(w, schema));
            }
            extensions(w, 6, p);
        });
        return;
    }
    // Header and path parameters have no allowEmptyValue: their fields from `type` on sit one
    // number lower than those of query and form-data parameters.
    let (variant, first) = match location {
        "header" => (1, 5),
        "formData" => (2, 6),
        "path" => (4, 5),
        _ => (3, 6),
    };
    w.message(2, |w| {
        w.message(variant, |w| {
            w.bool(1, bool_of(p, "required"));
            w.string(2, location);
            w.string(3, str_of(p, "description"));
            w.string(4, str_of(p, "name"));
            if first == 6 {
                w.bool(5, bool_of(p, "allowEmptyValue"));
            }
            let after = primitive(w, first, p);
            extensions(w, after, p);
        });
    });
}

/// The 17 fields from `type` to `multipleOf` that parameters, headers and `PrimitivesItems`
/// share, numbered from `first`; answers the number after them (their extensions').
fn primitive(w: &mut Writer, first: u32, p: &Map<String, Value>) -> u32 {
    w.string(first, str_of(p, "type"));
    w.string(first + 1, str_of(p, "format"));
    if let Some(items) = p.get("items").and_then(Value::as_object) {
        w.message(first + 2, |w| {
            let after = primitive(w, 1, items);
            extensions(w, after, items);
        });
    }
    w.string(first + 3, str_of(p, "collectionFormat"));
    if let Some(default) = p.get("default") {
        w.message(first + 4, |w| any(w, default));
    }
    w.double(first + 5, f64_of(p, "maximum"));
    w.bool(first + 6, bool_of(p, "exclusiveMaximum"));
    w.double(first + 7, f64_of(p, "minimum"));
    w.bool(first + 8, bool_of(p, "exclusiveMinimum"));
    w.int64(first + 9, i64_of(p, "maxLength"));
    w.int64(first + 10, i64_of(p, "minLength"));
    w.string(first + 11, str_of(p, "pattern"));
    w.int64(first + 12, i64_of(p, "maxItems"));
    w.int64(first + 13, i64_of(p, "minItems"));
    w.bool(first + 14, bool_of(p, "uniqueItems"));
    for v in array(p.get("enum")) {
        w.message(first + 15, |w| any(w, v));
    }
    w.double(first + 16, f64_of(p, "multipleOf"));
    first + 17
}

fn response(w: &mut Writer, r: &Map<String, Value>) {
    w.string(1, str_of(r, "description"));
    if let Some(schema) = r.get("schema") {
        // SchemaItem: a schema (1); a file schema (2) only for `type: file`, which this API
        // has none of and which is encoded as a schema too.
        w.message(2, |w| w.message(1, |w| self::schema(w, schema)));
    }
    if let Some(headers) = r.get("headers").and_then(Value::as_object) {
        w.message(3, |w| {
            for (name, h) in headers {
                let Some(h) = h.as_object() else { continue };
                w.named(1, name, |w| {
                    let after = primitive(w, 1, h);
                    w.string(after, str_of(h, "description"));
                    extensions(w, after + 1, h);
                });
            }
        });
    }
    if let Some(examples) = r.get("examples").and_then(Value::as_object) {
        w.message(4, |w| {
            for (media, v) in examples {
                w.named(1, media, |w| any(w, v));
            }
        });
    }
    extensions(w, 5, r);
}

/// `Schema`, every field of a Swagger 2.0 schema object.
fn schema(w: &mut Writer, s: &Value) {
    let Some(s) = s.as_object() else { return };
    w.string(1, str_of(s, "$ref"));
    w.string(2, str_of(s, "format"));
    w.string(3, str_of(s, "title"));
    w.string(4, str_of(s, "description"));
    if let Some(default) = s.get("default") {
        w.message(5, |w| any(w, default));
    }
    w.double(6, f64_of(s, "multipleOf"));
    w.double(7, f64_of(s, "maximum"));
    w.bool(8, bool_of(s, "exclusiveMaximum"));
    w.double(9, f64_of(s, "minimum"));
    w.bool(10, bool_of(s, "exclusiveMinimum"));
    w.int64(11, i64_of(s, "maxLength"));
    w.int64(12, i64_of(s, "minLength"));
    w.string(13, str_of(s, "pattern"));
    w.int64(14, i64_of(s, "maxItems"));
    w.int64(15, i64_of(s, "minItems"));
    w.bool(16, bool_of(s, "uniqueItems"));
    w.int64(17, i64_of(s, "maxProperties"));
    w.int64(18, i64_of(s, "minProperties"));
    w.strings(19, s.get("required"));
    for v in array(s.get("enum")) {
        w.message(20, |w| any(w, v));
    }
    match s.get("additionalProperties") {
        // AdditionalPropertiesItem: a schema (1) or a boolean (2), written even when false.
        Some(Value::Bool(b)) => w.message(21, |w| w.varint_field(2, u64::from(*b))),
        Some(v @ Value::Object(_)) => w.message(21, |w| w.message(1, |w| schema(w, v))),
        _ => {}
    }
    match s.get("type") {
        Some(Value::String(t)) => w.message(22, |w| w.string(1, t)),
        Some(types @ Value::Array(_)) => w.message(22, |w| w.strings(1, Some(types))),
        _ => {}
    }
    match s.get("items") {
        Some(items @ Value::Object(_)) => w.message(23, |w| w.message(1, |w| schema(w, items))),
        Some(Value::Array(items)) => w.message(23, |w| {
            for item in items {
                w.message(1, |w| schema(w, item));
            }
        }),
        _ => {}
    }
    for sub in array(s.get("allOf")) {
        w.message(24, |w| schema(w, sub));
    }
    if let Some(props) = s.get("properties").and_then(Value::as_object) {
        w.message(25, |w| {
            for (name, prop) in props {
                w.named(1, name, |w| schema(w, prop));
            }
        });
    }
    w.string(26, str_of(s, "discriminator"));
    w.bool(27, bool_of(s, "readOnly"));
    if let Some(xml) = s.get("xml").and_then(Value::as_object) {
        w.message(28, |w| {
            w.string(1, str_of(xml, "name"));
            w.string(2, str_of(xml, "namespace"));
            w.string(3, str_of(xml, "prefix"));
            w.bool(4, bool_of(xml, "attribute"));
            w.bool(5, bool_of(xml, "wrapped"));
            extensions(w, 6, xml);
        });
    }
    external_docs(w, 29, s);
    if let Some(example) = s.get("example") {
        w.message(30, |w| any(w, example));
    }
    extensions(w, 31, s);
}

/// `SecurityRequirement`: scheme name → the scopes it needs.
fn security_requirement(w: &mut Writer, requirement: &Map<String, Value>) {
    for (name, scopes) in requirement {
        w.named(1, name, |w| w.strings(1, Some(scopes)));
    }
}

/// `SecurityDefinitionsItem`: basic (1), API key (2) or one of the OAuth2 flows (3–6).
fn security_definition(w: &mut Writer, def: &Map<String, Value>) {
    match str_of(def, "type") {
        "basic" => w.message(1, |w| {
            w.string(1, "basic");
            w.string(2, str_of(def, "description"));
            extensions(w, 3, def);
        }),
        "apiKey" => w.message(2, |w| {
            w.string(1, "apiKey");
            w.string(2, str_of(def, "name"));
            w.string(3, str_of(def, "in"));
            w.string(4, str_of(def, "description"));
            extensions(w, 5, def);
        }),
        "oauth2" => {
            let flow = str_of(def, "flow");
            let (variant, authorization_url, token_url) = match flow {
                "implicit" => (3, true, false),
                "password" => (4, false, true),
                "application" => (5, false, true),
                _ => (6, true, true),
            };
            w.message(variant, |w| {
                w.string(1, "oauth2");
                w.string(2, flow);
                if let Some(scopes) = def.get("scopes").and_then(Value::as_object) {
                    w.message(3, |w| {
                        for (scope, text) in scopes {
                            // NamedString: its value is a string, not a message.
                            w.message(1, |w| {
                                w.string(1, scope);
                                w.string(2, text.as_str().unwrap_or(""));
                            });
                        }
                    });
                }
                let mut next = 4;
                if authorization_url {
                    w.string(next, str_of(def, "authorizationUrl"));
                    next += 1;
                }
                if token_url {
                    w.string(next, str_of(def, "tokenUrl"));
                    next += 1;
                }
                w.string(next, str_of(def, "description"));
                extensions(w, next + 1, def);
            });
        }
        _ => {}
    }
}

fn external_docs(w: &mut Writer, field: u32, parent: &Map<String, Value>) {
    if let Some(docs) = parent.get("externalDocs").and_then(Value::as_object) {
        w.message(field, |w| {
            w.string(1, str_of(docs, "description"));
            w.string(2, str_of(docs, "url"));
            extensions(w, 3, docs);
        });
    }
}

/// The `x-…` keys of an object, as repeated `NamedAny` in `field`.
fn extensions(w: &mut Writer, field: u32, obj: &Map<String, Value>) {
    for (name, value) in obj.iter().filter(|(k, _)| k.starts_with("x-")) {
        w.named(field, name, |w| any(w, value));
    }
}

/// gnostic's `Any` with the value's text in `yaml` (2).
fn any(w: &mut Writer, v: &Value) {
    w.string(2, &v.to_string());
}

fn str_of<'a>(obj: &'a Map<String, Value>, key: &str) -> &'a str {
    obj.get(key).and_then(Value::as_str).unwrap_or("")
}

fn bool_of(obj: &Map<String, Value>, key: &str) -> bool {
    obj.get(key).and_then(Value::as_bool).unwrap_or(false)
}

fn f64_of(obj: &Map<String, Value>, key: &str) -> f64 {
    obj.get(key).and_then(Value::as_f64).unwrap_or(0.0)
}

fn i64_of(obj: &Map<String, Value>, key: &str) -> i64 {
    obj.get(key).and_then(Value::as_i64).unwrap_or(0)
}

fn array(v: Option<&Value>) -> &[Value] {
    v.and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

/// A protobuf encoder of the few wire types these messages use.
#[derive(Default)]
struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push((v as u8 & 0x7f) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }

    fn key(&mut self, field: u32, wire_type: u8) {
        self.varint(u64::from(field) << 3 | u64::from(wire_type));
    }

    fn varint_field(&mut self, field: u32, v: u64) {
        self.key(field, 0);
        self.varint(v);
    }

    fn bytes(&mut self, field: u32, b: &[u8]) {
        self.key(field, 2);
        self.varint(b.len() as u64);
        self.buf.extend_from_slice(b);
    }

    /// A string field; empty strings are proto3's default and left out.
    fn string(&mut self, field: u32, s: &str) {
        if !s.is_empty() {
            self.bytes(field, s.as_bytes());
        }
    }

    /// A repeated string field from a JSON array of strings.
    fn strings(&mut self, field: u32, v: Option<&Value>) {
        for s in array(v).iter().filter_map(Value::as_str) {
            self.bytes(field, s.as_bytes());
        }
    }

    fn bool(&mut self, field: u32, b: bool) {
        if b {
            self.varint_field(field, 1);
        }
    }

    fn int64(&mut self, field: u32, v: i64) {
        if v != 0 {
            // Negative int64 values are ten-byte varints of their two's complement.
            self.varint_field(field, v as u64);
        }
    }

    fn double(&mut self, field: u32, v: f64) {
        if v != 0.0 {
            self.key(field, 1);
            self.buf.extend_from_slice(&v.to_le_bytes());
        }
    }

    /// An embedded message, written by `body`.
    fn message(&mut self, field: u32, body: impl FnOnce(&mut Writer)) {
        let mut inner = Writer::default();
        body(&mut inner);
        self.bytes(field, &inner.buf);
    }

    /// A `Named…` message (`name` = 1, `value` = 2) whose value `body` writes.
    fn named(&mut self, field: u32, name: &str, body: impl FnOnce(&mut Writer)) {
        self.message(field, |w| {
            w.string(1, name);
            w.message(2, body);
        });
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::protobuf::wire::{Fields, WireValue};
    use crate::schema::{ServedResource, openapi_v2};

    /// The fields of one encoded message.
    fn fields(buf: &[u8]) -> Vec<(u32, WireValue<'_>)> {
        Fields::new(buf, "test")
            .collect::<Result<Vec<_>, _>>()
            .expect("well-formed protobuf")
    }

    fn bytes_of(buf: &[u8], field: u32) -> Vec<&[u8]> {
        fields(buf)
            .into_iter()
            .filter(|(n, _)| *n == field)
            .map(|(_, v)| match v {
                WireValue::Bytes(b) => b,
                other => panic!("field {field} is {other:?}, not length-delimited"),
            })
            .collect()
    }

    fn one(buf: &[u8], field: u32) -> &[u8] {
        let all = bytes_of(buf, field);
        assert_eq!(all.len(), 1, "field {field} once");
        all[0]
    }

    fn text(buf: &[u8], field: u32) -> String {
        bytes_of(buf, field)
            .first()
            .map(|b| String::from_utf8(b.to_vec()).expect("UTF-8"))
            .unwrap_or_default()
    }

    fn varint(buf: &[u8], field: u32) -> Option<u64> {
        fields(buf).into_iter().find_map(|(n, v)| match v {
            WireValue::Varint(x) if n == field => Some(x),
            _ => None,
        })
    }

    /// The value of the `Named…` entry called `name` among the repeated `field`.
    fn named<'a>(buf: &'a [u8], field: u32, name: &str) -> &'a [u8] {
        bytes_of(buf, field)
            .into_iter()
            .find(|entry| text(entry, 1) == name)
            .map(|entry| one(entry, 2))
            .unwrap_or_else(|| panic!("no entry {name}"))
    }

    /// The JSON an extension's `Any.yaml` carries.
    fn extension(buf: &[u8], field: u32, name: &str) -> Value {
        serde_json::from_str(&text(named(buf, field, name), 2)).expect("JSON text")
    }

    #[test]
    fn the_served_document_keeps_what_kubectl_reads() {
        let served = [
            ServedResource::new("", "v1", "pods", "Pod", true),
            ServedResource::new("apps", "v1", "deployments", "Deployment", true),
        ];
        let doc = encode(&openapi_v2(&served));
        assert_eq!(text(&doc, 1), "2.0");
        assert_eq!(text(one(&doc, 2), 1), "Kubernetes");

        // Definitions: kubectl finds a kind's model by its group-version-kind extension.
        let defs = one(&doc, 9);
        let pod = named(defs, 1, "io.k8s.api.core.v1.Pod");
        assert_eq!(
            extension(pod, 31, "x-kubernetes-group-version-kind"),
            json!([{"group": "", "kind": "Pod", "version": "v1"}])
        );
        assert_eq!(text(one(pod, 22), 1), "object");
        let spec = named(one(pod, 25), 1, "spec");
        assert_eq!(text(spec, 1), "#/definitions/io.k8s.api.core.v1.PodSpec");

        // Arrays have one item schema; the patch extensions survive.
        let pod_spec = named(defs, 1, "io.k8s.api.core.v1.PodSpec");
        let containers = named(one(pod_spec, 25), 1, "containers");
        assert_eq!(text(one(containers, 22), 1), "array");
        let items = bytes_of(one(containers, 23), 1);
        assert_eq!(items.len(), 1);
        assert_eq!(
            text(items[0], 1),
            "#/definitions/io.k8s.api.core.v1.Container"
        );
        assert_eq!(
            extension(containers, 31, "x-kubernetes-patch-merge-key"),
            json!("name")
        );

        // Maps are objects with additionalProperties as a schema.
        let labels = named(
            one(
                named(defs, 1, "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"),
                25,
            ),
            1,
            "labels",
        );
        let additional = one(one(labels, 21), 1);
        assert_eq!(text(one(additional, 22), 1), "string");

        // Paths: the create operation, its body parameter and its query parameters.
        let paths = one(&doc, 8);
        let pods = named(paths, 2, "/api/v1/namespaces/{namespace}/pods");
        let post = one(pods, 4);
        assert_eq!(text(post, 5), "createCoreV1NamespacedPod");
        let params: Vec<&[u8]> = bytes_of(post, 8);
        let body = params
            .iter()
            .filter_map(|p| bytes_of(p, 1).first().copied())
            .find_map(|p| bytes_of(p, 1).first().copied())
            .expect("a body parameter");
        assert_eq!(text(body, 2), "body");
        assert_eq!(text(body, 3), "body");
        assert_eq!(varint(body, 4), Some(1));
        let query: Vec<String> = params
            .iter()
            .filter_map(|p| bytes_of(p, 1).first().copied())
            .filter_map(|p| bytes_of(p, 2).first().copied())
            .filter_map(|non_body| bytes_of(non_body, 3).first().copied())
            .map(|q| text(q, 4))
            .collect();
        assert!(query.contains(&"fieldValidation".to_owned()), "{query:?}");
        let created = named(one(post, 9), 1, "201");
        assert!(!text(one(created, 1), 1).is_empty());
    }

    #[test]
    fn field_numbers_follow_gnostic() {
        let doc = json!({
            "swagger": "2.0",
            "paths": {"/x/{name}": {
                "parameters": [
                    {"name": "name", "in": "path", "required": true, "type": "string"},
                    {"$ref": "#/parameters/pretty"}
                ],
                "get": {"responses": {"200": {"description": "OK",
                                                "schema": {"type": "string"}}},
                        "deprecated": true}
            }},
            "parameters": {"pretty": {"name": "pretty", "in": "query", "type": "string",
                                       "uniqueItems": true}},
            "definitions": {"T": {
                "type": "object",
                "additionalProperties": false,
                "required": ["a"],
                "properties": {"a": {"type": "integer", "format": "int32",
                                      "minimum": 1.5, "maxLength": 3, "default": 7,
                                      "enum": [1, 2]}}
            }},
            "securityDefinitions": {"BearerToken": {"type": "apiKey", "name": "authorization",
                                                     "in": "header"}},
            "security": [{"BearerToken": []}]
        });
        let buf = encode(&doc);

        let item = named(one(&buf, 8), 2, "/x/{name}");
        let shared = bytes_of(item, 9);
        assert_eq!(shared.len(), 2);
        // A path parameter: ParametersItem.parameter → Parameter.non_body → path (4), whose
        // `type` is field 5.
        let path = one(one(one(shared[0], 1), 2), 4);
        assert_eq!(varint(path, 1), Some(1));
        assert_eq!(text(path, 2), "path");
        assert_eq!(text(path, 4), "name");
        assert_eq!(text(path, 5), "string");
        // A reference: ParametersItem.json_reference.
        assert_eq!(text(one(shared[1], 2), 1), "#/parameters/pretty");
        let get = one(item, 2);
        assert_eq!(varint(get, 11), Some(1));
        let ok = one(named(one(get, 9), 1, "200"), 1);
        assert_eq!(text(ok, 1), "OK");
        assert_eq!(text(one(one(one(ok, 2), 1), 22), 1), "string");

        // A query parameter's `type` is field 6 and uniqueItems field 20.
        let pretty = one(one(named(one(&buf, 10), 1, "pretty"), 2), 3);
        assert_eq!(text(pretty, 6), "string");
        assert_eq!(varint(pretty, 20), Some(1));

        let t = named(one(&buf, 9), 1, "T");
        // additionalProperties: false is written (the boolean of its oneof).
        assert_eq!(varint(one(t, 21), 2), Some(0));
        assert_eq!(text(t, 19), "a");
        let a = named(one(t, 25), 1, "a");
        assert_eq!(text(a, 2), "int32");
        let minimum = fields(a).into_iter().find_map(|(n, v)| match v {
            WireValue::Fixed64(bits) if n == 9 => Some(f64::from_bits(bits)),
            _ => None,
        });
        assert_eq!(minimum, Some(1.5));
        assert_eq!(varint(a, 11), Some(3));
        assert_eq!(text(one(a, 5), 2), "7");
        let members: Vec<String> = bytes_of(a, 20).iter().map(|m| text(m, 2)).collect();
        assert_eq!(members, ["1", "2"]);

        let bearer = one(named(one(&buf, 13), 1, "BearerToken"), 2);
        assert_eq!(
            [text(bearer, 1), text(bearer, 2), text(bearer, 3)],
            ["apiKey", "authorization", "header"]
        );
        let requirement = one(&buf, 12);
        let entry = one(requirement, 1);
        assert_eq!(text(entry, 1), "BearerToken");
        assert!(one(entry, 2).is_empty());
    }

    #[test]
    fn the_protobuf_media_type_is_recognised() {
        assert!(accepts_protobuf(MEDIA_TYPE));
        assert!(accepts_protobuf(
            "application/json;q=0.5, application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
        ));
        assert!(!accepts_protobuf("application/json"));
        assert!(!accepts_protobuf("*/*"));
        assert!(!accepts_protobuf(""));
    }
}
