//! Bad input gets a Kubernetes `Status` with the right code and reason, and stores nothing:
//! malformed bodies, invalid objects, wrong kinds, conflicts, unsupported media types,
//! oversized bodies, unknown fields under strict validation, missing namespaces, bad selectors.

mod common;

use common::{Backend, TestServer};
use serde_json::json;

const JSON: (&str, &str) = ("content-type", "application/json");
const CMS: &str = "/api/v1/namespaces/default/configmaps";

fn cm(name: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name}, "data": {"a": "b"}}))
    .unwrap()
}

async fn count(s: &TestServer) -> usize {
    let (code, _, body) = s.http("GET", CMS, &[], vec![]).await;
    assert_eq!(code, 200);
    body["items"].as_array().unwrap().len()
}

fn assert_status(code: u16, body: &serde_json::Value, want_code: u16, reason: &str) {
    assert_eq!(code, want_code, "{body}");
    assert_eq!(body["kind"], "Status", "{body}");
    assert_eq!(body["apiVersion"], "v1");
    assert_eq!(body["status"], "Failure");
    assert_eq!(body["code"], want_code);
    assert_eq!(body["reason"], reason, "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_requests_get_statuses_and_store_nothing() {
    let s = TestServer::start(Backend::Embedded).await;
    let before = count(&s).await;

    // Malformed JSON.
    let (code, _, body) = s
        .http("POST", CMS, &[JSON], b"{\"apiVersion\": \"v1\", ".to_vec())
        .await;
    assert_status(code, &body, 400, "BadRequest");
    // Empty body.
    let (code, _, body) = s.http("POST", CMS, &[JSON], vec![]).await;
    assert_status(code, &body, 400, "BadRequest");
    // A JSON array, not an object.
    let (code, _, body) = s.http("POST", CMS, &[JSON], b"[1,2]".to_vec()).await;
    assert_status(code, &body, 400, "BadRequest");
    // Wrong field types.
    let wrong = serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "x"}, "data": ["not", "a", "map"]}))
    .unwrap();
    let (code, _, body) = s.http("POST", CMS, &[JSON], wrong).await;
    assert_status(code, &body, 400, "BadRequest");
    // The wrong kind for the path.
    let secret = serde_json::to_vec(
        &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}}),
    )
    .unwrap();
    let (code, _, body) = s.http("POST", CMS, &[JSON], secret).await;
    assert_status(code, &body, 400, "BadRequest");
    // Invalid names: 422 with causes.
    let (code, _, body) = s.http("POST", CMS, &[JSON], cm("Not_Valid")).await;
    assert_status(code, &body, 422, "Invalid");
    assert_eq!(body["details"]["causes"][0]["field"], "metadata.name");
    assert_eq!(body["details"]["causes"][0]["reason"], "FieldValueInvalid");
    let deploy = serde_json::to_vec(&json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "d"},
        "spec": {"selector": {"matchLabels": {"app": "a"}},
                 "template": {"metadata": {"labels": {"app": "b"}},
                              "spec": {"containers": [{"name": "c"}]}}}}))
    .unwrap();
    let (code, _, body) = s
        .http(
            "POST",
            "/apis/apps/v1/namespaces/default/deployments",
            &[JSON],
            deploy,
        )
        .await;
    assert_status(code, &body, 422, "Invalid");
    let fields: Vec<&str> = body["details"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert!(
        fields.contains(&"spec.template.metadata.labels"),
        "{fields:?}"
    );
    assert!(
        fields.contains(&"spec.template.spec.containers[0].image"),
        "{fields:?}"
    );
    // Unsupported media types.
    let (code, _, body) = s
        .http("POST", CMS, &[("content-type", "text/plain")], cm("x"))
        .await;
    assert_status(code, &body, 415, "UnsupportedMediaType");
    let (code, _, body) = s
        .http(
            "PATCH",
            &format!("{CMS}/x"),
            &[("content-type", "application/xml")],
            cm("x"),
        )
        .await;
    assert_status(code, &body, 415, "UnsupportedMediaType");
    // Not acceptable.
    let (code, _, body) = s
        .http(
            "GET",
            CMS,
            &[("accept", "application/vnd.kubernetes.protobuf")],
            vec![],
        )
        .await;
    assert_status(code, &body, 406, "NotAcceptable");
    // Too large (above 3 MiB).
    let big = serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "big"}, "data": {"a": "x".repeat(4 * 1024 * 1024)}}))
    .unwrap();
    let (code, _, body) = s.http("POST", CMS, &[JSON], big).await;
    assert_status(code, &body, 413, "RequestEntityTooLarge");
    // Unknown fields with strict validation; a warning otherwise.
    let unknown = serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "strict"}, "data": {}, "dataa": {}}))
    .unwrap();
    let (code, _, body) = s
        .http(
            "POST",
            &format!("{CMS}?fieldValidation=Strict"),
            &[JSON],
            unknown.clone(),
        )
        .await;
    assert_status(code, &body, 400, "BadRequest");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("unknown field \"dataa\""),
        "{body}"
    );
    let (code, headers, _) = s
        .http("POST", &format!("{CMS}?dryRun=All"), &[JSON], unknown)
        .await;
    assert_eq!(code, 201);
    assert!(
        headers
            .get("warning")
            .unwrap()
            .to_str()
            .unwrap()
            .contains("unknown field")
    );
    // A namespace that does not exist.
    let (code, _, body) = s
        .http(
            "POST",
            "/api/v1/namespaces/nope/configmaps",
            &[JSON],
            cm("x"),
        )
        .await;
    assert_status(code, &body, 404, "NotFound");
    // Methods a path does not support.
    let (code, _, body) = s.http("PUT", CMS, &[JSON], cm("x")).await;
    assert_status(code, &body, 405, "MethodNotAllowed");
    // Unknown resources and paths.
    let (code, _, body) = s
        .http("GET", "/api/v1/namespaces/default/widgets", &[], vec![])
        .await;
    assert_status(code, &body, 404, "NotFound");
    // Bad selectors and resource versions.
    let (code, _, body) = s
        .http(
            "GET",
            &format!("{CMS}?labelSelector=a%20in%20(b"),
            &[],
            vec![],
        )
        .await;
    assert_status(code, &body, 400, "BadRequest");
    let (code, _, body) = s
        .http(
            "GET",
            &format!("{CMS}?fieldSelector=spec.nodeName%3Dx"),
            &[],
            vec![],
        )
        .await;
    assert_status(code, &body, 400, "BadRequest");
    let (code, _, body) = s
        .http("GET", &format!("{CMS}?resourceVersion=abc"), &[], vec![])
        .await;
    assert_status(code, &body, 400, "BadRequest");
    let (code, _, body) = s
        .http("GET", &format!("{CMS}?continue=garbage"), &[], vec![])
        .await;
    assert_status(code, &body, 400, "BadRequest");
    let (code, _, body) = s
        .http("POST", &format!("{CMS}?dryRun=Some"), &[JSON], cm("x"))
        .await;
    assert_status(code, &body, 400, "BadRequest");
    // Malformed patches.
    let (code, _, _) = s.http("POST", CMS, &[JSON], cm("target")).await;
    assert_eq!(code, 201);
    let (code, _, body) = s
        .http(
            "PATCH",
            &format!("{CMS}/target"),
            &[("content-type", "application/json-patch+json")],
            b"{\"op\":\"add\"}".to_vec(),
        )
        .await;
    assert_status(code, &body, 400, "BadRequest");
    let (code, _, body) = s
        .http(
            "PATCH",
            &format!("{CMS}/target"),
            &[("content-type", "application/json-patch+json")],
            serde_json::to_vec(&json!([{"op": "test", "path": "/data/a", "value": "nope"}]))
                .unwrap(),
        )
        .await;
    assert_status(code, &body, 422, "Invalid");
    let (code, _, body) = s
        .http(
            "PATCH",
            &format!("{CMS}/target"),
            &[("content-type", "application/merge-patch+json")],
            b"not json".to_vec(),
        )
        .await;
    assert_status(code, &body, 400, "BadRequest");
    let (code, _, body) = s
        .http(
            "PATCH",
            &format!("{CMS}/missing"),
            &[("content-type", "application/merge-patch+json")],
            b"{}".to_vec(),
        )
        .await;
    assert_status(code, &body, 404, "NotFound");
    let (code, _, body) = s
        .http(
            "PATCH",
            &format!("{CMS}/target"),
            &[("content-type", "application/apply-patch+yaml")],
            b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: target\n".to_vec(),
        )
        .await;
    assert_status(code, &body, 422, "Invalid");
    assert!(
        body["message"].as_str().unwrap().contains("fieldManager"),
        "{body}"
    );

    // Only the one object the test created on purpose is there.
    assert_eq!(count(&s).await, before + 1);
    let (code, _, body) = s.http("GET", &format!("{CMS}/target"), &[], vec![]).await;
    assert_eq!(code, 200);
    assert_eq!(
        body["data"],
        json!({"a": "b"}),
        "failed patches changed nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conflicts_and_preconditions() {
    let s = TestServer::start(Backend::Embedded).await;
    let (code, _, created) = s.http("POST", CMS, &[JSON], cm("c")).await;
    assert_eq!(code, 201);
    let rv = created["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let uid = created["metadata"]["uid"].as_str().unwrap().to_string();
    // Creating it again.
    let (code, _, body) = s.http("POST", CMS, &[JSON], cm("c")).await;
    assert_status(code, &body, 409, "AlreadyExists");
    // An update with the current resourceVersion works; the old one then conflicts.
    let mut next = created.clone();
    next["data"]["a"] = "updated".into();
    let (code, _, updated) = s
        .http(
            "PUT",
            &format!("{CMS}/c"),
            &[JSON],
            serde_json::to_vec(&next).unwrap(),
        )
        .await;
    assert_eq!(code, 200, "{updated}");
    assert_ne!(updated["metadata"]["resourceVersion"].as_str().unwrap(), rv);
    let mut stale = created.clone();
    stale["data"]["a"] = "stale".into();
    let (code, _, body) = s
        .http(
            "PUT",
            &format!("{CMS}/c"),
            &[JSON],
            serde_json::to_vec(&stale).unwrap(),
        )
        .await;
    assert_status(code, &body, 409, "Conflict");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("the object has been modified")
    );
    // A name that differs from the URL.
    let (code, _, body) = s
        .http(
            "PUT",
            &format!("{CMS}/other"),
            &[JSON],
            serde_json::to_vec(&next).unwrap(),
        )
        .await;
    assert!(code == 400 || code == 404, "{body}");
    // Delete preconditions.
    let pre = |uid: &str, rv: Option<&str>| {
        let mut p = json!({"uid": uid});
        if let Some(rv) = rv {
            p["resourceVersion"] = rv.into();
        }
        serde_json::to_vec(
            &json!({"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": p}),
        )
        .unwrap()
    };
    let (code, _, body) = s
        .http(
            "DELETE",
            &format!("{CMS}/c"),
            &[JSON],
            pre("wrong-uid", None),
        )
        .await;
    assert_status(code, &body, 409, "Conflict");
    let (code, _, body) = s
        .http("DELETE", &format!("{CMS}/c"), &[JSON], pre(&uid, Some(&rv)))
        .await;
    assert_status(code, &body, 409, "Conflict");
    let (code, _, _) = s
        .http("DELETE", &format!("{CMS}/c"), &[JSON], pre(&uid, None))
        .await;
    assert_eq!(code, 200);
    let (code, _, body) = s.http("GET", &format!("{CMS}/c"), &[], vec![]).await;
    assert_status(code, &body, 404, "NotFound");
    // A list at a revision the store has not reached yet times out like Kubernetes (504).
    let (code, _, body) = s
        .http(
            "GET",
            &format!("{CMS}?resourceVersion=999999999&resourceVersionMatch=Exact"),
            &[],
            vec![],
        )
        .await;
    assert_eq!(code, 504, "{body}");
}
