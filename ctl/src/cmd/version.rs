//! `version`: the client's version, and the server's from `/version` (`-o json|yaml` like
//! kubectl). `version --client` touches neither the network nor a runtime, so it starts fast.

use serde_json::{Value, json};

use crate::cli::VersionArgs;
use crate::client::Ctx;
use crate::error::{CtlError, Result};
use crate::output::out;
use crate::print::{json as gojson, yaml};

/// The client version (the crate's).
pub const CLIENT_VERSION: &str = concat!("v", env!("CARGO_PKG_VERSION"));

fn client_info() -> Value {
    json!({
        "gitVersion": CLIENT_VERSION,
        "platform": format!("{}/{}", std::env::consts::OS, go_arch()),
    })
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn render(info: Value, output: Option<&str>) -> Result<String> {
    match output {
        None => {
            let mut s = format!(
                "Client Version: {}\n",
                info["clientVersion"]["gitVersion"]
                    .as_str()
                    .unwrap_or_default()
            );
            if let Some(v) = info["serverVersion"]["gitVersion"].as_str() {
                s.push_str(&format!("Server Version: {v}\n"));
            }
            Ok(s)
        }
        Some("json") => Ok(gojson::to_pretty(&info)),
        Some("yaml") => Ok(yaml::to_string(&info)),
        Some(o) => Err(CtlError::Usage(format!(
            "--output must be 'yaml' or 'json', got {o:?}"
        ))),
    }
}

/// `version --client`.
pub fn client_only(args: &VersionArgs) -> Result<()> {
    out(&render(
        json!({ "clientVersion": client_info() }),
        args.output.as_deref(),
    )?);
    Ok(())
}

/// `version`.
pub async fn run(ctx: &Ctx, args: &VersionArgs) -> Result<()> {
    let server = ctx.get_json("/version").await?;
    out(&render(
        json!({ "clientVersion": client_info(), "serverVersion": server }),
        args.output.as_deref(),
    )?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_json() {
        let v = json!({"clientVersion": {"gitVersion": "v0.1.0"}, "serverVersion": {"gitVersion": "v1.33.0"}});
        assert_eq!(
            render(v.clone(), None).unwrap(),
            "Client Version: v0.1.0\nServer Version: v1.33.0\n"
        );
        assert!(
            render(v.clone(), Some("json"))
                .unwrap()
                .contains("\"serverVersion\": {")
        );
        assert!(render(v, Some("xml")).is_err());
    }
}
