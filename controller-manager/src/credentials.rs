//! `--use-service-account-credentials`: every controller talks to the API server as its own
//! ServiceAccount in `kube-system` (`replicaset-controller`, `node-controller`, …), as
//! Kubernetes' controller manager does, so that each holds only the rights of its
//! `system:controller:<name>` role. The controller manager, with its own credentials, creates
//! the ServiceAccount when it is missing and requests its tokens (TokenRequest), renewing each
//! well before it expires; the informers stay on the controller manager's own client.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::FutureExt;
use http::HeaderValue;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};

use crate::Shutdown;

/// The namespace of the controllers' ServiceAccounts.
pub const NAMESPACE: &str = "kube-system";

/// The lifetime asked for each token; it is renewed after 80% of the lifetime it got.
const TOKEN_LIFETIME: i64 = 3600;

/// A bearer token shared by a client and the task renewing it.
type Token = Arc<RwLock<Option<HeaderValue>>>;

/// Clients acting as each of `accounts` (ServiceAccounts in `kube-system`): the connection
/// settings of `base` (server, CA) without its credentials, and a token of the account that a
/// task renews until `stop`. Waits (retrying) until every account has its first token, or
/// until `stop`, then returns the clients it has.
pub async fn service_account_clients(
    base: &kube::Config,
    manager: &Client,
    accounts: &[&'static str],
    stop: Shutdown,
) -> HashMap<&'static str, Client> {
    let tasks = accounts.iter().map(|account| {
        let stop = stop.clone();
        async move {
            let token: Token = Arc::new(RwLock::new(None));
            let first = tokio::select! {
                t = first_token(manager, account) => t,
                () = stop.clone() => return None,
            };
            *token.write().unwrap_or_else(|e| e.into_inner()) = Some(first.header);
            let client = match client_with(base, token.clone()) {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(account, error = %e, "cannot build the controller's client");
                    return None;
                }
            };
            tokio::spawn(renew(
                manager.clone(),
                account,
                token,
                first.renew_after,
                stop,
            ));
            Some((*account, client))
        }
    });
    futures::future::join_all(tasks)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// A client with `base`'s connection settings that authenticates with the current `token`.
fn client_with(base: &kube::Config, token: Token) -> Result<Client, kube::Error> {
    let mut config = base.clone();
    // Only the token: a client certificate would be the controller manager's identity.
    config.auth_info = Default::default();
    let add_token =
        tower::util::MapRequestLayer::new(move |mut req: http::Request<kube::client::Body>| {
            if let Some(v) = token.read().unwrap_or_else(|e| e.into_inner()).clone() {
                req.headers_mut().insert(http::header::AUTHORIZATION, v);
            }
            req
        });
    Ok(rkube_machinery::client::builder(config)?
        .with_layer(&add_token)
        .build())
}

struct Issued {
    header: HeaderValue,
    renew_after: Duration,
}

/// The account's first token: creates the ServiceAccount if it is missing, retries every
/// second until the API server issues a token.
async fn first_token(manager: &Client, account: &str) -> Issued {
    let mut logged = false;
    loop {
        match ensure_account(manager, account).await {
            Ok(()) => match request_token(manager, account).await {
                Ok(t) => return t,
                Err(e) if !logged => {
                    tracing::warn!(account, error = %e, "cannot get a token; retrying");
                    logged = true;
                }
                Err(_) => {}
            },
            Err(e) if !logged => {
                tracing::warn!(account, error = %e, "cannot create the ServiceAccount; retrying");
                logged = true;
            }
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Renews the token before it expires, until `stop` (retrying every 5 s on errors).
async fn renew(
    manager: Client,
    account: &'static str,
    token: Token,
    mut wait: Duration,
    stop: Shutdown,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = stop.clone() => return,
        }
        let next = ensure_account(&manager, account)
            .then(|r| async {
                r?;
                request_token(&manager, account).await
            })
            .await;
        match next {
            Ok(t) => {
                *token.write().unwrap_or_else(|e| e.into_inner()) = Some(t.header);
                wait = t.renew_after;
                tracing::debug!(account, "renewed the controller's token");
            }
            Err(e) => {
                tracing::warn!(account, error = %e, "cannot renew the controller's token; retrying");
                wait = Duration::from_secs(5);
            }
        }
    }
}

/// Creates `kube-system/<account>` unless it exists.
async fn ensure_account(manager: &Client, account: &str) -> Result<(), kube::Error> {
    let api: Api<ServiceAccount> = Api::namespaced(manager.clone(), NAMESPACE);
    if api.get_opt(account).await?.is_some() {
        return Ok(());
    }
    let sa = ServiceAccount {
        metadata: ObjectMeta {
            name: Some(account.to_string()),
            namespace: Some(NAMESPACE.to_string()),
            ..Default::default()
        },
        ..Default::default()
    };
    match api.create(&PostParams::default(), &sa).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

/// A TokenRequest for the account: the Authorization header and when to renew it.
async fn request_token(manager: &Client, account: &str) -> Result<Issued, kube::Error> {
    let api: Api<ServiceAccount> = Api::namespaced(manager.clone(), NAMESPACE);
    let req = TokenRequest {
        spec: TokenRequestSpec {
            expiration_seconds: Some(TOKEN_LIFETIME),
            ..Default::default()
        },
        ..Default::default()
    };
    let issued = api
        .create_token_request(account, &PostParams::default(), &req)
        .await?;
    let Some(status) = issued.status else {
        return Err(kube::Error::Service(
            "the TokenRequest has no status".into(),
        ));
    };
    let mut header = HeaderValue::from_str(&format!("Bearer {}", status.token))
        .map_err(|e| kube::Error::Service(Box::new(e)))?;
    header.set_sensitive(true);
    let left = status
        .expiration_timestamp
        .0
        .duration_since(jiff::Timestamp::now());
    let lifetime = Duration::try_from(left)
        .ok()
        .filter(|d| !d.is_zero())
        .unwrap_or(Duration::from_secs(TOKEN_LIFETIME as u64));
    Ok(Issued {
        header,
        renew_after: lifetime.mul_f64(0.8),
    })
}
