//! The errors of rkubectl's commands and how they are shown: the same words as kubectl's
//! (`Error from server (NotFound): deployments.apps "web" not found`, `error: …`, the
//! connection-refused hint), so people recognise them.

use kube::core::Status;

/// A failed command.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// The API server answered with a failure `Status`.
    #[error("{}", api_message(.0))]
    Api(Box<Status>),
    /// The server could not be reached.
    #[error("{0}")]
    Connect(String),
    /// The kubeconfig could not be read or used.
    #[error("error: {0}")]
    Config(String),
    /// Input files: missing paths, invalid YAML or JSON, objects without kind.
    #[error("error: {0}")]
    Input(String),
    /// The command line asks for something invalid.
    #[error("error: {0}")]
    Usage(String),
    /// A resource type or kind the server does not serve.
    #[error("error: {0}")]
    Mapping(String),
    /// Anything else, already worded (without the `error: ` prefix).
    #[error("error: {0}")]
    Other(String),
    /// Several failures (apply of many objects): one line each.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Many(Vec<CtlError>),
    /// A message kubectl prints without the `error: ` prefix (e.g. `explain` of an unknown
    /// type).
    #[error("{0}")]
    Plain(String),
    /// A failure that has already been printed; only the exit code is left.
    #[error("")]
    Silent(i32),
}

/// The result of a command.
pub type Result<T, E = CtlError> = std::result::Result<T, E>;

impl CtlError {
    /// The process exit code for the error (kubectl uses 1 for all of them).
    pub fn exit_code(&self) -> i32 {
        match self {
            CtlError::Silent(code) => *code,
            _ => 1,
        }
    }

    /// The HTTP status code of an API error.
    pub fn status_code(&self) -> Option<u16> {
        match self {
            CtlError::Api(s) => Some(s.code),
            _ => None,
        }
    }

    /// True for an API `NotFound`.
    pub fn is_not_found(&self) -> bool {
        matches!(self, CtlError::Api(s) if s.code == 404 || s.reason == "NotFound")
    }

    /// True for an API `Conflict` (also server-side apply conflicts).
    pub fn is_conflict(&self) -> bool {
        matches!(self, CtlError::Api(s) if s.code == 409 || s.reason == "Conflict")
    }

    /// Prefixes the message of an API error with `error when <verb> "<source>": `, as kubectl
    /// does for objects that came from a file.
    pub fn with_source(self, verb: &str, source: &str) -> CtlError {
        if source.is_empty() {
            return self;
        }
        match self {
            CtlError::Api(mut s) => {
                s.message = format!("error when {verb} \"{source}\": {}", s.message);
                CtlError::Api(s)
            }
            CtlError::Silent(c) => CtlError::Silent(c),
            other => {
                let msg = other.to_string();
                let msg = msg.strip_prefix("error: ").unwrap_or(&msg).to_string();
                CtlError::Other(format!("error when {verb} \"{source}\": {msg}"))
            }
        }
    }
}

/// kubectl's wording of a failure `Status`: `Error from server (Reason): message`, with the
/// causes of `Invalid` errors listed like `kubectl` lists them.
fn api_message(s: &Status) -> String {
    if s.reason == "Unauthorized" {
        return format!("error: You must be logged in to the server ({})", s.message);
    }
    if s.reason == "Invalid"
        && let Some(d) = &s.details
    {
        let mut head = if !d.kind.is_empty() || !d.name.is_empty() {
            format!("The {} \"{}\" is invalid", d.kind, d.name)
        } else {
            "The request is invalid".to_string()
        };
        let causes: Vec<String> = d
            .causes
            .iter()
            .map(|c| {
                if c.field.is_empty() {
                    c.message.clone()
                } else {
                    format!("{}: {}", c.field, c.message)
                }
            })
            .collect();
        match causes.len() {
            0 => {}
            1 => head = format!("{head}: {}", causes[0]),
            _ => {
                head.push_str(": \n");
                for c in &causes {
                    head.push_str(&format!("* {c}\n"));
                }
                head.pop();
            }
        }
        return head;
    }
    if s.reason.is_empty() {
        format!("Error from server: {}", s.message)
    } else {
        format!("Error from server ({}): {}", s.reason, s.message)
    }
}

impl From<kube::Error> for CtlError {
    fn from(e: kube::Error) -> Self {
        match e {
            kube::Error::Api(s) => CtlError::Api(s),
            kube::Error::HyperError(e) => CtlError::Connect(connect_message(&e.to_string(), &e)),
            kube::Error::Service(e) => CtlError::Connect(connect_message(&e.to_string(), &*e)),
            other => CtlError::Other(other.to_string()),
        }
    }
}

/// The server address a connection error is reported with (set once the client is built).
static SERVER: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Remembers the `host:port` of the server for connection error messages.
pub fn set_server_host(host: String) {
    let _ = SERVER.set(host);
}

fn connect_message(text: &str, err: &(dyn std::error::Error + 'static)) -> String {
    let mut all = text.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        all.push_str(": ");
        all.push_str(&s.to_string());
        source = s.source();
    }
    let host = SERVER.get().cloned().unwrap_or_default();
    if all.contains("Connection refused") || all.contains("connection refused") {
        format!(
            "The connection to the server {host} was refused - did you specify the right host or port?"
        )
    } else {
        format!("Unable to connect to the server: {all}")
    }
}

impl From<std::io::Error> for CtlError {
    fn from(e: std::io::Error) -> Self {
        CtlError::Other(e.to_string())
    }
}

impl From<serde_json::Error> for CtlError {
    fn from(e: serde_json::Error) -> Self {
        CtlError::Other(e.to_string())
    }
}

/// A `NotFound` status as the server words it, for objects looked up on the client side.
pub fn not_found(resource: &str, name: &str) -> CtlError {
    CtlError::Api(Box::new(Status {
        status: Some(kube::core::response::StatusSummary::Failure),
        code: 404,
        message: format!("{resource} \"{name}\" not found"),
        reason: "NotFound".into(),
        ..Default::default()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::response::{StatusCause, StatusDetails};

    fn status(code: u16, reason: &str, message: &str) -> Status {
        Status {
            code,
            reason: reason.into(),
            message: message.into(),
            ..Default::default()
        }
    }

    #[test]
    fn not_found_reads_like_kubectl() {
        let e = CtlError::Api(Box::new(status(
            404,
            "NotFound",
            "deployments.apps \"web\" not found",
        )));
        assert_eq!(
            e.to_string(),
            "Error from server (NotFound): deployments.apps \"web\" not found"
        );
        assert!(e.is_not_found());
        assert_eq!(e.exit_code(), 1);
    }

    #[test]
    fn source_is_named() {
        let e = CtlError::Api(Box::new(status(
            409,
            "AlreadyExists",
            "pods \"a\" already exists",
        )))
        .with_source("creating", "pod.yaml");
        assert_eq!(
            e.to_string(),
            "Error from server (AlreadyExists): error when creating \"pod.yaml\": pods \"a\" already exists"
        );
    }

    #[test]
    fn invalid_lists_causes() {
        let mut s = status(422, "Invalid", "x");
        s.details = Some(StatusDetails {
            name: "web".into(),
            kind: "Deployment".into(),
            causes: vec![StatusCause {
                field: "spec.replicas".into(),
                message: "Invalid value: -1: must be greater than or equal to 0".into(),
                reason: "FieldValueInvalid".into(),
            }],
            group: "apps".into(),
            uid: String::new(),
            retry_after_seconds: 0,
        });
        assert_eq!(
            CtlError::Api(Box::new(s.clone())).to_string(),
            "The Deployment \"web\" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0"
        );
        s.details.as_mut().unwrap().causes.push(StatusCause {
            field: "metadata.name".into(),
            message: "Required value".into(),
            reason: "FieldValueRequired".into(),
        });
        assert_eq!(
            CtlError::Api(Box::new(s)).to_string(),
            "The Deployment \"web\" is invalid: \n* spec.replicas: Invalid value: -1: must be greater than or equal to 0\n* metadata.name: Required value"
        );
    }
}
