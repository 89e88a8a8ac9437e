//! `describe`: kubectl's human-readable reports for pods, deployments, replica sets,
//! services, nodes and namespaces (same sections, same wording, same alignment: one tab
//! writer with padding 2 over the whole report), with the object's Events at the end; other
//! kinds get a generic field dump.

use serde_json::Value;

use crate::cli::DescribeArgs;
use crate::client::{Ctx, query};
use crate::discovery::ResourceInfo;
use crate::error::{CtlError, Result};
use crate::output::out;
use crate::print::age;
use crate::print::tabwriter::TabWriter;
use crate::resource;

/// Annotations describe leaves out.
const SKIP_ANNOTATIONS: &[&str] = &["kubectl.kubernetes.io/last-applied-configuration"];
/// Longest annotation shown on one line.
const MAX_ANNOTATION_LEN: usize = 140;

/// Runs `describe`.
pub async fn run(ctx: &Ctx, args: &DescribeArgs) -> Result<()> {
    if args.resources.is_empty() {
        return Err(CtlError::Usage(
            "You must specify the type of resource to describe. Use \"rkubectl api-resources\" for a complete list of supported resources.".into(),
        ));
    }
    let sels = resource::parse(ctx, &args.resources).await?;
    let mut first = true;
    let mut errors = Vec::new();
    for sel in &sels {
        let ns = if sel.info.namespaced {
            (!args.all_namespaces).then(|| ctx.namespace.clone())
        } else {
            None
        };
        let mut objects = Vec::new();
        if sel.names.is_empty() {
            let mut q = Vec::new();
            if let Some(l) = &args.selector {
                q.push(("labelSelector", l.clone()));
            }
            let list = ctx
                .get_json(&format!(
                    "{}{}",
                    sel.info.collection_path(ns.as_deref()),
                    query(&q)
                ))
                .await?;
            objects.extend(list["items"].as_array().cloned().unwrap_or_default());
        } else {
            for name in &sel.names {
                match ctx
                    .get_json(
                        &sel.info
                            .object_path(ns.as_deref().or(Some(&ctx.namespace)), name),
                    )
                    .await
                {
                    Ok(o) => objects.push(o),
                    Err(e) if e.is_not_found() => {
                        // kubectl describes the objects whose names start with the argument.
                        let list = ctx
                            .get_json(&sel.info.collection_path(ns.as_deref()))
                            .await?;
                        let matching: Vec<Value> = list["items"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter(|o| {
                                o["metadata"]["name"]
                                    .as_str()
                                    .is_some_and(|n| n.starts_with(name.as_str()))
                            })
                            .cloned()
                            .collect();
                        if matching.is_empty() {
                            errors.push(e);
                        }
                        objects.extend(matching);
                    }
                    Err(e) => errors.push(e),
                }
            }
        }
        for obj in objects {
            let text = describe(ctx, &sel.info, &obj, args.show_events).await?;
            if first {
                out(&text);
                first = false;
            } else {
                out(&format!("\n\n{text}"));
            }
        }
    }
    if first && errors.is_empty() {
        let namespaced = sels.iter().any(|s| s.info.namespaced);
        if namespaced && !args.all_namespaces {
            crate::output::errln(&format!(
                "No resources found in {} namespace.",
                ctx.namespace
            ));
        } else {
            crate::output::errln("No resources found");
        }
    }
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        _ => Err(CtlError::Many(errors)),
    }
}

/// The report of one object.
pub async fn describe(ctx: &Ctx, info: &ResourceInfo, obj: &Value, events: bool) -> Result<String> {
    let mut w = Writer::default();
    let ev = if events && info.kind != "Namespace" {
        Some(fetch_events(ctx, info, obj).await)
    } else {
        None
    };
    match (info.group.as_str(), info.kind.as_str()) {
        ("", "Pod") => describe_pod(&mut w, obj),
        ("apps", "Deployment") => describe_deployment(ctx, &mut w, obj).await?,
        ("apps", "ReplicaSet") => describe_replicaset(ctx, &mut w, obj).await?,
        ("batch", "Job") => describe_job(&mut w, obj),
        ("", "Service") => describe_service(ctx, &mut w, obj).await,
        ("", "Node") => describe_node(ctx, &mut w, obj).await,
        ("", "Namespace") => {
            let quotas = namespace_quotas(ctx, obj).await?;
            describe_namespace(&mut w, obj, quotas.as_deref());
        }
        _ => describe_generic(&mut w, obj),
    }
    if let Some(ev) = ev {
        describe_events(&mut w, &ev);
    }
    Ok(w.finish())
}

/// kubectl's prefix writer over a tab writer (minimum width 0, padding 2).
struct Writer {
    tw: TabWriter,
    done: String,
    /// Tabs are kept as they are (kubectl's `rollout history --revision` prints so).
    raw: bool,
}

impl Default for Writer {
    fn default() -> Self {
        Writer {
            tw: TabWriter::with(0, 2),
            done: String::new(),
            raw: false,
        }
    }
}

impl Writer {
    fn w(&mut self, level: usize, s: &str) {
        if self.raw {
            for _ in 0..level {
                self.done.push_str("  ");
            }
            self.done.push_str(s);
            return;
        }
        for _ in 0..level {
            self.tw.write("  ");
        }
        self.tw.write(s);
    }

    fn flush(&mut self) {
        let t = self.tw.flush();
        self.done.push_str(&t);
    }

    fn finish(mut self) -> String {
        self.flush();
        self.done
    }
}

fn s<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_str().unwrap_or_default()
}

fn num(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

/// RFC 1123 with numeric zone, in local time, as Go's `time.RFC1123Z`.
fn rfc1123z(ts: &str) -> String {
    match ts.parse::<jiff::Timestamp>() {
        Ok(t) => t
            .to_zoned(jiff::tz::TimeZone::system())
            .strftime("%a, %d %b %Y %H:%M:%S %z")
            .to_string(),
        Err(_) => ts.to_string(),
    }
}

fn labels_multiline(w: &mut Writer, indent: &str, title: &str, labels: &Value) {
    w.w(0, &format!("{indent}{title}:\t"));
    let Some(m) = labels.as_object().filter(|m| !m.is_empty()) else {
        w.w(0, "<none>\n");
        return;
    };
    let mut keys: Vec<&String> = m.keys().collect();
    keys.sort();
    // Continuation lines start with the tab alone: kubectl's indent is part of the title.
    for (i, k) in keys.iter().enumerate() {
        if i != 0 {
            w.w(0, "\t");
        }
        w.w(0, &format!("{k}={}\n", m[*k].as_str().unwrap_or_default()));
    }
}

fn annotations_multiline(w: &mut Writer, indent: &str, title: &str, annotations: &Value) {
    w.w(0, &format!("{indent}{title}:\t"));
    let keys: Vec<&String> = annotations
        .as_object()
        .map(|m| {
            m.keys()
                .filter(|k| !SKIP_ANNOTATIONS.contains(&k.as_str()))
                .collect()
        })
        .unwrap_or_default();
    if keys.is_empty() {
        w.w(0, "<none>\n");
        return;
    }
    let mut keys = keys;
    keys.sort();
    for (i, k) in keys.iter().enumerate() {
        if i != 0 {
            w.w(0, "\t");
        }
        let value = annotations[k.as_str()].as_str().unwrap_or_default();
        let value = value.strip_suffix('\n').unwrap_or(value);
        if value.len() + k.len() + 2 > MAX_ANNOTATION_LEN || value.contains('\n') {
            w.w(0, &format!("{k}:\n"));
            for line in value.split('\n') {
                w.w(
                    0,
                    &format!("\t  {}\n", shorten(line, MAX_ANNOTATION_LEN - 2)),
                );
            }
        } else {
            w.w(0, &format!("{k}: {value}\n"));
        }
    }
}

fn shorten(s: &str, max: usize) -> String {
    if s.len() > max {
        format!("{}...", &s[..max])
    } else {
        s.to_string()
    }
}

/// A label selector as `metav1.FormatLabelSelector` writes it.
pub fn format_selector(sel: &Value) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(m) = sel["matchLabels"].as_object() {
        let mut keys: Vec<&String> = m.keys().collect();
        keys.sort();
        for k in keys {
            parts.push(format!("{k}={}", m[k].as_str().unwrap_or_default()));
        }
    }
    for e in sel["matchExpressions"].as_array().into_iter().flatten() {
        let key = s(e, &["key"]);
        let vals: Vec<&str> = e["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        parts.push(match s(e, &["operator"]) {
            "In" => format!("{key} in ({})", vals.join(",")),
            "NotIn" => format!("{key} notin ({})", vals.join(",")),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            op => format!("{key} {op} {}", vals.join(",")),
        });
    }
    if parts.is_empty() {
        if sel.is_null() {
            "<none>".into()
        } else {
            "<all>".into()
        }
    } else {
        parts.join(",")
    }
}

fn map_selector(m: &Value) -> String {
    match m.as_object() {
        Some(m) if !m.is_empty() => {
            let mut p: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect();
            p.sort();
            p.join(",")
        }
        _ => "<none>".into(),
    }
}

fn string_or_none(s: &str) -> &str {
    if s.is_empty() { "<none>" } else { s }
}

fn controller(obj: &Value) -> Option<String> {
    obj["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|o| o["controller"].as_bool() == Some(true))
        .map(|o| format!("{}/{}", s(o, &["kind"]), s(o, &["name"])))
}

/// The ResourceQuotas of a namespace, sorted by name; `None` when the server serves none.
async fn namespace_quotas(ctx: &Ctx, ns: &Value) -> Result<Option<Vec<Value>>> {
    let name = s(ns, &["metadata", "name"]);
    match ctx
        .get_json(&format!("/api/v1/namespaces/{name}/resourcequotas"))
        .await
    {
        Ok(list) => {
            let mut items: Vec<Value> = list["items"].as_array().cloned().unwrap_or_default();
            items.sort_by(|a, b| s(a, &["metadata", "name"]).cmp(s(b, &["metadata", "name"])));
            Ok(Some(items))
        }
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

fn describe_namespace(w: &mut Writer, ns: &Value, quotas: Option<&[Value]>) {
    w.w(0, &format!("Name:\t{}\n", s(ns, &["metadata", "name"])));
    labels_multiline(w, "", "Labels", &ns["metadata"]["labels"]);
    annotations_multiline(w, "", "Annotations", &ns["metadata"]["annotations"]);
    w.w(0, &format!("Status:\t{}\n", s(ns, &["status", "phase"])));
    if let Some(quotas) = quotas {
        w.w(0, "\n");
        describe_quotas(w, quotas);
    }
}

/// kubectl's `DescribeResourceQuotas`: each quota's resources with used and hard amounts.
fn describe_quotas(w: &mut Writer, quotas: &[Value]) {
    if quotas.is_empty() {
        w.w(0, "No resource quota.\n");
        return;
    }
    w.w(0, "Resource Quotas\n");
    for q in quotas {
        w.w(1, &format!("Name:\t{}\n", s(q, &["metadata", "name"])));
        let mut scopes: Vec<&str> = q["spec"]["scopes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        scopes.sort_unstable();
        if !scopes.is_empty() {
            w.w(1, &format!("Scopes:\t{}\n", scopes.join(", ")));
            for scope in &scopes {
                let help = match *scope {
                    "Terminating" => {
                        "Matches all pods that have an active deadline. These pods have a limited lifespan on a node before being actively terminated by the system."
                    }
                    "NotTerminating" => {
                        "Matches all pods that do not have an active deadline. These pods usually include long running pods whose container command is not expected to terminate."
                    }
                    "BestEffort" => {
                        "Matches all pods that do not have resource requirements set. These pods have a best effort quality of service."
                    }
                    "NotBestEffort" => {
                        "Matches all pods that have at least one resource requirement set. These pods have a burstable or guaranteed quality of service."
                    }
                    _ => "",
                };
                if !help.is_empty() {
                    w.w(1, &format!("* {help}\n"));
                }
            }
        }
        w.w(1, "Resource\tUsed\tHard\n");
        w.w(1, "--------\t---\t---\n");
        let hard = q["status"]["hard"].as_object().cloned().unwrap_or_default();
        for (resource, amount) in &hard {
            let used = q["status"]["used"][resource.as_str()]
                .as_str()
                .unwrap_or("0");
            w.w(
                1,
                &format!("{resource}\t{used}\t{}\n", amount.as_str().unwrap_or("0")),
            );
        }
    }
}

fn describe_pod(w: &mut Writer, pod: &Value) {
    let meta = &pod["metadata"];
    let spec = &pod["spec"];
    let status = &pod["status"];
    w.w(0, &format!("Name:\t{}\n", s(meta, &["name"])));
    w.w(0, &format!("Namespace:\t{}\n", s(meta, &["namespace"])));
    if !spec["priority"].is_null() {
        w.w(0, &format!("Priority:\t{}\n", num(&spec["priority"])));
    }
    if !s(spec, &["priorityClassName"]).is_empty() {
        w.w(
            0,
            &format!(
                "Priority Class Name:\t{}\n",
                s(spec, &["priorityClassName"])
            ),
        );
    }
    if !s(spec, &["runtimeClassName"]).is_empty() {
        w.w(
            0,
            &format!("Runtime Class Name:\t{}\n", s(spec, &["runtimeClassName"])),
        );
    }
    if !s(spec, &["serviceAccountName"]).is_empty() {
        w.w(
            0,
            &format!("Service Account:\t{}\n", s(spec, &["serviceAccountName"])),
        );
    }
    if s(spec, &["nodeName"]).is_empty() {
        w.w(0, "Node:\t<none>\n");
    } else {
        w.w(
            0,
            &format!(
                "Node:\t{}/{}\n",
                s(spec, &["nodeName"]),
                s(status, &["hostIP"])
            ),
        );
    }
    if !s(status, &["startTime"]).is_empty() {
        w.w(
            0,
            &format!("Start Time:\t{}\n", rfc1123z(s(status, &["startTime"]))),
        );
    }
    labels_multiline(w, "", "Labels", &meta["labels"]);
    annotations_multiline(w, "", "Annotations", &meta["annotations"]);
    let phase = s(status, &["phase"]);
    if !s(meta, &["deletionTimestamp"]).is_empty() && phase != "Failed" && phase != "Succeeded" {
        let since = age::seconds_since(s(meta, &["deletionTimestamp"])).unwrap_or(0);
        w.w(
            0,
            &format!("Status:\tTerminating (lasts {})\n", age::human(since)),
        );
        w.w(
            0,
            &format!(
                "Termination Grace Period:\t{}s\n",
                num(&meta["deletionGracePeriodSeconds"])
            ),
        );
    } else {
        w.w(0, &format!("Status:\t{phase}\n"));
    }
    if !s(status, &["reason"]).is_empty() {
        w.w(0, &format!("Reason:\t{}\n", s(status, &["reason"])));
    }
    if !s(status, &["message"]).is_empty() {
        w.w(0, &format!("Message:\t{}\n", s(status, &["message"])));
    }
    w.w(0, &format!("IP:\t{}\n", s(status, &["podIP"])));
    match status["podIPs"].as_array().filter(|a| !a.is_empty()) {
        None => w.w(0, "IPs:\t<none>\n"),
        Some(ips) => {
            w.w(0, "IPs:\n");
            for ip in ips {
                w.w(1, &format!("IP:\t{}\n", s(ip, &["ip"])));
            }
        }
    }
    if let Some(c) = controller(pod) {
        w.w(0, &format!("Controlled By:\t{c}\n"));
    }
    if !s(status, &["nominatedNodeName"]).is_empty() {
        w.w(
            0,
            &format!(
                "NominatedNodeName:\t{}\n",
                s(status, &["nominatedNodeName"])
            ),
        );
    }
    if spec["initContainers"]
        .as_array()
        .is_some_and(|a| !a.is_empty())
    {
        describe_containers(
            w,
            "Init Containers",
            &spec["initContainers"],
            Some(&status["initContainerStatuses"]),
            Some(pod),
            "",
        );
    }
    describe_containers(
        w,
        "Containers",
        &spec["containers"],
        Some(&status["containerStatuses"]),
        Some(pod),
        "",
    );
    if let Some(conds) = status["conditions"].as_array().filter(|a| !a.is_empty()) {
        w.w(0, "Conditions:\n  Type\tStatus\n");
        for c in conds {
            w.w(
                1,
                &format!("{} \t{} \n", s(c, &["type"]), s(c, &["status"])),
            );
        }
    }
    describe_volumes(w, &spec["volumes"], "");
    let qos = s(status, &["qosClass"]);
    w.w(
        0,
        &format!(
            "QoS Class:\t{}\n",
            if qos.is_empty() {
                qos_class(spec)
            } else {
                qos.to_string()
            }
        ),
    );
    labels_multiline(w, "", "Node-Selectors", &spec["nodeSelector"]);
    tolerations_multiline(w, "", "Tolerations", &spec["tolerations"]);
}

/// The QoS class of a pod spec when the status lacks it.
fn qos_class(spec: &Value) -> String {
    let mut any = false;
    let mut guaranteed = true;
    for c in spec["containers"].as_array().into_iter().flatten() {
        let r = &c["resources"];
        let req = r["requests"].as_object();
        let lim = r["limits"].as_object();
        if req.is_some_and(|m| !m.is_empty()) || lim.is_some_and(|m| !m.is_empty()) {
            any = true;
        }
        for res in ["cpu", "memory"] {
            let l = r["limits"][res].as_str();
            let q = r["requests"][res].as_str().or(l);
            if l.is_none() || q != l {
                guaranteed = false;
            }
        }
    }
    if !any {
        "BestEffort".into()
    } else if guaranteed {
        "Guaranteed".into()
    } else {
        "Burstable".into()
    }
}

fn describe_containers(
    w: &mut Writer,
    label: &str,
    containers: &Value,
    statuses: Option<&Value>,
    pod: Option<&Value>,
    space: &str,
) {
    let list = containers.as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        w.w(0, &format!("{space}{label}: <none>\n"));
        return;
    }
    w.w(0, &format!("{space}{label}:\n"));
    for c in &list {
        let name = s(c, &["name"]);
        let status = statuses
            .and_then(|st| st.as_array())
            .and_then(|a| a.iter().find(|x| s(x, &["name"]) == name));
        let name_indent = if space.is_empty() { "" } else { " " };
        w.w(1, &format!("{name_indent}{name}:\n"));
        if let Some(st) = status {
            w.w(2, &format!("Container ID:\t{}\n", s(st, &["containerID"])));
        }
        w.w(2, &format!("Image:\t{}\n", s(c, &["image"])));
        if let Some(st) = status {
            w.w(2, &format!("Image ID:\t{}\n", s(st, &["imageID"])));
        }
        let ports = c["ports"].as_array().cloned().unwrap_or_default();
        let port_str: Vec<String> = ports
            .iter()
            .map(|p| format!("{}/{}", num(&p["containerPort"]), protocol(p)))
            .collect();
        let host_str: Vec<String> = ports
            .iter()
            .map(|p| format!("{}/{}", num(&p["hostPort"]), protocol(p)))
            .collect();
        if port_str.len() > 1 {
            w.w(2, &format!("Ports:\t{}\n", port_str.join(", ")));
        } else {
            w.w(
                2,
                &format!("Port:\t{}\n", string_or_none(&port_str.join(", "))),
            );
        }
        if host_str.len() > 1 {
            w.w(2, &format!("Host Ports:\t{}\n", host_str.join(", ")));
        } else {
            w.w(
                2,
                &format!("Host Port:\t{}\n", string_or_none(&host_str.join(", "))),
            );
        }
        if !s(c, &["restartPolicy"]).is_empty() {
            w.w(
                2,
                &format!("Restart Policy:\t{}\n", s(c, &["restartPolicy"])),
            );
        }
        for (key, title) in [("command", "Command"), ("args", "Args")] {
            if let Some(items) = c[key].as_array().filter(|a| !a.is_empty()) {
                w.w(2, &format!("{title}:\n"));
                for item in items {
                    for line in item.as_str().unwrap_or_default().split('\n') {
                        w.w(3, &format!("{line}\n"));
                    }
                }
            }
        }
        if let Some(st) = status {
            container_state(w, "State", &st["state"]);
            if !st["lastState"]["terminated"].is_null() {
                container_state(w, "Last State", &st["lastState"]);
            }
            let ready = if st["ready"].as_bool() == Some(true) {
                "True"
            } else {
                "False"
            };
            w.w(2, &format!("Ready:\t{ready}\n"));
            w.w(
                2,
                &format!("Restart Count:\t{}\n", num(&st["restartCount"])),
            );
        }
        for (key, title) in [("limits", "Limits"), ("requests", "Requests")] {
            if let Some(m) = c["resources"][key].as_object().filter(|m| !m.is_empty()) {
                w.w(2, &format!("{title}:\n"));
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                for k in keys {
                    w.w(
                        3,
                        &format!("{k}:\t{}\n", crate::print::jsonpath::value_text(&m[k])),
                    );
                }
            }
        }
        for (key, title) in [
            ("livenessProbe", "Liveness"),
            ("readinessProbe", "Readiness"),
            ("startupProbe", "Startup"),
        ] {
            if c[key].is_object() {
                w.w(2, &format!("{title}:\t{}\n", probe(&c[key])));
            }
        }
        if let Some(from) = c["envFrom"].as_array().filter(|a| !a.is_empty()) {
            w.w(2, "Environment Variables from:\n");
            for f in from {
                let (kind, r) = if f["configMapRef"].is_object() {
                    ("ConfigMap", &f["configMapRef"])
                } else {
                    ("Secret", &f["secretRef"])
                };
                let prefix = s(f, &["prefix"]);
                let with_prefix = if prefix.is_empty() {
                    String::new()
                } else {
                    format!(" with prefix '{prefix}'")
                };
                let optional = r["optional"].as_bool().unwrap_or(false);
                w.w(
                    3,
                    &format!(
                        "{}\t{kind}{with_prefix}\tOptional: {optional}\n",
                        s(r, &["name"])
                    ),
                );
            }
        }
        let env = c["env"].as_array().cloned().unwrap_or_default();
        w.w(
            2,
            &format!(
                "Environment:{}\n",
                if env.is_empty() { "\t<none>" } else { "" }
            ),
        );
        for e in &env {
            let n = s(e, &["name"]);
            let vf = &e["valueFrom"];
            if vf.is_null() {
                for (i, line) in s(e, &["value"]).split('\n').enumerate() {
                    if i == 0 {
                        w.w(3, &format!("{n}:\t{line}\n"));
                    } else {
                        w.w(3, &format!("\t{line}\n"));
                    }
                }
            } else if vf["fieldRef"].is_object() {
                let path = s(vf, &["fieldRef", "fieldPath"]);
                let value = pod.map(|p| field_value(p, path)).unwrap_or_default();
                w.w(
                    3,
                    &format!(
                        "{n}:\t{value} ({}:{path})\n",
                        s(vf, &["fieldRef", "apiVersion"])
                    ),
                );
            } else if vf["resourceFieldRef"].is_object() {
                w.w(
                    3,
                    &format!(
                        "{n}:\t{} ({})\n",
                        "",
                        s(vf, &["resourceFieldRef", "resource"])
                    ),
                );
            } else if vf["secretKeyRef"].is_object() {
                let r = &vf["secretKeyRef"];
                w.w(
                    3,
                    &format!(
                        "{n}:\t<set to the key '{}' in secret '{}'>\tOptional: {}\n",
                        s(r, &["key"]),
                        s(r, &["name"]),
                        r["optional"].as_bool().unwrap_or(false)
                    ),
                );
            } else if vf["configMapKeyRef"].is_object() {
                let r = &vf["configMapKeyRef"];
                w.w(
                    3,
                    &format!(
                        "{n}:\t<set to the key '{}' of config map '{}'>\tOptional: {}\n",
                        s(r, &["key"]),
                        s(r, &["name"]),
                        r["optional"].as_bool().unwrap_or(false)
                    ),
                );
            }
        }
        let mut mounts = c["volumeMounts"].as_array().cloned().unwrap_or_default();
        w.w(
            2,
            &format!(
                "Mounts:{}\n",
                if mounts.is_empty() { "\t<none>" } else { "" }
            ),
        );
        mounts.sort_by(|a, b| s(a, &["mountPath"]).cmp(s(b, &["mountPath"])));
        for m in &mounts {
            let mut flags = vec![if m["readOnly"].as_bool() == Some(true) {
                "ro".to_string()
            } else {
                "rw".to_string()
            }];
            if !s(m, &["subPath"]).is_empty() {
                flags.push(format!("path={:?}", s(m, &["subPath"])));
            }
            w.w(
                3,
                &format!(
                    "{} from {} ({})\n",
                    s(m, &["mountPath"]),
                    s(m, &["name"]),
                    flags.join(",")
                ),
            );
        }
    }
}

fn field_value(pod: &Value, path: &str) -> String {
    match path {
        "metadata.name" => s(pod, &["metadata", "name"]).into(),
        "metadata.namespace" => s(pod, &["metadata", "namespace"]).into(),
        "metadata.uid" => s(pod, &["metadata", "uid"]).into(),
        "spec.nodeName" => s(pod, &["spec", "nodeName"]).into(),
        "spec.serviceAccountName" => s(pod, &["spec", "serviceAccountName"]).into(),
        "status.podIP" => s(pod, &["status", "podIP"]).into(),
        "status.hostIP" => s(pod, &["status", "hostIP"]).into(),
        _ => String::new(),
    }
}

fn protocol(p: &Value) -> &str {
    let pr = s(p, &["protocol"]);
    if pr.is_empty() { "TCP" } else { pr }
}

fn probe(p: &Value) -> String {
    let attrs = format!(
        "delay={}s timeout={}s period={}s #success={} #failure={}",
        num(&p["initialDelaySeconds"]),
        p["timeoutSeconds"].as_i64().unwrap_or(1),
        p["periodSeconds"].as_i64().unwrap_or(10),
        p["successThreshold"].as_i64().unwrap_or(1),
        p["failureThreshold"].as_i64().unwrap_or(3)
    );
    let port = |v: &Value| crate::print::jsonpath::value_text(v);
    if let Some(h) = p["httpGet"].as_object() {
        let scheme = h
            .get("scheme")
            .and_then(Value::as_str)
            .unwrap_or("HTTP")
            .to_lowercase();
        let host = h.get("host").and_then(Value::as_str).unwrap_or("");
        let path = h.get("path").and_then(Value::as_str).unwrap_or("");
        return format!(
            "http-get {scheme}://{host}:{}{path} {attrs}",
            port(h.get("port").unwrap_or(&Value::Null))
        );
    }
    if let Some(t) = p["tcpSocket"].as_object() {
        return format!(
            "tcp-socket {}:{} {attrs}",
            t.get("host").and_then(Value::as_str).unwrap_or(""),
            port(t.get("port").unwrap_or(&Value::Null))
        );
    }
    if let Some(e) = p["exec"]["command"].as_array() {
        let cmd: Vec<&str> = e.iter().filter_map(Value::as_str).collect();
        return format!("exec [{}] {attrs}", cmd.join(" "));
    }
    if p["grpc"].is_object() {
        return format!(
            "grpc <pod>:{} {} {attrs}",
            num(&p["grpc"]["port"]),
            s(p, &["grpc", "service"])
        );
    }
    format!("unknown {attrs}")
}

fn container_state(w: &mut Writer, name: &str, state: &Value) {
    if state["running"].is_object() {
        w.w(2, &format!("{name}:\tRunning\n"));
        w.w(
            3,
            &format!(
                "Started:\t{}\n",
                rfc1123z(s(state, &["running", "startedAt"]))
            ),
        );
    } else if state["waiting"].is_object() {
        w.w(2, &format!("{name}:\tWaiting\n"));
        if !s(state, &["waiting", "reason"]).is_empty() {
            w.w(
                3,
                &format!("Reason:\t{}\n", s(state, &["waiting", "reason"])),
            );
        }
    } else if state["terminated"].is_object() {
        let t = &state["terminated"];
        w.w(2, &format!("{name}:\tTerminated\n"));
        if !s(t, &["reason"]).is_empty() {
            w.w(3, &format!("Reason:\t{}\n", s(t, &["reason"])));
        }
        if !s(t, &["message"]).is_empty() {
            w.w(3, &format!("Message:\t{}\n", s(t, &["message"])));
        }
        w.w(3, &format!("Exit Code:\t{}\n", num(&t["exitCode"])));
        if num(&t["signal"]) > 0 {
            w.w(3, &format!("Signal:\t{}\n", num(&t["signal"])));
        }
        w.w(
            3,
            &format!("Started:\t{}\n", rfc1123z(s(t, &["startedAt"]))),
        );
        w.w(
            3,
            &format!("Finished:\t{}\n", rfc1123z(s(t, &["finishedAt"]))),
        );
    } else {
        w.w(2, &format!("{name}:\tWaiting\n"));
    }
}

fn describe_volumes(w: &mut Writer, volumes: &Value, space: &str) {
    let list = volumes.as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        w.w(0, &format!("{space}Volumes:\t<none>\n"));
        return;
    }
    w.w(0, &format!("{space}Volumes:\n"));
    let name_indent = if space.is_empty() { "" } else { " " };
    for v in &list {
        w.w(1, &format!("{name_indent}{}:\n", s(v, &["name"])));
        if v["hostPath"].is_object() {
            w.w(2, &format!("Type:\tHostPath (bare host directory volume)\n    Path:\t{}\n    HostPathType:\t{}\n", s(v, &["hostPath", "path"]), s(v, &["hostPath", "type"])));
        } else if v["emptyDir"].is_object() {
            let size = crate::print::jsonpath::value_text(&v["emptyDir"]["sizeLimit"]);
            let size = if v["emptyDir"]["sizeLimit"].is_null() {
                "<unset>".to_string()
            } else {
                size
            };
            w.w(2, &format!("Type:\tEmptyDir (a temporary directory that shares a pod's lifetime)\n    Medium:\t{}\n    SizeLimit:\t{size}\n", s(v, &["emptyDir", "medium"])));
        } else if v["configMap"].is_object() {
            w.w(2, &format!("Type:\tConfigMap (a volume populated by a ConfigMap)\n    Name:\t{}\n    Optional:\t{}\n", s(v, &["configMap", "name"]), v["configMap"]["optional"].as_bool().unwrap_or(false)));
        } else if v["secret"].is_object() {
            w.w(2, &format!("Type:\tSecret (a volume populated by a Secret)\n    SecretName:\t{}\n    Optional:\t{}\n", s(v, &["secret", "secretName"]), v["secret"]["optional"].as_bool().unwrap_or(false)));
        } else if v["persistentVolumeClaim"].is_object() {
            w.w(2, &format!("Type:\tPersistentVolumeClaim (a reference to a PersistentVolumeClaim in the same namespace)\n    ClaimName:\t{}\n    ReadOnly:\t{}\n", s(v, &["persistentVolumeClaim", "claimName"]), v["persistentVolumeClaim"]["readOnly"].as_bool().unwrap_or(false)));
        } else if v["projected"].is_object() {
            w.w(
                2,
                "Type:\tProjected (a volume that contains injected data from multiple sources)\n",
            );
            // Each source as kubectl prints it.
            let sources = v["projected"]["sources"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for src in &sources {
                let optional = |o: &Value| o["optional"].as_bool().unwrap_or(false);
                if src["secret"].is_object() {
                    w.w(
                        2,
                        &format!(
                            "SecretName:\t{}\n    Optional:\t{}\n",
                            s(src, &["secret", "name"]),
                            optional(&src["secret"])
                        ),
                    );
                } else if src["downwardAPI"].is_object() {
                    w.w(2, "DownwardAPI:\ttrue\n");
                } else if src["configMap"].is_object() {
                    w.w(
                        2,
                        &format!(
                            "ConfigMapName:\t{}\n    Optional:\t{}\n",
                            s(src, &["configMap", "name"]),
                            optional(&src["configMap"])
                        ),
                    );
                } else if src["serviceAccountToken"].is_object() {
                    w.w(
                        2,
                        &format!(
                            "TokenExpirationSeconds:\t{}\n",
                            src["serviceAccountToken"]["expirationSeconds"]
                                .as_i64()
                                .unwrap_or(3600)
                        ),
                    );
                }
            }
        } else {
            w.w(1, "<unknown>\n");
        }
    }
}

fn tolerations_multiline(w: &mut Writer, indent: &str, title: &str, tolerations: &Value) {
    w.w(0, &format!("{indent}{title}:\t"));
    let mut list = tolerations.as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        w.w(0, "<none>\n");
        return;
    }
    list.sort_by(|a, b| s(a, &["key"]).cmp(s(b, &["key"])));
    for (i, t) in list.iter().enumerate() {
        if i != 0 {
            w.w(0, "\t");
        }
        let mut line = s(t, &["key"]).to_string();
        if !s(t, &["value"]).is_empty() {
            line.push_str(&format!("={}", s(t, &["value"])));
        }
        if !s(t, &["effect"]).is_empty() {
            line.push_str(&format!(":{}", s(t, &["effect"])));
        }
        if s(t, &["operator"]) == "Exists" && s(t, &["value"]).is_empty() {
            if !s(t, &["key"]).is_empty() || !s(t, &["effect"]).is_empty() {
                line.push_str(" op=Exists");
            } else {
                line.push_str("op=Exists");
            }
        }
        if !t["tolerationSeconds"].is_null() {
            line.push_str(&format!(" for {}s", num(&t["tolerationSeconds"])));
        }
        w.w(0, &format!("{line}\n"));
    }
}

/// A workload's `status.conditions` as kubectl prints them (nothing when there are none).
fn describe_conditions(w: &mut Writer, conditions: &Value) {
    let Some(conds) = conditions.as_array().filter(|a| !a.is_empty()) else {
        return;
    };
    w.w(0, "Conditions:\n  Type\tStatus\tReason\n");
    w.w(1, "----\t------\t------\n");
    for c in conds {
        w.w(
            1,
            &format!(
                "{} \t{}\t{}\n",
                s(c, &["type"]),
                s(c, &["status"]),
                s(c, &["reason"])
            ),
        );
    }
}

fn describe_pod_template(w: &mut Writer, t: &Value) {
    w.w(0, "Pod Template:\n");
    if t.is_null() {
        w.w(1, "<unset>");
        return;
    }
    labels_multiline(w, "  ", "Labels", &t["metadata"]["labels"]);
    if t["metadata"]["annotations"]
        .as_object()
        .is_some_and(|m| !m.is_empty())
    {
        annotations_multiline(w, "  ", "Annotations", &t["metadata"]["annotations"]);
    }
    let spec = &t["spec"];
    if !s(spec, &["serviceAccountName"]).is_empty() {
        w.w(
            1,
            &format!("Service Account:\t{}\n", s(spec, &["serviceAccountName"])),
        );
    }
    if spec["initContainers"]
        .as_array()
        .is_some_and(|a| !a.is_empty())
    {
        describe_containers(
            w,
            "Init Containers",
            &spec["initContainers"],
            None,
            None,
            "  ",
        );
    }
    describe_containers(w, "Containers", &spec["containers"], None, None, "  ");
    describe_volumes(w, &spec["volumes"], "  ");
    if !s(spec, &["priorityClassName"]).is_empty() {
        w.w(
            1,
            &format!(
                "Priority Class Name:\t{}\n",
                s(spec, &["priorityClassName"])
            ),
        );
    }
    labels_multiline(w, "  ", "Node-Selectors", &spec["nodeSelector"]);
    tolerations_multiline(w, "  ", "Tolerations", &spec["tolerations"]);
}

fn int_or_string(v: &Value) -> String {
    crate::print::jsonpath::value_text(v)
}

/// The ReplicaSets a Deployment owns, newest revision first.
pub async fn owned_replicasets(ctx: &Ctx, d: &Value) -> Result<Vec<Value>> {
    let ns = s(d, &["metadata", "namespace"]);
    let uid = s(d, &["metadata", "uid"]);
    let list = ctx
        .get_json(&format!("/apis/apps/v1/namespaces/{ns}/replicasets"))
        .await?;
    let mut out: Vec<Value> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|rs| {
            rs["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|o| {
                    o.iter()
                        .any(|r| r["uid"] == uid && r["controller"].as_bool() == Some(true))
                })
        })
        .cloned()
        .collect();
    out.sort_by_key(|rs| std::cmp::Reverse(revision(rs)));
    Ok(out)
}

/// The `deployment.kubernetes.io/revision` of an object.
pub fn revision(obj: &Value) -> i64 {
    obj["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
        .as_str()
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// Whether a ReplicaSet's pod template equals the Deployment's (ignoring the hash label).
pub fn same_template(rs: &Value, d: &Value) -> bool {
    let strip = |t: &Value| {
        let mut t = t.clone();
        if let Some(l) = t["metadata"]["labels"].as_object_mut() {
            l.remove("pod-template-hash");
        }
        t
    };
    strip(&rs["spec"]["template"]) == strip(&d["spec"]["template"])
}

async fn describe_deployment(ctx: &Ctx, w: &mut Writer, d: &Value) -> Result<()> {
    let meta = &d["metadata"];
    let spec = &d["spec"];
    let st = &d["status"];
    w.w(0, &format!("Name:\t{}\n", s(meta, &["name"])));
    w.w(0, &format!("Namespace:\t{}\n", s(meta, &["namespace"])));
    w.w(
        0,
        &format!(
            "CreationTimestamp:\t{}\n",
            rfc1123z(s(meta, &["creationTimestamp"]))
        ),
    );
    labels_multiline(w, "", "Labels", &meta["labels"]);
    annotations_multiline(w, "", "Annotations", &meta["annotations"]);
    w.w(
        0,
        &format!("Selector:\t{}\n", format_selector(&spec["selector"])),
    );
    w.w(
        0,
        &format!(
            "Replicas:\t{} desired | {} updated | {} total | {} available | {} unavailable\n",
            spec["replicas"].as_i64().unwrap_or(1),
            num(&st["updatedReplicas"]),
            num(&st["replicas"]),
            num(&st["availableReplicas"]),
            num(&st["unavailableReplicas"])
        ),
    );
    w.w(
        0,
        &format!("StrategyType:\t{}\n", s(spec, &["strategy", "type"])),
    );
    w.w(
        0,
        &format!("MinReadySeconds:\t{}\n", num(&spec["minReadySeconds"])),
    );
    let ru = &spec["strategy"]["rollingUpdate"];
    if ru.is_object() {
        w.w(
            0,
            &format!(
                "RollingUpdateStrategy:\t{} max unavailable, {} max surge\n",
                int_or_string(&ru["maxUnavailable"]),
                int_or_string(&ru["maxSurge"])
            ),
        );
    }
    describe_pod_template(w, &spec["template"]);
    describe_conditions(w, &st["conditions"]);
    let rss = owned_replicasets(ctx, d).await?;
    if !rss.is_empty() {
        let fmt = |v: Vec<&Value>| {
            if v.is_empty() {
                "<none>".to_string()
            } else {
                v.iter()
                    .map(|rs| {
                        format!(
                            "{} ({}/{} replicas created)",
                            s(rs, &["metadata", "name"]),
                            num(&rs["status"]["replicas"]),
                            num(&rs["spec"]["replicas"])
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        let new: Vec<&Value> = rss
            .iter()
            .filter(|rs| same_template(rs, d))
            .take(1)
            .collect();
        // Every other ReplicaSet (also those scaled to zero), in the server's (name) order,
        // as kubectl 1.33 lists them.
        let mut old: Vec<&Value> = rss
            .iter()
            .filter(|rs| {
                !new.iter()
                    .any(|n| n["metadata"]["uid"] == rs["metadata"]["uid"])
            })
            .collect();
        old.sort_by(|a, b| s(a, &["metadata", "name"]).cmp(s(b, &["metadata", "name"])));
        w.w(0, &format!("OldReplicaSets:\t{}\n", fmt(old)));
        w.w(0, &format!("NewReplicaSet:\t{}\n", fmt(new)));
    }
    Ok(())
}

async fn describe_replicaset(ctx: &Ctx, w: &mut Writer, rs: &Value) -> Result<()> {
    let meta = &rs["metadata"];
    w.w(0, &format!("Name:\t{}\n", s(meta, &["name"])));
    w.w(0, &format!("Namespace:\t{}\n", s(meta, &["namespace"])));
    w.w(
        0,
        &format!("Selector:\t{}\n", format_selector(&rs["spec"]["selector"])),
    );
    labels_multiline(w, "", "Labels", &meta["labels"]);
    annotations_multiline(w, "", "Annotations", &meta["annotations"]);
    if let Some(c) = controller(rs) {
        w.w(0, &format!("Controlled By:\t{c}\n"));
    }
    w.w(
        0,
        &format!(
            "Replicas:\t{} current / {} desired\n",
            num(&rs["status"]["replicas"]),
            rs["spec"]["replicas"].as_i64().unwrap_or(1)
        ),
    );
    w.w(0, "Pods Status:\t");
    let sel = format_selector(&rs["spec"]["selector"]);
    let pods = ctx
        .get_json(&format!(
            "/api/v1/namespaces/{}/pods{}",
            s(meta, &["namespace"]),
            query(&[("labelSelector", sel)])
        ))
        .await;
    match pods {
        Err(e) => w.w(0, &format!("error in fetching pods: {e}\n")),
        Ok(list) => {
            let uid = s(meta, &["uid"]);
            let (mut running, mut waiting, mut succeeded, mut failed) = (0, 0, 0, 0);
            for p in list["items"].as_array().into_iter().flatten() {
                let owned = p["metadata"]["ownerReferences"]
                    .as_array()
                    .is_some_and(|o| o.iter().any(|r| r["uid"] == uid));
                if !owned {
                    continue;
                }
                match s(p, &["status", "phase"]) {
                    "Running" => running += 1,
                    "Pending" => waiting += 1,
                    "Succeeded" => succeeded += 1,
                    "Failed" => failed += 1,
                    _ => {}
                }
            }
            w.w(0, &format!("{running} Running / {waiting} Waiting / {succeeded} Succeeded / {failed} Failed\n"));
        }
    }
    describe_pod_template(w, &rs["spec"]["template"]);
    describe_conditions(w, &rs["status"]["conditions"]);
    Ok(())
}

/// kubectl's `describeJob`.
fn describe_job(w: &mut Writer, job: &Value) {
    let meta = &job["metadata"];
    let spec = &job["spec"];
    let st = &job["status"];
    w.w(0, &format!("Name:\t{}\n", s(meta, &["name"])));
    w.w(0, &format!("Namespace:\t{}\n", s(meta, &["namespace"])));
    w.w(
        0,
        &format!("Selector:\t{}\n", format_selector(&spec["selector"])),
    );
    labels_multiline(w, "", "Labels", &meta["labels"]);
    annotations_multiline(w, "", "Annotations", &meta["annotations"]);
    if let Some(c) = controller(job) {
        w.w(0, &format!("Controlled By:\t{c}\n"));
    }
    w.w(0, &format!("Parallelism:\t{}\n", num(&spec["parallelism"])));
    match spec["completions"].as_i64() {
        Some(c) => w.w(0, &format!("Completions:\t{c}\n")),
        None => w.w(0, "Completions:\t<unset>\n"),
    }
    w.w(
        0,
        &format!("Completion Mode:\t{}\n", s(spec, &["completionMode"])),
    );
    w.w(
        0,
        &format!("Suspend:\t{}\n", spec["suspend"].as_bool().unwrap_or(false)),
    );
    w.w(
        0,
        &format!("Backoff Limit:\t{}\n", num(&spec["backoffLimit"])),
    );
    if let Some(ttl) = spec["ttlSecondsAfterFinished"].as_i64() {
        w.w(0, &format!("TTL Seconds After Finished:\t{ttl}\n"));
    }
    let start = s(st, &["startTime"]);
    if !start.is_empty() {
        w.w(0, &format!("Start Time:\t{}\n", rfc1123z(start)));
    }
    let done = s(st, &["completionTime"]);
    if !done.is_empty() {
        w.w(0, &format!("Completed At:\t{}\n", rfc1123z(done)));
        if let (Ok(a), Ok(b)) = (
            start.parse::<jiff::Timestamp>(),
            done.parse::<jiff::Timestamp>(),
        ) {
            let secs = b.as_second() - a.as_second();
            w.w(
                0,
                &format!("Duration:\t{}\n", crate::print::age::human(secs)),
            );
        }
    }
    if let Some(d) = spec["activeDeadlineSeconds"].as_i64() {
        w.w(0, &format!("Active Deadline Seconds:\t{d}s\n"));
    }
    w.w(
        0,
        &format!(
            "Pods Statuses:\t{} Active ({} Ready) / {} Succeeded / {} Failed\n",
            num(&st["active"]),
            num(&st["ready"]),
            num(&st["succeeded"]),
            num(&st["failed"])
        ),
    );
    describe_pod_template(w, &spec["template"]);
    describe_conditions(w, &st["conditions"]);
}

async fn describe_service(ctx: &Ctx, w: &mut Writer, svc: &Value) {
    let meta = &svc["metadata"];
    let spec = &svc["spec"];
    w.w(0, &format!("Name:\t{}\n", s(meta, &["name"])));
    w.w(0, &format!("Namespace:\t{}\n", s(meta, &["namespace"])));
    labels_multiline(w, "", "Labels", &meta["labels"]);
    annotations_multiline(w, "", "Annotations", &meta["annotations"]);
    w.w(
        0,
        &format!("Selector:\t{}\n", map_selector(&spec["selector"])),
    );
    w.w(0, &format!("Type:\t{}\n", s(spec, &["type"])));
    if !s(spec, &["ipFamilyPolicy"]).is_empty() {
        w.w(
            0,
            &format!("IP Family Policy:\t{}\n", s(spec, &["ipFamilyPolicy"])),
        );
    }
    let join = |v: &Value| -> String {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(",")
    };
    if spec["ipFamilies"].as_array().is_some_and(|a| !a.is_empty()) {
        w.w(0, &format!("IP Families:\t{}\n", join(&spec["ipFamilies"])));
    }
    w.w(0, &format!("IP:\t{}\n", s(spec, &["clusterIP"])));
    if spec["clusterIPs"].as_array().is_some_and(|a| !a.is_empty()) {
        w.w(0, &format!("IPs:\t{}\n", join(&spec["clusterIPs"])));
    }
    if spec["externalIPs"]
        .as_array()
        .is_some_and(|a| !a.is_empty())
    {
        w.w(
            0,
            &format!("External IPs:\t{}\n", join(&spec["externalIPs"])),
        );
    }
    if !s(spec, &["loadBalancerIP"]).is_empty() {
        w.w(0, &format!("IP:\t{}\n", s(spec, &["loadBalancerIP"])));
    }
    if !s(spec, &["externalName"]).is_empty() {
        w.w(
            0,
            &format!("External Name:\t{}\n", s(spec, &["externalName"])),
        );
    }
    let ingress: Vec<String> = svc["status"]["loadBalancer"]["ingress"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| {
            if s(i, &["ip"]).is_empty() {
                s(i, &["hostname"]).to_string()
            } else {
                s(i, &["ip"]).to_string()
            }
        })
        .collect();
    if !ingress.is_empty() {
        w.w(
            0,
            &format!("LoadBalancer Ingress:\t{}\n", ingress.join(", ")),
        );
    }
    let slices = ctx
        .get_json(&format!(
            "/apis/discovery.k8s.io/v1/namespaces/{}/endpointslices{}",
            s(meta, &["namespace"]),
            query(&[(
                "labelSelector",
                format!("kubernetes.io/service-name={}", s(meta, &["name"]))
            )])
        ))
        .await
        .ok();
    for p in spec["ports"].as_array().into_iter().flatten() {
        let name = if s(p, &["name"]).is_empty() {
            "<unset>"
        } else {
            s(p, &["name"])
        };
        w.w(
            0,
            &format!("Port:\t{name}\t{}/{}\n", num(&p["port"]), protocol(p)),
        );
        let tp = if p["targetPort"].is_null() {
            num(&p["port"]).to_string()
        } else {
            int_or_string(&p["targetPort"])
        };
        w.w(0, &format!("TargetPort:\t{tp}/{}\n", protocol(p)));
        if num(&p["nodePort"]) != 0 {
            w.w(
                0,
                &format!(
                    "NodePort:\t{name}\t{}/{}\n",
                    num(&p["nodePort"]),
                    protocol(p)
                ),
            );
        }
        let eps = slices
            .as_ref()
            .map(|l| endpoints_for_port(l, s(p, &["name"])))
            .unwrap_or_default();
        w.w(
            0,
            &format!(
                "Endpoints:\t{}\n",
                if eps.is_empty() { "<none>".into() } else { eps }
            ),
        );
    }
    if !s(spec, &["sessionAffinity"]).is_empty() {
        w.w(
            0,
            &format!("Session Affinity:\t{}\n", s(spec, &["sessionAffinity"])),
        );
    }
    if !s(spec, &["externalTrafficPolicy"]).is_empty() {
        w.w(
            0,
            &format!(
                "External Traffic Policy:\t{}\n",
                s(spec, &["externalTrafficPolicy"])
            ),
        );
    }
    if !s(spec, &["internalTrafficPolicy"]).is_empty() {
        w.w(
            0,
            &format!(
                "Internal Traffic Policy:\t{}\n",
                s(spec, &["internalTrafficPolicy"])
            ),
        );
    }
}

fn endpoints_for_port(slices: &Value, port_name: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    for sl in slices["items"].as_array().into_iter().flatten() {
        let port = sl["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| s(p, &["name"]) == port_name)
            .map(|p| num(&p["port"]));
        let Some(port) = port else { continue };
        for ep in sl["endpoints"].as_array().into_iter().flatten() {
            if ep["conditions"]["ready"].as_bool() == Some(false) {
                continue;
            }
            for a in ep["addresses"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                out.push(format!("{a}:{port}"));
            }
        }
    }
    if out.len() > 3 {
        let more = out.len() - 3;
        out.truncate(3);
        return format!("{} + {more} more...", out.join(","));
    }
    out.join(",")
}

async fn describe_node(ctx: &Ctx, w: &mut Writer, node: &Value) {
    let meta = &node["metadata"];
    let spec = &node["spec"];
    let st = &node["status"];
    w.w(0, &format!("Name:\t{}\n", s(meta, &["name"])));
    let mut roles: Vec<String> = meta["labels"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, _)| {
            k.strip_prefix("node-role.kubernetes.io/")
                .map(str::to_string)
        })
        .filter(|r| !r.is_empty())
        .collect();
    roles.sort();
    w.w(
        0,
        &format!(
            "Roles:\t{}\n",
            if roles.is_empty() {
                "<none>".into()
            } else {
                roles.join(",")
            }
        ),
    );
    labels_multiline(w, "", "Labels", &meta["labels"]);
    annotations_multiline(w, "", "Annotations", &meta["annotations"]);
    w.w(
        0,
        &format!(
            "CreationTimestamp:\t{}\n",
            rfc1123z(s(meta, &["creationTimestamp"]))
        ),
    );
    let taints: Vec<String> = spec["taints"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            let v = s(t, &["value"]);
            if v.is_empty() {
                format!("{}:{}", s(t, &["key"]), s(t, &["effect"]))
            } else {
                format!("{}={v}:{}", s(t, &["key"]), s(t, &["effect"]))
            }
        })
        .collect();
    if taints.is_empty() {
        w.w(0, "Taints:\t<none>\n");
    } else {
        for (i, t) in taints.iter().enumerate() {
            w.w(
                0,
                &format!("{}\t{t}\n", if i == 0 { "Taints:" } else { "" }),
            );
        }
    }
    w.w(
        0,
        &format!(
            "Unschedulable:\t{}\n",
            spec["unschedulable"].as_bool().unwrap_or(false)
        ),
    );
    let lease = ctx
        .get_json(&format!(
            "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{}",
            s(meta, &["name"])
        ))
        .await;
    match lease {
        Ok(l) => {
            let or_unset = |v: &str| {
                if v.is_empty() {
                    "<unset>".to_string()
                } else {
                    v.to_string()
                }
            };
            w.w(0, "Lease:\n");
            w.w(
                1,
                &format!(
                    "HolderIdentity:\t{}\n",
                    or_unset(s(&l, &["spec", "holderIdentity"]))
                ),
            );
            for (k, title) in [("acquireTime", "AcquireTime"), ("renewTime", "RenewTime")] {
                let t = s(&l, &["spec", k]);
                let t = if t.is_empty() {
                    "<unset>".to_string()
                } else {
                    rfc1123z(t)
                };
                w.w(1, &format!("{title}:\t{t}\n"));
            }
        }
        Err(CtlError::Api(st)) => {
            w.w(0, &format!("Lease:\tFailed to get lease: {}\n", st.message));
        }
        Err(e) => w.w(0, &format!("Lease:\tFailed to get lease: {e}\n")),
    }
    if let Some(conds) = st["conditions"].as_array().filter(|a| !a.is_empty()) {
        w.w(
            0,
            "Conditions:\n  Type\tStatus\tLastHeartbeatTime\tLastTransitionTime\tReason\tMessage\n",
        );
        w.w(
            1,
            "----\t------\t-----------------\t------------------\t------\t-------\n",
        );
        for c in conds {
            w.w(
                1,
                &format!(
                    "{} \t{} \t{} \t{} \t{} \t{}\n",
                    s(c, &["type"]),
                    s(c, &["status"]),
                    rfc1123z(s(c, &["lastHeartbeatTime"])),
                    rfc1123z(s(c, &["lastTransitionTime"])),
                    s(c, &["reason"]),
                    s(c, &["message"])
                ),
            );
        }
    }
    w.w(0, "Addresses:\n");
    for a in st["addresses"].as_array().into_iter().flatten() {
        w.w(
            1,
            &format!("{}:\t{}\n", s(a, &["type"]), s(a, &["address"])),
        );
    }
    for (key, title) in [("capacity", "Capacity"), ("allocatable", "Allocatable")] {
        if let Some(m) = st[key].as_object().filter(|m| !m.is_empty()) {
            w.w(0, &format!("{title}:\n"));
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            for k in keys {
                // kubectl prints the quantity's canonical form (`104857600Ki` as `100Gi`).
                let text = crate::print::jsonpath::value_text(&m[k]);
                let text = rkube_machinery::quantity::Quantity::parse(&text)
                    .map(|q| q.to_k8s_string())
                    .unwrap_or(text);
                w.w(1, &format!("{k}:\t{text}\n"));
            }
        }
    }
    let ni = &st["nodeInfo"];
    w.w(0, "System Info:\n");
    for (k, title) in [
        ("machineID", "Machine ID"),
        ("systemUUID", "System UUID"),
        ("bootID", "Boot ID"),
        ("kernelVersion", "Kernel Version"),
        ("osImage", "OS Image"),
        ("operatingSystem", "Operating System"),
        ("architecture", "Architecture"),
        ("containerRuntimeVersion", "Container Runtime Version"),
        ("kubeletVersion", "Kubelet Version"),
        ("kubeProxyVersion", "Kube-Proxy Version"),
    ] {
        w.w(1, &format!("{title}:\t{}\n", s(ni, &[k])));
    }
    if !s(spec, &["podCIDR"]).is_empty() {
        w.w(0, &format!("PodCIDR:\t{}\n", s(spec, &["podCIDR"])));
    }
    let cidrs: Vec<&str> = spec["podCIDRs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if !cidrs.is_empty() {
        w.w(0, &format!("PodCIDRs:\t{}\n", cidrs.join(",")));
    }
    if !s(spec, &["providerID"]).is_empty() {
        w.w(0, &format!("ProviderID:\t{}\n", s(spec, &["providerID"])));
    }
    let pods = ctx
        .get_json(&format!(
            "/api/v1/pods{}",
            query(&[(
                "fieldSelector",
                format!(
                    "spec.nodeName={},status.phase!=Succeeded,status.phase!=Failed",
                    s(meta, &["name"])
                )
            )])
        ))
        .await;
    match pods {
        Ok(list) => {
            let items = list["items"].as_array().cloned().unwrap_or_default();
            describe_node_resources(w, node, &items);
        }
        Err(_) => w.w(0, "Pods:\tnot authorized\n"),
    }
}

/// The `Non-terminated Pods` and `Allocated resources` sections of `describe node`.
fn describe_node_resources(w: &mut Writer, node: &Value, pods: &[Value]) {
    use crate::cmd::podresources::{ResourceList, add, go_percent, pod_total, resource_list, text};
    let st = &node["status"];
    let allocatable = if st["allocatable"].as_object().is_some_and(|m| !m.is_empty()) {
        resource_list(&st["allocatable"])
    } else {
        resource_list(&st["capacity"])
    };
    let milli = |l: &ResourceList, k: &str| l.get(k).map(|q| q.to_milli()).unwrap_or(0);
    let value = |l: &ResourceList, k: &str| l.get(k).map(|q| q.to_value()).unwrap_or(0);
    w.w(
        0,
        &format!("Non-terminated Pods:\t({} in total)\n", pods.len()),
    );
    w.w(
        1,
        "Namespace\tName\t\tCPU Requests\tCPU Limits\tMemory Requests\tMemory Limits\tAge\n",
    );
    w.w(
        1,
        "---------\t----\t\t------------\t----------\t---------------\t-------------\t---\n",
    );
    let (alloc_cpu, alloc_mem) = (milli(&allocatable, "cpu"), value(&allocatable, "memory"));
    let mut reqs = ResourceList::new();
    let mut limits = ResourceList::new();
    for p in pods {
        let (r, l) = (pod_total(p, "requests"), pod_total(p, "limits"));
        w.w(
            1,
            &format!(
                "{}\t{}\t\t{} ({}%)\t{} ({}%)\t{} ({}%)\t{} ({}%)\t{}\n",
                s(p, &["metadata", "namespace"]),
                s(p, &["metadata", "name"]),
                text(r.get("cpu")),
                go_percent(milli(&r, "cpu"), alloc_cpu),
                text(l.get("cpu")),
                go_percent(milli(&l, "cpu"), alloc_cpu),
                text(r.get("memory")),
                go_percent(value(&r, "memory"), alloc_mem),
                text(l.get("memory")),
                go_percent(value(&l, "memory"), alloc_mem),
                age::age(p["metadata"]["creationTimestamp"].as_str())
            ),
        );
        add(&mut reqs, &r);
        add(&mut limits, &l);
    }
    w.w(
        0,
        "Allocated resources:\n  (Total limits may be over 100 percent, i.e., overcommitted.)\n",
    );
    w.w(1, "Resource\tRequests\tLimits\n");
    w.w(1, "--------\t--------\t------\n");
    // Totals guard against a zero allocatable (the per-pod lines above do not, like kubectl).
    let pct = |part: i64, whole: i64| {
        if whole == 0 {
            0
        } else {
            go_percent(part, whole)
        }
    };
    for (name, scaled) in [
        ("cpu", true),
        ("memory", false),
        ("ephemeral-storage", false),
    ] {
        let (r, l, a) = if scaled {
            (
                milli(&reqs, name),
                milli(&limits, name),
                milli(&allocatable, name),
            )
        } else {
            (
                value(&reqs, name),
                value(&limits, name),
                value(&allocatable, name),
            )
        };
        w.w(
            1,
            &format!(
                "{name}\t{} ({}%)\t{} ({}%)\n",
                text(reqs.get(name)),
                pct(r, a),
                text(limits.get(name)),
                pct(l, a)
            ),
        );
    }
    let standard = ["cpu", "memory", "ephemeral-storage", "pods"];
    for name in allocatable.keys().filter(|k| k.starts_with("hugepages-")) {
        let a = value(&allocatable, name);
        w.w(
            1,
            &format!(
                "{name}\t{} ({}%)\t{} ({}%)\n",
                text(reqs.get(name)),
                pct(value(&reqs, name), a),
                text(limits.get(name)),
                pct(value(&limits, name), a)
            ),
        );
    }
    for name in allocatable
        .keys()
        .filter(|k| !k.starts_with("hugepages-") && !standard.contains(&k.as_str()))
    {
        w.w(
            1,
            &format!(
                "{name}\t{}\t{}\n",
                text(reqs.get(name)),
                text(limits.get(name))
            ),
        );
    }
}

fn describe_generic(w: &mut Writer, obj: &Value) {
    let meta = &obj["metadata"];
    w.w(0, &format!("Name:\t{}\n", s(meta, &["name"])));
    if !s(meta, &["namespace"]).is_empty() {
        w.w(0, &format!("Namespace:\t{}\n", s(meta, &["namespace"])));
    }
    labels_multiline(w, "", "Labels", &meta["labels"]);
    annotations_multiline(w, "", "Annotations", &meta["annotations"]);
    let Some(m) = obj.as_object() else { return };
    let mut keys: Vec<&String> = m.keys().filter(|k| k.as_str() != "metadata").collect();
    keys.sort();
    for k in keys {
        generic_field(w, 0, k, &m[k]);
    }
}

fn title_case(k: &str) -> String {
    let mut out = String::new();
    for (i, c) in k.chars().enumerate() {
        if i == 0 {
            out.extend(c.to_uppercase());
        } else if c.is_uppercase() {
            out.push(' ');
            out.push(c);
        } else {
            out.push(c);
        }
    }
    out
}

fn generic_field(w: &mut Writer, level: usize, k: &str, v: &Value) {
    match v {
        Value::Object(m) => {
            w.w(level, &format!("{}:\n", title_case(k)));
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            for kk in keys {
                generic_field(w, level + 1, kk, &m[kk]);
            }
        }
        Value::Array(a) => {
            w.w(level, &format!("{}:\n", title_case(k)));
            for item in a {
                match item {
                    Value::Object(m) => {
                        let mut keys: Vec<&String> = m.keys().collect();
                        keys.sort();
                        for kk in keys {
                            generic_field(w, level + 1, kk, &m[kk]);
                        }
                    }
                    other => w.w(
                        level + 1,
                        &format!("{}\n", crate::print::jsonpath::value_text(other)),
                    ),
                }
            }
        }
        other => w.w(
            level,
            &format!(
                "{}:\t{}\n",
                title_case(k),
                crate::print::jsonpath::value_text(other)
            ),
        ),
    }
}

async fn fetch_events(ctx: &Ctx, info: &ResourceInfo, obj: &Value) -> Vec<Value> {
    let meta = &obj["metadata"];
    let ns = s(meta, &["namespace"]);
    let name = s(meta, &["name"]);
    let search = |uid: &str| {
        let mut fs = format!(
            "involvedObject.name={name},involvedObject.kind={}",
            info.kind
        );
        if !ns.is_empty() {
            fs.push_str(&format!(",involvedObject.namespace={ns}"));
        }
        if !uid.is_empty() {
            fs.push_str(&format!(",involvedObject.uid={uid}"));
        }
        if ns.is_empty() {
            format!("/api/v1/events{}", query(&[("fieldSelector", fs)]))
        } else {
            format!(
                "/api/v1/namespaces/{ns}/events{}",
                query(&[("fieldSelector", fs)])
            )
        }
    };
    let mut paths = vec![search(s(meta, &["uid"]))];
    if info.kind == "Node" {
        // The kubelet records node events with the node's name as the uid (kubectl looks
        // for both).
        paths.push(search(name));
    }
    let mut items = Vec::new();
    for path in paths {
        items.extend(
            ctx.get_json(&path)
                .await
                .ok()
                .and_then(|l| l["items"].as_array().cloned())
                .unwrap_or_default(),
        );
    }
    items.sort_by(|a, b| event_time(a).cmp(event_time(b)));
    items
}

fn event_time(e: &Value) -> &str {
    let l = s(e, &["lastTimestamp"]);
    if l.is_empty() {
        s(e, &["eventTime"])
    } else {
        l
    }
}

fn since(ts: &str) -> String {
    if ts.is_empty() {
        return "<unknown>".into();
    }
    age::seconds_since(ts)
        .map(age::human)
        .unwrap_or_else(|| "<unknown>".into())
}

fn describe_events(w: &mut Writer, events: &[Value]) {
    if events.is_empty() {
        w.w(0, "Events:\t<none>\n");
        return;
    }
    w.flush();
    w.w(0, "Events:\n  Type\tReason\tAge\tFrom\tMessage\n");
    w.w(1, "----\t------\t----\t----\t-------\n");
    for e in events {
        let first = if s(e, &["eventTime"]).is_empty() {
            since(s(e, &["firstTimestamp"]))
        } else {
            since(s(e, &["eventTime"]))
        };
        let interval = if e["series"].is_object() {
            format!(
                "{} (x{} over {first})",
                since(s(e, &["series", "lastObservedTime"])),
                num(&e["series"]["count"])
            )
        } else if num(&e["count"]) > 1 {
            format!(
                "{} (x{} over {first})",
                since(s(e, &["lastTimestamp"])),
                num(&e["count"])
            )
        } else {
            first
        };
        let mut source = s(e, &["source", "component"]);
        if source.is_empty() {
            source = s(e, &["reportingComponent"]);
        }
        w.w(
            1,
            &format!(
                "{}\t{}\t{interval}\t{source}\t{}\n",
                s(e, &["type"]),
                s(e, &["reason"]),
                s(e, &["message"]).trim()
            ),
        );
    }
}

/// The `Pod Template:` section alone, tabs unaligned (for `rollout history --revision`).
pub fn pod_template_text(t: &Value) -> String {
    let mut w = Writer {
        raw: true,
        ..Writer::default()
    };
    describe_pod_template(&mut w, t);
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn namespace_report_matches_kubectl() {
        let mut w = Writer::default();
        describe_namespace(
            &mut w,
            &json!({"metadata": {"name": "demo", "labels": {"team": "lab", "kubernetes.io/metadata.name": "demo"}}, "status": {"phase": "Active"}}),
            Some(&[]),
        );
        assert_eq!(
            w.finish(),
            "Name:         demo\nLabels:       kubernetes.io/metadata.name=demo\n              team=lab\nAnnotations:  <none>\nStatus:       Active\n\nNo resource quota.\n"
        );
        let mut w = Writer::default();
        describe_namespace(
            &mut w,
            &json!({"metadata": {"name": "demo"}, "status": {"phase": "Active"}}),
            Some(&[json!({"metadata": {"name": "compute"},
                          "status": {"hard": {"pods": "10", "requests.cpu": "2"},
                                     "used": {"pods": "1", "requests.cpu": "500m"}}})]),
        );
        assert_eq!(
            w.finish(),
            "Name:         demo\nLabels:       <none>\nAnnotations:  <none>\nStatus:       Active\n\nResource Quotas\n  Name:         compute\n  Resource      Used  Hard\n  --------      ---   ---\n  pods          1     10\n  requests.cpu  500m  2\n"
        );
    }

    #[test]
    fn job_report_shows_its_settings_and_pod_counts() {
        let mut w = Writer::default();
        describe_job(
            &mut w,
            &json!({"metadata": {"name": "pi", "namespace": "demo"},
                    "spec": {"parallelism": 2, "completions": 3, "completionMode": "NonIndexed",
                             "suspend": false, "backoffLimit": 6,
                             "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u1"}},
                             "template": {"spec": {"containers": [{"name": "pi", "image": "busybox:1.35"}]}}},
                    "status": {"succeeded": 3, "ready": 0,
                               "startTime": "2026-01-01T00:00:00Z", "completionTime": "2026-01-01T00:00:12Z",
                               "conditions": [{"type": "Complete", "status": "True", "reason": "CompletionsReached"}]}}),
        );
        let out = w.finish();
        for line in [
            "Selector:         batch.kubernetes.io/controller-uid=u1\n",
            "Parallelism:      2\n",
            "Completions:      3\n",
            "Completion Mode:  NonIndexed\n",
            "Suspend:          false\n",
            "Backoff Limit:    6\n",
            "Duration:         12s\n",
            "Pods Statuses:    0 Active (0 Ready) / 3 Succeeded / 0 Failed\n",
            "  Complete \n",
        ] {
            assert!(
                out.contains(line.trim_end_matches('\n')),
                "{line:?} in\n{out}"
            );
        }
    }

    #[test]
    fn selectors_and_tolerations() {
        assert_eq!(
            format_selector(
                &json!({"matchLabels": {"b": "2", "a": "1"}, "matchExpressions": [{"key": "x", "operator": "In", "values": ["p", "q"]}, {"key": "y", "operator": "DoesNotExist"}]})
            ),
            "a=1,b=2,x in (p,q),!y"
        );
        let mut w = Writer::default();
        tolerations_multiline(
            &mut w,
            "",
            "Tolerations",
            &json!([
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                {"operator": "Exists"}
            ]),
        );
        assert_eq!(
            w.finish(),
            "Tolerations:  op=Exists\n              node.kubernetes.io/unreachable:NoExecute op=Exists for 300s\n"
        );
    }

    #[test]
    fn events_table() {
        let now = jiff::Timestamp::now().to_string();
        let mut w = Writer::default();
        w.w(0, "Name:\tx\n");
        describe_events(
            &mut w,
            &[
                json!({"type": "Normal", "reason": "Scheduled", "firstTimestamp": now, "lastTimestamp": now, "count": 1, "source": {"component": "default-scheduler"}, "message": "Successfully assigned"}),
            ],
        );
        let out = w.finish();
        assert!(
            out.starts_with("Name:  x\nEvents:\n  Type    Reason     Age"),
            "{out}"
        );
        assert!(out.contains("  Normal  Scheduled  "), "{out}");
    }
}
