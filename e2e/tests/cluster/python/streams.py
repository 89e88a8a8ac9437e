"""The official Kubernetes Python client's streams into a running pod, through the API server
and the pod's kubelet: exec (WebSocket, as the client does it) with output, error, exit code
and standard input, pods/log with the client's spelling of its options (`timestamps=True`),
and a WebSocket port-forward to the pod's web server.

Run by e2e/tests/cluster/streams.rs with KUBECONFIG set, against pod `shell` of namespace
`default` (containers `web` and `side`). Prints `ok NAME` per check; exits 1 on a failure.
"""

import re
import sys
import time
import traceback

from kubernetes import client, config
from kubernetes.stream import portforward, stream

config.load_kube_config()
core = client.CoreV1Api()
failures = []


def check(fn):
    try:
        fn()
        print("ok", fn.__name__, flush=True)
    except Exception:  # noqa: BLE001 - report every failure
        failures.append(fn.__name__)
        print("FAILED", fn.__name__ + ":", traceback.format_exc(), flush=True)
    return fn


def exec_in(container, command, stdin=None):
    """Runs `command` in `container` of pod `shell` over the client's WebSocket: standard
    output, standard error and the exit code."""
    resp = stream(
        core.connect_get_namespaced_pod_exec,
        "shell",
        "default",
        container=container,
        command=command,
        stderr=True,
        stdin=stdin is not None,
        stdout=True,
        tty=False,
        _preload_content=False,
    )
    if stdin is not None:
        resp.write_stdin(stdin)
    resp.run_forever(timeout=30)
    return resp.read_stdout(), resp.read_stderr(), resp.returncode


@check
def exec_output_and_exit_code():
    out, err, code = exec_in("web", ["sh", "-c", "echo PY-$((6*7)); echo PYERR >&2; exit 4"])
    assert out == "PY-42\n" and "PYERR" in err and code == 4, (out, err, code)


@check
def exec_standard_input():
    out, _, code = exec_in("side", ["sh", "-c", "read x; echo got-$x"], stdin="py\n")
    assert out == "got-py\n" and code == 0, (out, code)


@check
def logs_with_options():
    # `side` writes nothing to its output; `logger` writes a numbered line every second.
    assert core.read_namespaced_pod_log("shell", "default", container="side") == ""
    for _ in range(30):
        if len(core.read_namespaced_pod_log("shell", "default", container="logger").splitlines()) >= 2:
            break
        time.sleep(1)
    stamped = core.read_namespaced_pod_log("shell", "default", container="logger", timestamps=True, tail_lines=2)
    lines = stamped.splitlines()
    assert len(lines) == 2, lines
    for line in lines:
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z line-\d+$", line), line
    plain = core.read_namespaced_pod_log("shell", "default", container="logger", tail_lines=1)
    assert re.match(r"^line-\d+\n$", plain), repr(plain)


@check
def port_forward():
    # WebSocket port-forward: the ports are named in the query (`ports=8080`).
    pf = portforward(core.connect_get_namespaced_pod_portforward, "shell", "default", ports="8080")
    sock = pf.socket(8080)
    sock.settimeout(20)
    sock.sendall(b"GET /index.html HTTP/1.0\r\n\r\n")
    got = b""
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            break
        got += chunk
    sock.close()
    assert got.startswith(b"HTTP/1.") and got.endswith(b"PF-OK\n"), got
    assert pf.error(8080) is None, pf.error(8080)


if failures:
    print("failed:", ", ".join(failures))
    sys.exit(1)
print("all passed")
