//! Lifecycle hooks: postStart after a container starts and preStop before it is stopped —
//! exec (through CRI ExecSync), httpGet (to the pod IP) or sleep — bounded by a deadline.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, LifecycleHandler};

use crate::cri::Cri;
use crate::probes::resolve_port;

/// Runs a hook handler; `Err` says why it failed.
pub async fn run(
    cri: &Cri,
    handler: &LifecycleHandler,
    container: Option<&Container>,
    container_id: &str,
    pod_ip: &str,
    timeout: Duration,
) -> Result<(), String> {
    let secs = timeout.as_secs().max(1);
    if let Some(e) = &handler.exec {
        let cmd = e.command.clone().unwrap_or_default();
        return match cri.exec_sync(container_id, cmd.clone(), secs as i64).await {
            Ok(r) if r.exit_code == 0 => Ok(()),
            Ok(r) => Err(format!(
                "command {:?} exited with {}: {}{}",
                cmd.join(" "),
                r.exit_code,
                String::from_utf8_lossy(&r.stdout),
                String::from_utf8_lossy(&r.stderr)
            )),
            Err(e) => Err(e.to_string()),
        };
    }
    if let Some(h) = &handler.http_get {
        let default = Container::default();
        let port = resolve_port(&h.port, container.unwrap_or(&default))?;
        let host = h
            .host
            .clone()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| pod_ip.to_string());
        let headers: Vec<(String, String)> = h
            .http_headers
            .iter()
            .flatten()
            .map(|x| (x.name.clone(), x.value.clone()))
            .collect();
        return crate::probes::http_get(
            &host,
            port,
            h.path.as_deref().unwrap_or("/"),
            &headers,
            timeout,
        )
        .await;
    }
    if let Some(s) = &handler.sleep {
        let d = Duration::from_secs(s.seconds.max(0) as u64).min(timeout);
        tokio::time::sleep(d).await;
        return Ok(());
    }
    if handler.tcp_socket.is_some() {
        return Err("tcpSocket lifecycle handlers are deprecated and not supported".into());
    }
    Ok(())
}
