//! `events.k8s.io/v1` Events as a view of the core/v1 Events, as in Kubernetes: both APIs share
//! one storage (`/registry/events/…`), so events recorded through either (kube-rs' recorder
//! writes events.k8s.io/v1) show up in both, e.g. in `kubectl describe`. This module converts
//! between the two shapes field by field.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::error::ApiError;
use crate::registry::store::{DeleteOptions, KindOps, Mutate, Sub, WriteOptions, Written};
use crate::registry::{Api, Column, Fields, ScaleInfo};
use crate::resources::{self, ResourceDef};

/// Field pairs (events.k8s.io/v1, core/v1) that map one to one.
const SAME: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("related", "related"),
    ("note", "message"),
    ("reason", "reason"),
    ("type", "type"),
    ("eventTime", "eventTime"),
    ("series", "series"),
    ("action", "action"),
    ("reportingController", "reportingComponent"),
    ("reportingInstance", "reportingInstance"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

fn convert(obj: &Value, to_core: bool) -> Value {
    let mut out = Map::new();
    let src = obj.as_object().cloned().unwrap_or_default();
    if let Some(m) = src.get("metadata") {
        out.insert("metadata".into(), m.clone());
    }
    if to_core {
        out.insert("apiVersion".into(), "v1".into());
        out.insert("kind".into(), "Event".into());
    } else {
        out.insert("apiVersion".into(), "events.k8s.io/v1".into());
        out.insert("kind".into(), "Event".into());
    }
    for (v1, core) in SAME {
        let (from, to) = if to_core { (v1, core) } else { (core, v1) };
        if let Some(v) = src.get(*from).filter(|v| !v.is_null()) {
            out.insert((*to).to_string(), v.clone());
        }
    }
    if !to_core && !out.contains_key("eventTime") {
        // events.k8s.io requires eventTime; derive it from the legacy timestamps.
        let t = src
            .get("lastTimestamp")
            .or_else(|| src.get("firstTimestamp"))
            .and_then(Value::as_str)
            .map(|t| t.replace('Z', ".000000Z"));
        out.insert("eventTime".into(), t.map_or(Value::Null, Value::String));
    }
    if to_core && !out.contains_key("involvedObject") {
        out.insert("involvedObject".into(), json!({}));
    }
    Value::Object(out)
}

/// The events.k8s.io/v1 view of the core events kind.
pub struct EventsV1View {
    core: Arc<dyn KindOps>,
}

impl EventsV1View {
    /// A view over the core/v1 events kind.
    pub fn new(core: Arc<dyn KindOps>) -> Self {
        Self { core }
    }

    fn to_v1(raw: &[u8]) -> Result<Bytes, ApiError> {
        let v: Value =
            serde_json::from_slice(raw).map_err(|e| ApiError::internal(e.to_string()))?;
        serde_json::to_vec(&convert(&v, false))
            .map(Bytes::from)
            .map_err(|e| ApiError::internal(e.to_string()))
    }

    fn written(w: Written) -> Result<Written, ApiError> {
        Ok(Written {
            body: Self::to_v1(&w.body)?,
            ..w
        })
    }

    fn check_kind(body: &Value) -> Result<(), ApiError> {
        match body.get("apiVersion").and_then(Value::as_str) {
            None | Some("") | Some("events.k8s.io/v1") => Ok(()),
            Some(other) => Err(ApiError::bad_request(format!(
                "the API version in the data ({other}) does not match the expected API version (events.k8s.io/v1)"
            ))),
        }
    }
}

#[async_trait]
impl KindOps for EventsV1View {
    fn def(&self) -> &'static ResourceDef {
        &resources::EVENTS_V1
    }

    async fn get(&self, api: &Api, ns: Option<&str>, name: &str) -> Result<Bytes, ApiError> {
        Self::to_v1(&self.core.get(api, ns, name).await?)
    }

    async fn create(
        &self,
        api: &Api,
        ns: Option<&str>,
        body: Value,
        opts: &WriteOptions,
    ) -> Result<Written, ApiError> {
        Self::check_kind(&body)?;
        Self::written(
            self.core
                .create(api, ns, convert(&body, true), opts)
                .await?,
        )
    }

    async fn update(
        &self,
        api: &Api,
        ns: Option<&str>,
        name: &str,
        sub: Sub,
        opts: &WriteOptions,
        mutate: Mutate<'_>,
    ) -> Result<Written, ApiError> {
        let wrapped = |core: &Value| -> Result<Value, ApiError> {
            let view = if core.is_null() {
                Value::Null
            } else {
                convert(core, false)
            };
            let desired = mutate(&view)?;
            Self::check_kind(&desired)?;
            Ok(convert(&desired, true))
        };
        Self::written(self.core.update(api, ns, name, sub, opts, &wrapped).await?)
    }

    async fn delete(
        &self,
        api: &Api,
        ns: Option<&str>,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<Written, ApiError> {
        Self::written(self.core.delete(api, ns, name, opts).await?)
    }

    fn selectable(&self, raw: &[u8]) -> Result<(BTreeMap<String, String>, Fields), ApiError> {
        let (labels, core) = self.core.selectable(raw)?;
        let mut fields = Fields::new();
        for (k, v) in core {
            let key = match k.as_str() {
                "involvedObject.kind" => "regarding.kind".to_string(),
                "involvedObject.namespace" => "regarding.namespace".to_string(),
                "involvedObject.name" => "regarding.name".to_string(),
                "involvedObject.uid" => "regarding.uid".to_string(),
                "involvedObject.apiVersion" => "regarding.apiVersion".to_string(),
                "involvedObject.resourceVersion" => "regarding.resourceVersion".to_string(),
                "involvedObject.fieldPath" => "regarding.fieldPath".to_string(),
                "reportingComponent" => "reportingController".to_string(),
                other => other.to_string(),
            };
            fields.insert(key, v);
        }
        Ok((labels, fields))
    }

    fn field_names(&self) -> Vec<&'static str> {
        vec![
            "metadata.name",
            "metadata.namespace",
            "regarding.kind",
            "regarding.namespace",
            "regarding.name",
            "regarding.uid",
            "regarding.apiVersion",
            "regarding.resourceVersion",
            "regarding.fieldPath",
            "reason",
            "reportingController",
            "type",
        ]
    }

    fn columns(&self) -> Vec<Column> {
        self.core.columns()
    }

    fn cells(&self, raw: &[u8]) -> Result<Vec<Value>, ApiError> {
        self.core.cells(raw)
    }

    fn scale(&self, _obj: &Value) -> Result<Option<ScaleInfo>, ApiError> {
        Ok(None)
    }

    fn with_replicas(&self, obj: Value, _replicas: i32) -> Result<Value, ApiError> {
        Ok(obj)
    }

    fn present(&self, raw: Bytes) -> Result<Bytes, ApiError> {
        Self::to_v1(&raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_both_ways() {
        let v1 = json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "e", "namespace": "default"},
            "eventTime": "2024-01-01T00:00:00.000000Z",
            "regarding": {"kind": "Pod", "name": "p", "namespace": "default"},
            "note": "pulled", "reason": "Pulled", "type": "Normal",
            "reportingController": "rkubelet", "reportingInstance": "n1", "action": "Pull"
        });
        let core = convert(&v1, true);
        assert_eq!(core["apiVersion"], "v1");
        assert_eq!(core["involvedObject"]["name"], "p");
        assert_eq!(core["message"], "pulled");
        assert_eq!(core["reportingComponent"], "rkubelet");
        let back = convert(&core, false);
        assert_eq!(back, v1);
        let legacy = json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "x"},
            "involvedObject": {"kind": "Node", "name": "n"}, "lastTimestamp": "2024-01-01T00:00:00Z"});
        assert_eq!(
            convert(&legacy, false)["eventTime"],
            "2024-01-01T00:00:00.000000Z"
        );
    }
}
