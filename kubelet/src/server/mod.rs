//! The kubelet's API (port 10250), served over HTTPS ([`tls`]) to authenticated and authorized
//! clients only ([`auth`]): `/containerLogs/{namespace}/{pod}/{container}` (follow, tailLines,
//! previous, timestamps, limitBytes, sinceSeconds, sinceTime — the API server's `pods/log`
//! reads here), `/healthz`, `/metrics` (Prometheus text), `/pods` and `/stats/summary` (CPU
//! and memory of the node, its pods and their containers from CRI stats, in the kubelet
//! Summary API shape that `kubectl top` and autoscalers read), and the streams of exec, attach
//! and port-forward relayed to the runtime ([`streaming`]). Plain-HTTP `/healthz` alone is
//! served on the loopback health port (10248), as Kubernetes' kubelet does.

pub mod auth;
mod streaming;
pub mod tls;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, get, on};
use bytes::Bytes;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use rkube_cri::v1 as cri;

use crate::context::Context;
use crate::cri::logs::{self, LogOptions};
use crate::runtime::{Kind, State as CState};

/// Shared by the handlers.
struct ServerState {
    ctx: Arc<Context>,
    /// Previous CPU samples (timestamp ns, cumulative core-ns) by container id, and "" for
    /// the node.
    cpu: Mutex<HashMap<String, (i64, u64)>>,
}

/// The router of the API port: every request passes [`auth::guard`] first.
pub fn router(ctx: Arc<Context>, auth: Arc<auth::ApiAuth>) -> axum::Router {
    let state = Arc::new(ServerState {
        ctx,
        cpu: Default::default(),
    });
    axum::Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/pods", get(pods))
        .route("/stats/summary", get(summary))
        .route(
            "/containerLogs/{namespace}/{pod}/{container}",
            get(container_logs),
        )
        .route(
            "/exec/{namespace}/{pod}/{container}",
            on(MethodFilter::GET.or(MethodFilter::POST), streaming::exec),
        )
        .route(
            "/attach/{namespace}/{pod}/{container}",
            on(MethodFilter::GET.or(MethodFilter::POST), streaming::attach),
        )
        .route(
            "/portForward/{namespace}/{pod}",
            on(
                MethodFilter::GET.or(MethodFilter::POST),
                streaming::port_forward,
            ),
        )
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(auth, auth::guard))
}

/// The router of the loopback health port: `/healthz` only, without authentication.
pub fn healthz_router() -> axum::Router {
    axum::Router::new().route("/healthz", get(healthz))
}

async fn healthz() -> &'static str {
    "ok"
}

fn text(code: StatusCode, msg: impl Into<String>) -> Response {
    (code, [(header::CONTENT_TYPE, "text/plain")], msg.into()).into_response()
}

async fn metrics(State(s): State<Arc<ServerState>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.ctx.metrics.render(&s.ctx.config.node_name),
    )
        .into_response()
}

async fn pods(State(s): State<Arc<ServerState>>) -> Response {
    let items: Vec<Pod> = s.ctx.pods.pods().iter().map(|p| (**p).clone()).collect();
    axum::Json(serde_json::json!({
        "kind": "PodList",
        "apiVersion": "v1",
        "metadata": {},
        "items": items,
    }))
    .into_response()
}

fn flag(q: &HashMap<String, String>, k: &str) -> bool {
    q.get(k)
        .is_some_and(|v| rkube_machinery::query::bool_value(v))
}

/// Parses the log options kubectl and the API server send.
pub fn parse_options(q: &HashMap<String, String>) -> Result<(LogOptions, bool), String> {
    let int = |k: &str| -> Result<Option<i64>, String> {
        q.get(k)
            .filter(|v| !v.is_empty())
            .map(|v| v.parse::<i64>().map_err(|_| format!("invalid {k}: {v:?}")))
            .transpose()
    };
    let since = match (
        int("sinceSeconds")?,
        q.get("sinceTime").filter(|v| !v.is_empty()),
    ) {
        (Some(s), _) if s > 0 => Some(
            jiff::Timestamp::now()
                .checked_sub(jiff::SignedDuration::from_secs(s))
                .map_err(|e| e.to_string())?,
        ),
        (Some(s), _) if s <= 0 => return Err(format!("invalid sinceSeconds: {s}")),
        (_, Some(t)) => Some(
            t.parse::<jiff::Timestamp>()
                .map_err(|_| format!("invalid sinceTime: {t:?}"))?,
        ),
        _ => None,
    };
    let tail = int("tailLines")?;
    if tail.is_some_and(|t| t < 0) {
        return Err("tailLines must be non-negative".into());
    }
    let limit = int("limitBytes")?;
    if limit.is_some_and(|l| l <= 0) {
        return Err("limitBytes must be positive".into());
    }
    let previous = flag(q, "previous");
    Ok((
        LogOptions {
            follow: flag(q, "follow") && !previous,
            tail_lines: tail,
            timestamps: flag(q, "timestamps"),
            limit_bytes: limit,
            since,
        },
        previous,
    ))
}

/// Container `container` of pod `namespace/pod_name` on this node: the pod's runtime state and
/// whether it is an app or an init container — or the answer saying why there is none.
async fn pod_container(
    s: &ServerState,
    namespace: &str,
    pod_name: &str,
    container: &str,
) -> Result<(crate::runtime::PodRuntime, Kind), Response> {
    let Some(pod) = s.ctx.pods.by_name(namespace, pod_name) else {
        return Err(text(
            StatusCode::NOT_FOUND,
            format!("pod {namespace}/{pod_name} not found on this node"),
        ));
    };
    let spec = pod.spec.as_ref();
    let named = |cs: Option<&Vec<k8s_openapi::api::core::v1::Container>>| {
        cs.is_some_and(|cs| cs.iter().any(|c| c.name == container))
    };
    let kind = if named(spec.map(|s| &s.containers)) {
        Kind::App
    } else if named(spec.and_then(|s| s.init_containers.as_ref())) {
        Kind::Init
    } else {
        return Err(text(
            StatusCode::NOT_FOUND,
            format!("container {container} is not valid for pod {pod_name}"),
        ));
    };
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let rt = s
        .ctx
        .runtime
        .pod(&uid)
        .await
        .map_err(|e| text(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    Ok((rt, kind))
}

async fn container_logs(
    State(s): State<Arc<ServerState>>,
    Path((namespace, pod_name, container)): Path<(String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let (opts, previous) = match parse_options(&q) {
        Ok(x) => x,
        Err(e) => return text(StatusCode::BAD_REQUEST, e),
    };
    let (rt, kind) = match pod_container(&s, &namespace, &pod_name, &container).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let instances: Vec<_> = rt.named(&container, kind).cloned().collect();
    let instance = if previous {
        match instances.get(1) {
            Some(i) => i.clone(),
            None => {
                return text(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "previous terminated container \"{container}\" in pod \"{pod_name}\" not found"
                    ),
                );
            }
        }
    } else {
        match instances.first() {
            Some(i) => i.clone(),
            None => {
                return text(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "container \"{container}\" in pod \"{pod_name}\" is waiting to start: ContainerCreating"
                    ),
                );
            }
        }
    };
    if instance.log_path.is_empty() {
        return text(StatusCode::NOT_FOUND, "the container has no log file");
    }
    let path = std::path::PathBuf::from(&instance.log_path);
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    let cri = s.ctx.cri.clone();
    let id = instance.id.clone();
    let running_now = instance.state == CState::Running;
    tokio::spawn(async move {
        let still_running = move || -> futures::future::BoxFuture<'static, bool> {
            let cri = cri.clone();
            let id = id.clone();
            Box::pin(async move {
                if !running_now {
                    return false;
                }
                match cri.container_status(&id).await {
                    Ok(st) => st.state == cri::ContainerState::ContainerRunning as i32,
                    Err(e) => !e.is_not_found(),
                }
            })
        };
        if let Err(e) = logs::stream_log(&path, &opts, tx, still_running).await {
            tracing::warn!(error = %e, "streaming a container log");
        }
    });
    let body = Body::from_stream(
        tokio_stream::wrappers::ReceiverStream::new(rx).map(Ok::<_, std::io::Error>),
    );
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/plain")
        .body(body)
        .unwrap_or_default()
}

fn iso(nanos: i64) -> String {
    jiff::Timestamp::from_nanosecond(nanos as i128)
        .unwrap_or_else(|_| jiff::Timestamp::now())
        .to_string()
}

/// Node CPU time used (core-ns) from /proc/stat.
fn node_cpu_core_ns() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return 0;
    };
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    let busy: u64 = [0usize, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|i| v.get(*i))
        .sum();
    busy * 10_000_000 // USER_HZ = 100
}

impl ServerState {
    /// usageNanoCores from the previous sample of `key`.
    fn rate(&self, key: &str, ts: i64, core_ns: u64) -> Option<u64> {
        let mut m = self.cpu.lock().unwrap_or_else(|e| e.into_inner());
        let prev = m.insert(key.to_string(), (ts, core_ns));
        let (pts, pns) = prev?;
        if ts <= pts || core_ns < pns {
            return None;
        }
        Some(((core_ns - pns) as u128 * 1_000_000_000 / (ts - pts) as u128) as u64)
    }
}

async fn summary(State(s): State<Arc<ServerState>>) -> Response {
    let ctx = &s.ctx;
    let now = jiff::Timestamp::now().as_nanosecond() as i64;
    let stats = match ctx.cri.list_container_stats().await {
        Ok(st) => st,
        Err(e) => return text(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    };
    let rt = ctx.runtime.all().await.unwrap_or_default();
    let mut by_pod: HashMap<String, Vec<serde_json::Value>> = HashMap::new();
    let mut pod_cpu: HashMap<String, (u64, u64)> = HashMap::new();
    let mut pod_mem: HashMap<String, (u64, u64)> = HashMap::new();
    for st in stats {
        let attrs = st.attributes.clone().unwrap_or_default();
        let Some(uid) = attrs.labels.get(crate::labels::POD_UID).cloned() else {
            continue;
        };
        let cpu = st.cpu.unwrap_or_default();
        let core_ns = cpu.usage_core_nano_seconds.map(|v| v.value).unwrap_or(0);
        let ts = if cpu.timestamp > 0 {
            cpu.timestamp
        } else {
            now
        };
        let sampled = s.rate(&attrs.id, ts, core_ns);
        let nano_cores = cpu
            .usage_nano_cores
            .map(|v| v.value)
            .filter(|v| *v > 0)
            .or(sampled)
            .unwrap_or(0);
        let mem = st.memory.unwrap_or_default();
        let ws = mem.working_set_bytes.map(|v| v.value).unwrap_or(0);
        let usage = mem.usage_bytes.map(|v| v.value).unwrap_or(0);
        let started = rt
            .get(&uid)
            .and_then(|p| p.containers.iter().find(|c| c.id == attrs.id))
            .map(|c| c.started_at)
            .unwrap_or(0);
        let name = attrs
            .metadata
            .as_ref()
            .map(|m| m.name.clone())
            .unwrap_or_default();
        by_pod.entry(uid.clone()).or_default().push(serde_json::json!({
            "name": name,
            "startTime": iso(started),
            "cpu": {"time": iso(ts), "usageNanoCores": nano_cores, "usageCoreNanoSeconds": core_ns},
            "memory": {"time": iso(mem.timestamp.max(1)), "workingSetBytes": ws, "usageBytes": usage,
                        "rssBytes": mem.rss_bytes.map(|v| v.value).unwrap_or(0),
                        "pageFaults": mem.page_faults.map(|v| v.value).unwrap_or(0),
                        "majorPageFaults": mem.major_page_faults.map(|v| v.value).unwrap_or(0)},
        }));
        let pc = pod_cpu.entry(uid.clone()).or_default();
        pc.0 += nano_cores;
        pc.1 += core_ns;
        let pm = pod_mem.entry(uid).or_default();
        pm.0 += ws;
        pm.1 += usage;
    }
    let time_now = iso(now);
    let pods: Vec<serde_json::Value> = ctx
        .pods
        .pods()
        .iter()
        .filter_map(|p| {
            let uid = p.metadata.uid.clone().unwrap_or_default();
            let containers = by_pod.remove(&uid)?;
            let (nc, cns) = pod_cpu.get(&uid).copied().unwrap_or_default();
            let (ws, usage) = pod_mem.get(&uid).copied().unwrap_or_default();
            Some(serde_json::json!({
                "podRef": {"name": p.metadata.name, "namespace": p.metadata.namespace, "uid": uid},
                "startTime": p.status.as_ref().and_then(|s| s.start_time.clone()),
                "containers": containers,
                "cpu": {"time": time_now, "usageNanoCores": nc, "usageCoreNanoSeconds": cns},
                "memory": {"time": time_now, "workingSetBytes": ws, "usageBytes": usage},
            }))
        })
        .collect();
    let node_ns = node_cpu_core_ns();
    let node_rate = s.rate("", now, node_ns).unwrap_or(0);
    let total = crate::util::meminfo("MemTotal").unwrap_or(0);
    let avail = crate::util::meminfo("MemAvailable").unwrap_or(0);
    let fs = nix::sys::statvfs::statvfs(&ctx.config.data_dir).ok();
    let body = serde_json::json!({
        "node": {
            "nodeName": ctx.config.node_name,
            "startTime": time_now,
            "cpu": {"time": time_now, "usageNanoCores": node_rate, "usageCoreNanoSeconds": node_ns},
            "memory": {"time": time_now, "availableBytes": avail,
                        "usageBytes": total.saturating_sub(avail),
                        "workingSetBytes": total.saturating_sub(avail)},
            "fs": fs.map(|f| serde_json::json!({
                "time": time_now,
                "availableBytes": f.blocks_available() * f.fragment_size(),
                "capacityBytes": f.blocks() * f.fragment_size(),
                "usedBytes": (f.blocks() - f.blocks_free()) * f.fragment_size(),
                "inodesFree": f.files_free(),
                "inodes": f.files(),
            })),
        },
        "pods": pods,
    });
    axum::Json(body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_options() {
        let q = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let (o, prev) = parse_options(&q(&[
            ("follow", "true"),
            ("tailLines", "5"),
            ("timestamps", "1"),
        ]))
        .unwrap();
        assert!(o.follow && o.timestamps && !prev);
        assert_eq!(o.tail_lines, Some(5));
        let (o, prev) = parse_options(&q(&[("follow", "true"), ("previous", "true")])).unwrap();
        assert!(prev && !o.follow, "previous logs are not followed");
        let (o, _) = parse_options(&q(&[
            ("sinceTime", "2024-01-01T00:00:00Z"),
            ("limitBytes", "10"),
        ]))
        .unwrap();
        assert_eq!(o.since.unwrap().to_string(), "2024-01-01T00:00:00Z");
        assert_eq!(o.limit_bytes, Some(10));
        assert!(parse_options(&q(&[("tailLines", "x")])).is_err());
        assert!(parse_options(&q(&[("tailLines", "-1")])).is_err());
        assert!(parse_options(&q(&[("limitBytes", "0")])).is_err());
        assert!(parse_options(&q(&[("sinceTime", "yesterday")])).is_err());
        let (o, _) = parse_options(&q(&[("sinceSeconds", "60")])).unwrap();
        assert!(o.since.is_some());
    }
}
