//! Streams into a running pod through the API server: `kubectl exec` (WebSocket first, as
//! kubectl does, and SPDY), its exit code and standard input, a container picked with `-c`,
//! `kubectl port-forward`, kube-rs' `exec` (WebSocket `v4.channel.k8s.io`), and the official
//! Python client's exec, logs and port-forward (`tests/cluster/python/streams.py`) — relayed API
//! server → the kubelet of the pod's node (another machine) → containerd's streaming server.

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams};
use rkube_e2e::cluster::{Cluster, ClusterSpec};
use tokio::io::AsyncReadExt;

use crate::common::{self, node_of};

const POD: &str = r#"apiVersion: v1
kind: Pod
metadata:
  name: shell
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: busybox:1.35
    command: ["sh", "-c", "mkdir -p /www && echo PF-OK > /www/index.html && exec httpd -f -p 8080 -h /www"]
  - name: side
    image: busybox:1.35
    command: ["sh", "-c", "echo side > /tmp/who && exec sleep 3600"]
  - name: logger
    image: busybox:1.35
    command: ["sh", "-c", "i=0; while true; do i=$((i+1)); echo line-$i; sleep 1; done"]
"#;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// kube-rs' exec of `sh -c script` in container `web`, from the server's network namespace:
/// standard output and the exit code the Status reports.
fn kube_rs_exec(c: &Cluster, script: &str) -> (String, Option<i32>) {
    let netns = c.server.netns.path();
    let kubeconfig = c.admin_kubeconfig();
    let script = script.to_string();
    std::thread::spawn(move || {
        let ns = std::fs::File::open(&netns).expect("the server's network namespace");
        nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let config = kube::Config::from_custom_kubeconfig(
                kube::config::Kubeconfig::read_from(&kubeconfig).unwrap(),
                &Default::default(),
            )
            .await
            .unwrap();
            let client = kube::Client::try_from(config).unwrap();
            let pods: Api<Pod> = Api::namespaced(client, "default");
            let mut attached = pods
                .exec(
                    "shell",
                    ["sh", "-c", script.as_str()],
                    &AttachParams::default().container("web").stderr(false),
                )
                .await
                .expect("kube-rs exec");
            let mut out = String::new();
            attached
                .stdout()
                .expect("stdout")
                .read_to_string(&mut out)
                .await
                .unwrap();
            let status = attached.take_status().expect("status").await;
            let code = match status {
                Some(s) if s.status.as_deref() == Some("Success") => Some(0),
                Some(s) => s
                    .details
                    .and_then(|d| d.causes)
                    .into_iter()
                    .flatten()
                    .find(|c| c.reason.as_deref() == Some("ExitCode"))
                    .and_then(|c| c.message?.parse().ok()),
                None => None,
            };
            (out, code)
        })
    })
    .join()
    .expect("the kube-rs thread")
}

#[test]
fn exec_and_port_forward_through_the_api_server() {
    let c = Cluster::start(ClusterSpec::with_agents(1));
    c.apply(POD);
    let pod = c.eventually("the pod Running", |c| {
        let p: Pod = c.get(&["pod", "shell"])?;
        common::running_ready(&p).then_some(p)
    });
    assert!(c.workers().contains(&node_of(&pod)), "on an agent's node");

    // kubectl exec: WebSocket first (kubectl's default; it falls back to SPDY when the
    // runtime declines the newest protocol), then SPDY alone. Output, error and exit code.
    for (label, env) in [("default", None), ("SPDY", Some("false"))] {
        let mut cmd = c.kubectl_command(&[
            "exec",
            "shell",
            "-c",
            "web",
            "--",
            "sh",
            "-c",
            "echo OUT-$((6*7)); echo ERR >&2; exit 3",
        ]);
        if let Some(v) = env {
            cmd.env("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", v);
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(3), "{label}: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout), "OUT-42\n", "{label}");
        assert!(text(&out.stderr).contains("ERR"), "{label}");
    }
    // The other container, by -c, and standard input.
    let out = c.kubectl_ok(&["exec", "shell", "-c", "side", "--", "cat", "/tmp/who"]);
    assert_eq!(out, "side\n");
    let out = c.kubectl_input(
        &[
            "exec",
            "-i",
            "shell",
            "-c",
            "web",
            "--",
            "sh",
            "-c",
            "read x; echo got-$x",
        ],
        "hello\n",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "got-hello\n");
    // A container the pod does not have: a clear error, nothing run.
    let out = c.kubectl(&["exec", "shell", "-c", "nope", "--", "true"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("nope"), "{}", text(&out.stderr));

    // kube-rs: WebSocket v4.channel.k8s.io, the exit code in the closing Status.
    assert_eq!(
        kube_rs_exec(&c, "echo KUBE-RS; exit 0"),
        ("KUBE-RS\n".to_string(), Some(0))
    );
    assert_eq!(kube_rs_exec(&c, "exit 5").1, Some(5));

    // kubectl port-forward to the pod's httpd, read from the server's machine.
    let mut pf = c
        .kubectl_command(&["port-forward", "pod/shell", "18080:8080"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let got = c.eventually_within(
        "a page through the port-forward",
        Duration::from_secs(60),
        |c| {
            let out = c
                .server
                .netns
                .command("curl")
                .args(["-s", "-m", "5", "http://127.0.0.1:18080/index.html"])
                .output()
                .ok()?;
            let body = text(&out.stdout);
            (!body.is_empty()).then_some(body)
        },
    );
    pf.kill().ok();
    let out = pf.wait_with_output().unwrap();
    assert_eq!(got, "PF-OK\n", "{}", text(&out.stderr));

    // The official Python client: exec and port-forward over its WebSockets and pods/log
    // with its spelling of the options (`timestamps=True`), from the server's machine.
    let script = format!(
        "{}/tests/cluster/python/streams.py",
        env!("CARGO_MANIFEST_DIR")
    );
    let out = c
        .server
        .netns
        .command("/usr/bin/python3")
        .arg(&script)
        .env("KUBECONFIG", c.admin_kubeconfig())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("run /usr/bin/python3 (scripts/setup installs python3-kubernetes)");
    assert!(
        out.status.success() && text(&out.stdout).contains("all passed"),
        "the Python client's streams:\n{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    std::io::stderr().flush().ok();
}
