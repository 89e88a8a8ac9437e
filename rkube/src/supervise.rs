//! The components of one rkube process as tasks: each reports its end on a channel, one
//! cancellation token stops them all, and stopping waits for each (up to a deadline) — shared
//! by `rkube server` and `rkube agent`.

use std::future::Future;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::BoxError;

/// How a component ended.
pub type Ended = (&'static str, Result<(), BoxError>);

/// The running components.
pub struct Supervisor {
    tx: mpsc::UnboundedSender<Ended>,
    rx: mpsc::UnboundedReceiver<Ended>,
    handles: Vec<(&'static str, tokio::task::JoinHandle<()>)>,
    stop: CancellationToken,
}

impl Default for Supervisor {
    fn default() -> Self {
        Self::new()
    }
}

impl Supervisor {
    /// No components yet.
    pub fn new() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Supervisor {
            tx,
            rx,
            handles: Vec::new(),
            stop: CancellationToken::new(),
        }
    }

    /// The token every component stops on.
    pub fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Runs `fut` as the component `name`.
    pub fn spawn<F, E>(&mut self, name: &'static str, fut: F)
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<BoxError>,
    {
        let tx = self.tx.clone();
        let handle = tokio::spawn(async move {
            let r = fut.await.map_err(Into::into);
            let _ = tx.send((name, r));
        });
        self.handles.push((name, handle));
    }

    /// The next component to end (by itself: components end only when stopped, or failing).
    pub async fn ended(&mut self) -> Option<Ended> {
        self.rx.recv().await
    }

    /// Stops every component and waits for them (each up to `timeout` in total); errors while
    /// stopping are logged.
    pub async fn stop(mut self, timeout: Duration) {
        self.stop.cancel();
        let deadline = Instant::now() + timeout;
        for (name, handle) in self.handles.drain(..) {
            match tokio::time::timeout_at(deadline, handle).await {
                Ok(_) => tracing::debug!(component = name, "stopped"),
                Err(_) => tracing::warn!(component = name, "did not stop in time"),
            }
        }
        while let Ok((name, r)) = self.rx.try_recv() {
            if let Err(e) = r {
                tracing::warn!(component = name, error = %e, "error while stopping");
            }
        }
    }
}

/// Logs why the process is stopping: `None` for the shutdown signal, else the component that
/// ended.
pub fn log_stop_reason(failure: Option<&Ended>) {
    match failure {
        None => tracing::info!("shutting down"),
        Some((name, Ok(()))) => {
            tracing::error!(component = name, "stopped unexpectedly; shutting down")
        }
        Some((name, Err(e))) => {
            tracing::error!(component = name, error = %e, "failed; shutting down")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failure_is_reported_and_stop_waits_for_the_rest() {
        let mut sup = Supervisor::new();
        let stop = sup.stop_token();
        let (done_tx, mut done_rx) = mpsc::unbounded_channel();
        sup.spawn("waits", async move {
            stop.cancelled().await;
            let _ = done_tx.send(());
            Ok::<(), BoxError>(())
        });
        sup.spawn("fails", async { Err::<(), BoxError>("boom".into()) });
        let (name, r) = sup.ended().await.unwrap();
        assert_eq!(name, "fails");
        assert_eq!(r.unwrap_err().to_string(), "boom");
        sup.stop(Duration::from_secs(5)).await;
        assert!(
            done_rx.try_recv().is_ok(),
            "the waiting component was stopped"
        );
    }
}
