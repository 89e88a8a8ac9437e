//! `get`: the server's tables (requested with `Accept: …;as=Table;g=meta.k8s.io`) printed
//! like kubectl, page by page (`limit`/`continue`, so 10k pods stream instead of loading
//! first), or the objects as YAML, JSON, names, JSONPath or custom columns; `-w` follows with
//! a watch.

use futures::StreamExt;
use kube::core::WatchEvent;
use serde_json::Value;

use crate::cli::GetArgs;
use crate::client::{ACCEPT_TABLE, Ctx, query};
use crate::error::{CtlError, Result};
use crate::output::{errln, out};
use crate::print::jsonpath::{JsonPath, compare};
use crate::print::table::{TableOptions, TablePrinter};
use crate::print::{OutputFormat, print_objects};
use crate::resource::{self, Selection, with_type};

/// Runs `get`.
pub async fn run(ctx: &Ctx, args: &GetArgs) -> Result<()> {
    let format =
        OutputFormat::parse(args.output.as_deref()).map_err(|e| CtlError::Usage(e.to_string()))?;
    let sels = if !args.filename.is_empty() {
        let m = crate::manifest::read(&args.filename, false)
            .map_err(|e| CtlError::Input(e.to_string()))?;
        let resolved = resource::resolve_manifests(ctx, m).await?;
        let mut sels: Vec<Selection> = Vec::new();
        for r in resolved {
            let name = r.name().to_string();
            match sels.iter_mut().find(|s| s.info == r.info) {
                Some(s) => s.names.push(name),
                None => sels.push(Selection {
                    info: r.info,
                    names: vec![name],
                }),
            }
        }
        sels
    } else {
        if args.resources.is_empty() {
            return Err(CtlError::Usage(
                "You must specify the type of resource to get. Use \"rkubectl api-resources\" for a complete list of supported resources.".into(),
            ));
        }
        resource::parse(ctx, &args.resources).await?
    };
    let sort = match &args.sort_by {
        Some(s) => Some(JsonPath::parse_relaxed(s).map_err(|e| CtlError::Usage(e.to_string()))?),
        None => None,
    };
    let multi = sels.len() > 1
        || args.resources.first().is_some_and(|a| a.contains(','))
        || args.resources.iter().any(|a| a.contains('/')) && sels.len() > 1;
    let ns = (!args.all_namespaces).then(|| ctx.namespace.clone());
    if (args.watch || args.watch_only) && sels.len() != 1 {
        return Err(CtlError::Usage(
            "you may only specify a single resource type".into(),
        ));
    }
    let mut errors: Vec<CtlError> = Vec::new();
    let mut found_any = false;
    let mut last_rv = String::new();

    if format.is_table() {
        let mut printer = TablePrinter::new(TableOptions {
            wide: matches!(format, OutputFormat::Wide),
            with_namespace: args.all_namespaces,
            show_labels: args.show_labels,
            label_columns: args.label_columns.clone(),
            no_headers: args.no_headers,
        });
        for sel in &sels {
            out(&printer.start_type(multi.then(|| sel.info.kind_prefix())));
            let sel_ns = if sel.info.namespaced {
                ns.as_deref()
            } else {
                None
            };
            if !sel.names.is_empty() {
                for name in &sel.names {
                    let path = sel.info.object_path(sel_ns.or(Some(&ctx.namespace)), name);
                    match ctx
                        .request(
                            http::Method::GET,
                            &path,
                            Some(ACCEPT_TABLE),
                            None,
                            Vec::new(),
                        )
                        .await
                    {
                        Ok(t) => {
                            found_any = true;
                            // A watch of the object starts after the version printed.
                            last_rv = t["rows"][0]["object"]["metadata"]["resourceVersion"]
                                .as_str()
                                .or(t["metadata"]["resourceVersion"].as_str())
                                .unwrap_or_default()
                                .to_string();
                            out(&printer.print(&t));
                        }
                        Err(e) if e.is_not_found() && args.ignore_not_found => {}
                        Err(e) => errors.push(e),
                    }
                }
                continue;
            }
            if args.watch_only {
                last_rv = list_rv(ctx, sel, sel_ns, args).await?;
                continue;
            }
            let include = if sort.is_some() { "Object" } else { "Metadata" };
            let mut sorted_rows: Vec<Value> = Vec::new();
            let mut cont: Option<String> = None;
            loop {
                let path = list_path(ctx, sel, sel_ns, args, cont.as_deref(), include);
                let t = ctx
                    .request(
                        http::Method::GET,
                        &path,
                        Some(ACCEPT_TABLE),
                        None,
                        Vec::new(),
                    )
                    .await?;
                last_rv = t["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let rows = t["rows"].as_array().map(Vec::len).unwrap_or(0);
                if rows > 0 {
                    found_any = true;
                }
                if sort.is_some() {
                    if let Some(c) = t["columnDefinitions"].as_array()
                        && !c.is_empty()
                    {
                        out(&printer
                            .print(&serde_json::json!({"columnDefinitions": c, "rows": []})));
                    }
                    sorted_rows.extend(t["rows"].as_array().cloned().unwrap_or_default());
                } else {
                    out(&printer.print(&t));
                }
                cont = t["metadata"]["continue"]
                    .as_str()
                    .filter(|c| !c.is_empty())
                    .map(str::to_string);
                if cont.is_none() {
                    break;
                }
            }
            if let Some(s) = &sort {
                sort_by(&mut sorted_rows, |r| &r["object"], s);
                out(&printer.print_rows(&sorted_rows));
            }
        }
        if !found_any && errors.is_empty() && !args.watch && !args.watch_only {
            let names_given = sels.iter().any(|s| !s.names.is_empty());
            if !names_given {
                no_resources(ctx, &sels, args.all_namespaces);
            }
        }
        if (args.watch || args.watch_only) && errors.is_empty() {
            let sel = &sels[0];
            let sel_ns = if sel.info.namespaced {
                ns.as_deref()
            } else {
                None
            };
            watch_table(ctx, sel, sel_ns, args, &last_rv, &mut printer).await?;
        }
    } else {
        let mut objects: Vec<Value> = Vec::new();
        let single = sels.len() == 1 && sels[0].names.len() == 1;
        for sel in &sels {
            let sel_ns = if sel.info.namespaced {
                ns.as_deref()
            } else {
                None
            };
            if !sel.names.is_empty() {
                for name in &sel.names {
                    let path = sel.info.object_path(sel_ns.or(Some(&ctx.namespace)), name);
                    match ctx.get_json(&path).await {
                        Ok(o) => {
                            last_rv = o["metadata"]["resourceVersion"]
                                .as_str()
                                .unwrap_or_default()
                                .to_string();
                            objects.push(with_type(o, &sel.info));
                        }
                        Err(e) if e.is_not_found() && args.ignore_not_found => {}
                        Err(e) => errors.push(e),
                    }
                }
                continue;
            }
            if args.watch_only {
                last_rv = list_rv(ctx, sel, sel_ns, args).await?;
                continue;
            }
            let mut cont: Option<String> = None;
            loop {
                let path = list_path(ctx, sel, sel_ns, args, cont.as_deref(), "");
                let list = ctx.get_json(&path).await?;
                last_rv = list["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                for item in list["items"].as_array().cloned().unwrap_or_default() {
                    objects.push(with_type(item, &sel.info));
                }
                cont = list["metadata"]["continue"]
                    .as_str()
                    .filter(|c| !c.is_empty())
                    .map(str::to_string);
                if cont.is_none() {
                    break;
                }
            }
        }
        if let Some(s) = &sort {
            sort_by(&mut objects, |o| o, s);
        }
        if !args.show_managed_fields {
            objects = objects
                .into_iter()
                .map(crate::cmd::common::hide_managed_fields)
                .collect();
        }
        let empty = objects.is_empty();
        if !(args.watch_only
            || (empty && matches!(format, OutputFormat::Name | OutputFormat::CustomColumns(_))))
        {
            out(&print_objects(&format, objects, single));
        }
        if empty
            && errors.is_empty()
            && !single
            && matches!(format, OutputFormat::CustomColumns(_) | OutputFormat::Name)
            && !args.watch
        {
            no_resources(ctx, &sels, args.all_namespaces);
        }
        if (args.watch || args.watch_only) && errors.is_empty() {
            let sel = &sels[0];
            let sel_ns = if sel.info.namespaced {
                ns.as_deref()
            } else {
                None
            };
            watch_objects(ctx, sel, sel_ns, args, &last_rv, &format).await?;
        }
    }
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        _ => Err(CtlError::Many(errors)),
    }
}

fn no_resources(ctx: &Ctx, sels: &[Selection], all_namespaces: bool) {
    let namespaced = sels.iter().any(|s| s.info.namespaced);
    if namespaced && !all_namespaces {
        errln(&format!(
            "No resources found in {} namespace.",
            ctx.namespace
        ));
    } else {
        errln("No resources found");
    }
}

fn list_path(
    _ctx: &Ctx,
    sel: &Selection,
    ns: Option<&str>,
    args: &GetArgs,
    cont: Option<&str>,
    include: &str,
) -> String {
    let mut q: Vec<(&str, String)> = Vec::new();
    if let Some(l) = &args.selector {
        q.push(("labelSelector", l.clone()));
    }
    if let Some(f) = &args.field_selector {
        q.push(("fieldSelector", f.clone()));
    }
    if args.chunk_size > 0 && args.sort_by.is_none() {
        q.push(("limit", args.chunk_size.to_string()));
    }
    if let Some(c) = cont {
        q.push(("continue", c.to_string()));
    }
    if !include.is_empty() && include != "Metadata" {
        q.push(("includeObject", include.to_string()));
    }
    format!("{}{}", sel.info.collection_path(ns), query(&q))
}

async fn list_rv(ctx: &Ctx, sel: &Selection, ns: Option<&str>, args: &GetArgs) -> Result<String> {
    let mut q: Vec<(&str, String)> = vec![("limit", "1".into())];
    if let Some(l) = &args.selector {
        q.push(("labelSelector", l.clone()));
    }
    let list = ctx
        .get_json(&format!("{}{}", sel.info.collection_path(ns), query(&q)))
        .await?;
    Ok(list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_default()
        .to_string())
}

fn watch_path(sel: &Selection, ns: Option<&str>, args: &GetArgs, rv: &str) -> String {
    let mut q: Vec<(&str, String)> = vec![("watch", "1".into())];
    if !rv.is_empty() {
        q.push(("resourceVersion", rv.to_string()));
    }
    if let Some(l) = &args.selector {
        q.push(("labelSelector", l.clone()));
    }
    let mut fs = args.field_selector.clone().unwrap_or_default();
    if sel.names.len() == 1 {
        if !fs.is_empty() {
            fs.push(',');
        }
        fs.push_str(&format!("metadata.name={}", sel.names[0]));
    }
    if !fs.is_empty() {
        q.push(("fieldSelector", fs));
    }
    format!("{}{}", sel.info.collection_path(ns), query(&q))
}

async fn watch_table(
    ctx: &Ctx,
    sel: &Selection,
    ns: Option<&str>,
    args: &GetArgs,
    rv: &str,
    printer: &mut TablePrinter,
) -> Result<()> {
    let path = watch_path(sel, ns, args, rv);
    let mut stream = Box::pin(ctx.watch(&path, Some(ACCEPT_TABLE)).await?);
    while let Some(ev) = stream.next().await {
        match ev? {
            WatchEvent::Added(t) | WatchEvent::Modified(t) | WatchEvent::Deleted(t) => {
                out(&printer.print(&t))
            }
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(e) => return Err(CtlError::Api(e)),
        }
    }
    Ok(())
}

async fn watch_objects(
    ctx: &Ctx,
    sel: &Selection,
    ns: Option<&str>,
    args: &GetArgs,
    rv: &str,
    format: &OutputFormat,
) -> Result<()> {
    let path = watch_path(sel, ns, args, rv);
    let mut stream = Box::pin(ctx.watch(&path, None).await?);
    while let Some(ev) = stream.next().await {
        match ev? {
            WatchEvent::Added(o) | WatchEvent::Modified(o) | WatchEvent::Deleted(o) => {
                let mut o = with_type(o, &sel.info);
                if !args.show_managed_fields {
                    o = crate::cmd::common::hide_managed_fields(o);
                }
                let text = print_objects(format, vec![o], true);
                if matches!(format, OutputFormat::Yaml) {
                    out("---\n");
                }
                out(&text);
            }
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(e) => return Err(CtlError::Api(e)),
        }
    }
    Ok(())
}

/// Sorts items by a JSONPath value (stable; items without the value first).
fn sort_by<T>(items: &mut [T], obj: impl Fn(&T) -> &Value, path: &JsonPath) {
    items.sort_by(|a, b| {
        let va = path.values(obj(a)).into_iter().next();
        let vb = path.values(obj(b)).into_iter().next();
        match (va, vb) {
            (None, None) => std::cmp::Ordering::Equal,
            (None, Some(_)) => std::cmp::Ordering::Less,
            (Some(_), None) => std::cmp::Ordering::Greater,
            (Some(x), Some(y)) => {
                compare(x, y).unwrap_or_else(|| x.to_string().cmp(&y.to_string()))
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sorts_numbers_numerically_and_missing_first() {
        let mut v = vec![
            json!({"n": 10, "s": "b"}),
            json!({"n": 9, "s": "a"}),
            json!({"s": "c"}),
        ];
        sort_by(&mut v, |o| o, &JsonPath::parse_relaxed(".n").unwrap());
        let ns: Vec<Value> = v.iter().map(|o| o["n"].clone()).collect();
        assert_eq!(ns, [Value::Null, json!(9), json!(10)]);
        sort_by(&mut v, |o| o, &JsonPath::parse_relaxed("{.s}").unwrap());
        assert_eq!(v[0]["s"], "a");
    }
}
