//! The health and metrics endpoint: `/healthz` (the process is up), `/readyz` (the caches are
//! synced) and `/metrics` (Prometheus text).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::sync::watch;

use crate::scheduler::Shared;

#[derive(Clone)]
struct AppState {
    shared: Arc<Shared>,
    synced: watch::Receiver<bool>,
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(s): State<AppState>) -> impl IntoResponse {
    if *s.synced.borrow() {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "caches not synced")
    }
}

async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    let text = s
        .shared
        .metrics
        .render(s.shared.queue.lengths(), s.shared.cache_sizes());
    (
        [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
        text,
    )
}

/// Serves until `shutdown` completes.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    synced: watch::Receiver<bool>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/livez", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(AppState { shared, synced });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
