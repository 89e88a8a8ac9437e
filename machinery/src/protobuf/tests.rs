//! Tests of the protobuf decoder: objects built as `k8s-pb` (prost) messages the way Go's
//! encoder writes them (every non-pointer field present, zero or not), wrapped in the
//! envelope, decoded, compared with the JSON Kubernetes gives them, and read back through the
//! matching `k8s-openapi` type; malformed bodies; the table's consistency.

use std::collections::BTreeMap;

use k8s_pb::api::apps::v1 as pb_apps;
use k8s_pb::api::coordination::v1 as pb_coordination;
use k8s_pb::api::core::v1 as pb;
use k8s_pb::api::events::v1 as pb_events;
use k8s_pb::api::policy::v1 as pb_policy;
use k8s_pb::apimachinery::pkg::api::resource::Quantity;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::{RawExtension, TypeMeta, Unknown};
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use prost::Message as _;
use serde_json::{Value, json};

use super::decode::Decoder;
use super::generated::{MESSAGES, ROOTS};
use super::table::{Kind, MessageDef, Special};
use super::{MAGIC, MAX_DEPTH, ProtoError, decode, decode_as, supported_kinds, supports};

/// A body as Go's protobuf serializer writes it: magic, then the envelope (whose content
/// encoding and type Go always writes, empty).
fn body(api_version: &str, kind: &str, object: &impl prost::Message) -> Vec<u8> {
    body_of(api_version, kind, object.encode_to_vec())
}

fn body_of(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
        }),
        raw: Some(raw),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    let mut body = MAGIC.to_vec();
    body.extend(unknown.encode_to_vec());
    body
}

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Object metadata as Go writes a new object's: the unset strings and generation as zeros,
/// `creationTimestamp` as an empty `Time`.
fn new_meta(name: &str, namespace: &str) -> meta::ObjectMeta {
    meta::ObjectMeta {
        name: s(name),
        generate_name: s(""),
        namespace: s(namespace),
        self_link: s(""),
        uid: s(""),
        resource_version: s(""),
        generation: Some(0),
        creation_timestamp: Some(meta::Time::default()),
        ..Default::default()
    }
}

fn quantity(v: &str) -> Quantity {
    Quantity { string: s(v) }
}

fn int_port(port: i32) -> IntOrString {
    IntOrString {
        r#type: Some(0),
        int_val: Some(port),
        str_val: s(""),
    }
}

fn named_port(port: &str) -> IntOrString {
    IntOrString {
        r#type: Some(1),
        int_val: Some(0),
        str_val: s(port),
    }
}

/// Removes `null` members (Kubernetes writes a zero `Time` as `null`; `k8s-openapi` omits it).
fn without_nulls(v: &Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

/// Reads the JSON as the `k8s-openapi` type and writes it back: every member must survive
/// (a wrong JSON name would be dropped as unknown).
fn round_trips<T: serde::de::DeserializeOwned + serde::Serialize>(v: &Value) -> T {
    let typed: T = match serde_json::from_value(v.clone()) {
        Ok(typed) => typed,
        Err(e) => panic!(
            "does not read as {}: {e}\n{v:#}",
            std::any::type_name::<T>()
        ),
    };
    let back = serde_json::to_value(&typed).expect("serializes");
    assert_eq!(back, without_nulls(v), "round trip through k8s-openapi");
    typed
}

#[test]
fn config_map_with_data_binary_data_and_labels() {
    let mut meta = new_meta("app-config", "default");
    meta.labels = labels(&[("app", "web"), ("tier", "frontend")]);
    let cm = pb::ConfigMap {
        metadata: Some(meta),
        data: labels(&[("app.properties", "color=blue\nsize=10\n"), ("empty", "")]),
        binary_data: [("blob".to_string(), vec![0u8, 1, 2, 0xff])].into(),
        immutable: None,
    };
    let v = decode(&body("v1", "ConfigMap", &cm)).unwrap();
    assert_eq!(
        v,
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": "app-config",
                "namespace": "default",
                "creationTimestamp": null,
                "labels": {"app": "web", "tier": "frontend"},
            },
            "data": {"app.properties": "color=blue\nsize=10\n", "empty": ""},
            "binaryData": {"blob": "AAEC/w=="},
        })
    );
    let typed: k8s_openapi::api::core::v1::ConfigMap = round_trips(&v);
    assert_eq!(typed.binary_data.unwrap()["blob"].0, vec![0u8, 1, 2, 0xff]);
}

#[test]
fn secret_with_byte_data() {
    let secret = pb::Secret {
        metadata: Some(new_meta("db", "prod")),
        immutable: None,
        data: [
            ("password".to_string(), b"s3cr3t\n".to_vec()),
            ("raw".to_string(), vec![0x00, 0x80, 0xfe]),
            ("empty".to_string(), vec![]),
        ]
        .into(),
        string_data: BTreeMap::new(),
        r#type: s("Opaque"),
    };
    let v = decode(&body("v1", "Secret", &secret)).unwrap();
    assert_eq!(
        v["data"],
        json!({"password": "czNjcjN0Cg==", "raw": "AID+", "empty": ""})
    );
    assert_eq!(v["type"], "Opaque");
    let typed: k8s_openapi::api::core::v1::Secret = round_trips(&v);
    assert_eq!(typed.data.unwrap()["password"].0, b"s3cr3t\n");
}

/// A container as Go writes it: the unset non-pointer fields present with zero values.
fn container(name: &str, image: &str) -> pb::Container {
    pb::Container {
        name: s(name),
        image: s(image),
        working_dir: s(""),
        termination_message_path: s(""),
        termination_message_policy: s(""),
        image_pull_policy: s(""),
        stdin: Some(false),
        stdin_once: Some(false),
        tty: Some(false),
        resources: Some(pb::ResourceRequirements::default()),
        ..Default::default()
    }
}

fn deployment() -> pb_apps::Deployment {
    let mut web = container("web", "nginx:1.27");
    web.command = vec!["nginx".into(), "-g".into(), "daemon off;".into()];
    web.ports = vec![pb::ContainerPort {
        name: s("http"),
        host_port: Some(0),
        container_port: Some(80),
        protocol: s("TCP"),
        host_ip: s(""),
    }];
    web.env = vec![
        pb::EnvVar {
            name: s("MODE"),
            value: s("production"),
            value_from: None,
        },
        pb::EnvVar {
            name: s("EMPTY"),
            value: s(""),
            value_from: None,
        },
        pb::EnvVar {
            name: s("COLOR"),
            value: s(""),
            value_from: Some(pb::EnvVarSource {
                config_map_key_ref: Some(pb::ConfigMapKeySelector {
                    local_object_reference: Some(pb::LocalObjectReference {
                        name: s("app-config"),
                    }),
                    key: s("color"),
                    optional: Some(false),
                }),
                ..Default::default()
            }),
        },
    ];
    web.resources = Some(pb::ResourceRequirements {
        limits: [
            ("cpu".to_string(), quantity("500m")),
            ("memory".to_string(), quantity("128Mi")),
        ]
        .into(),
        requests: [("cpu".to_string(), quantity("250m"))].into(),
        claims: vec![],
    });
    web.liveness_probe = Some(pb::Probe {
        handler: Some(pb::ProbeHandler {
            http_get: Some(pb::HttpGetAction {
                path: s("/healthz"),
                port: Some(int_port(8080)),
                host: s(""),
                scheme: s("HTTP"),
                http_headers: vec![],
            }),
            ..Default::default()
        }),
        initial_delay_seconds: Some(3),
        timeout_seconds: Some(0),
        period_seconds: Some(10),
        success_threshold: Some(0),
        failure_threshold: Some(0),
        termination_grace_period_seconds: None,
    });
    web.readiness_probe = Some(pb::Probe {
        handler: Some(pb::ProbeHandler {
            tcp_socket: Some(pb::TcpSocketAction {
                port: Some(named_port("http")),
                host: s(""),
            }),
            ..Default::default()
        }),
        initial_delay_seconds: Some(0),
        timeout_seconds: Some(1),
        period_seconds: Some(0),
        success_threshold: Some(0),
        failure_threshold: Some(3),
        termination_grace_period_seconds: None,
    });
    web.volume_mounts = vec![pb::VolumeMount {
        name: s("config"),
        read_only: Some(true),
        mount_path: s("/etc/web"),
        sub_path: s(""),
        sub_path_expr: s(""),
        ..Default::default()
    }];
    web.security_context = Some(pb::SecurityContext {
        run_as_user: Some(0),
        allow_privilege_escalation: Some(false),
        ..Default::default()
    });
    let template_meta = meta::ObjectMeta {
        labels: labels(&[("app", "web")]),
        ..new_meta("", "")
    };
    pb_apps::Deployment {
        metadata: Some(meta::ObjectMeta {
            labels: labels(&[("app", "web")]),
            ..new_meta("web", "default")
        }),
        spec: Some(pb_apps::DeploymentSpec {
            replicas: Some(3),
            selector: Some(meta::LabelSelector {
                match_labels: labels(&[("app", "web")]),
                match_expressions: vec![meta::LabelSelectorRequirement {
                    key: s("tier"),
                    operator: s("In"),
                    values: vec!["frontend".into(), "edge".into()],
                }],
            }),
            template: Some(pb::PodTemplateSpec {
                metadata: Some(template_meta),
                spec: Some(pb::PodSpec {
                    volumes: vec![pb::Volume {
                        name: s("config"),
                        volume_source: Some(pb::VolumeSource {
                            config_map: Some(pb::ConfigMapVolumeSource {
                                local_object_reference: Some(pb::LocalObjectReference {
                                    name: s("app-config"),
                                }),
                                items: vec![],
                                default_mode: Some(0o644),
                                optional: None,
                            }),
                            ..Default::default()
                        }),
                    }],
                    containers: vec![web],
                    restart_policy: s(""),
                    termination_grace_period_seconds: Some(0),
                    dns_policy: s(""),
                    service_account_name: s(""),
                    node_name: s(""),
                    host_network: Some(false),
                    host_pid: Some(false),
                    host_ipc: Some(false),
                    hostname: s(""),
                    subdomain: s(""),
                    scheduler_name: s(""),
                    ..Default::default()
                }),
            }),
            strategy: Some(pb_apps::DeploymentStrategy::default()),
            min_ready_seconds: Some(0),
            revision_history_limit: None,
            paused: Some(false),
            progress_deadline_seconds: None,
        }),
        status: Some(pb_apps::DeploymentStatus {
            observed_generation: Some(0),
            replicas: Some(0),
            updated_replicas: Some(0),
            ready_replicas: Some(0),
            available_replicas: Some(0),
            unavailable_replicas: Some(0),
            ..Default::default()
        }),
    }
}

#[test]
fn deployment_with_a_full_pod_template() {
    let v = decode(&body("apps/v1", "Deployment", &deployment())).unwrap();
    let expected = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": "default",
            "creationTimestamp": null,
            "labels": {"app": "web"},
        },
        "spec": {
            "replicas": 3,
            "selector": {
                "matchLabels": {"app": "web"},
                "matchExpressions": [
                    {"key": "tier", "operator": "In", "values": ["frontend", "edge"]},
                ],
            },
            "template": {
                "metadata": {"creationTimestamp": null, "labels": {"app": "web"}},
                "spec": {
                    "volumes": [{
                        "name": "config",
                        "configMap": {"name": "app-config", "defaultMode": 420},
                    }],
                    "containers": [{
                        "name": "web",
                        "image": "nginx:1.27",
                        "command": ["nginx", "-g", "daemon off;"],
                        "ports": [{"name": "http", "containerPort": 80, "protocol": "TCP"}],
                        "env": [
                            {"name": "MODE", "value": "production"},
                            {"name": "EMPTY"},
                            {
                                "name": "COLOR",
                                "valueFrom": {
                                    "configMapKeyRef": {
                                        "name": "app-config",
                                        "key": "color",
                                        "optional": false,
                                    },
                                },
                            },
                        ],
                        "resources": {
                            "limits": {"cpu": "500m", "memory": "128Mi"},
                            "requests": {"cpu": "250m"},
                        },
                        "volumeMounts": [
                            {"name": "config", "readOnly": true, "mountPath": "/etc/web"},
                        ],
                        "livenessProbe": {
                            "httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTP"},
                            "initialDelaySeconds": 3,
                            "periodSeconds": 10,
                        },
                        "readinessProbe": {
                            "tcpSocket": {"port": "http"},
                            "timeoutSeconds": 1,
                            "failureThreshold": 3,
                        },
                        "securityContext": {"runAsUser": 0, "allowPrivilegeEscalation": false},
                    }],
                    "terminationGracePeriodSeconds": 0,
                },
            },
            "strategy": {},
        },
        "status": {},
    });
    assert_eq!(v, expected, "{v:#}");

    let typed: k8s_openapi::api::apps::v1::Deployment = round_trips(&v);
    let spec = typed.spec.unwrap();
    assert_eq!(spec.replicas, Some(3));
    let pod = spec.template.spec.unwrap();
    let web = &pod.containers[0];
    assert_eq!(
        web.resources.as_ref().unwrap().limits.as_ref().unwrap()["memory"].0,
        "128Mi"
    );
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString as K8sIntOrString;
    let live = web
        .liveness_probe
        .as_ref()
        .unwrap()
        .http_get
        .as_ref()
        .unwrap();
    assert_eq!(live.port, K8sIntOrString::Int(8080));
    let ready = web
        .readiness_probe
        .as_ref()
        .unwrap()
        .tcp_socket
        .as_ref()
        .unwrap();
    assert_eq!(ready.port, K8sIntOrString::String("http".into()));
    assert_eq!(pod.termination_grace_period_seconds, Some(0));
}

#[test]
fn zero_replicas_are_kept_and_zero_min_ready_seconds_dropped() {
    let mut d = deployment();
    if let Some(spec) = d.spec.as_mut() {
        spec.replicas = Some(0);
        spec.revision_history_limit = Some(0);
    }
    let v = decode(&body("apps/v1", "Deployment", &d)).unwrap();
    assert_eq!(v["spec"]["replicas"], 0);
    assert_eq!(v["spec"]["revisionHistoryLimit"], 0);
    assert!(v["spec"].get("minReadySeconds").is_none());
    assert!(v["spec"].get("paused").is_none());
}

#[test]
fn service_with_string_and_int_target_ports() {
    let svc = pb::Service {
        metadata: Some(new_meta("web", "default")),
        spec: Some(pb::ServiceSpec {
            ports: vec![
                pb::ServicePort {
                    name: s("http"),
                    protocol: s("TCP"),
                    app_protocol: None,
                    port: Some(80),
                    target_port: Some(named_port("http")),
                    node_port: Some(0),
                },
                pb::ServicePort {
                    name: s("metrics"),
                    protocol: s("TCP"),
                    app_protocol: None,
                    port: Some(9090),
                    target_port: Some(int_port(9091)),
                    node_port: Some(0),
                },
            ],
            selector: labels(&[("app", "web")]),
            cluster_ip: s("10.96.0.10"),
            cluster_ips: vec!["10.96.0.10".into()],
            r#type: s("ClusterIP"),
            external_ips: vec![],
            session_affinity: s(""),
            load_balancer_ip: s(""),
            external_name: s(""),
            external_traffic_policy: s(""),
            health_check_node_port: Some(0),
            publish_not_ready_addresses: Some(false),
            ip_families: vec!["IPv4".into()],
            ip_family_policy: s("SingleStack"),
            ..Default::default()
        }),
        status: Some(pb::ServiceStatus {
            load_balancer: Some(pb::LoadBalancerStatus::default()),
            conditions: vec![],
        }),
    };
    let v = decode(&body("v1", "Service", &svc)).unwrap();
    assert_eq!(
        v["spec"],
        json!({
            "ports": [
                {"name": "http", "protocol": "TCP", "port": 80, "targetPort": "http"},
                {"name": "metrics", "protocol": "TCP", "port": 9090, "targetPort": 9091},
            ],
            "selector": {"app": "web"},
            "clusterIP": "10.96.0.10",
            "clusterIPs": ["10.96.0.10"],
            "type": "ClusterIP",
            "ipFamilies": ["IPv4"],
            "ipFamilyPolicy": "SingleStack",
        })
    );
    assert_eq!(v["status"], json!({"loadBalancer": {}}));
    round_trips::<k8s_openapi::api::core::v1::Service>(&v);
}

#[test]
fn namespace() {
    let ns = pb::Namespace {
        metadata: Some(new_meta("team-a", "")),
        spec: Some(pb::NamespaceSpec::default()),
        status: Some(pb::NamespaceStatus {
            phase: s(""),
            conditions: vec![],
        }),
    };
    let v = decode(&body("v1", "Namespace", &ns)).unwrap();
    assert_eq!(
        v,
        json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "team-a", "creationTimestamp": null},
            "spec": {},
            "status": {},
        })
    );
    round_trips::<k8s_openapi::api::core::v1::Namespace>(&v);
}

fn delete_options() -> meta::DeleteOptions {
    meta::DeleteOptions {
        grace_period_seconds: Some(0),
        preconditions: Some(meta::Preconditions {
            uid: s("5c0e3b6f-2a7e-4a43-9d55-1f4c7f6d9e2a"),
            resource_version: None,
        }),
        orphan_dependents: None,
        propagation_policy: s("Foreground"),
        dry_run: vec!["All".into()],
        ignore_store_read_error_with_cluster_breaking_potential: None,
    }
}

#[test]
fn eviction_with_delete_options() {
    let eviction = pb_policy::Eviction {
        metadata: Some(new_meta("web-5d9c7b7c4-x2x7q", "default")),
        delete_options: Some(delete_options()),
    };
    let v = decode(&body("policy/v1", "Eviction", &eviction)).unwrap();
    assert_eq!(
        v,
        json!({
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {
                "name": "web-5d9c7b7c4-x2x7q",
                "namespace": "default",
                "creationTimestamp": null,
            },
            "deleteOptions": {
                "gracePeriodSeconds": 0,
                "preconditions": {"uid": "5c0e3b6f-2a7e-4a43-9d55-1f4c7f6d9e2a"},
                "propagationPolicy": "Foreground",
                "dryRun": ["All"],
            },
        })
    );
    round_trips::<k8s_openapi::api::policy::v1::Eviction>(&v);
}

#[test]
fn delete_options_under_any_api_version() {
    let expected = json!({
        "gracePeriodSeconds": 30,
        "propagationPolicy": "Background",
    });
    let opts = meta::DeleteOptions {
        grace_period_seconds: Some(30),
        propagation_policy: s("Background"),
        ..Default::default()
    };
    for api_version in ["meta.k8s.io/v1", "v1", "apps/v1"] {
        let v = decode(&body(api_version, "DeleteOptions", &opts)).unwrap();
        let mut want = expected.clone();
        want["apiVersion"] = json!(api_version);
        want["kind"] = json!("DeleteOptions");
        assert_eq!(v, want);
        round_trips::<k8s_openapi::apimachinery::pkg::apis::meta::v1::DeleteOptions>(&v);
    }
}

fn involved_pod() -> pb::ObjectReference {
    pb::ObjectReference {
        kind: s("Pod"),
        namespace: s("default"),
        name: s("web-0"),
        uid: s("uid-1"),
        api_version: s("v1"),
        resource_version: s("42"),
        field_path: s(""),
    }
}

#[test]
fn core_event_with_times() {
    let event = pb::Event {
        metadata: Some(new_meta("web-0.17a", "default")),
        involved_object: Some(involved_pod()),
        reason: s("Scheduled"),
        message: s("Successfully assigned default/web-0 to node-1"),
        source: Some(pb::EventSource {
            component: s("default-scheduler"),
            host: s(""),
        }),
        first_timestamp: Some(meta::Time {
            seconds: Some(1_704_164_645),
            nanos: Some(0),
        }),
        last_timestamp: Some(meta::Time {
            seconds: Some(1_704_164_705),
            // Kubernetes drops a Time's nanoseconds.
            nanos: Some(999),
        }),
        count: Some(2),
        r#type: s("Normal"),
        event_time: Some(meta::MicroTime {
            seconds: Some(1_704_164_705),
            nanos: Some(123_456_789),
        }),
        series: None,
        action: s(""),
        related: None,
        reporting_component: s(""),
        reporting_instance: s(""),
    };
    let v = decode(&body("v1", "Event", &event)).unwrap();
    assert_eq!(v["firstTimestamp"], "2024-01-02T03:04:05Z");
    assert_eq!(v["lastTimestamp"], "2024-01-02T03:05:05Z");
    assert_eq!(v["eventTime"], "2024-01-02T03:05:05.123456Z");
    assert_eq!(v["count"], 2);
    assert_eq!(v["source"], json!({"component": "default-scheduler"}));
    assert_eq!(v["involvedObject"]["resourceVersion"], "42");
    assert!(v.get("action").is_none());
    let typed: k8s_openapi::api::core::v1::Event = round_trips(&v);
    assert_eq!(typed.first_timestamp.unwrap().0.as_second(), 1_704_164_645);
}

#[test]
fn events_v1_event_with_series() {
    let event = pb_events::Event {
        metadata: Some(new_meta("web-0.17b", "default")),
        event_time: Some(meta::MicroTime {
            seconds: Some(1_704_164_705),
            nanos: Some(5_000),
        }),
        series: Some(pb_events::EventSeries {
            count: Some(3),
            last_observed_time: Some(meta::MicroTime {
                seconds: Some(1_704_164_765),
                nanos: Some(0),
            }),
        }),
        reporting_controller: s("kubelet"),
        reporting_instance: s("node-1"),
        action: s("Pulling"),
        reason: s("Pulling"),
        regarding: Some(involved_pod()),
        related: None,
        note: s("Pulling image"),
        r#type: s("Normal"),
        deprecated_source: Some(pb::EventSource {
            component: s(""),
            host: s(""),
        }),
        deprecated_first_timestamp: Some(meta::Time::default()),
        deprecated_last_timestamp: Some(meta::Time::default()),
        deprecated_count: Some(0),
    };
    let v = decode(&body("events.k8s.io/v1", "Event", &event)).unwrap();
    assert_eq!(v["eventTime"], "2024-01-02T03:05:05.000005Z");
    assert_eq!(
        v["series"],
        json!({"count": 3, "lastObservedTime": "2024-01-02T03:06:05.000000Z"})
    );
    assert_eq!(v["deprecatedSource"], json!({}));
    assert_eq!(v["deprecatedFirstTimestamp"], Value::Null);
    assert!(v.get("deprecatedCount").is_none());
    round_trips::<k8s_openapi::api::events::v1::Event>(&v);
}

#[test]
fn lease_with_micro_times() {
    let lease = pb_coordination::Lease {
        metadata: Some(new_meta("kube-scheduler", "kube-system")),
        spec: Some(pb_coordination::LeaseSpec {
            holder_identity: s("node-1_2f9c"),
            lease_duration_seconds: Some(15),
            acquire_time: Some(meta::MicroTime {
                seconds: Some(1_704_164_645),
                nanos: Some(250_000_000),
            }),
            renew_time: Some(meta::MicroTime {
                seconds: Some(1_704_164_705),
                nanos: Some(999_999_999),
            }),
            lease_transitions: Some(0),
            strategy: None,
            preferred_holder: None,
        }),
    };
    let v = decode(&body("coordination.k8s.io/v1", "Lease", &lease)).unwrap();
    assert_eq!(
        v["spec"],
        json!({
            "holderIdentity": "node-1_2f9c",
            "leaseDurationSeconds": 15,
            "acquireTime": "2024-01-02T03:04:05.250000Z",
            "renewTime": "2024-01-02T03:05:05.999999Z",
            "leaseTransitions": 0,
        })
    );
    round_trips::<k8s_openapi::api::coordination::v1::Lease>(&v);
}

#[test]
fn pod_with_status_and_json_names() {
    let pod = pb::Pod {
        metadata: Some(meta::ObjectMeta {
            uid: s("0c5c1c9e"),
            resource_version: s("7"),
            generation: Some(1),
            creation_timestamp: Some(meta::Time {
                seconds: Some(1_704_164_645),
                nanos: None,
            }),
            owner_references: vec![meta::OwnerReference {
                api_version: s("apps/v1"),
                kind: s("ReplicaSet"),
                name: s("web-5d9c7b7c4"),
                uid: s("rs-uid"),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }],
            managed_fields: vec![meta::ManagedFieldsEntry {
                manager: s("kubectl-create"),
                operation: s("Update"),
                api_version: s("v1"),
                time: Some(meta::Time {
                    seconds: Some(1_704_164_645),
                    nanos: None,
                }),
                fields_type: s("FieldsV1"),
                fields_v1: Some(meta::FieldsV1 {
                    raw: Some(br#"{"f:spec":{"f:containers":{}}}"#.to_vec()),
                }),
                subresource: s(""),
            }],
            ..new_meta("web-0", "default")
        }),
        spec: Some(pb::PodSpec {
            containers: vec![container("web", "nginx")],
            node_name: s("node-1"),
            host_network: Some(false),
            ..Default::default()
        }),
        status: Some(pb::PodStatus {
            phase: s("Running"),
            host_ip: s("192.168.1.10"),
            host_ips: vec![pb::HostIp {
                ip: s("192.168.1.10"),
            }],
            pod_ip: s("10.244.1.5"),
            pod_ips: vec![pb::PodIp {
                ip: s("10.244.1.5"),
            }],
            start_time: Some(meta::Time {
                seconds: Some(1_704_164_646),
                nanos: None,
            }),
            qos_class: s("BestEffort"),
            ..Default::default()
        }),
    };
    let v = decode(&body("v1", "Pod", &pod)).unwrap();
    assert_eq!(
        v["metadata"],
        json!({
            "name": "web-0",
            "namespace": "default",
            "uid": "0c5c1c9e",
            "resourceVersion": "7",
            "generation": 1,
            "creationTimestamp": "2024-01-02T03:04:05Z",
            "ownerReferences": [{
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": "web-5d9c7b7c4",
                "uid": "rs-uid",
                "controller": true,
                "blockOwnerDeletion": true,
            }],
            "managedFields": [{
                "manager": "kubectl-create",
                "operation": "Update",
                "apiVersion": "v1",
                "time": "2024-01-02T03:04:05Z",
                "fieldsType": "FieldsV1",
                "fieldsV1": {"f:spec": {"f:containers": {}}},
            }],
        })
    );
    assert_eq!(
        v["status"],
        json!({
            "phase": "Running",
            "hostIP": "192.168.1.10",
            "hostIPs": [{"ip": "192.168.1.10"}],
            "podIP": "10.244.1.5",
            "podIPs": [{"ip": "10.244.1.5"}],
            "startTime": "2024-01-02T03:04:06Z",
            "qosClass": "BestEffort",
        })
    );
    round_trips::<k8s_openapi::api::core::v1::Pod>(&v);
}

#[test]
fn binding_and_pvc_keep_an_empty_storage_class() {
    let binding = pb::Binding {
        metadata: Some(new_meta("web-0", "default")),
        target: Some(pb::ObjectReference {
            kind: s("Node"),
            name: s("node-1"),
            namespace: s(""),
            uid: s(""),
            api_version: s(""),
            resource_version: s(""),
            field_path: s(""),
        }),
    };
    let v = decode(&body("v1", "Binding", &binding)).unwrap();
    assert_eq!(v["target"], json!({"kind": "Node", "name": "node-1"}));
    round_trips::<k8s_openapi::api::core::v1::Binding>(&v);

    let pvc = pb::PersistentVolumeClaim {
        metadata: Some(new_meta("data", "default")),
        spec: Some(pb::PersistentVolumeClaimSpec {
            access_modes: vec!["ReadWriteOnce".into()],
            resources: Some(pb::VolumeResourceRequirements {
                requests: [("storage".to_string(), quantity("1Gi"))].into(),
                limits: BTreeMap::new(),
            }),
            volume_name: s(""),
            // A pointer: "" means "no class", unlike an absent class.
            storage_class_name: s(""),
            ..Default::default()
        }),
        status: Some(pb::PersistentVolumeClaimStatus::default()),
    };
    let v = decode(&body("v1", "PersistentVolumeClaim", &pvc)).unwrap();
    assert_eq!(
        v["spec"],
        json!({
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}},
            "storageClassName": "",
        })
    );
    round_trips::<k8s_openapi::api::core::v1::PersistentVolumeClaim>(&v);
}

#[test]
fn quantities_are_canonical() {
    let node = pb::Node {
        metadata: Some(new_meta("node-1", "")),
        spec: Some(pb::NodeSpec::default()),
        status: Some(pb::NodeStatus {
            capacity: [
                ("cpu".to_string(), quantity("4")),
                ("memory".to_string(), quantity("1024Ki")),
                ("pods".to_string(), quantity("110")),
                ("ephemeral-storage".to_string(), quantity("1000m")),
                ("zero".to_string(), Quantity { string: None }),
            ]
            .into(),
            ..Default::default()
        }),
    };
    let v = decode(&body("v1", "Node", &node)).unwrap();
    assert_eq!(
        v["status"]["capacity"],
        json!({
            "cpu": "4",
            "memory": "1Mi",
            "pods": "110",
            "ephemeral-storage": "1",
            "zero": "0",
        })
    );
    round_trips::<k8s_openapi::api::core::v1::Node>(&v);

    let bad = pb::Node {
        status: Some(pb::NodeStatus {
            capacity: [("cpu".to_string(), quantity("four"))].into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let err = decode(&body("v1", "Node", &bad)).unwrap_err();
    assert!(
        matches!(
            err,
            ProtoError::InvalidValue {
                message: "k8s.io.apimachinery.pkg.api.resource.Quantity",
                field: 1,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn controller_revision_carries_raw_json_and_embedded_objects() {
    let cr = pb_apps::ControllerRevision {
        metadata: Some(new_meta("web-7b", "default")),
        data: Some(RawExtension {
            raw: Some(br#"{"spec":{"template":{"spec":{"containers":[]}}}}"#.to_vec()),
        }),
        revision: Some(2),
    };
    let v = decode(&body("apps/v1", "ControllerRevision", &cr)).unwrap();
    assert_eq!(
        v["data"],
        json!({"spec": {"template": {"spec": {"containers": []}}}})
    );
    assert_eq!(v["revision"], 2);
    round_trips::<k8s_openapi::api::apps::v1::ControllerRevision>(&v);

    let ns = pb::Namespace {
        metadata: Some(meta::ObjectMeta {
            name: s("inner"),
            ..Default::default()
        }),
        ..Default::default()
    };
    let nested = pb_apps::ControllerRevision {
        data: Some(RawExtension {
            raw: Some(body("v1", "Namespace", &ns)),
        }),
        ..Default::default()
    };
    let v = decode(&body("apps/v1", "ControllerRevision", &nested)).unwrap();
    assert_eq!(
        v["data"],
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "inner"}})
    );
}

#[test]
fn int64_values_are_exact_numbers() {
    let mut d = deployment();
    if let Some(m) = d.metadata.as_mut() {
        m.generation = Some(i64::MAX);
        m.deletion_grace_period_seconds = Some(-1);
    }
    let v = decode(&body("apps/v1", "Deployment", &d)).unwrap();
    assert_eq!(v["metadata"]["generation"], json!(i64::MAX));
    assert_eq!(v["metadata"]["deletionGracePeriodSeconds"], json!(-1));
}

#[test]
fn decode_as_reads_bodies_without_type_meta() {
    let ns = pb::Namespace {
        metadata: Some(new_meta("plain", "")),
        ..Default::default()
    };
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: s(""),
            kind: s(""),
        }),
        raw: Some(ns.encode_to_vec()),
        content_encoding: None,
        content_type: None,
    };
    let mut b = MAGIC.to_vec();
    b.extend(unknown.encode_to_vec());
    assert!(matches!(decode(&b), Err(ProtoError::MissingTypeMeta)));
    let v = decode_as(&b, "v1", "Namespace").unwrap();
    assert_eq!(
        v,
        json!({"metadata": {"name": "plain", "creationTimestamp": null}})
    );

    // With a type in the envelope, that type wins and is set.
    let b = body("v1", "Namespace", &ns);
    let v = decode_as(&b, "v1", "ConfigMap").unwrap();
    assert_eq!(v["kind"], "Namespace");
}

#[test]
fn json_content_type_in_the_envelope() {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: s("v1"),
            kind: s("ConfigMap"),
        }),
        raw: Some(br#"{"metadata":{"name":"x"}}"#.to_vec()),
        content_encoding: s(""),
        content_type: s("application/json"),
    };
    let mut b = MAGIC.to_vec();
    b.extend(unknown.encode_to_vec());
    assert_eq!(
        decode(&b).unwrap(),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}})
    );
}

#[test]
fn unknown_fields_are_skipped() {
    let mut raw = pb::Namespace {
        metadata: Some(new_meta("n", "")),
        ..Default::default()
    }
    .encode_to_vec();
    // Field 99 of each wire type: varint, fixed64, bytes, fixed32.
    raw.extend([0x98, 0x06, 0x96, 0x01]);
    raw.extend([0x99, 0x06, 1, 2, 3, 4, 5, 6, 7, 8]);
    raw.extend([0x9a, 0x06, 2, b'h', b'i']);
    raw.extend([0x9d, 0x06, 1, 2, 3, 4]);
    let v = decode(&body_of("v1", "Namespace", raw)).unwrap();
    assert_eq!(v["metadata"]["name"], "n");
}

#[test]
fn repeated_fields_and_messages_merge_as_protobuf_does() {
    // Two occurrences of `metadata` merge; a repeated int64 packed and unpacked.
    let mut raw = pb::Pod {
        metadata: Some(meta::ObjectMeta {
            name: s("a"),
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec();
    raw.extend(
        pb::Pod {
            metadata: Some(meta::ObjectMeta {
                namespace: s("ns"),
                ..Default::default()
            }),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    // spec (2) { securityContext (14) { supplementalGroups (4): packed [1, 300], then 7 } }
    let groups = [0x22, 0x03, 0x01, 0xac, 0x02, 0x20, 0x07];
    let mut security = vec![0x72, groups.len() as u8];
    security.extend(groups);
    raw.push(0x12);
    raw.push(security.len() as u8);
    raw.extend(security);
    let v = decode(&body_of("v1", "Pod", raw)).unwrap();
    assert_eq!(v["metadata"], json!({"name": "a", "namespace": "ns"}));
    assert_eq!(
        v["spec"]["securityContext"]["supplementalGroups"],
        json!([1, 300, 7])
    );
}

#[test]
fn malformed_bodies_name_the_problem() {
    let err = decode(b"{\"kind\":\"Pod\"}").unwrap_err();
    assert!(matches!(err, ProtoError::MissingMagic));
    assert!(err.to_string().contains("magic"));

    let unknown_kind = decode(&body("apps/v1", "Foo", &pb::Namespace::default())).unwrap_err();
    assert_eq!(unknown_kind.to_string(), "unknown kind apps/v1 Foo");

    // The envelope truncated in the middle of `raw`.
    let good = body(
        "v1",
        "Namespace",
        &pb::Namespace {
            metadata: Some(new_meta("n", "")),
            ..Default::default()
        },
    );
    let err = decode(&good[..good.len() - 3]).unwrap_err();
    assert!(matches!(err, ProtoError::Truncated { .. }), "{err}");

    // A varint that never ends.
    let err = decode(&body_of("v1", "Namespace", vec![0x08, 0xff, 0xff])).unwrap_err();
    assert!(
        matches!(
            err,
            ProtoError::Truncated {
                field: 1,
                what: "varint",
                ..
            }
        ),
        "{err}"
    );
    let err = decode(&body_of("v1", "Namespace", vec![0x0a, 0x05, 0x0a])).unwrap_err();
    assert!(
        matches!(
            err,
            ProtoError::Truncated {
                field: 1,
                what: "bytes",
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("k8s.io.api.core.v1.Namespace"),
        "{err}"
    );
    let err = decode(&body_of("v1", "Namespace", vec![0x0a])).unwrap_err();
    assert!(
        matches!(err, ProtoError::Truncated { what: "length", .. }),
        "{err}"
    );
    let err = decode(&body_of("v1", "Namespace", vec![0x80])).unwrap_err();
    assert!(matches!(err, ProtoError::TruncatedKey { .. }), "{err}");

    // metadata.name (field 1 of ObjectMeta) as a varint.
    let err = decode(&body_of("v1", "Namespace", vec![0x0a, 0x02, 0x08, 0x01])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "wire-type mismatch at field 1 (name) of message \
         k8s.io.apimachinery.pkg.apis.meta.v1.ObjectMeta: expected length-delimited, found wire \
         type 0"
    );
    // Field number 0 and a group.
    let err = decode(&body_of("v1", "Namespace", vec![0x00, 0x00])).unwrap_err();
    assert!(
        matches!(err, ProtoError::InvalidFieldNumber { number: 0, .. }),
        "{err}"
    );
    let err = decode(&body_of("v1", "Namespace", vec![0x0b])).unwrap_err();
    assert!(
        matches!(err, ProtoError::UnsupportedWireType { wire_type: 3, .. }),
        "{err}"
    );

    let mut encoded = Unknown {
        type_meta: Some(TypeMeta {
            api_version: s("v1"),
            kind: s("Namespace"),
        }),
        raw: Some(vec![]),
        content_encoding: s("gzip"),
        content_type: s(""),
    }
    .encode_to_vec();
    encoded.splice(0..0, MAGIC.iter().copied());
    assert!(matches!(
        decode(&encoded),
        Err(ProtoError::UnsupportedContentEncoding(e)) if e == "gzip"
    ));

    // A bad IntOrString type and a bad time.
    let svc = pb::Service {
        spec: Some(pb::ServiceSpec {
            ports: vec![pb::ServicePort {
                target_port: Some(IntOrString {
                    r#type: Some(7),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    };
    let err = decode(&body("v1", "Service", &svc)).unwrap_err();
    assert!(err.to_string().contains("IntOrString type 7"), "{err}");
    let ns = pb::Namespace {
        metadata: Some(meta::ObjectMeta {
            creation_timestamp: Some(meta::Time {
                seconds: Some(i64::MAX),
                nanos: None,
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let err = decode(&body("v1", "Namespace", &ns)).unwrap_err();
    assert!(err.to_string().contains("out of range"), "{err}");
}

#[test]
fn deeply_nested_raw_extensions_are_refused() {
    let mut b = body("v1", "Namespace", &pb::Namespace::default());
    for _ in 0..MAX_DEPTH {
        let cr = pb_apps::ControllerRevision {
            data: Some(RawExtension { raw: Some(b) }),
            ..Default::default()
        };
        b = body("apps/v1", "ControllerRevision", &cr);
    }
    assert!(matches!(decode(&b), Err(ProtoError::TooDeep { .. })));
}

#[test]
fn arbitrary_bytes_never_panic() {
    // Every prefix of a real body, and a few corruptions of it, decode or fail cleanly.
    let good = body("apps/v1", "Deployment", &deployment());
    for end in 0..good.len() {
        let _ = decode(&good[..end]);
    }
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..2000 {
        let mut b = good.clone();
        for _ in 0..3 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let i = MAGIC.len() + (state as usize) % (b.len() - MAGIC.len());
            if let Some(byte) = b.get_mut(i) {
                *byte = (state >> 32) as u8;
            }
        }
        let _ = decode(&b);
    }
}

#[test]
fn durations_and_string_lists() {
    static DURATION: MessageDef = MessageDef {
        name: "test.Duration",
        special: Special::Duration,
        fields: &[],
    };
    static LIST: MessageDef = MessageDef {
        name: "test.ExtraValue",
        special: Special::StringList,
        fields: &[],
    };
    let encoded = meta::Duration {
        duration: Some(5_400_000_000_000),
    }
    .encode_to_vec();
    assert_eq!(
        Decoder::new().value(&encoded, &DURATION).unwrap(),
        json!("1h30m0s")
    );
    assert_eq!(Decoder::new().value(&[], &DURATION).unwrap(), json!("0s"));
    let encoded = k8s_pb::api::authentication::v1::ExtraValue {
        items: vec!["a".into(), "b".into()],
    }
    .encode_to_vec();
    assert_eq!(
        Decoder::new().value(&encoded, &LIST).unwrap(),
        json!(["a", "b"])
    );
}

#[test]
fn supported_kinds_cover_what_kubectl_sends() {
    for (api_version, kind) in [
        ("v1", "ConfigMap"),
        ("v1", "Secret"),
        ("v1", "Namespace"),
        ("v1", "Pod"),
        ("v1", "Service"),
        ("v1", "ServiceAccount"),
        ("v1", "Endpoints"),
        ("v1", "Event"),
        ("v1", "Node"),
        ("v1", "PersistentVolume"),
        ("v1", "PersistentVolumeClaim"),
        ("v1", "Binding"),
        ("v1", "ResourceQuota"),
        ("apps/v1", "Deployment"),
        ("apps/v1", "ReplicaSet"),
        ("apps/v1", "DaemonSet"),
        ("apps/v1", "StatefulSet"),
        ("batch/v1", "Job"),
        ("batch/v1", "CronJob"),
        ("coordination.k8s.io/v1", "Lease"),
        ("discovery.k8s.io/v1", "EndpointSlice"),
        ("events.k8s.io/v1", "Event"),
        ("policy/v1", "Eviction"),
        ("policy/v1", "PodDisruptionBudget"),
        ("autoscaling/v1", "Scale"),
        ("autoscaling/v2", "HorizontalPodAutoscaler"),
        ("meta.k8s.io/v1", "DeleteOptions"),
        ("rbac.authorization.k8s.io/v1", "Role"),
        ("rbac.authorization.k8s.io/v1", "ClusterRole"),
        ("rbac.authorization.k8s.io/v1", "RoleBinding"),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
        ("networking.k8s.io/v1", "Ingress"),
        ("scheduling.k8s.io/v1", "PriorityClass"),
        ("authentication.k8s.io/v1", "TokenRequest"),
        ("authorization.k8s.io/v1", "SelfSubjectAccessReview"),
        ("certificates.k8s.io/v1", "CertificateSigningRequest"),
    ] {
        assert!(supports(api_version, kind), "{api_version} {kind}");
    }
    assert!(supports("batch/v1", "DeleteOptions"));
    assert!(!supports("apps/v1", "Foo"));
    assert_eq!(supported_kinds().count(), ROOTS.len());
}

#[test]
fn the_table_is_consistent() {
    let len = MESSAGES.len();
    for m in &MESSAGES {
        assert!(
            m.fields.windows(2).all(|w| w[0].tag < w[1].tag),
            "{}: fields not sorted by tag",
            m.name
        );
        if m.special != Special::None {
            assert!(m.fields.is_empty(), "{}", m.name);
        }
        for f in m.fields {
            match f.kind {
                Kind::Message(i) | Kind::MapMessage(i) => {
                    assert!(usize::from(i) < len, "{}.{}", m.name, f.json);
                }
                _ => assert!(!f.inline(), "{}.{}", m.name, f.json),
            }
            if f.omit_zero() {
                assert!(!f.repeated(), "{}.{}", m.name, f.json);
                assert!(
                    !matches!(
                        f.kind,
                        Kind::Message(_) | Kind::MapString | Kind::MapBytes | Kind::MapMessage(_)
                    ),
                    "{}.{}",
                    m.name,
                    f.json
                );
            }
            // (Not all lower camel case: `DaemonEndpoint` has `Port`.)
            assert!(
                !f.json.is_empty()
                    && f.json
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "{}.{}",
                m.name,
                f.json
            );
        }
    }
    assert!(
        ROOTS
            .windows(2)
            .all(|w| (w[0].api_version, w[0].kind) < (w[1].api_version, w[1].kind))
    );
    for r in &ROOTS {
        let m = &MESSAGES[usize::from(r.message)];
        assert!(
            m.name.ends_with(&format!(".{}", r.kind)),
            "{} {}",
            r.kind,
            m.name
        );
    }
}
