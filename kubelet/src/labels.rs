//! The labels and annotations the kubelet puts on CRI sandboxes and containers — Kubernetes'
//! own keys, so `crictl` users see familiar names — and what it reads back from them after a
//! restart (which pod a container belongs to, its restart count, how to stop it).

/// Pod name (sandboxes and containers).
pub const POD_NAME: &str = "io.kubernetes.pod.name";
/// Pod namespace.
pub const POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
/// Pod UID: what ties runtime objects to a pod.
pub const POD_UID: &str = "io.kubernetes.pod.uid";
/// Container name (containers).
pub const CONTAINER_NAME: &str = "io.kubernetes.container.name";
/// `init` or `app`: which list of the pod spec the container comes from (rkube's own key).
pub const CONTAINER_KIND: &str = "io.rkube.container.kind";
/// Marks every runtime object this kubelet created (rkube's own key).
pub const MANAGED: &str = "io.rkube.managed";

/// Hash of the container spec the container was created from.
pub const CONTAINER_HASH: &str = "io.kubernetes.container.hash";
/// The container's restart count.
pub const RESTART_COUNT: &str = "io.kubernetes.container.restartCount";
/// Where the termination message is read from.
pub const TERMINATION_MESSAGE_PATH: &str = "io.kubernetes.container.terminationMessagePath";
/// The termination message policy (`File` or `FallbackToLogsOnError`).
pub const TERMINATION_MESSAGE_POLICY: &str = "io.kubernetes.container.terminationMessagePolicy";
/// The pod's termination grace period, for stopping orphans.
pub const GRACE_PERIOD: &str = "io.kubernetes.pod.terminationGracePeriod";
/// The preStop hook (JSON), for stopping orphans.
pub const PRE_STOP: &str = "io.kubernetes.container.preStopHandler";
/// The host path of the termination message file (rkube's own key).
pub const TERMINATION_MESSAGE_HOST_PATH: &str = "io.rkube.container.terminationMessageHostPath";
