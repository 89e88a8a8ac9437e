//! Unit tests of the namespace controller against the fake API.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, NamespaceSpec, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::core::discovery::ApiResource;

use super::*;
use crate::discovery::Resource;
use crate::fake::FakeApi;

fn resource(group: &str, version: &str, kind: &str, plural: &str, verbs: &[&str]) -> Resource {
    Resource {
        api: ApiResource {
            group: group.into(),
            version: version.into(),
            api_version: if group.is_empty() {
                version.into()
            } else {
                format!("{group}/{version}")
            },
            kind: kind.into(),
            plural: plural.into(),
        },
        namespaced: true,
        verbs: verbs.iter().map(|v| v.to_string()).collect(),
    }
}

fn meta(name: &str, ns: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: ns.map(String::from),
        ..Default::default()
    }
}

#[tokio::test(start_paused = true)]
async fn a_deleted_namespace_is_emptied_then_finalized() {
    let fake = FakeApi::new();
    let ns = Namespace {
        metadata: ObjectMeta {
            deletion_timestamp: Some(Time(jiff::Timestamp::now())),
            ..meta("team", None)
        },
        spec: Some(NamespaceSpec {
            finalizers: Some(vec![FINALIZER.into()]),
        }),
        status: None,
    };
    fake.insert("v1/namespaces", &ns);
    for p in ["a", "b"] {
        fake.insert(
            "v1/pods",
            &Pod {
                metadata: meta(p, Some("team")),
                ..Default::default()
            },
        );
    }
    fake.insert(
        "v1/pods",
        &Pod {
            metadata: meta("elsewhere", Some("other")),
            ..Default::default()
        },
    );
    let held = ConfigMap {
        metadata: ObjectMeta {
            finalizers: Some(vec!["example.com/hold".into()]),
            ..meta("held", Some("team"))
        },
        ..Default::default()
    };
    fake.insert("v1/configmaps", &held);
    let ctx = Arc::new(Ctx {
        client: fake.client(),
        resources: Resources::from_list(vec![
            resource(
                "",
                "v1",
                "Pod",
                "pods",
                &["list", "delete", "deletecollection"],
            ),
            resource("", "v1", "ConfigMap", "configmaps", &["list", "delete"]),
        ]),
        clock: Clock::new(),
        retry: Duration::from_millis(500),
    });
    let stored = || Arc::new(fake.get::<Namespace>("v1/namespaces", "", "team").unwrap());
    let action = reconcile(stored(), ctx.clone()).await.unwrap();
    assert_eq!(
        action,
        Action::requeue(Duration::from_millis(500)),
        "content left"
    );
    let pods: Vec<Pod> = fake.list("v1/pods");
    assert_eq!(pods.len(), 1, "only the other namespace's pod is left");
    let ns_now = stored();
    let conds = ns_now.status.clone().unwrap().conditions.unwrap();
    let msg = |t: &str| {
        conds
            .iter()
            .find(|c| c.type_ == t)
            .and_then(|c| c.message.clone())
            .unwrap()
    };
    assert_eq!(
        msg("NamespaceContentRemaining"),
        "Some resources are remaining: configmaps. has 1 resource instances"
    );
    assert_eq!(
        msg("NamespaceFinalizersRemaining"),
        "Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances"
    );
    assert_eq!(
        ns_now.spec.clone().unwrap().finalizers.unwrap(),
        [FINALIZER],
        "not finalized while content remains"
    );

    // The finalizer holding the ConfigMap is released: the namespace is finalized.
    fake.remove("v1/configmaps", "team", "held");
    reconcile(stored(), ctx.clone()).await.unwrap();
    assert!(fake.count("PUT", "/namespaces/team/finalize") == 1);
    assert!(
        fake.get::<Namespace>("v1/namespaces", "", "team").is_none(),
        "the API server deleted it"
    );
}

#[tokio::test(start_paused = true)]
async fn active_namespaces_are_left_alone() {
    let fake = FakeApi::new();
    let ns = Namespace {
        metadata: meta("live", None),
        ..Default::default()
    };
    fake.insert("v1/namespaces", &ns);
    fake.insert(
        "v1/pods",
        &Pod {
            metadata: meta("a", Some("live")),
            ..Default::default()
        },
    );
    let ctx = Arc::new(Ctx {
        client: fake.client(),
        resources: Resources::from_list(vec![resource(
            "",
            "v1",
            "Pod",
            "pods",
            &["list", "delete", "deletecollection"],
        )]),
        clock: Clock::new(),
        retry: Duration::from_millis(500),
    });
    reconcile(Arc::new(ns), ctx).await.unwrap();
    assert_eq!(fake.list::<Pod>("v1/pods").len(), 1);
    assert!(fake.requests().is_empty());
}
