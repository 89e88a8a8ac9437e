//! The kubelet's integration tests: real kubelets against an in-process API server, running
//! pods on a real containerd (started by the kubelet in a network namespace of the test's own)
//! with images from the offline builder, and hollow kubelets on the in-process fake runtime;
//! the kubelet's API is HTTPS for authorized users only, as the API server decides.
//! They need root and the packages of `scripts/setup` (containerd, runc, CNI plugins,
//! busybox-static, catatonit, iproute2, util-linux, kubectl).

mod auth;
mod faults;
mod harness;
mod hollow;
mod objects;
mod pods;
mod registry;
mod restarts;
