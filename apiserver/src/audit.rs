//! The audit log (`--audit-log-path`): one JSON line per request, written when the response
//! is sent — who (user, groups), what (verb, resource, namespace, name, path), the response
//! code and when — with size-based rotation: past `--audit-log-maxsize` MB the file becomes
//! `<path>.1` (older ones shift to `.2`, …) and at most `--audit-log-maxbackup` backups are
//! kept. Lines are written by one task so requests never wait for the disk.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// Why the audit log could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("audit log {path}: {source}")]
pub struct AuditError {
    /// The file.
    pub path: String,
    /// The error.
    pub source: std::io::Error,
}

/// Audit log settings.
#[derive(Clone, Debug)]
pub struct AuditConfig {
    /// The log file.
    pub path: PathBuf,
    /// Rotate when the file would exceed this many bytes.
    pub max_size: u64,
    /// Backups kept.
    pub max_backups: usize,
}

/// One audited request.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    /// `audit.k8s.io/v1`-like kind marker.
    pub kind: &'static str,
    /// When the response was sent (RFC 3339).
    pub timestamp: String,
    /// A unique id of the request.
    pub audit_id: String,
    /// The user (empty for unauthenticated requests).
    pub user: String,
    /// The user's groups.
    pub groups: Vec<String>,
    /// The verb (get, list, create, … or the HTTP method for non-resource paths).
    pub verb: String,
    /// API group.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub api_group: String,
    /// Resource.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub resource: String,
    /// Subresource.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub subresource: String,
    /// Namespace.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Object name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The request URI.
    pub request_uri: String,
    /// The client's address.
    pub source_ip: String,
    /// The HTTP status code of the response.
    pub code: u16,
    /// The authorization decision's reason or the refusal, when there is one.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

/// The writer side: events go through a channel to the task that owns the file.
#[derive(Clone)]
pub struct AuditLog {
    tx: tokio::sync::mpsc::UnboundedSender<AuditEvent>,
}

struct Writer {
    config: AuditConfig,
    file: std::fs::File,
    size: u64,
}

fn open(path: &Path) -> Result<std::fs::File, AuditError> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(|source| AuditError {
            path: path.display().to_string(),
            source,
        })
}

fn backup(path: &Path, n: usize) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

impl Writer {
    fn rotate(&mut self) -> Result<(), AuditError> {
        let p = &self.config.path;
        let err = |source| AuditError {
            path: p.display().to_string(),
            source,
        };
        if self.config.max_backups == 0 {
            std::fs::remove_file(p).map_err(err)?;
        } else {
            let _ = std::fs::remove_file(backup(p, self.config.max_backups));
            for n in (1..self.config.max_backups).rev() {
                let from = backup(p, n);
                if from.exists() {
                    std::fs::rename(&from, backup(p, n + 1)).map_err(err)?;
                }
            }
            std::fs::rename(p, backup(p, 1)).map_err(err)?;
        }
        self.file = open(p)?;
        self.size = 0;
        Ok(())
    }

    fn write(&mut self, ev: &AuditEvent) -> Result<(), AuditError> {
        let mut line = serde_json::to_vec(ev).unwrap_or_default();
        line.push(b'\n');
        let len = line.len() as u64;
        if self.size > 0 && self.size + len > self.config.max_size {
            self.rotate()?;
        }
        self.file.write_all(&line).map_err(|source| AuditError {
            path: self.config.path.display().to_string(),
            source,
        })?;
        self.size += len;
        Ok(())
    }
}

impl AuditLog {
    /// Opens the log and starts its writer task.
    pub fn start(config: AuditConfig) -> Result<Self, AuditError> {
        if let Some(dir) = config.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| AuditError {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let file = open(&config.path)?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        let mut w = Writer { config, file, size };
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<AuditEvent>();
        tokio::task::spawn_blocking(move || {
            while let Some(ev) = rx.blocking_recv() {
                if let Err(e) = w.write(&ev) {
                    tracing::error!(error = %e, "cannot write the audit log");
                }
            }
            let _ = w.file.sync_all();
        });
        Ok(Self { tx })
    }

    /// Records one request.
    pub fn record(&self, ev: AuditEvent) {
        let _ = self.tx.send(ev);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(i: usize) -> AuditEvent {
        AuditEvent {
            kind: "Event",
            timestamp: "2026-01-01T00:00:00Z".into(),
            audit_id: format!("id-{i}"),
            user: "jane".into(),
            groups: vec!["system:authenticated".into()],
            verb: "list".into(),
            api_group: String::new(),
            resource: "pods".into(),
            subresource: String::new(),
            namespace: "default".into(),
            name: String::new(),
            request_uri: "/api/v1/namespaces/default/pods".into(),
            source_ip: "127.0.0.1".into(),
            code: 200,
            reason: String::new(),
        }
    }

    #[test]
    fn rotates_by_size_and_keeps_backups() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let line_len = serde_json::to_vec(&event(0)).unwrap().len() as u64 + 1;
        let file = open(&path).unwrap();
        let mut w = Writer {
            config: AuditConfig {
                path: path.clone(),
                max_size: line_len * 3,
                max_backups: 2,
            },
            file,
            size: 0,
        };
        for i in 0..10 {
            w.write(&event(i)).unwrap();
        }
        let current = std::fs::read_to_string(&path).unwrap();
        let first = std::fs::read_to_string(backup(&path, 1)).unwrap();
        let second = std::fs::read_to_string(backup(&path, 2)).unwrap();
        assert!(!backup(&path, 3).exists());
        assert_eq!(current.lines().count(), 1);
        assert!(current.contains("\"id-9\""));
        assert!(first.contains("\"id-6\"") && first.contains("\"id-8\""));
        assert!(second.contains("\"id-3\""));
        let v: serde_json::Value = serde_json::from_str(current.lines().next().unwrap()).unwrap();
        assert_eq!(v["user"], "jane");
        assert_eq!(v["verb"], "list");
        assert_eq!(v["code"], 200);
        assert_eq!(v["namespace"], "default");
    }
}
