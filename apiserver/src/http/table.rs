//! Server-side printing: `meta.k8s.io/v1` Table responses with each kind's columns, as
//! `kubectl get` requests them (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`).

use bytes::Bytes;
use serde_json::{Value, json};

use super::list::Listed;
use super::request::Query;
use crate::error::ApiError;
use crate::registry::KindOps;

/// The row object for `includeObject` (`Metadata` by default, `Object`, or `None`).
fn row_object(raw: &Bytes, include: &str) -> Result<Option<Value>, ApiError> {
    match include {
        "None" => Ok(None),
        "Object" => serde_json::from_slice(raw)
            .map(Some)
            .map_err(|e| ApiError::internal(e.to_string())),
        _ => super::metadata::object_value(raw).map(Some),
    }
}

/// A Table of stored objects (`listed` carries the list metadata; `None` for one object).
pub fn table(
    kind: &dyn KindOps,
    items: &[Bytes],
    listed: Option<&Listed>,
    q: &Query,
) -> Result<Value, ApiError> {
    let include = q.get("includeObject").unwrap_or("Metadata");
    let columns = kind.columns();
    let mut rows = Vec::with_capacity(items.len());
    for raw in items {
        let mut row = json!({ "cells": kind.cells(raw)? });
        if let Some(obj) = row_object(raw, include)? {
            row["object"] = obj;
        }
        rows.push(row);
    }
    let mut meta = json!({});
    if let Some(l) = listed {
        meta = l.meta();
    } else if let Some(raw) = items.first() {
        let v: Value = serde_json::from_slice(raw).unwrap_or_default();
        if let Some(rv) = v["metadata"].get("resourceVersion") {
            meta["resourceVersion"] = rv.clone();
        }
    }
    Ok(json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta,
        "columnDefinitions": columns,
        "rows": rows,
    }))
}
