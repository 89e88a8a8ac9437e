//! `rkube agent` end to end: two machines — network namespaces on one link, the server's
//! (10.99.0.2) and an agent's (10.99.0.3), each with its data directory on a tmpfs — running
//! the real binaries, used with the real kubectl. The agent joins with the server's node
//! token (its CA pinned by the token's hash, its certificates from approved CSRs), runs pods
//! that pods of the server's node reach by pod IP, through a ClusterIP Service and by DNS
//! name (host-gw routes kept by each node's proxy; the DNS answers on the server node's pod
//! gateway), stops cleanly and rejoins from its stored credentials; a revoked token and a
//! token naming another CA are refused with clear errors, and nothing is written.

#[path = "../server/harness.rs"]
#[allow(dead_code)]
mod harness;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Instant;

use harness::{AGENT_IP, NODE_IP, Netns, Server, binary};

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// A value of `kubectl get … -o jsonpath=…`, or `None` while the object is missing.
fn jsonpath(s: &Server, args: &[&str], path: &str) -> Option<String> {
    let mut a = args.to_vec();
    let expr = format!("jsonpath={path}");
    a.extend(["-o", &expr]);
    let out = s.kubectl(&a);
    out.status.success().then(|| stdout(&out))
}

/// `rkube token …` against the server's data directory, in its namespace.
fn rkube_token(s: &Server, args: &[&str]) -> Output {
    Command::new("nsenter")
        .args(s.netns.enter())
        .arg(binary())
        .arg("token")
        .args(args)
        .arg("--data-dir")
        .arg(s.data())
        .output()
        .expect("rkube token")
}

/// `rkube agent` run to its end (a join that must fail) in `netns`, with a data directory
/// that must stay untouched.
fn failing_agent(netns: &Netns, url: &str, token: &str, data: &Path) -> Output {
    Command::new("nsenter")
        .args(netns.enter())
        .arg(binary())
        .args([
            "agent",
            "--server",
            url,
            "--token",
            token,
            "--node-name",
            "node-x",
        ])
        .arg("--data-dir")
        .arg(data)
        .env_remove("RKUBE_URL")
        .env_remove("RKUBE_TOKEN")
        .output()
        .expect("rkube agent")
}

fn pod(name: &str, node: &str, labels: &str, script: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels: {{{labels}}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox:1.35
    command: [sh, -c, {script:?}]
"
    )
}

const SERVICE: &str = "apiVersion: v1
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

/// Status, pod IP, node and readiness of a pod, once Running.
fn running(s: &Server, name: &str) -> Option<(String, String)> {
    let out = jsonpath(
        s,
        &["get", "pod", name],
        "{.status.phase} {.status.podIP} {.spec.nodeName}",
    )?;
    let f: Vec<&str> = out.split_whitespace().collect();
    (f.len() == 3 && f[0] == "Running").then(|| (f[1].to_string(), f[2].to_string()))
}

/// The logs of `pod` once they contain `marker`.
fn logs_with(s: &Server, pod: &str, marker: &str) -> String {
    s.eventually(&format!("{marker} in the logs of {pod}"), |s| {
        let text = stdout(&s.kubectl(&["logs", pod]));
        text.contains(marker).then_some(text)
    })
}

#[test]
fn an_agent_joins_runs_pods_that_reach_across_nodes_and_rejoins() {
    let started = Instant::now();
    let (server_ns, agent_ns) = Netns::pair();
    let mut s = Server::start(server_ns.clone(), &[]);
    s.wait_log("rkube server is up");
    let server_node = s.node_name().to_string();
    let url = format!("https://{NODE_IP}:6443");
    let token = std::fs::read_to_string(s.data().join("node-token")).unwrap();
    let token = token.trim().to_string();
    // The server prints how to join.
    assert!(
        s.log().contains(&format!(
            "rkube agent --server https://SERVER:6443 --token $(cat {})",
            s.data().join("node-token").display()
        )),
        "{}",
        s.log()
    );

    // A token naming another CA: refused before anything is sent; nothing written.
    let nowhere = s.dir.path().join("never-written");
    let mut wrong = token.clone();
    let flip = if wrong.as_bytes()[3] == b'0' {
        "1"
    } else {
        "0"
    };
    wrong.replace_range(3..4, flip);
    let out = failing_agent(&agent_ns, &url, &wrong, &nowhere);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("Error: rkube agent: joining https://10.99.0.2:6443: the server's certificate chain has no CA with the token's hash"),
        "{err}"
    );
    assert!(err.contains("nothing was sent"), "{err}");
    assert!(!nowhere.exists());

    // The agent joins with the node token.
    let joining = Instant::now();
    let mut a = Server::agent(agent_ns.clone(), &url, &token, &[]);
    let agent_node = a.node_name().to_string();
    a.wait_log("node is Ready");
    eprintln!("TIMING agent start → node Ready: {:.2?}", joining.elapsed());
    let log = a.log();
    assert!(log.contains("the server's CA matches the token"), "{log}");
    s.eventually("both nodes Ready", |s| {
        let out = jsonpath(
            s,
            &["get", "nodes"],
            "{range .items[*]}{.metadata.name}={.status.conditions[?(@.type==\"Ready\")].status} {end}",
        )?;
        (out.contains(&format!("{server_node}=True")) && out.contains(&format!("{agent_node}=True")))
            .then_some(())
    });
    let ip = jsonpath(
        &s,
        &["get", "node", &agent_node],
        "{.status.addresses[?(@.type==\"InternalIP\")].address}",
    );
    assert_eq!(ip.as_deref(), Some(AGENT_IP));

    // Its three certificates came from CSRs the controller manager approved and signed.
    let csrs = s.kubectl_ok(&[
        "get",
        "csr",
        "-o",
        "jsonpath={range .items[*]}{.spec.signerName} {.spec.username} {.status.conditions[0].type} {.status.certificate}{\"\\n\"}{end}",
    ]);
    for signer in [
        "kubernetes.io/kube-apiserver-client-kubelet system:bootstrap:",
        "kubernetes.io/kube-apiserver-client system:bootstrap:",
        &format!("kubernetes.io/kubelet-serving system:node:{agent_node}"),
    ] {
        let line = csrs
            .lines()
            .find(|l| l.starts_with(signer))
            .unwrap_or_else(|| panic!("no CSR {signer}: {csrs}"));
        let f: Vec<&str> = line.split(' ').collect();
        assert_eq!(f[2], "Approved", "{line}");
        assert!(f[3].len() > 100, "not signed: {line}");
    }
    let table = s.kubectl_ok(&["get", "csr"]);
    assert!(table.contains("Approved,Issued"), "{table}");

    // What the agent keeps: owner-only.
    let agent_dir = a.data().join("agent");
    assert_eq!(mode(&agent_dir), 0o700);
    assert_eq!(mode(&agent_dir.join("pki")), 0o700);
    for f in [
        "pki/ca.crt",
        "pki/kubelet-client.key",
        "pki/kubelet-serving.key",
        "pki/proxy.key",
        "kubelet.kubeconfig",
        "proxy.kubeconfig",
    ] {
        assert_eq!(mode(&agent_dir.join(f)), 0o600, "{f}");
    }
    assert_eq!(
        std::fs::read(agent_dir.join("pki/ca.crt")).unwrap(),
        std::fs::read(s.data().join("pki/ca.crt")).unwrap()
    );

    // A pod on the agent's node serving httpd and resolving a name; a Service in front.
    let dir = s.dir.path().to_path_buf();
    let apply = |s: &Server, name: &str, yaml: &str| {
        let f = dir.join(name);
        std::fs::write(&f, yaml).unwrap();
        s.kubectl_ok(&["apply", "-f", f.to_str().unwrap()]);
    };
    apply(
        &s,
        "web.yaml",
        &pod(
            "web",
            &agent_node,
            "app: web",
            "mkdir -p /www && hostname > /www/index.html && httpd -p 8080 -h /www && \
             until nslookup kube-dns.kube-system.svc.cluster.local; do sleep 1; done; \
             echo DNS-OK; exec sleep 3600",
        ),
    );
    apply(&s, "svc.yaml", SERVICE);
    let applied = Instant::now();
    let (web_ip, node) = s.eventually("the pod on the agent Running", |s| running(s, "web"));
    eprintln!(
        "TIMING apply → pod on the agent Running: {:.2?}",
        applied.elapsed()
    );
    assert_eq!(node, agent_node);
    let web_net = jsonpath(&s, &["get", "node", &agent_node], "{.spec.podCIDR}").unwrap();
    assert!(
        web_ip.starts_with(web_net.trim_end_matches("0/24")),
        "{web_ip} in {web_net}"
    );
    // The agent's pods resolve through the cluster DNS on the server's node.
    let text = logs_with(&s, "web", "DNS-OK");
    assert!(text.contains("Server:\t\t10.96.0.10"), "{text}");

    // A pod on the server's node reaches it by pod IP, by ClusterIP and by name.
    // (busybox's wget crashes on this machine: an HTTP request through nc, as in the server
    // tests.)
    let fetch = |host: &str, port: u16, marker: &str| {
        format!(
            "until printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {host} {port} > /tmp/got && \
             [ -s /tmp/got ]; do sleep 1; done; echo {marker} $(tail -n 1 /tmp/got)"
        )
    };
    let script = format!(
        "{}; {}; exec sleep 3600",
        fetch(&web_ip, 8080, "BY-IP"),
        fetch("web.default.svc.cluster.local", 80, "BY-NAME"),
    );
    apply(
        &s,
        "client.yaml",
        &pod("client", &server_node, "app: client", &script),
    );
    let (client_ip, node) =
        s.eventually("the client on the server Running", |s| running(s, "client"));
    assert_eq!(node, server_node);
    assert_ne!(client_ip, web_ip);
    let text = logs_with(&s, "client", "BY-IP");
    assert!(text.contains("BY-IP web"), "{text}");
    let text = logs_with(&s, "client", "BY-NAME");
    assert!(text.contains("BY-NAME web"), "{text}");

    // Routes: each node has one to the other's pods, none to its own.
    let routes = |ns: &Netns| {
        let out = Command::new("ip")
            .args(["-n", &ns.name, "route", "show", "proto", "77"])
            .output()
            .unwrap();
        stdout(&out)
    };
    let server_net = jsonpath(&s, &["get", "node", &server_node], "{.spec.podCIDR}").unwrap();
    let r = routes(&server_ns);
    assert_eq!(
        r.trim(),
        format!("{web_net} via {AGENT_IP} dev eth0"),
        "{r}"
    );
    let r = routes(&agent_ns);
    assert_eq!(
        r.trim(),
        format!("{server_net} via {NODE_IP} dev eth0"),
        "{r}"
    );

    // A revoked token cannot join; the running agent is not affected.
    let out = rkube_token(
        &s,
        &["create", "--ttl", "1h", "--description", "for node-x"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let extra = stdout(&out).trim().to_string();
    let id = rkube::token::JoinToken::parse(&extra).unwrap().token.id;
    let list = stdout(&rkube_token(&s, &["list"]));
    assert!(list.contains(&id) && list.contains("for node-x"), "{list}");
    let out = rkube_token(&s, &["delete", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = failing_agent(&agent_ns, &url, &extra, &nowhere);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("the server refused the join token (401 Unauthorized)")
            && err.contains("rkube token delete"),
        "{err}"
    );
    assert!(!nowhere.exists());

    // SIGTERM: exit 0, pods keep running; a restart reuses the stored credentials (no new
    // CSR) and adopts them.
    let csr_count = |s: &Server| {
        jsonpath(s, &["get", "csr"], "{.items[*].metadata.name}")
            .unwrap_or_default()
            .split_whitespace()
            .count()
    };
    let before = csr_count(&s);
    let status = a.terminate();
    assert!(status.success(), "{status}: {}", a.log());
    assert!(a.log().contains("rkube agent stopped"), "{}", a.log());
    a.restart();
    a.wait_log("node is Ready");
    assert!(
        a.log().contains("using the stored credentials"),
        "{}",
        a.log()
    );
    assert_eq!(csr_count(&s), before);
    s.eventually("the agent's pod Running again", |s| running(s, "web"));
    let restarts = jsonpath(
        &s,
        &["get", "pod", "web"],
        "{.status.containerStatuses[0].restartCount}",
    );
    assert_eq!(restarts.as_deref(), Some("0"));
    let log = a.log() + &s.log();
    assert!(
        !log.contains("forbidden"),
        "an identity lacks a permission:\n{log}"
    );

    let status = a.terminate();
    assert!(status.success(), "{status}: {}", a.log());
    let status = s.terminate();
    assert!(status.success(), "{status}: {}", s.log());
    eprintln!("TIMING whole test: {:.2?}", started.elapsed());
}
