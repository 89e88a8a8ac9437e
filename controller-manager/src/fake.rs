//! An in-memory API for the controllers' unit tests: a `kube::Client` whose requests are served
//! from a map of JSON objects — create (with generateName), get, list, replace (with
//! resourceVersion preconditions, status and finalize subresources), JSON merge patch (and the
//! strategic `$deleteFromPrimitiveList` directive), delete
//! (preconditions, finalizers, propagation policy) — recording every request and failing the
//! ones a test chooses. Tests fill the controllers' reflector stores by hand and check what the
//! reconcile wrote here.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::http::{Request, Response};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};

type Failure = Box<dyn Fn(&str, &str) -> Option<(u16, String)> + Send + Sync>;

#[derive(Default)]
struct State {
    objects: BTreeMap<(String, String, String), Value>,
    rv: u64,
    counter: u64,
    requests: Vec<(String, String)>,
}

/// The in-memory API.
#[derive(Clone, Default)]
pub struct FakeApi {
    state: Arc<Mutex<State>>,
    failures: Arc<Mutex<Vec<Failure>>>,
    in_flight: Arc<AtomicUsize>,
    max_in_flight: Arc<AtomicUsize>,
}

/// Splits an API path into (collection, namespace, name, subresource), where collection is
/// `group/version/resource` (`v1/pods` for the core group).
fn parse(path: &str) -> Option<(String, String, String, String)> {
    let path = path.split('?').next().unwrap_or_default();
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (gv, rest) = match *parts.first()? {
        "api" => (parts.get(1)?.to_string(), &parts[2..]),
        "apis" => (format!("{}/{}", parts.get(1)?, parts.get(2)?), &parts[3..]),
        _ => return None,
    };
    let namespace_sub = rest.len() == 3 && matches!(rest[2], "finalize" | "status");
    let (ns, rest) = if rest.first() == Some(&"namespaces") && rest.len() >= 3 && !namespace_sub {
        (rest[1].to_string(), &rest[2..])
    } else {
        (String::new(), rest)
    };
    let resource = rest.first()?.to_string();
    let name = rest.get(1).map(|s| s.to_string()).unwrap_or_default();
    let sub = rest.get(2).map(|s| s.to_string()).unwrap_or_default();
    Some((format!("{gv}/{resource}"), ns, name, sub))
}

fn status(code: u16, reason: &str, message: &str) -> (u16, Value) {
    (
        code,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": message, "reason": reason, "code": code}),
    )
}

fn merge(target: &mut Value, patch: &Value) {
    if let Value::Object(p) = patch {
        if !target.is_object() {
            *target = json!({});
        }
        let t = target.as_object_mut().expect("object");
        for (k, v) in p {
            if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
                // The strategic merge directive removing values from a list of scalars.
                if let Some(Value::Array(list)) = t.get_mut(field) {
                    list.retain(|x| !v.as_array().is_some_and(|gone| gone.contains(x)));
                }
                continue;
            }
            if v.is_null() {
                t.remove(k);
            } else {
                merge(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    } else {
        *target = patch.clone();
    }
}

impl FakeApi {
    /// An empty API.
    pub fn new() -> Self {
        Self::default()
    }

    /// A client served by this API.
    pub fn client(&self) -> kube::Client {
        let me = self.clone();
        let svc = tower::service_fn(move |req: Request<kube::client::Body>| {
            let me = me.clone();
            async move {
                let (parts, body) = req.into_parts();
                let bytes = body
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                let path = parts
                    .uri
                    .path_and_query()
                    .map(|p| p.as_str().to_string())
                    .unwrap_or_default();
                let (code, value) = me.handle(parts.method.as_str(), &path, &bytes).await;
                Ok::<_, std::convert::Infallible>(
                    Response::builder()
                        .status(code)
                        .header("content-type", "application/json")
                        .body(Full::new(Bytes::from(value.to_string())))
                        .expect("response"),
                )
            }
        });
        kube::Client::new(svc, "default")
    }

    /// Makes requests for which `f(method, path)` returns `Some((code, reason))` fail.
    pub fn fail_when(
        &self,
        f: impl Fn(&str, &str) -> Option<(u16, String)> + Send + Sync + 'static,
    ) {
        self.failures.lock().expect("failures").push(Box::new(f));
    }

    /// Stops failing requests.
    pub fn clear_failures(&self) {
        self.failures.lock().expect("failures").clear();
    }

    /// Every request so far as (method, path without query).
    pub fn requests(&self) -> Vec<(String, String)> {
        self.state.lock().expect("state").requests.clone()
    }

    /// Requests with this method whose path contains `part`.
    pub fn count(&self, method: &str, part: &str) -> usize {
        self.requests()
            .iter()
            .filter(|(m, p)| m == method && p.contains(part))
            .count()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.state.lock().expect("state").requests.clear();
    }

    /// The most requests that were in flight at once.
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight.load(Ordering::SeqCst)
    }

    /// Stores an object as is (apiVersion/kind must be set); returns it with uid and
    /// resourceVersion.
    pub fn insert<K: serde::Serialize>(&self, collection: &str, obj: &K) -> Value {
        let mut v = serde_json::to_value(obj).expect("serialize");
        let mut st = self.state.lock().expect("state");
        st.rv += 1;
        let rv = st.rv;
        let ns = v["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let name = v["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if v["metadata"]["uid"].is_null() {
            v["metadata"]["uid"] = json!(format!("uid-{name}"));
        }
        v["metadata"]["resourceVersion"] = json!(rv.to_string());
        st.objects.insert((collection.into(), ns, name), v.clone());
        v
    }

    /// Removes an object outright.
    pub fn remove(&self, collection: &str, ns: &str, name: &str) {
        self.state.lock().expect("state").objects.remove(&(
            collection.into(),
            ns.into(),
            name.into(),
        ));
    }

    /// An object, decoded.
    pub fn get<K: serde::de::DeserializeOwned>(
        &self,
        collection: &str,
        ns: &str,
        name: &str,
    ) -> Option<K> {
        let st = self.state.lock().expect("state");
        st.objects
            .get(&(collection.into(), ns.into(), name.into()))
            .map(|v| serde_json::from_value(v.clone()).expect("decode"))
    }

    /// Every object of a collection (`v1/pods`, `apps/v1/replicasets`, …), decoded.
    pub fn list<K: serde::de::DeserializeOwned>(&self, collection: &str) -> Vec<K> {
        let st = self.state.lock().expect("state");
        st.objects
            .iter()
            .filter(|((c, _, _), _)| c == collection)
            .map(|(_, v)| serde_json::from_value(v.clone()).expect("decode"))
            .collect()
    }

    async fn handle(&self, method: &str, path: &str, body: &[u8]) -> (u16, Value) {
        let clean = path.split('?').next().unwrap_or_default().to_string();
        self.state
            .lock()
            .expect("state")
            .requests
            .push((method.to_string(), clean.clone()));
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        // Let concurrent requests overlap, as they would over the network.
        tokio::task::yield_now().await;
        tokio::task::yield_now().await;
        let res = self.serve(method, path, &clean, body);
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        res
    }

    fn serve(&self, method: &str, path: &str, clean: &str, body: &[u8]) -> (u16, Value) {
        for f in self.failures.lock().expect("failures").iter() {
            if let Some((code, reason)) = f(method, clean) {
                return status(code, &reason, &format!("injected failure: {reason}"));
            }
        }
        let Some((collection, ns, name, sub)) = parse(path) else {
            return status(404, "NotFound", "no such path");
        };
        let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let mut st = self.state.lock().expect("state");
        let key = (collection.clone(), ns.clone(), name.clone());
        match method {
            "GET" if name.is_empty() => {
                let items: Vec<Value> = st
                    .objects
                    .iter()
                    .filter(|((c, n, _), _)| *c == collection && (ns.is_empty() || *n == ns))
                    .map(|(_, v)| v.clone())
                    .collect();
                (
                    200,
                    json!({"apiVersion": "v1", "kind": "List",
                           "metadata": {"resourceVersion": st.rv.to_string()}, "items": items}),
                )
            }
            "GET" => match st.objects.get(&key) {
                Some(v) => (200, v.clone()),
                None => status(404, "NotFound", &format!("{name} not found")),
            },
            "POST" => {
                let mut obj = body;
                let mut name = obj["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                st.counter += 1;
                if name.is_empty() {
                    let prefix = obj["metadata"]["generateName"].as_str().unwrap_or_default();
                    name = format!("{prefix}{:05}", st.counter);
                    obj["metadata"]["name"] = json!(name);
                }
                let key = (collection.clone(), ns.clone(), name.clone());
                if st.objects.contains_key(&key) {
                    return status(409, "AlreadyExists", &format!("{name} already exists"));
                }
                st.rv += 1;
                obj["metadata"]["uid"] = json!(format!("uid-{name}-{}", st.counter));
                obj["metadata"]["resourceVersion"] = json!(st.rv.to_string());
                obj["metadata"]["creationTimestamp"] = json!(jiff::Timestamp::now().to_string());
                if !ns.is_empty() {
                    obj["metadata"]["namespace"] = json!(ns);
                }
                if obj.get("spec").is_some() {
                    obj["metadata"]["generation"] = json!(1);
                }
                st.objects.insert(key, obj.clone());
                (201, obj)
            }
            "PUT" | "PATCH" => {
                let Some(current) = st.objects.get(&key).cloned() else {
                    return status(404, "NotFound", &format!("{name} not found"));
                };
                let mut desired = if method == "PUT" {
                    body.clone()
                } else {
                    let mut d = current.clone();
                    merge(&mut d, &body);
                    d
                };
                if let Some(rv) = body["metadata"]["resourceVersion"].as_str()
                    && rv
                        != current["metadata"]["resourceVersion"]
                            .as_str()
                            .unwrap_or_default()
                {
                    return status(409, "Conflict", "the object has been modified");
                }
                let mut next = match sub.as_str() {
                    "status" => {
                        let mut n = current.clone();
                        n["status"] = desired["status"].take();
                        n
                    }
                    "finalize" => {
                        let mut n = current.clone();
                        n["spec"]["finalizers"] = desired["spec"]["finalizers"].take();
                        n
                    }
                    _ => {
                        if let Some(s) = current.get("status") {
                            desired["status"] = s.clone();
                        }
                        desired["metadata"]["uid"] = current["metadata"]["uid"].clone();
                        desired["metadata"]["creationTimestamp"] =
                            current["metadata"]["creationTimestamp"].clone();
                        if desired.get("spec") != current.get("spec") {
                            let g = current["metadata"]["generation"].as_i64().unwrap_or(0);
                            desired["metadata"]["generation"] = json!(g + 1);
                        } else {
                            desired["metadata"]["generation"] =
                                current["metadata"]["generation"].clone();
                        }
                        desired
                    }
                };
                st.rv += 1;
                next["metadata"]["resourceVersion"] = json!(st.rv.to_string());
                let finalizers_empty = next["metadata"]["finalizers"]
                    .as_array()
                    .is_none_or(|f| f.is_empty());
                let spec_finalizers_empty = next["spec"]["finalizers"]
                    .as_array()
                    .is_none_or(|f| f.is_empty());
                if !next["metadata"]["deletionTimestamp"].is_null()
                    && finalizers_empty
                    && spec_finalizers_empty
                {
                    st.objects.remove(&key);
                } else {
                    st.objects.insert(key, next.clone());
                }
                (200, next)
            }
            "DELETE" if name.is_empty() => {
                let keys: Vec<_> = st
                    .objects
                    .keys()
                    .filter(|(c, n, _)| *c == collection && (ns.is_empty() || *n == ns))
                    .cloned()
                    .collect();
                st.rv += 1;
                let rv = st.rv;
                for k in keys {
                    let held = st.objects[&k]["metadata"]["finalizers"]
                        .as_array()
                        .is_some_and(|f| !f.is_empty());
                    if held {
                        let o = st.objects.get_mut(&k).expect("object");
                        o["metadata"]["deletionTimestamp"] =
                            json!(jiff::Timestamp::now().to_string());
                        o["metadata"]["resourceVersion"] = json!(rv.to_string());
                    } else {
                        st.objects.remove(&k);
                    }
                }
                (
                    200,
                    json!({"kind": "Status", "status": "Success", "metadata": {}}),
                )
            }
            "DELETE" => {
                let Some(mut current) = st.objects.get(&key).cloned() else {
                    return status(404, "NotFound", &format!("{name} not found"));
                };
                let pre = &body["preconditions"];
                if let Some(uid) = pre["uid"].as_str()
                    && Some(uid) != current["metadata"]["uid"].as_str()
                {
                    return status(409, "Conflict", "Precondition failed: UID");
                }
                if let Some(rv) = pre["resourceVersion"].as_str()
                    && Some(rv) != current["metadata"]["resourceVersion"].as_str()
                {
                    return status(409, "Conflict", "Precondition failed: ResourceVersion");
                }
                let mut finalizers: Vec<Value> = current["metadata"]["finalizers"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                match body["propagationPolicy"].as_str() {
                    Some("Foreground") => finalizers.push(json!("foregroundDeletion")),
                    Some("Orphan") => finalizers.push(json!("orphan")),
                    _ => {}
                }
                let awaits_namespace_finalizers = collection == "v1/namespaces";
                if finalizers.is_empty() && !awaits_namespace_finalizers {
                    st.objects.remove(&key);
                    return (200, current);
                }
                st.rv += 1;
                current["metadata"]["finalizers"] = json!(finalizers);
                current["metadata"]["deletionTimestamp"] =
                    json!(jiff::Timestamp::now().to_string());
                current["metadata"]["resourceVersion"] = json!(st.rv.to_string());
                st.objects.insert(key, current.clone());
                (200, current)
            }
            _ => status(405, "MethodNotAllowed", "method not allowed"),
        }
    }
}

/// A reflector store holding `objs`, as after an initial list (tests).
pub fn store_of<K>(
    objs: Vec<K>,
) -> (
    kube::runtime::reflector::Store<K>,
    kube::runtime::reflector::store::Writer<K>,
)
where
    K: kube::runtime::reflector::Lookup<DynamicType = ()> + Clone + 'static,
{
    use kube::runtime::watcher::Event;
    let mut w = kube::runtime::reflector::store::Writer::<K>::default();
    w.apply_watcher_event(&Event::Init);
    for o in objs {
        w.apply_watcher_event(&Event::InitApply(o));
    }
    w.apply_watcher_event(&Event::InitDone);
    (w.as_reader(), w)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;
    use kube::Api;
    use kube::api::{DeleteParams, PostParams};

    #[tokio::test]
    async fn serves_kube_clients() {
        let fake = FakeApi::new();
        let pods: Api<Pod> = Api::namespaced(fake.client(), "ns");
        let mut p = Pod::default();
        p.metadata.generate_name = Some("web-".into());
        let created = pods.create(&PostParams::default(), &p).await.unwrap();
        let name = created.metadata.name.clone().unwrap();
        assert!(name.starts_with("web-"));
        assert_eq!(pods.list(&Default::default()).await.unwrap().items.len(), 1);
        let mut stale = created.clone();
        stale.metadata.resource_version = Some("0".into());
        let err = pods
            .replace(&name, &PostParams::default(), &stale)
            .await
            .unwrap_err();
        assert!(crate::runner::is_conflict(&err));
        fake.fail_when(|m, _| (m == "POST").then(|| (500, "InternalError".into())));
        assert!(pods.create(&PostParams::default(), &p).await.is_err());
        pods.delete(&name, &DeleteParams::default()).await.unwrap();
        assert!(fake.list::<Pod>("v1/pods").is_empty());
        assert_eq!(fake.count("POST", "/pods"), 2);
    }
}
