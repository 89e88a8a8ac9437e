//! The connection to the API server a command works with: the kube-rs client built from the
//! kubeconfig, the default namespace, discovery (fetched once, on first use), and raw requests
//! for what `Api<DynamicObject>` does not cover (server-side tables, OpenAPI, logs).

use futures::AsyncBufRead;
use kube::api::{Api, DynamicObject};
use kube::core::WatchEvent;
use serde_json::Value;
use tokio::sync::OnceCell;

use crate::cli::GlobalArgs;
use crate::discovery::{Discovered, DiscoveryError, ResourceInfo};
use crate::error::{CtlError, Result};

/// The `Accept` header of server-side tables.
pub const ACCEPT_TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";

/// A command's connection to the server.
pub struct Ctx {
    /// kube-rs client.
    pub client: kube::Client,
    /// The namespace commands default to.
    pub namespace: String,
    /// Whether `-n` was given.
    pub explicit_namespace: bool,
    /// The server URL.
    pub server: String,
    discovery: OnceCell<Discovered>,
}

impl From<DiscoveryError> for CtlError {
    fn from(e: DiscoveryError) -> Self {
        match e {
            DiscoveryError::Kube(k) => k.into(),
            other => CtlError::Mapping(other.to_string()),
        }
    }
}

impl Ctx {
    /// Connects using the kubeconfig and the global flags.
    pub async fn new(g: &GlobalArgs) -> Result<Ctx> {
        let r = crate::config::resolve(g)
            .await
            .map_err(|e| CtlError::Config(e.to_string()))?;
        let server = r.config.cluster_url.to_string();
        let uri = &r.config.cluster_url;
        let host = match (uri.host(), uri.port_u16()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            _ => server.clone(),
        };
        crate::error::set_server_host(host);
        let client =
            kube::Client::try_from(r.config).map_err(|e| CtlError::Config(e.to_string()))?;
        Ok(Ctx {
            client,
            namespace: r.namespace,
            explicit_namespace: r.explicit_namespace,
            server: server.trim_end_matches('/').to_string(),
            discovery: OnceCell::new(),
        })
    }

    /// The server's resources (fetched on first use).
    pub async fn discovery(&self) -> Result<&Discovered> {
        self.discovery
            .get_or_try_init(|| async {
                Discovered::load(&self.client).await.map_err(CtlError::from)
            })
            .await
    }

    /// Resolves a resource type argument.
    pub async fn resolve(&self, arg: &str) -> Result<ResourceInfo> {
        Ok(self.discovery().await?.resolve(arg)?.clone())
    }

    /// A dynamic API for the resource in `namespace` (ignored for cluster-scoped resources).
    pub fn api(&self, r: &ResourceInfo, namespace: &str) -> Api<DynamicObject> {
        let ar = r.api_resource();
        if r.namespaced {
            Api::namespaced_with(self.client.clone(), namespace, &ar)
        } else {
            Api::all_with(self.client.clone(), &ar)
        }
    }

    /// A dynamic API across all namespaces.
    pub fn api_all(&self, r: &ResourceInfo) -> Api<DynamicObject> {
        Api::all_with(self.client.clone(), &r.api_resource())
    }

    /// Sends a request and parses the JSON answer (failures become API errors).
    pub async fn request(
        &self,
        method: http::Method,
        path_and_query: &str,
        accept: Option<&str>,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Result<Value> {
        let req = build(method, path_and_query, accept, content_type, body)?;
        Ok(self.client.request::<Value>(req).await?)
    }

    /// GET as JSON.
    pub async fn get_json(&self, path_and_query: &str) -> Result<Value> {
        self.request(http::Method::GET, path_and_query, None, None, Vec::new())
            .await
    }

    /// GET as text (OpenAPI documents, logs).
    pub async fn get_text(&self, path_and_query: &str) -> Result<String> {
        let req = build(http::Method::GET, path_and_query, None, None, Vec::new())?;
        Ok(self.client.request_text(req).await?)
    }

    /// GET as a stream of bytes (followed logs).
    pub async fn get_stream(&self, path_and_query: &str) -> Result<impl AsyncBufRead + use<>> {
        let req = build(http::Method::GET, path_and_query, None, None, Vec::new())?;
        Ok(self.client.request_stream(req).await?)
    }

    /// A watch as a stream of events (with the given `Accept`).
    pub async fn watch(
        &self,
        path_and_query: &str,
        accept: Option<&str>,
    ) -> Result<impl futures::Stream<Item = Result<WatchEvent<Value>>> + use<>> {
        let req = build(http::Method::GET, path_and_query, accept, None, Vec::new())?;
        let stream = self.client.request_events::<Value>(req).await?;
        Ok(futures::StreamExt::map(
            stream,
            |r: std::result::Result<WatchEvent<Value>, kube::Error>| r.map_err(CtlError::from),
        ))
    }
}

fn build(
    method: http::Method,
    path_and_query: &str,
    accept: Option<&str>,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> Result<http::Request<Vec<u8>>> {
    let mut b = http::Request::builder().method(method).uri(path_and_query);
    if let Some(a) = accept {
        b = b.header(http::header::ACCEPT, a);
    }
    if let Some(c) = content_type {
        b = b.header(http::header::CONTENT_TYPE, c);
    }
    b.body(body).map_err(|e| CtlError::Other(e.to_string()))
}

/// A query string from pairs (values URL-encoded), with the leading `?` when not empty.
pub fn query(pairs: &[(&str, String)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    let q = s.finish();
    if q.is_empty() { q } else { format!("?{q}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_encoded() {
        assert_eq!(query(&[]), "");
        assert_eq!(
            query(&[
                ("labelSelector", "app in (a,b)".into()),
                ("limit", "500".into())
            ]),
            "?labelSelector=app+in+%28a%2Cb%29&limit=500"
        );
    }
}
