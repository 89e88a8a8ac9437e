//! The CRI client: the kubelet's only way to the container runtime. Wraps the generated
//! `runtime.v1` RuntimeService and ImageService clients over a unix socket (containerd) or an
//! in-process service (the hollow runtime), with per-call timeouts, typed errors and operation
//! metrics.

pub mod logs;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rkube_cri::v1 as cri;
use rkube_cri::{ImageServiceClient, RuntimeServiceClient};
use tonic::codegen::http;

use crate::metrics::Metrics;

/// The transport the generated clients run over: a channel to a unix socket (containerd), or
/// the hollow runtime's generated gRPC server called in-process (requests and responses are
/// still protobuf-encoded bodies, without HTTP/2 framing or a socket between them).
pub type Transport = tower::util::BoxCloneSyncService<
    http::Request<tonic::body::Body>,
    http::Response<tonic::body::Body>,
    tower::BoxError,
>;

/// A [`Transport`] over any gRPC service: a [`tonic::transport::Channel`] or a generated
/// server.
pub fn transport<S>(service: S) -> Transport
where
    S: tower::Service<
            http::Request<tonic::body::Body>,
            Response = http::Response<tonic::body::Body>,
        > + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<tower::BoxError>,
{
    use tower::ServiceExt as _;
    Transport::new(service.map_err(Into::into))
}

/// Why a CRI call failed.
#[derive(Debug, thiserror::Error)]
pub enum CriError {
    /// The endpoint is not a `unix://` URL.
    #[error("unsupported container runtime endpoint {0:?}: use unix:///path/to/socket")]
    Endpoint(String),
    /// The socket does not exist.
    #[error(
        "the container runtime socket {0} does not exist: start containerd (or run rkubelet with --managed-containerd)"
    )]
    SocketMissing(PathBuf),
    /// The runtime answered with an error.
    #[error("CRI {op}: {message} ({code:?})")]
    Call {
        /// The operation.
        op: &'static str,
        /// The gRPC code.
        code: tonic::Code,
        /// The runtime's message.
        message: String,
    },
    /// The runtime did not answer in time.
    #[error("CRI {op} timed out after {secs}s")]
    Timeout {
        /// The operation.
        op: &'static str,
        /// The timeout.
        secs: u64,
    },
    /// The runtime does not speak CRI v1.
    #[error("the container runtime {name} {version} speaks CRI {api:?}, rkubelet needs v1")]
    Version {
        /// Runtime name.
        name: String,
        /// Runtime version.
        version: String,
        /// The API version it reported.
        api: String,
    },
}

impl CriError {
    /// The gRPC code, when the runtime answered.
    pub fn code(&self) -> Option<tonic::Code> {
        match self {
            CriError::Call { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether the object the call named does not exist.
    pub fn is_not_found(&self) -> bool {
        match self {
            CriError::Call { code, message, .. } => {
                *code == tonic::Code::NotFound || message.contains("not found")
            }
            _ => false,
        }
    }

    /// Whether the runtime could not be reached at all (as opposed to refusing a call).
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            CriError::Call {
                code: tonic::Code::Unavailable | tonic::Code::Unknown,
                ..
            } | CriError::Timeout { .. }
                | CriError::SocketMissing(_)
        )
    }
}

/// The CRI client. Cheap to clone.
#[derive(Clone)]
pub struct Cri {
    runtime: RuntimeServiceClient<Transport>,
    images: ImageServiceClient<Transport>,
    /// Default timeout of a call (the kubelet's runtime-request-timeout).
    timeout: Duration,
    metrics: Arc<Metrics>,
}

/// The unix socket path of a `unix://` endpoint (or a bare path).
pub fn socket_path(endpoint: &str) -> Result<PathBuf, CriError> {
    if let Some(p) = endpoint.strip_prefix("unix://") {
        return Ok(PathBuf::from(p));
    }
    if endpoint.starts_with('/') {
        return Ok(PathBuf::from(endpoint));
    }
    Err(CriError::Endpoint(endpoint.to_string()))
}

impl Cri {
    /// A client for the runtime behind `endpoint` (`unix:///run/containerd/containerd.sock`).
    /// The connection is made lazily and re-made after the runtime restarts; a missing socket
    /// is reported at once.
    pub fn connect(endpoint: &str, metrics: Arc<Metrics>) -> Result<Self, CriError> {
        let path = socket_path(endpoint)?;
        if !path.exists() {
            return Err(CriError::SocketMissing(path));
        }
        Ok(Self::connect_path(&path, metrics))
    }

    /// A lazily connecting client for a socket path that may not exist yet.
    pub fn connect_path(path: &Path, metrics: Arc<Metrics>) -> Self {
        let path = path.to_path_buf();
        // The URI is ignored: the connector dials the socket.
        let channel = tonic::transport::Endpoint::from_static("http://[::1]:1")
            .connect_timeout(Duration::from_secs(5))
            .connect_with_connector_lazy(tower::service_fn(move |_: http::Uri| {
                let path = path.clone();
                async move {
                    let stream = tokio::net::UnixStream::connect(path).await?;
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
                }
            }));
        Self::from_transports(transport(channel.clone()), transport(channel), metrics)
    }

    /// A client over given transports (an in-process server for the hollow runtime).
    pub fn from_transports(runtime: Transport, images: Transport, metrics: Arc<Metrics>) -> Self {
        Cri {
            runtime: RuntimeServiceClient::new(runtime)
                .max_decoding_message_size(64 << 20)
                .max_encoding_message_size(64 << 20),
            images: ImageServiceClient::new(images)
                .max_decoding_message_size(64 << 20)
                .max_encoding_message_size(64 << 20),
            timeout: Duration::from_secs(120),
            metrics,
        }
    }

    /// Runs one call with a timeout and records it. The call is boxed: the generated
    /// futures carry their request messages inline and are too large to move around.
    fn call<'a, T, F>(
        &'a self,
        op: &'static str,
        timeout: Option<Duration>,
        fut: F,
    ) -> futures::future::BoxFuture<'a, Result<T, CriError>>
    where
        F: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>> + Send + 'a,
        T: Send + 'a,
    {
        Box::pin(async move {
            let started = std::time::Instant::now();
            let result = match timeout {
                Some(t) => match tokio::time::timeout(t, fut).await {
                    Ok(r) => r.map_err(|s| status_error(op, s)),
                    Err(_) => Err(CriError::Timeout {
                        op,
                        secs: t.as_secs(),
                    }),
                },
                None => fut.await.map_err(|s| status_error(op, s)),
            };
            self.metrics
                .runtime_operation(op, started.elapsed(), result.is_err());
            result.map(tonic::Response::into_inner)
        })
    }

    /// `Version`, checking that the runtime speaks CRI v1.
    pub async fn version(&self) -> Result<cri::VersionResponse, CriError> {
        let mut c = self.runtime.clone();
        let v = self
            .call(
                "version",
                Some(Duration::from_secs(10)),
                c.version(cri::VersionRequest {
                    version: rkube_cri::API_VERSION.into(),
                }),
            )
            .await?;
        if v.runtime_api_version != "v1" && !v.runtime_api_version.starts_with("v1.") {
            return Err(CriError::Version {
                name: v.runtime_name,
                version: v.runtime_version,
                api: v.runtime_api_version,
            });
        }
        Ok(v)
    }

    /// `Status`: the runtime's RuntimeReady and NetworkReady conditions.
    pub async fn status(&self) -> Result<cri::RuntimeStatus, CriError> {
        let mut c = self.runtime.clone();
        let r = self
            .call(
                "status",
                Some(Duration::from_secs(10)),
                c.status(cri::StatusRequest { verbose: false }),
            )
            .await?;
        Ok(r.status.unwrap_or_default())
    }

    /// `UpdateRuntimeConfig` with the node's pod CIDR.
    pub async fn update_pod_cidr(&self, cidr: &str) -> Result<(), CriError> {
        let mut c = self.runtime.clone();
        self.call(
            "update_runtime_config",
            Some(self.timeout),
            c.update_runtime_config(cri::UpdateRuntimeConfigRequest {
                runtime_config: Some(cri::RuntimeConfig {
                    network_config: Some(cri::NetworkConfig {
                        pod_cidr: cidr.to_string(),
                    }),
                }),
            }),
        )
        .await
        .map(|_| ())
    }

    /// `RunPodSandbox`; returns the sandbox id.
    pub async fn run_pod_sandbox(
        &self,
        config: cri::PodSandboxConfig,
        runtime_handler: &str,
    ) -> Result<String, CriError> {
        let mut c = self.runtime.clone();
        // Sandbox creation includes network setup: give it longer.
        self.call(
            "run_podsandbox",
            Some(self.timeout * 2),
            c.run_pod_sandbox(cri::RunPodSandboxRequest {
                config: Some(config),
                runtime_handler: runtime_handler.to_string(),
            }),
        )
        .await
        .map(|r| r.pod_sandbox_id)
    }

    /// `StopPodSandbox` (idempotent).
    pub async fn stop_pod_sandbox(&self, id: &str) -> Result<(), CriError> {
        let mut c = self.runtime.clone();
        self.call(
            "stop_podsandbox",
            Some(self.timeout),
            c.stop_pod_sandbox(cri::StopPodSandboxRequest {
                pod_sandbox_id: id.into(),
            }),
        )
        .await
        .map(|_| ())
    }

    /// `RemovePodSandbox` (idempotent).
    pub async fn remove_pod_sandbox(&self, id: &str) -> Result<(), CriError> {
        let mut c = self.runtime.clone();
        self.call(
            "remove_podsandbox",
            Some(self.timeout),
            c.remove_pod_sandbox(cri::RemovePodSandboxRequest {
                pod_sandbox_id: id.into(),
            }),
        )
        .await
        .map(|_| ())
    }

    /// `PodSandboxStatus`.
    pub async fn pod_sandbox_status(&self, id: &str) -> Result<cri::PodSandboxStatus, CriError> {
        let mut c = self.runtime.clone();
        self.call(
            "podsandbox_status",
            Some(self.timeout),
            c.pod_sandbox_status(cri::PodSandboxStatusRequest {
                pod_sandbox_id: id.into(),
                verbose: false,
            }),
        )
        .await
        .map(|r| r.status.unwrap_or_default())
    }

    /// `ListPodSandbox`, optionally only those with the given labels.
    pub async fn list_pod_sandbox(
        &self,
        labels: &[(&str, &str)],
    ) -> Result<Vec<cri::PodSandbox>, CriError> {
        let mut c = self.runtime.clone();
        let filter = (!labels.is_empty()).then(|| cri::PodSandboxFilter {
            label_selector: label_map(labels),
            ..Default::default()
        });
        self.call(
            "list_podsandbox",
            Some(self.timeout),
            c.list_pod_sandbox(cri::ListPodSandboxRequest { filter }),
        )
        .await
        .map(|r| r.items)
    }

    /// `CreateContainer`; returns the container id.
    pub async fn create_container(
        &self,
        sandbox_id: &str,
        config: cri::ContainerConfig,
        sandbox_config: cri::PodSandboxConfig,
    ) -> Result<String, CriError> {
        let mut c = self.runtime.clone();
        self.call(
            "create_container",
            Some(self.timeout),
            c.create_container(cri::CreateContainerRequest {
                pod_sandbox_id: sandbox_id.into(),
                config: Some(config),
                sandbox_config: Some(sandbox_config),
            }),
        )
        .await
        .map(|r| r.container_id)
    }

    /// `StartContainer`.
    pub async fn start_container(&self, id: &str) -> Result<(), CriError> {
        let mut c = self.runtime.clone();
        self.call(
            "start_container",
            Some(self.timeout),
            c.start_container(cri::StartContainerRequest {
                container_id: id.into(),
            }),
        )
        .await
        .map(|_| ())
    }

    /// `StopContainer` with a grace period in seconds (0: kill at once).
    pub async fn stop_container(&self, id: &str, grace_seconds: i64) -> Result<(), CriError> {
        let mut c = self.runtime.clone();
        let grace = grace_seconds.max(0);
        self.call(
            "stop_container",
            Some(self.timeout + Duration::from_secs(grace as u64)),
            c.stop_container(cri::StopContainerRequest {
                container_id: id.into(),
                timeout: grace,
            }),
        )
        .await
        .map(|_| ())
    }

    /// `RemoveContainer` (idempotent).
    pub async fn remove_container(&self, id: &str) -> Result<(), CriError> {
        let mut c = self.runtime.clone();
        self.call(
            "remove_container",
            Some(self.timeout),
            c.remove_container(cri::RemoveContainerRequest {
                container_id: id.into(),
            }),
        )
        .await
        .map(|_| ())
    }

    /// `ListContainers`, optionally only those with the given labels.
    pub async fn list_containers(
        &self,
        labels: &[(&str, &str)],
    ) -> Result<Vec<cri::Container>, CriError> {
        let mut c = self.runtime.clone();
        let filter = (!labels.is_empty()).then(|| cri::ContainerFilter {
            label_selector: label_map(labels),
            ..Default::default()
        });
        self.call(
            "list_containers",
            Some(self.timeout),
            c.list_containers(cri::ListContainersRequest { filter }),
        )
        .await
        .map(|r| r.containers)
    }

    /// `ContainerStatus`.
    pub async fn container_status(&self, id: &str) -> Result<cri::ContainerStatus, CriError> {
        let mut c = self.runtime.clone();
        self.call(
            "container_status",
            Some(self.timeout),
            c.container_status(cri::ContainerStatusRequest {
                container_id: id.into(),
                verbose: false,
            }),
        )
        .await
        .map(|r| r.status.unwrap_or_default())
    }

    /// `ExecSync` with a timeout in seconds (0: none).
    pub async fn exec_sync(
        &self,
        id: &str,
        cmd: Vec<String>,
        timeout_seconds: i64,
    ) -> Result<cri::ExecSyncResponse, CriError> {
        let mut c = self.runtime.clone();
        let limit = if timeout_seconds > 0 {
            Some(Duration::from_secs(timeout_seconds as u64) + Duration::from_secs(10))
        } else {
            None
        };
        self.call(
            "exec_sync",
            limit,
            c.exec_sync(cri::ExecSyncRequest {
                container_id: id.into(),
                cmd,
                timeout: timeout_seconds.max(0),
            }),
        )
        .await
    }

    /// `Exec`: the URL of the runtime's streaming server that runs `cmd` in the container
    /// for one client (SPDY or WebSocket streams).
    pub async fn exec(&self, req: cri::ExecRequest) -> Result<String, CriError> {
        let mut c = self.runtime.clone();
        self.call("exec", Some(self.timeout), c.exec(req))
            .await
            .map(|r| r.url)
    }

    /// `Attach`: the URL of the runtime's streaming server attached to the container's
    /// standard streams.
    pub async fn attach(&self, req: cri::AttachRequest) -> Result<String, CriError> {
        let mut c = self.runtime.clone();
        self.call("attach", Some(self.timeout), c.attach(req))
            .await
            .map(|r| r.url)
    }

    /// `PortForward`: the URL of the runtime's streaming server forwarding to the sandbox's
    /// ports.
    pub async fn port_forward(&self, req: cri::PortForwardRequest) -> Result<String, CriError> {
        let mut c = self.runtime.clone();
        self.call("port_forward", Some(self.timeout), c.port_forward(req))
            .await
            .map(|r| r.url)
    }

    /// `ListContainerStats` of all containers.
    pub async fn list_container_stats(&self) -> Result<Vec<cri::ContainerStats>, CriError> {
        let mut c = self.runtime.clone();
        self.call(
            "list_container_stats",
            Some(self.timeout),
            c.list_container_stats(cri::ListContainerStatsRequest { filter: None }),
        )
        .await
        .map(|r| r.stats)
    }

    /// `ImageStatus`: `None` when the image is not present.
    pub async fn image_status(&self, image: &str) -> Result<Option<cri::Image>, CriError> {
        let mut c = self.images.clone();
        self.call(
            "image_status",
            Some(self.timeout),
            c.image_status(cri::ImageStatusRequest {
                image: Some(cri::ImageSpec {
                    image: image.into(),
                    ..Default::default()
                }),
                verbose: false,
            }),
        )
        .await
        .map(|r| r.image)
    }

    /// `PullImage`; returns the image reference (id) the runtime pulled.
    pub async fn pull_image(
        &self,
        image: &str,
        auth: Option<cri::AuthConfig>,
        sandbox_config: Option<cri::PodSandboxConfig>,
    ) -> Result<String, CriError> {
        let mut c = self.images.clone();
        // Pulls may be long; the kubelet bounds them by a generous limit only.
        self.call(
            "pull_image",
            Some(Duration::from_secs(30 * 60)),
            c.pull_image(cri::PullImageRequest {
                image: Some(cri::ImageSpec {
                    image: image.into(),
                    ..Default::default()
                }),
                auth,
                sandbox_config,
            }),
        )
        .await
        .map(|r| r.image_ref)
    }

    /// `ListImages`.
    pub async fn list_images(&self) -> Result<Vec<cri::Image>, CriError> {
        let mut c = self.images.clone();
        self.call(
            "list_images",
            Some(self.timeout),
            c.list_images(cri::ListImagesRequest { filter: None }),
        )
        .await
        .map(|r| r.images)
    }

    /// `ImageFsInfo`.
    pub async fn image_fs_info(&self) -> Result<cri::ImageFsInfoResponse, CriError> {
        let mut c = self.images.clone();
        self.call(
            "image_fs_info",
            Some(self.timeout),
            c.image_fs_info(cri::ImageFsInfoRequest {}),
        )
        .await
    }
}

fn status_error(op: &'static str, s: tonic::Status) -> CriError {
    CriError::Call {
        op,
        code: s.code(),
        message: s.message().to_string(),
    }
}

/// A CRI label selector from `(key, value)` pairs.
fn label_map(labels: &[(&str, &str)]) -> std::collections::HashMap<String, String> {
    labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(
            socket_path("unix:///run/containerd/containerd.sock").unwrap(),
            PathBuf::from("/run/containerd/containerd.sock")
        );
        assert_eq!(socket_path("/x.sock").unwrap(), PathBuf::from("/x.sock"));
        assert!(matches!(
            socket_path("tcp://1.2.3.4:5"),
            Err(CriError::Endpoint(_))
        ));
        let err = Cri::connect("unix:///nonexistent/rkube.sock", Default::default())
            .err()
            .unwrap();
        assert!(err.to_string().contains("does not exist"), "{err}");
    }

    #[tokio::test]
    async fn unreachable_runtime_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nobody.sock");
        let cri = Cri::connect_path(&path, Default::default());
        let err = cri.version().await.unwrap_err();
        assert!(err.is_unavailable(), "{err:?}");
    }
}
