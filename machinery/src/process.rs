//! What every component's `main` shares: the shutdown signal (SIGINT or SIGTERM) and an error
//! chain printed on one line.

/// Completes on Ctrl-C (SIGINT) or SIGTERM.
pub async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("install SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// An error and its causes on one line, `: `-separated, each cause once (most messages
/// already quote theirs).
pub fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = String::new();
    let mut next = Some(e);
    while let Some(cause) = next {
        let text = cause.to_string();
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
        next = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer: {0}")]
    struct Quoting(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("reading the config")]
    struct Plain(#[source] std::io::Error);

    #[test]
    fn causes_once_each() {
        let io = || std::io::Error::other("no such file");
        assert_eq!(describe(&Quoting(io())), "outer: no such file");
        assert_eq!(describe(&Plain(io())), "reading the config: no such file");
    }
}
