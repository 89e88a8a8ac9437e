//! Lists and watches: label and field selectors, resourceVersion semantics
//! (unset / "0" / exact / not-older-than), `limit` + `continue` pagination, Table output, and
//! watch streams (`{"type":…,"object":…}` lines) with bookmarks, `timeoutSeconds`,
//! `sendInitialEvents`, and 410 Gone as an ERROR event.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use base64::Engine;
use bytes::Bytes;
use futures::StreamExt;
use rkube_machinery::selector::{FieldOperator, FieldSelector, LabelSelector};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::request::{Output, Query, Target};
use super::table;
use crate::error::ApiError;
use crate::registry::codec::with_resource_version;
use crate::registry::{Api, KindOps};
use crate::storage::{EventKind, IndexValue, KeyValue, ListOptions, ReadAt, Revision, WatchItem};

/// Selectors of a list or watch.
pub struct Selectors {
    labels: Option<LabelSelector>,
    fields: Option<FieldSelector>,
    /// Byte strings a stored object must contain to match (see [`needles`]): checked before
    /// the object is decoded, so the many per-node watches (one per kubelet) skip the objects
    /// of other nodes without parsing them.
    needles: Vec<memchr::memmem::Finder<'static>>,
}

/// What the compact JSON of a matching object must contain: `"key":"value"` for each label
/// equality and `"nodeName":"value"` for `spec.nodeName=value`. Only values JSON writes
/// verbatim (no escapes) qualify; the store holds compact `serde_json` output.
fn needles(labels: Option<&LabelSelector>, fields: Option<&FieldSelector>) -> Vec<Vec<u8>> {
    use rkube_machinery::selector::{FieldOperator, Operator};
    let plain = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'/'))
    };
    let pair = |k: &str, v: &str| format!("\"{k}\":\"{v}\"").into_bytes();
    let mut out = Vec::new();
    for r in labels.map(LabelSelector::requirements).unwrap_or_default() {
        let single = matches!(r.operator(), Operator::Equals | Operator::DoubleEquals)
            || (r.operator() == Operator::In && r.values().len() == 1);
        if let [v] = r.values()
            && single
            && plain(r.key())
            && plain(v)
        {
            out.push(pair(r.key(), v));
        }
    }
    for r in fields.map(FieldSelector::requirements).unwrap_or_default() {
        if r.field == "spec.nodeName" && r.operator == FieldOperator::Equals && plain(&r.value) {
            out.push(pair("nodeName", &r.value));
        }
    }
    out
}

impl Selectors {
    /// Parses `labelSelector` and `fieldSelector`, checking the fields the kind supports.
    pub fn parse(q: &Query, kind: &dyn KindOps) -> Result<Self, ApiError> {
        let labels = q
            .get("labelSelector")
            .filter(|s| !s.trim().is_empty())
            .map(|s| {
                LabelSelector::parse(s)
                    .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))
            })
            .transpose()?;
        let fields = q
            .get("fieldSelector")
            .filter(|s| !s.trim().is_empty())
            .map(|s| {
                let sel = FieldSelector::parse(s)
                    .map_err(|e| ApiError::bad_request(format!("invalid field selector: {e}")))?;
                let supported = kind.field_names();
                sel.check_supported(&supported)
                    .map_err(|e| ApiError::bad_request(e.to_string()))?;
                Ok::<_, ApiError>(sel)
            })
            .transpose()?;
        // Searchers built once per request, not once per object checked.
        let needles = needles(labels.as_ref(), fields.as_ref())
            .iter()
            .map(|n| memchr::memmem::Finder::new(n).into_owned())
            .collect();
        Ok(Self {
            labels,
            fields,
            needles,
        })
    }

    fn is_empty(&self) -> bool {
        self.labels.is_none() && self.fields.is_none()
    }

    /// The node a `spec.nodeName=<node>` term selects (not the empty value of unscheduled
    /// pods): the watch cache's index value for a kubelet's watch of its pods.
    fn node_index(&self) -> Option<IndexValue> {
        let r = self.fields.as_ref()?.requirements().iter().find(|r| {
            r.field == "spec.nodeName" && r.operator == FieldOperator::Equals && !r.value.is_empty()
        })?;
        Some(IndexValue {
            field: "spec.nodeName",
            value: r.value.clone(),
        })
    }

    /// Whether a stored object matches.
    pub fn matches(&self, kind: &dyn KindOps, raw: &[u8]) -> Result<bool, ApiError> {
        if self.is_empty() {
            return Ok(true);
        }
        if !self.needles.iter().all(|n| n.find(raw).is_some()) {
            return Ok(false);
        }
        let (labels, fields) = kind.selectable(raw)?;
        if let Some(l) = &self.labels
            && !l.matches(&labels)
        {
            return Ok(false);
        }
        if let Some(f) = &self.fields
            && !f.matches(&fields)
        {
            return Ok(false);
        }
        Ok(true)
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    v: String,
    rv: Revision,
    start: String,
}

fn encode_continue(rv: Revision, last_key: &str) -> String {
    let token = ContinueToken {
        v: "meta.k8s.io/v1".into(),
        rv,
        start: last_key.to_string(),
    };
    base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(&token).unwrap_or_default())
}

fn decode_continue(token: &str, prefix: &str) -> Result<(Revision, String), ApiError> {
    let bad =
        || ApiError::bad_request("continue key is not valid: the continue token is malformed");
    let raw = base64::engine::general_purpose::STANDARD
        .decode(token)
        .map_err(|_| bad())?;
    let t: ContinueToken = serde_json::from_slice(&raw).map_err(|_| bad())?;
    if t.v != "meta.k8s.io/v1" || !t.start.starts_with(prefix) || t.rv <= 0 {
        return Err(bad());
    }
    Ok((t.rv, t.start))
}

fn parse_rv(s: &str) -> Result<Revision, ApiError> {
    s.parse::<Revision>()
        .ok()
        .filter(|r| *r >= 0)
        .ok_or_else(|| ApiError::bad_request(format!("invalid resource version: {s:?}")))
}

/// The list's read position from `resourceVersion`, `resourceVersionMatch` and `continue`.
fn read_position(q: &Query, prefix: &str) -> Result<(ReadAt, Option<String>), ApiError> {
    let rv = q.get("resourceVersion").filter(|s| !s.is_empty());
    let rv_match = q.get("resourceVersionMatch").filter(|s| !s.is_empty());
    if let Some(token) = q.get("continue").filter(|s| !s.is_empty()) {
        if rv.is_some_and(|r| r != "0") {
            return Err(ApiError::bad_request(
                "specifying resource version is not allowed when using continue",
            ));
        }
        let (rev, start) = decode_continue(token, prefix)?;
        return Ok((ReadAt::Exact(rev), Some(start)));
    }
    let at = match (rv, rv_match) {
        (None, None) => ReadAt::Latest,
        (None, Some(m)) => {
            return Err(ApiError::bad_request(format!(
                "resourceVersionMatch is forbidden unless resourceVersion is provided (got {m:?})"
            )));
        }
        (Some("0"), None | Some("NotOlderThan")) => ReadAt::NotOlderThan(0),
        (Some(r), None | Some("NotOlderThan")) => ReadAt::NotOlderThan(parse_rv(r)?),
        (Some("0"), Some("Exact")) => {
            return Err(ApiError::bad_request(
                "resourceVersionMatch \"Exact\" is forbidden for resourceVersion \"0\"",
            ));
        }
        (Some(r), Some("Exact")) => ReadAt::Exact(parse_rv(r)?),
        (Some(_), Some(m)) => {
            return Err(ApiError::bad_request(format!(
                "resourceVersionMatch: Unsupported value: {m:?}: supported values: \"Exact\", \"NotOlderThan\""
            )));
        }
    };
    Ok((at, None))
}

/// The storage prefix of a list target (one namespace or all).
fn prefix_of(t: &Target) -> String {
    t.def.namespace_prefix(t.namespace.as_deref())
}

/// The matching objects of a list, with the revision and continue token.
pub struct Listed {
    /// Matching objects (with resourceVersion).
    pub items: Vec<Bytes>,
    /// The list's resourceVersion.
    pub revision: Revision,
    /// Continue token, when more items follow.
    pub continue_token: Option<String>,
    /// How many objects follow this page, when known: set with a continue token on lists
    /// without selectors, as Kubernetes does (with selectors the count is unknown).
    pub remaining_item_count: Option<u64>,
}

impl Listed {
    /// The list's `metadata`: `resourceVersion`, and `continue` and `remainingItemCount` when
    /// more items follow.
    pub fn meta(&self) -> Value {
        let mut meta = json!({"resourceVersion": self.revision.to_string()});
        if let Some(c) = &self.continue_token {
            meta["continue"] = Value::String(c.clone());
        }
        if let Some(n) = self.remaining_item_count {
            meta["remainingItemCount"] = n.into();
        }
        meta
    }
}

/// Lists a target with the query's selectors and pagination.
pub async fn list_objects(
    api: &Api,
    kind: &dyn KindOps,
    t: &Target,
    q: &Query,
) -> Result<Listed, ApiError> {
    let prefix = prefix_of(t);
    let selectors = Selectors::parse(q, kind)?;
    let (read_at, mut start_after) = read_position(q, &prefix)?;
    let limit = q
        .int("limit")?
        .filter(|l| *l > 0)
        .map(|l| usize::try_from(l).unwrap_or(usize::MAX));
    let group = kind.def().group;
    let resource = kind.def().resource;
    let mut items = Vec::new();
    let mut read_at = read_at;
    let mut revision;
    let mut continue_token = None;
    let mut remaining_item_count = None;
    // Only a list without selectors knows how many objects follow a page.
    let count_remaining = limit.is_some() && selectors.is_empty();
    loop {
        let want = limit.map(|l| l - items.len());
        let page = api
            .store
            .list(
                &prefix,
                ListOptions {
                    read_at,
                    limit: want,
                    start_after: start_after.clone(),
                    count_remaining,
                },
            )
            .await
            .map_err(|e| match e {
                crate::storage::StorageError::Compacted { .. } if start_after.is_some() => {
                    ApiError::expired("The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.")
                }
                other => ApiError::from_storage(other, group, resource, ""),
            })?;
        revision = page.revision;
        let last_key = page.items.last().map(|kv| kv.key.clone());
        for kv in &page.items {
            if selectors.matches(kind, &kv.value)? {
                items.push(kind.present(with_resource_version(&kv.value, kv.mod_revision))?);
            }
        }
        if !page.more {
            break;
        }
        let last_key = last_key.unwrap_or_default();
        if limit.is_some_and(|l| items.len() >= l) {
            continue_token = Some(encode_continue(revision, &last_key));
            remaining_item_count = count_remaining.then_some(page.remaining);
            break;
        }
        // Selectors filtered some out: keep reading at the same revision.
        read_at = ReadAt::Exact(revision);
        start_after = Some(last_key);
    }
    Ok(Listed {
        items,
        revision,
        continue_token,
        remaining_item_count,
    })
}

/// Joins stored objects into a `<Kind>List` JSON document without re-encoding them.
pub fn list_body(kind: &dyn KindOps, listed: &Listed) -> Bytes {
    let def = kind.def();
    let meta = listed.meta();
    let head = format!(
        r#"{{"kind":"{}List","apiVersion":"{}","metadata":{},"items":["#,
        def.kind,
        def.api_version(),
        meta
    );
    let mut out = Vec::with_capacity(
        head.len() + listed.items.iter().map(Bytes::len).sum::<usize>() + listed.items.len() + 2,
    );
    out.extend_from_slice(head.as_bytes());
    for (i, item) in listed.items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(item);
    }
    out.extend_from_slice(b"]}");
    Bytes::from(out)
}

/// Handles a list request.
pub async fn list(
    api: &Api,
    kind: &dyn KindOps,
    t: &Target,
    q: &Query,
    output: Output,
) -> Result<Response, ApiError> {
    let listed = list_objects(api, kind, t, q).await?;
    match output {
        Output::Table => {
            let v = table::table(kind, &listed.items, Some(&listed), q)?;
            Ok(super::json_response(200, &v))
        }
        Output::Yaml => {
            let v: Value = serde_json::from_slice(&list_body(kind, &listed))
                .map_err(|e| ApiError::internal(e.to_string()))?;
            Ok(super::yaml_response(200, &v))
        }
        Output::Json => Ok(super::raw_json_response(200, list_body(kind, &listed))),
        Output::Metadata => Ok(super::raw_json_response(
            200,
            super::metadata::list(&listed)?,
        )),
    }
}

/// A watch event line.
fn event_line(kind_str: &str, object: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(object.len() + 32);
    out.extend_from_slice(br#"{"type":""#);
    out.extend_from_slice(kind_str.as_bytes());
    out.extend_from_slice(br#"","object":"#);
    out.extend_from_slice(object);
    out.extend_from_slice(b"}\n");
    Bytes::from(out)
}

fn bookmark(kind: &dyn KindOps, output: Output, rev: Revision, initial_end: bool) -> Bytes {
    let def = kind.def();
    let (kind, api_version) = match output {
        Output::Metadata => ("PartialObjectMetadata", "meta.k8s.io/v1".to_string()),
        _ => (def.kind, def.api_version()),
    };
    let mut obj = json!({
        "kind": kind,
        "apiVersion": api_version,
        "metadata": {"resourceVersion": rev.to_string()}
    });
    if initial_end {
        obj["metadata"]["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    event_line("BOOKMARK", obj.to_string().as_bytes())
}

fn error_event(e: &ApiError) -> Bytes {
    event_line("ERROR", e.status_json().to_string().as_bytes())
}

struct WatchCtx {
    kind: Arc<dyn KindOps>,
    selectors: Selectors,
    output: Output,
    q: Query,
    bookmarks: bool,
    name: Option<String>,
}

impl WatchCtx {
    fn encode(&self, kind_str: &str, raw: &Bytes) -> Result<Bytes, ApiError> {
        match self.output {
            Output::Table => {
                let t = table::table(self.kind.as_ref(), std::slice::from_ref(raw), None, &self.q)?;
                Ok(event_line(kind_str, t.to_string().as_bytes()))
            }
            Output::Metadata => Ok(event_line(kind_str, &super::metadata::object(raw)?)),
            _ => Ok(event_line(kind_str, raw)),
        }
    }

    fn matches(&self, kv: &KeyValue) -> Result<bool, ApiError> {
        if let Some(n) = &self.name
            && !kv.key.ends_with(&format!("/{n}"))
        {
            return Ok(false);
        }
        self.selectors.matches(self.kind.as_ref(), &kv.value)
    }

    /// The watch event type for a change, given the selectors (an object leaving the selection
    /// is DELETED for this watcher; entering it is ADDED).
    fn translate(
        &self,
        ev: &crate::storage::Event,
    ) -> Result<Option<(&'static str, Bytes)>, ApiError> {
        let now = self.matches(&ev.kv)?;
        let kind = match ev.kind {
            EventKind::Added => now.then_some("ADDED"),
            EventKind::Deleted => now.then_some("DELETED"),
            EventKind::Modified => {
                let before = match &ev.prev {
                    Some(p) => self.matches(p)?,
                    None => now,
                };
                match (before, now) {
                    (true, true) => Some("MODIFIED"),
                    (false, true) => Some("ADDED"),
                    (true, false) => Some("DELETED"),
                    (false, false) => None,
                }
            }
        };
        // Only events this watcher gets are rendered.
        let Some(kind) = kind else {
            return Ok(None);
        };
        let object = self
            .kind
            .present(with_resource_version(&ev.kv.value, ev.kv.mod_revision))?;
        Ok(Some((kind, object)))
    }
}

/// Handles a watch request: a streaming response of events.
pub async fn watch(
    api: Arc<Api>,
    kind: Arc<dyn KindOps>,
    t: &Target,
    q: Query,
    output: Output,
    shutdown: CancellationToken,
) -> Result<Response, ApiError> {
    let selectors = Selectors::parse(&q, kind.as_ref())?;
    let prefix = prefix_of(t);
    let rv = q
        .get("resourceVersion")
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    // Asked for (then bookmarks are required, and one ends the initial events), else the
    // default of a watch from no resourceVersion or "0".
    let asked = q
        .get("sendInitialEvents")
        .map(rkube_machinery::query::bool_value);
    let send_initial_asked = asked == Some(true);
    let send_initial = asked.unwrap_or_else(|| rv.as_deref().is_none_or(|r| r == "0"));
    let bookmarks = q.flag("allowWatchBookmarks");
    if send_initial_asked && !bookmarks {
        return Err(ApiError::invalid(
            "meta.k8s.io",
            "ListOptions",
            "",
            vec![crate::error::FieldError::forbidden(
                "allowWatchBookmarks",
                "allowWatchBookmarks required when sendInitialEvents is set",
            )],
        ));
    }
    let timeout = q
        .int("timeoutSeconds")?
        .filter(|s| *s > 0)
        .map(|s| Duration::from_secs(s as u64));
    // A single object watched by name through the path or a metadata.name field selector.
    let name = t.name.clone().or_else(|| {
        q.get("fieldSelector").and_then(|f| {
            let f = f.trim();
            let v = f
                .strip_prefix("metadata.name=")
                .or_else(|| f.strip_prefix("metadata.name=="))?;
            (!v.contains(',')).then(|| v.to_string())
        })
    });
    let ctx = WatchCtx {
        kind: kind.clone(),
        selectors,
        output,
        q: q.clone(),
        bookmarks,
        name,
    };

    // Initial state, then changes after its revision.
    let mut initial: Vec<Bytes> = Vec::new();
    let from = if send_initial {
        let read_at = match rv.as_deref() {
            None => ReadAt::Latest,
            Some("0") => ReadAt::NotOlderThan(0),
            Some(r) => ReadAt::NotOlderThan(parse_rv(r)?),
        };
        let mut start_after = None;
        let mut read_at = read_at;
        let revision = loop {
            let page = api
                .store
                .list(
                    &prefix,
                    ListOptions {
                        read_at,
                        limit: Some(5_000),
                        start_after: start_after.clone(),
                        count_remaining: false,
                    },
                )
                .await
                .map_err(|e| {
                    ApiError::from_storage(e, kind.def().group, kind.def().resource, "")
                })?;
            for kv in &page.items {
                if ctx.matches(kv)? {
                    initial.push(ctx.encode(
                        "ADDED",
                        &kind.present(with_resource_version(&kv.value, kv.mod_revision))?,
                    )?);
                }
            }
            if !page.more {
                break page.revision;
            }
            start_after = page.items.last().map(|kv| kv.key.clone());
            // Later pages read at the first page's revision.
            read_at = ReadAt::Exact(page.revision);
        };
        if send_initial_asked {
            initial.push(bookmark(kind.as_ref(), output, revision, true));
        }
        revision
    } else {
        parse_rv(rv.as_deref().unwrap_or("0"))?
    };

    let index = ctx.selectors.node_index();
    let stream = api
        .store
        .watch_indexed(&prefix, true, from, index.as_ref())
        .await;
    let stream = match stream {
        Ok(s) => Some(s),
        Err(crate::storage::StorageError::Compacted {
            requested,
            compacted,
        }) => {
            initial.push(error_event(&ApiError::expired(format!(
                "too old resource version: {requested} ({compacted})"
            ))));
            None
        }
        Err(e) => {
            return Err(ApiError::from_storage(
                e,
                kind.def().group,
                kind.def().resource,
                "",
            ));
        }
    };

    let deadline = timeout.map(|d| tokio::time::Instant::now() + d);
    let body = async_stream_body(ctx, initial, stream, deadline, shutdown);
    let content_type = match output {
        Output::Table => "application/json;as=Table;v=v1;g=meta.k8s.io",
        _ => "application/json",
    };
    Ok(Response::builder()
        .status(200)
        .header("content-type", content_type)
        .header("cache-control", "no-cache, private")
        .body(body)
        .unwrap_or_default())
}

fn async_stream_body(
    ctx: WatchCtx,
    initial: Vec<Bytes>,
    stream: Option<crate::storage::WatchStream>,
    deadline: Option<tokio::time::Instant>,
    shutdown: CancellationToken,
) -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(256);
    tokio::spawn(async move {
        for line in initial {
            if tx.send(Ok(line)).await.is_err() {
                return;
            }
        }
        let Some(mut stream) = stream else { return };
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(sleep);
        let mut last_bookmark = tokio::time::Instant::now();
        let mut last_sent: Revision = 0;
        loop {
            let item = tokio::select! {
                item = stream.next() => item,
                _ = &mut sleep => return,
                _ = shutdown.cancelled() => return,
                _ = tx.closed() => return,
            };
            let line = match item {
                None => return,
                Some(Ok(WatchItem::Event(ev))) => match ctx.translate(&ev).inspect(|out| {
                    if out.is_some() {
                        last_sent = last_sent.max(ev.revision());
                    }
                }) {
                    Ok(Some((kind, object))) => match ctx.encode(kind, &object) {
                        Ok(l) => l,
                        Err(e) => error_event(&e),
                    },
                    Ok(None) => continue,
                    Err(e) => error_event(&e),
                },
                Some(Ok(WatchItem::Progress(rev))) => {
                    if !ctx.bookmarks
                        || rev <= last_sent
                        || last_bookmark.elapsed() < Duration::from_secs(1)
                    {
                        continue;
                    }
                    last_bookmark = tokio::time::Instant::now();
                    last_sent = rev;
                    bookmark(ctx.kind.as_ref(), ctx.output, rev, false)
                }
                Some(Err(crate::storage::StorageError::Compacted {
                    requested,
                    compacted,
                })) => {
                    let _ = tx
                        .send(Ok(error_event(&ApiError::expired(format!(
                            "too old resource version: {requested} ({compacted})"
                        )))))
                        .await;
                    return;
                }
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "watch ended");
                    return;
                }
            };
            if tx.send(Ok(line)).await.is_err() {
                return;
            }
        }
    });
    Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::builtin_kinds;

    fn pods() -> Arc<dyn KindOps> {
        let def = crate::resources::find("", "v1", "pods").unwrap();
        builtin_kinds()
            .into_iter()
            .find(|k| std::ptr::eq(k.def(), def))
            .unwrap()
    }

    fn selectors(query: &str) -> Selectors {
        Selectors::parse(&Query::parse(Some(query)), pods().as_ref()).unwrap()
    }

    fn pod(node: Option<&str>, app: &str) -> Vec<u8> {
        let mut spec = json!({"containers": [{"name": "c", "image": "busybox"}]});
        if let Some(n) = node {
            spec["nodeName"] = json!(n);
        }
        serde_json::to_vec(&json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "default", "labels": {"app": app}},
            "spec": spec,
        }))
        .unwrap()
    }

    #[test]
    fn the_byte_prefilter_agrees_with_decoding() {
        let kind = pods();
        let cases = [
            (
                "fieldSelector=spec.nodeName%3Dn1",
                pod(Some("n1"), "web"),
                true,
            ),
            (
                "fieldSelector=spec.nodeName%3Dn1",
                pod(Some("n10"), "web"),
                false,
            ),
            ("fieldSelector=spec.nodeName%3Dn1", pod(None, "web"), false),
            ("fieldSelector=spec.nodeName%3D", pod(None, "web"), true),
            (
                "fieldSelector=spec.nodeName%21%3Dn1",
                pod(Some("n2"), "web"),
                true,
            ),
            ("labelSelector=app%3Dweb", pod(Some("n1"), "web"), true),
            ("labelSelector=app%3Dweb", pod(Some("n1"), "webx"), false),
            ("labelSelector=app+in+(web)", pod(None, "web"), true),
            ("labelSelector=app+in+(db,web)", pod(None, "web"), true),
            (
                "labelSelector=app%3Dweb&fieldSelector=spec.nodeName%3Dn2",
                pod(Some("n1"), "web"),
                false,
            ),
        ];
        for (query, raw, want) in cases {
            let s = selectors(query);
            assert_eq!(s.matches(kind.as_ref(), &raw).unwrap(), want, "{query}");
        }
        let needles = |q| {
            selectors(q)
                .needles
                .iter()
                .map(|n| n.needle().to_vec())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            needles("fieldSelector=spec.nodeName%3Dn1"),
            vec![br#""nodeName":"n1""#.to_vec()]
        );
        assert!(needles("labelSelector=app+in+(db,web)").is_empty());
    }
}
