//! `rkube server` end to end: the real binary in a network namespace of its own, used with
//! the real kubectl — the control plane with its identities, manifests directory and CSR
//! signing, the local agent running pods (real containerd, offline images) that resolve names
//! through the in-process DNS, the kubelet's API on HTTPS for authorized clients only (reached
//! through the API server's node proxy), a pod using its projected ServiceAccount token through
//! the `kubernetes` Service (kube-rs' in-cluster configuration), clean SIGTERM shutdowns,
//! restarts that keep state, and CLI errors.

// Shared with the agent tests, which use other parts of it.
#[allow(dead_code)]
mod harness;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use harness::{Etcd, NODE_IP, Netns, Server, binary};
use rkube_testkit::in_cluster;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The user a kubeconfig authenticates as (`kubectl auth whoami`).
fn whoami(s: &Server, kubeconfig: &Path) -> String {
    let out = s.kubectl_as(
        kubeconfig,
        &[
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
}

/// Whether the identity of `kubeconfig` may do `what` (`kubectl auth can-i` arguments) in
/// every namespace.
fn can_i(s: &Server, kubeconfig: &Path, what: &[&str]) -> bool {
    let mut args = vec!["auth", "can-i"];
    args.extend_from_slice(what);
    args.push("-A");
    let out = s.kubectl_as(kubeconfig, &args);
    stdout(&out).trim() == "yes"
}

/// A value of `kubectl get … -o jsonpath=…`, or `None` while the object is missing.
fn jsonpath(s: &Server, args: &[&str], path: &str) -> Option<String> {
    let mut a = args.to_vec();
    let expr = format!("jsonpath={path}");
    a.extend(["-o", &expr]);
    let out = s.kubectl(&a);
    out.status.success().then(|| stdout(&out))
}

const APP: &str = "apiVersion: v1
kind: Namespace
metadata:
  name: demo
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: demo
data:
  color: blue
";

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: c
        image: busybox:1.35
        command:
        - sh
        - -c
        - >-
          mkdir -p /www && hostname > /www/index.html && httpd -p 8080 -h /www &&
          until nslookup kube-dns.kube-system.svc.cluster.local; do sleep 1; done; echo DNS-OK;
          until printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 web 80 > /tmp/got && [ -s /tmp/got ];
          do sleep 1; done; echo WEB-OK $(tail -n 1 /tmp/got);
          exec sleep 3600
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector:
    app: web
  ports:
  - port: 80
    targetPort: 8080
";

/// The control plane alone (`--disable agent`): what the server writes, each component's
/// identity and what RBAC grants it, the manifests directory (applied, re-applied on change,
/// bad files reported), the controllers and scheduler at work, SIGTERM, and a restart that
/// keeps everything.
#[test]
fn control_plane_identities_manifests_and_restart() {
    let netns = Netns::new();
    let mut s = Server::start(netns, &["--disable", "agent"]);
    s.wait_log("rkube server is up");
    let log = s.log();
    let data = s.data();
    let admin = data.join("admin.kubeconfig");
    assert!(
        log.contains(&format!("export KUBECONFIG={}", admin.display())),
        "{log}"
    );
    assert!(log.contains("kubectl get nodes"), "{log}");
    assert!(
        log.contains(&data.join("node-token").display().to_string()),
        "{log}"
    );
    assert!(
        log.contains("cluster DNS not served") || log.contains("no DNS"),
        "{log}"
    );
    assert_eq!(mode(&admin), 0o600);
    let token = std::fs::read_to_string(data.join("node-token")).unwrap();
    let join = rkube::token::JoinToken::parse(&token).unwrap();
    let ca = std::fs::read(data.join("pki/ca.crt")).unwrap();
    assert_eq!(
        join.ca_hash,
        rkube::token::hex(&<sha2::Sha256 as sha2::Digest>::digest(&ca))
    );
    // Its bootstrap token Secret is in the store (no expiry); `rkube token list` shows it.
    let secret = jsonpath(
        &s,
        &[
            "get",
            "secret",
            "-n",
            "kube-system",
            &format!("bootstrap-token-{}", join.token.id),
        ],
        "{.type}",
    );
    assert_eq!(secret.as_deref(), Some("bootstrap.kubernetes.io/token"));
    assert_eq!(mode(&data.join("node-token")), 0o600);

    let ns = s.kubectl_ok(&["get", "ns", "-o", "name"]);
    assert!(ns.contains("namespace/kube-system"), "{ns}");

    // One identity per component, and only the components that run.
    let kc = |name: &str| data.join("kubeconfigs").join(format!("{name}.kubeconfig"));
    for (file, user) in [
        ("scheduler", "system:kube-scheduler"),
        ("controller-manager", "system:kube-controller-manager"),
        ("rkube-server", "rkube-server"),
    ] {
        assert_eq!(mode(&kc(file)), 0o600, "{file}");
        assert_eq!(whoami(&s, &kc(file)), user);
    }
    for file in ["kubelet", "proxy", "dns"] {
        assert!(
            !kc(file).exists(),
            "{file} kubeconfig with the agent disabled"
        );
    }
    assert!(can_i(
        &s,
        &kc("scheduler"),
        &["create", "pods", "--subresource=binding"]
    ));
    assert!(!can_i(&s, &kc("scheduler"), &["get", "secrets"]));

    // No DNS without the agent, so no kube-dns add-on.
    assert!(!data.join("manifests/rkube-kube-dns.yaml").exists());

    // A manifest dropped in: applied; changed: applied again.
    let manifests = data.join("manifests");
    std::fs::write(manifests.join("app.yaml"), APP).unwrap();
    let color = |s: &Server| jsonpath(s, &["get", "cm", "settings", "-n", "demo"], "{.data.color}");
    s.eventually("app.yaml applied", |s| color(s).filter(|c| c == "blue"));
    std::fs::write(manifests.join("app.yaml"), APP.replace("blue", "green")).unwrap();
    s.eventually("app.yaml re-applied", |s| color(s).filter(|c| c == "green"));
    let managers = jsonpath(
        &s,
        &["get", "cm", "settings", "-n", "demo"],
        "{.metadata.managedFields[*].manager}",
    )
    .unwrap();
    assert_eq!(managers, "rkube");
    // Bad files: one clear line each; the server keeps serving.
    std::fs::write(manifests.join("broken.yaml"), "kind: [unclosed\n").unwrap();
    std::fs::write(
        manifests.join("unknown.yaml"),
        "apiVersion: example.org/v1\nkind: Gadget\nmetadata:\n  name: g\n",
    )
    .unwrap();
    let line = s.wait_log("broken.yaml");
    assert!(line.contains("not valid YAML"), "{line}");
    let line = s.wait_log("unknown.yaml");
    assert!(
        line.contains("Gadget g") && line.contains("unknown kind"),
        "{line}"
    );
    s.kubectl_ok(&["get", "ns", "demo"]);

    // The controller manager and the scheduler at work (no node to run on).
    let f = s.dir.path().join("web.yaml");
    std::fs::write(&f, DEPLOYMENT).unwrap();
    s.kubectl_ok(&["apply", "-f", f.to_str().unwrap()]);
    s.eventually("two pods that fit no node", |s| {
        let out = s.kubectl_ok(&[
            "get",
            "events",
            "--field-selector",
            "reason=FailedScheduling",
            "-o",
            "jsonpath={.items[*].message}",
        ]);
        let pods = jsonpath(
            s,
            &["get", "pods", "-l", "app=web"],
            "{.items[*].metadata.name}",
        )?;
        (pods.split_whitespace().count() == 2 && out.contains("0/0 nodes are available"))
            .then_some(())
    });

    // The controller manager signs approved CSRs with the cluster CA.
    let key = rkube_machinery::certificates::KeyPair::generate().unwrap();
    let pem = rkube_machinery::certificates::request_pem(&key, "jane", &[], &[], &[]).unwrap();
    let request = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(pem)
    };
    let f = s.dir.path().join("csr.yaml");
    std::fs::write(
        &f,
        format!(
            "apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\nmetadata:\n  name: jane\nspec:\n  signerName: kubernetes.io/kube-apiserver-client\n  usages: [client auth]\n  request: {request}\n"
        ),
    )
    .unwrap();
    s.kubectl_ok(&["create", "-f", f.to_str().unwrap()]);
    s.kubectl_ok(&["certificate", "approve", "jane"]);
    s.eventually("jane's CSR signed", |s| {
        jsonpath(s, &["get", "csr", "jane"], "{.status.certificate}").filter(|c| !c.is_empty())
    });

    let ca_before = std::fs::read(data.join("pki/ca.crt")).unwrap();
    let status = s.terminate();
    assert!(status.success(), "{status}: {}", s.log());
    assert!(s.log().contains("rkube server stopped"), "{}", s.log());
    assert!(s.processes().is_empty(), "{:?}", s.processes());

    // A restart keeps the store, the CA, the token, and re-applies the manifests.
    s.restart();
    s.wait_log("rkube server is up");
    assert_eq!(std::fs::read(data.join("pki/ca.crt")).unwrap(), ca_before);
    assert_eq!(
        std::fs::read_to_string(data.join("node-token")).unwrap(),
        token
    );
    assert_eq!(color(&s).as_deref(), Some("green"));
    s.wait_log("app.yaml");
    s.wait_log("broken.yaml");
    let pods = jsonpath(
        &s,
        &["get", "pods", "-l", "app=web"],
        "{.items[*].metadata.name}",
    )
    .unwrap();
    assert_eq!(pods.split_whitespace().count(), 2, "{pods}");
    let status = s.terminate();
    assert!(status.success(), "{status}: {}", s.log());
}

/// `--etcd-servers`: the objects live in etcd (not in an embedded store), across a restart.
#[test]
fn control_plane_on_etcd() {
    let netns = Netns::new();
    let etcd = Etcd::start(&netns);
    let mut s = Server::start(
        netns.clone(),
        &[
            "--disable",
            "agent",
            "--etcd-servers",
            "http://127.0.0.1:2379",
        ],
    );
    s.wait_log("rkube server is up");
    s.kubectl_ok(&["create", "configmap", "kept", "--from-literal=where=etcd"]);
    let key = "/registry/configmaps/default/kept";
    let out = etcd.ctl(&netns, &["get", key, "--keys-only"]);
    assert_eq!(stdout(&out).trim(), key, "{}", stderr(&out));
    assert!(!s.data().join("rkube.db").exists());
    let status = s.terminate();
    assert!(status.success(), "{status}: {}", s.log());
    s.restart();
    s.wait_log("rkube server is up");
    let v = jsonpath(&s, &["get", "cm", "kept"], "{.data.where}");
    assert_eq!(v.as_deref(), Some("etcd"));
    let status = s.terminate();
    assert!(status.success(), "{status}: {}", s.log());
}

fn running_pods(s: &Server) -> Option<Vec<String>> {
    let out = jsonpath(
        s,
        &["get", "pods", "-l", "app=web"],
        "{range .items[*]}{.metadata.name} {.status.phase} {.status.containerStatuses[0].ready}{\"\\n\"}{end}",
    )?;
    let lines: Vec<&str> = out.lines().collect();
    let ok = lines.len() == 2 && lines.iter().all(|l| l.ends_with(" Running true"));
    ok.then(|| {
        lines
            .iter()
            .map(|l| l.split(' ').next().unwrap_or_default().to_string())
            .collect()
    })
}

/// The whole server with its agent: node Ready, a Deployment's pods Running on the real
/// containerd and resolving cluster names through the in-process DNS, each identity, a
/// SIGTERM that stops containerd, a restart that adopts the pods, and a last stop that leaves
/// no process behind.
#[test]
fn server_with_agent_runs_pods() {
    let netns = Netns::new();
    // Listening beyond loopback (TLS and authentication are always on), so that pods reach
    // the API server through the `kubernetes` Service at the node's IP.
    let mut s = Server::start(netns, &["--bind-address", "0.0.0.0"]);
    let line = s.wait_log("node is Ready");
    let to_ready = s.spawned.elapsed();
    eprintln!("TIMING start → node Ready: {to_ready:.2?} (server: {line})");
    let node = s.node_name().to_string();
    let status = s.kubectl_ok(&["get", "nodes", "--no-headers"]);
    assert!(status.starts_with(&format!("{node}   Ready")), "{status}");
    let addresses = jsonpath(
        &s,
        &["get", "node", &node],
        "{.status.addresses[?(@.type==\"InternalIP\")].address} {.spec.podCIDR}",
    )
    .unwrap();
    // A /24 of the cluster CIDR (which one depends on whether the first allocation's write
    // raced the controller's ServiceAccount token: a released subnet is not reused at once).
    let (ip, pod_cidr) = addresses.split_once(' ').unwrap();
    assert_eq!(ip, NODE_IP);
    let subnet = pod_cidr
        .strip_prefix("10.244.")
        .and_then(|r| r.strip_suffix(".0/24"))
        .unwrap_or_else(|| panic!("podCIDR {pod_cidr}"));
    let gateway = format!("10.244.{subnet}.1");

    let data = s.data();
    let kc = |name: &str| data.join("kubeconfigs").join(format!("{name}.kubeconfig"));
    for (file, user) in [
        ("scheduler", "system:kube-scheduler".to_string()),
        (
            "controller-manager",
            "system:kube-controller-manager".into(),
        ),
        ("proxy", "system:kube-proxy".into()),
        ("dns", "system:serviceaccount:kube-system:kube-dns".into()),
        ("kubelet", format!("system:node:{node}")),
    ] {
        assert_eq!(mode(&kc(file)), 0o600, "{file}");
        assert_eq!(whoami(&s, &kc(file)), user);
    }
    for r in ["services", "endpointslices", "namespaces", "pods"] {
        assert!(can_i(&s, &kc("dns"), &["watch", r]), "dns: watch {r}");
    }
    assert!(!can_i(&s, &kc("dns"), &["list", "secrets"]));
    assert!(!can_i(&s, &kc("proxy"), &["create", "pods"]));

    // DNS on the pod network gateway, published for the built-in add-on: the selector-less
    // kube-dns Service.
    let svc = s.eventually("the kube-dns add-on applied", |s| {
        jsonpath(
            s,
            &["get", "svc", "kube-dns", "-n", "kube-system"],
            "{.spec.clusterIP} {.spec.ports[*].protocol} {.spec.selector}",
        )
    });
    assert_eq!(svc, "10.96.0.10 UDP TCP ");
    s.eventually("kube-dns endpoints", |s| {
        jsonpath(
            s,
            &[
                "get",
                "endpointslice",
                "kube-dns-rkube",
                "-n",
                "kube-system",
            ],
            "{.endpoints[0].addresses[0]}",
        )
        .filter(|a| *a == gateway)
    });
    let out = Command::new("ip")
        .args([
            "-n",
            &s.netns.name,
            "-o",
            "-4",
            "addr",
            "show",
            "dev",
            "rkube0",
        ])
        .output()
        .unwrap();
    assert!(
        stdout(&out).contains(&format!("inet {gateway}/24")),
        "{}",
        stdout(&out)
    );

    // The kubelet's API: HTTPS with a certificate of the cluster CA for the node's IP, for
    // authorized clients only (here none: 401); the API server reaches it, verifying that
    // certificate, for the node proxy; plain /healthz only on the loopback health port.
    let curl = |args: &[&str]| {
        let out = Command::new("nsenter")
            .args(s.netns.enter())
            .args(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}"])
            .args(args)
            .output()
            .expect("curl");
        stdout(&out)
    };
    let ca = data.join("pki").join("ca.crt");
    let ca = ca.to_str().unwrap();
    assert_eq!(
        curl(&["--cacert", ca, &format!("https://{NODE_IP}:10250/pods")]),
        "401"
    );
    assert_eq!(curl(&["http://127.0.0.1:10248/healthz"]), "200");
    assert_eq!(curl(&[&format!("http://{NODE_IP}:10248/healthz")]), "000");
    let summary = s.kubectl_ok(&[
        "get",
        "--raw",
        &format!("/api/v1/nodes/{node}/proxy/stats/summary"),
    ]);
    assert!(
        summary.contains(&format!("\"nodeName\":\"{node}\"")),
        "{summary}"
    );

    // A Deployment and its Service: Running, resolving through 10.96.0.10, and reaching each
    // other by the Service's short name.
    let f = s.dir.path().join("web.yaml");
    std::fs::write(&f, DEPLOYMENT).unwrap();
    let applied = Instant::now();
    s.kubectl_ok(&["apply", "-f", f.to_str().unwrap()]);
    let pods = s.eventually("two pods Running", running_pods);
    eprintln!("TIMING apply → 2 pods Running: {:.2?}", applied.elapsed());
    for pod in &pods {
        let text = s.eventually("a pod resolving a Service's name", |s| {
            let text = stdout(&s.kubectl(&["logs", pod]));
            text.contains("DNS-OK").then_some(text)
        });
        assert!(text.contains("Server:\t\t10.96.0.10\n"), "{text}");
        assert!(
            text.contains("Name:\tkube-dns.kube-system.svc.cluster.local\nAddress: 10.96.0.10\n"),
            "{text}"
        );
        // The short name `web` through the pods' search path (default.svc.cluster.local: the
        // only way it resolves), then a connection through the Service's ClusterIP to one of
        // the two pods' httpd, which answers with its host name.
        let text = s.eventually("a pod reaching the Service web", |s| {
            let text = stdout(&s.kubectl(&["logs", pod]));
            text.contains("WEB-OK").then_some(text)
        });
        let served_by = text
            .lines()
            .find_map(|l| l.strip_prefix("WEB-OK "))
            .unwrap_or_default();
        assert!(pods.iter().any(|p| p == served_by), "{text}");
    }
    let log = s.log();
    assert!(
        !log.contains("forbidden"),
        "an identity lacks a permission:\n{log}"
    );

    in_cluster_client_from_a_pod(&s);

    // SIGTERM: exit 0, containerd stopped; the pods' containers keep running.
    let status = s.terminate();
    assert!(status.success(), "{status}: {}", s.log());
    let left = s.processes();
    assert!(
        !left.iter().any(|(_, c)| c.contains("containerd --config")),
        "{left:?}"
    );
    assert!(
        left.iter().all(|(_, c)| c.contains("containerd-shim")),
        "{left:?}"
    );

    // A restart adopts them: same pods, not restarted.
    s.restart();
    s.wait_log("node is Ready");
    let again = s.eventually("the pods Running again", running_pods);
    assert_eq!(again, pods);
    assert_eq!(
        jsonpath(
            &s,
            &["get", "pods", "-l", "app=web"],
            "{.items[*].status.containerStatuses[0].restartCount}"
        )
        .unwrap(),
        "0 0"
    );

    // Deleting them removes their containers; the last stop leaves nothing behind.
    s.kubectl_ok(&["delete", "deploy", "web", "--wait=false"]);
    s.eventually("the pods and their shims gone", |s| {
        let pods = jsonpath(s, &["get", "pods"], "{.items[*].metadata.name}")?;
        let shims = s
            .processes()
            .iter()
            .filter(|(_, c)| c.contains("containerd-shim"))
            .count();
        (pods.is_empty() && shims == 0).then_some(())
    });
    let status = s.terminate();
    assert!(status.success(), "{status}: {}", s.log());
    assert!(s.processes().is_empty(), "{:?}", s.processes());
}

/// A pod whose ServiceAccount may `view` runs this very test binary (mounted from the host
/// with the C libraries it links) as [`in_cluster_client`]: kube-rs finds the API server
/// through `KUBERNETES_SERVICE_HOST`/`PORT` (the `kubernetes` Service, through the proxy) and
/// authenticates with the projected token, trusting the projected `ca.crt`.
fn in_cluster_client_from_a_pod(s: &Server) {
    let ep = s.eventually("the kubernetes Service's endpoint", |s| {
        jsonpath(
            s,
            &["get", "endpoints", "kubernetes"],
            "{.subsets[0].addresses[0].ip}:{.subsets[0].ports[0].port}",
        )
        .filter(|a| a.len() > 1)
    });
    assert_eq!(ep, format!("{NODE_IP}:6443"));
    let ip = jsonpath(s, &["get", "svc", "kubernetes"], "{.spec.clusterIP}").unwrap();
    assert_eq!(ip, "10.96.0.1");
    s.kubectl_ok(&[
        "create",
        "rolebinding",
        "default-view",
        "--clusterrole=view",
        "--serviceaccount=default:default",
    ]);
    let pod = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "in-cluster"},
        "spec": {
            "restartPolicy": "Never",
            "containers": [in_cluster::probe_container("c", "busybox:1.35", "in_cluster_client")],
            "volumes": in_cluster::probe_volumes(),
        },
    })
    .to_string();
    let f = s.dir.path().join("in-cluster.json");
    std::fs::write(&f, pod).unwrap();
    // hostPath volumes are refused by the namespace's Pod Security level (baseline by default)
    // until the namespace is labelled to allow them.
    let refused = s.kubectl(&["apply", "-f", f.to_str().unwrap()]);
    assert!(
        stderr(&refused).contains(
            "pods \"in-cluster\" is forbidden: violates PodSecurity \"baseline:latest\": hostPath volumes (volumes \"probe\", \"lib\", \"lib64\")"
        ),
        "{}",
        stderr(&refused)
    );
    s.kubectl_ok(&[
        "label",
        "namespace",
        "default",
        "pod-security.kubernetes.io/enforce=privileged",
    ]);
    s.kubectl_ok(&["apply", "-f", f.to_str().unwrap()]);
    let mounts = jsonpath(
        s,
        &["get", "pod", "in-cluster"],
        "{.spec.volumes[*].name} {.spec.containers[0].volumeMounts[*].mountPath}",
    )
    .unwrap();
    assert!(
        mounts.contains("kube-api-access-")
            && mounts.contains("/var/run/secrets/kubernetes.io/serviceaccount"),
        "{mounts}"
    );
    let phase = s.eventually("the in-cluster pod finished", |s| {
        jsonpath(s, &["get", "pod", "in-cluster"], "{.status.phase}")
            .filter(|p| p == "Succeeded" || p == "Failed")
    });
    let logs = stdout(&s.kubectl(&["logs", "in-cluster"]));
    assert_eq!(phase, "Succeeded", "{logs}");
    assert!(logs.contains("IN-CLUSTER namespace=default"), "{logs}");
    let listed = in_cluster::listed_pods(&logs).unwrap_or_else(|| panic!("{logs}"));
    assert!(listed.iter().any(|p| p == "in-cluster"), "{logs}");
    assert!(logs.contains("IN-CLUSTER create refused: 403"), "{logs}");
    // Gone for good (the kubelet has removed its sandbox) before the server is stopped.
    s.kubectl_ok(&["delete", "pod", "in-cluster", "--timeout=120s"]);
}

/// Not a test of its own: [`in_cluster_client_from_a_pod`] runs it inside a pod. It lists the
/// pods of its namespace with kube-rs' default client (in-cluster configuration) and tries a
/// create that its `view` binding does not allow.
#[test]
#[ignore = "runs inside a pod, started by server_with_agent_runs_pods"]
fn in_cluster_client() {
    in_cluster::report();
}

/// A component that cannot run stops the whole server with its error (exit 1), and nothing
/// is left running.
#[test]
fn a_failing_component_stops_the_server() {
    let netns = Netns::new();
    let mut s = Server::start(
        netns,
        &[
            "--container-runtime-endpoint",
            "unix:///nonexistent/containerd.sock",
        ],
    );
    let status = s.wait_exit();
    let log = s.log();
    assert_eq!(status.code(), Some(1), "{log}");
    let error = log
        .lines()
        .find(|l| l.starts_with("Error: "))
        .unwrap_or_default();
    assert!(
        error.starts_with("Error: rkube server: kubelet failed: container runtime: ")
            && error.contains("/nonexistent/containerd.sock")
            && error.matches("container runtime:").count() == 1,
        "{log}"
    );
    assert!(log.contains("rkube server stopped"), "{log}");
    assert!(s.processes().is_empty(), "{:?}", s.processes());
}

/// Wrong flags: clap's error naming the flag and the choices, exit 2; settings that do not go
/// together: one line naming the flag, exit 1, before anything is written.
#[test]
fn bad_flags_are_clear_errors() {
    let out = Command::new(binary())
        .args(["server", "--disable", "nonsense"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("invalid value 'nonsense' for '--disable <DISABLE>'"),
        "{err}"
    );
    assert!(
        err.contains("[possible values: scheduler, controller-manager, dns, proxy, agent]"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = Command::new(binary())
        .args([
            "server",
            "--node-name",
            "n1",
            "--cluster-dns",
            "10.200.0.10",
        ])
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.starts_with(
            "Error: --cluster-dns 10.200.0.10 must be an address of --service-cidr 10.96.0.0/12"
        ),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(!data.exists());

    let out = Command::new(binary())
        .arg("agent")
        .env_remove("RKUBE_URL")
        .env_remove("RKUBE_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("the following required arguments were not provided")
            && err.contains("--server <SERVER>")
            && err.contains("--token <TOKEN>"),
        "{err}"
    );
}
