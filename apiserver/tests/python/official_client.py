"""The official Kubernetes Python client (Debian's python3-kubernetes) against an rkube API
server: the calls a Python user makes, each checked on what the server answered.

Run by apiserver/tests/python_client.rs with KUBECONFIG set to the admin kubeconfig. Prints
`ok NAME` per check and `FAILED NAME: why` for each failure; exits 1 if any failed.
"""

import base64
import json
import sys
import threading
import time
import traceback

from kubernetes import client, config, dynamic, watch
from kubernetes.client.rest import ApiException

config.load_kube_config()
core = client.CoreV1Api()
apps = client.AppsV1Api()
NS = "py"
failures = []


def check(fn):
    try:
        fn()
        print("ok", fn.__name__, flush=True)
    except Exception:  # noqa: BLE001 - every failure is reported, the others still run
        failures.append(fn.__name__)
        print("FAILED", fn.__name__ + ":", traceback.format_exc(), flush=True)
    return fn


def status_of(e):
    """The Status object of an ApiException, decoded."""
    body = json.loads(e.body)
    assert body["kind"] == "Status" and body["apiVersion"] == "v1", body
    return body


def expect_error(code, reason, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except ApiException as e:
        assert e.status == code, (e.status, e.body)
        st = status_of(e)
        assert st["code"] == code and st["reason"] == reason, st
        return st
    raise AssertionError(f"expected {code} {reason}, the call succeeded")


def meta(name, **kw):
    return client.V1ObjectMeta(name=name, **kw)


def deployment(name, replicas=2):
    labels = {"app": name}
    return client.V1Deployment(
        metadata=meta(name, labels=labels),
        spec=client.V1DeploymentSpec(
            replicas=replicas,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(
                    containers=[client.V1Container(name="c", image="busybox:1.35")]
                ),
            ),
        ),
    )


@check
def version():
    v = client.VersionApi().get_code()
    assert (v.major, v.minor) == ("1", "33"), v


@check
def discovery():
    groups = {g.name for g in client.ApisApi().get_api_versions().groups}
    assert {"apps", "batch", "rbac.authorization.k8s.io"} <= groups, groups
    assert "v1" in client.CoreApi().get_api_versions().versions
    resources = {r.name for r in core.get_api_resources().resources}
    assert {"pods", "pods/status", "pods/log", "namespaces", "configmaps"} <= resources


@check
def namespace():
    ns = core.create_namespace(client.V1Namespace(metadata=meta(NS)))
    assert ns.status.phase == "Active", ns.status
    assert NS in [n.metadata.name for n in core.list_namespace().items]
    # A new namespace is usable at once (no controller manager runs next to this server).


@check
def configmap_crud():
    created = core.create_namespaced_config_map(
        NS,
        client.V1ConfigMap(metadata=meta("c1", labels={"tier": "a"}), data={"k": "v"}),
    )
    assert created.metadata.uid and created.metadata.resource_version
    assert created.metadata.creation_timestamp is not None
    got = core.read_namespaced_config_map("c1", NS)
    assert got.data == {"k": "v"} and got.metadata.uid == created.metadata.uid
    # A dict is sent as a strategic merge patch.
    core.patch_namespaced_config_map("c1", NS, {"data": {"k2": "v2"}})
    # A list is sent as a JSON patch.
    core.patch_namespaced_config_map(
        "c1", NS, [{"op": "replace", "path": "/data/k", "value": "v1"}]
    )
    got = core.read_namespaced_config_map("c1", NS)
    assert got.data == {"k": "v1", "k2": "v2"}, got.data
    got.data["k3"] = "v3"
    replaced = core.replace_namespaced_config_map("c1", NS, got)
    assert int(replaced.metadata.resource_version) > int(got.metadata.resource_version)
    # The object read before the replace is stale now.
    got.data["k4"] = "v4"
    expect_error(409, "Conflict", core.replace_namespaced_config_map, "c1", NS, got)
    expect_error(
        409,
        "AlreadyExists",
        core.create_namespaced_config_map,
        NS,
        client.V1ConfigMap(metadata=meta("c1")),
    )
    assert core.read_namespaced_config_map("c1", NS).data == {
        "k": "v1",
        "k2": "v2",
        "k3": "v3",
    }


@check
def selectors():
    for name, tier in [("s-a", "a"), ("s-b", "b"), ("s-c", "c")]:
        core.create_namespaced_config_map(
            NS, client.V1ConfigMap(metadata=meta(name, labels={"tier": tier, "sel": "x"}))
        )

    def names(**kw):
        return sorted(c.metadata.name for c in core.list_namespaced_config_map(NS, **kw).items)

    assert names(label_selector="sel=x,tier in (a,b)") == ["s-a", "s-b"]
    assert names(label_selector="sel=x,tier!=a") == ["s-b", "s-c"]
    assert names(field_selector="metadata.name=s-c") == ["s-c"]
    all_ns = core.list_config_map_for_all_namespaces(label_selector="sel=x")
    assert sorted(c.metadata.name for c in all_ns.items) == ["s-a", "s-b", "s-c"]


@check
def secrets_and_pages():
    for i in range(7):
        core.create_namespaced_secret(
            NS, client.V1Secret(metadata=meta(f"p{i}", labels={"page": "y"}), string_data={"n": str(i)})
        )
    seen, cont, pages = [], None, 0
    while True:
        page = core.list_namespaced_secret(NS, label_selector="page=y", limit=3, _continue=cont)
        pages += 1
        assert len(page.items) <= 3
        seen += [s.metadata.name for s in page.items]
        cont = page.metadata._continue
        if not cont:
            break
    assert pages == 3 and sorted(seen) == [f"p{i}" for i in range(7)], (pages, seen)
    s = core.read_namespaced_secret("p4", NS)
    assert base64.b64decode(s.data["n"]) == b"4" and s.string_data is None


@check
def deployment_status_and_scale():
    d = apps.create_namespaced_deployment(NS, deployment("web"))
    # Kubernetes returns `status: {}` for a new Deployment, never no status.
    assert d.status is not None and d.status.replicas is None, d.status
    assert d.metadata.generation == 1
    assert d.spec.strategy.type == "RollingUpdate"
    assert d.spec.template.spec.restart_policy == "Always"
    assert d.spec.template.spec.containers[0].image_pull_policy == "IfNotPresent"
    scale = apps.read_namespaced_deployment_scale("web", NS)
    assert scale.spec.replicas == 2
    apps.patch_namespaced_deployment_scale("web", NS, {"spec": {"replicas": 4}})
    d = apps.read_namespaced_deployment("web", NS)
    assert d.spec.replicas == 4 and d.metadata.generation == 2
    # The status subresource writes only the status; the object's own writes keep it.
    d.status = client.V1DeploymentStatus(replicas=4, observed_generation=2)
    d.spec.replicas = 9
    apps.replace_namespaced_deployment_status("web", NS, d)
    d = apps.read_namespaced_deployment("web", NS)
    assert d.spec.replicas == 4 and d.status.replicas == 4, (d.spec.replicas, d.status)
    apps.patch_namespaced_deployment("web", NS, {"status": {"replicas": 1}, "metadata": {"labels": {"x": "y"}}})
    d = apps.read_namespaced_deployment("web", NS)
    assert d.status.replicas == 4 and d.metadata.labels["x"] == "y"


@check
def pod_defaults():
    pod = core.create_namespaced_pod(
        NS,
        client.V1Pod(
            metadata=meta("p1"),
            spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="busybox:latest")]),
        ),
    )
    assert pod.status.phase == "Pending" and pod.status.qos_class == "BestEffort", pod.status
    spec = pod.spec
    assert spec.restart_policy == "Always" and spec.dns_policy == "ClusterFirst"
    assert spec.termination_grace_period_seconds == 30
    assert spec.containers[0].image_pull_policy == "Always"
    assert spec.service_account_name == "default" or spec.service_account_name is None


@check
def deleted_pods_and_services_are_returned():
    # Pods, services, service accounts, namespaces and volumes answer a delete with the
    # object (the client declares V1Pod, V1Service, ...).
    pod = core.delete_namespaced_pod("p1", NS)
    assert isinstance(pod, client.V1Pod) and pod.metadata.name == "p1", pod
    svc = core.create_namespaced_service(
        NS,
        client.V1Service(
            metadata=meta("svc"),
            spec=client.V1ServiceSpec(selector={"app": "web"}, ports=[client.V1ServicePort(port=80)]),
        ),
    )
    assert svc.spec.cluster_ip and svc.spec.ports[0].target_port == 80 and svc.spec.type == "ClusterIP"
    # Read raw: this client version still declares V1Status for a service delete (as
    # Kubernetes before 1.23 answered); 1.33 answers with the Service.
    gone = json.loads(core.delete_namespaced_service("svc", NS, _preload_content=False).data)
    assert gone["kind"] == "Service" and gone["metadata"]["uid"] == svc.metadata.uid, gone
    expect_error(404, "NotFound", core.read_namespaced_service, "svc", NS)


@check
def watch_events():
    start_rv = core.list_namespaced_config_map(NS).metadata.resource_version
    events = []

    def collect():
        w = watch.Watch()
        for ev in w.stream(
            core.list_namespaced_config_map,
            NS,
            resource_version=start_rv,
            field_selector="metadata.name=w1",
            timeout_seconds=30,
        ):
            events.append((ev["type"], ev["object"].data))
            if ev["type"] == "DELETED":
                w.stop()

    t = threading.Thread(target=collect)
    t.start()
    core.create_namespaced_config_map(NS, client.V1ConfigMap(metadata=meta("w1"), data={"n": "1"}))
    core.patch_namespaced_config_map("w1", NS, {"data": {"n": "2"}})
    core.delete_namespaced_config_map("w1", NS)
    t.join(40)
    assert not t.is_alive(), "the watch did not end"
    assert events == [
        ("ADDED", {"n": "1"}),
        ("MODIFIED", {"n": "2"}),
        ("DELETED", {"n": "2"}),
    ], events


@check
def watch_times_out():
    began = time.monotonic()
    evs = list(watch.Watch().stream(core.list_namespaced_secret, NS, field_selector="metadata.name=none", timeout_seconds=2))
    assert evs == [] and time.monotonic() - began < 20


@check
def watch_from_now_sees_only_later_changes():
    rv = core.list_namespaced_config_map(NS).metadata.resource_version
    core.create_namespaced_config_map(NS, client.V1ConfigMap(metadata=meta("w2"), data={"n": "1"}))
    w = watch.Watch()
    got = []
    for ev in w.stream(core.list_namespaced_config_map, NS, resource_version=rv, timeout_seconds=10):
        got.append((ev["type"], ev["object"].metadata.name))
        w.stop()
    assert got == [("ADDED", "w2")], got


@check
def errors_are_statuses():
    st = expect_error(404, "NotFound", core.read_namespaced_config_map, "absent", NS)
    assert st["details"]["name"] == "absent" and st["details"]["kind"] == "configmaps", st
    st = expect_error(
        422,
        "Invalid",
        core.create_namespaced_config_map,
        NS,
        client.V1ConfigMap(metadata=meta("Not_A_Name")),
    )
    assert any(c["field"] == "metadata.name" for c in st["details"]["causes"]), st
    expect_error(
        404,
        "NotFound",
        core.create_namespaced_config_map,
        "no-such-namespace",
        client.V1ConfigMap(metadata=meta("x")),
    )
    # Nothing was stored by the refused writes.
    names = [c.metadata.name for c in core.list_namespaced_config_map(NS).items]
    assert "Not_A_Name" not in names and "absent" not in names


@check
def dry_run_stores_nothing():
    cm = core.create_namespaced_config_map(
        NS, client.V1ConfigMap(metadata=meta("dry"), data={"a": "b"}), dry_run="All"
    )
    assert cm.metadata.name == "dry" and cm.data == {"a": "b"}
    expect_error(404, "NotFound", core.read_namespaced_config_map, "dry", NS)


@check
def delete_options():
    cm = core.create_namespaced_config_map(NS, client.V1ConfigMap(metadata=meta("del")))
    expect_error(
        409,
        "Conflict",
        core.delete_namespaced_config_map,
        "del",
        NS,
        body=client.V1DeleteOptions(preconditions=client.V1Preconditions(uid="not-the-uid")),
    )
    st = core.delete_namespaced_config_map(
        "del",
        NS,
        body=client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=cm.metadata.uid)),
    )
    # Gone at once: a success Status naming it (the client's declared V1Status).
    assert st.status == "Success" and st.details.name == "del", st
    assert st.details.kind == "configmaps" and st.details.uid == cm.metadata.uid, st
    expect_error(404, "NotFound", core.read_namespaced_config_map, "del", NS)
    # Orphan: the object gets the orphan finalizer for the garbage collector to act on.
    apps.create_namespaced_deployment(NS, deployment("orphaned", replicas=0))
    apps.delete_namespaced_deployment("orphaned", NS, propagation_policy="Orphan")
    d = apps.read_namespaced_deployment("orphaned", NS)
    assert d.metadata.deletion_timestamp is not None and "orphan" in d.metadata.finalizers, d.metadata
    apps.patch_namespaced_deployment(
        "orphaned", NS, [{"op": "remove", "path": "/metadata/finalizers"}]
    )
    expect_error(404, "NotFound", apps.read_namespaced_deployment, "orphaned", NS)


@check
def collection_delete():
    for i in range(3):
        core.create_namespaced_config_map(NS, client.V1ConfigMap(metadata=meta(f"dc{i}", labels={"dc": "1"})))
    core.delete_collection_namespaced_config_map(NS, label_selector="dc=1")
    assert core.list_namespaced_config_map(NS, label_selector="dc=1").items == []


@check
def dynamic_client():
    dc = dynamic.DynamicClient(client.ApiClient())
    cms = dc.resources.get(api_version="v1", kind="ConfigMap")
    cms.create(body={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "dyn"}, "data": {"a": "1"}}, namespace=NS)
    cms.patch(
        body={"metadata": {"name": "dyn"}, "data": {"b": "2"}},
        namespace=NS,
        content_type="application/merge-patch+json",
    )
    assert dict(cms.get(name="dyn", namespace=NS).data) == {"a": "1", "b": "2"}
    deploys = dc.resources.get(api_version="apps/v1", kind="Deployment")
    assert "web" in [d.metadata.name for d in deploys.get(namespace=NS).items]
    # Server-side apply: the body as YAML text, with a field manager.
    applied = """
apiVersion: v1
kind: ConfigMap
metadata:
  name: applied
data:
  one: "1"
"""
    cms.server_side_apply(body=applied, name="applied", namespace=NS, field_manager="py")
    got = cms.get(name="applied", namespace=NS)
    assert dict(got.data) == {"one": "1"}
    managers = [m.manager for m in got.metadata.managedFields]
    assert "py" in managers, managers
    # A second manager changing the same field conflicts, unless it forces.
    other = applied.replace('one: "1"', 'one: "2"')
    try:
        cms.server_side_apply(body=other, name="applied", namespace=NS, field_manager="other")
        raise AssertionError("conflicting apply accepted")
    except dynamic.exceptions.ConflictError:
        pass
    cms.server_side_apply(body=other, name="applied", namespace=NS, field_manager="other", force_conflicts=True)
    assert dict(cms.get(name="applied", namespace=NS).data) == {"one": "2"}
    cms.delete(name="dyn", namespace=NS)


@check
def self_subject_access_review():
    review = client.AuthorizationV1Api().create_self_subject_access_review(
        client.V1SelfSubjectAccessReview(
            spec=client.V1SelfSubjectAccessReviewSpec(
                resource_attributes=client.V1ResourceAttributes(verb="delete", resource="pods", namespace=NS)
            )
        )
    )
    assert review.status.allowed is True, review.status


@check
def everything_lists_and_decodes():
    # The client checks the required fields of every object it decodes.
    core.list_namespace()
    core.list_node()
    core.list_pod_for_all_namespaces()
    core.list_service_for_all_namespaces()
    core.list_endpoints_for_all_namespaces()
    core.list_event_for_all_namespaces()
    core.list_service_account_for_all_namespaces()
    apps.list_replica_set_for_all_namespaces()
    apps.list_deployment_for_all_namespaces()
    client.BatchV1Api().list_job_for_all_namespaces()
    client.CoordinationV1Api().list_lease_for_all_namespaces()
    client.DiscoveryV1Api().list_endpoint_slice_for_all_namespaces()
    client.EventsV1Api().list_event_for_all_namespaces()
    client.SchedulingV1Api().list_priority_class()
    client.RbacAuthorizationV1Api().list_cluster_role()
    client.RbacAuthorizationV1Api().list_cluster_role_binding()


@check
def namespace_deletion():
    core.delete_namespace(NS)
    got = core.read_namespace(NS)
    assert got.metadata.deletion_timestamp is not None and got.status.phase == "Terminating", got.status


if failures:
    print("failed:", ", ".join(failures))
    sys.exit(1)
print("all passed")
