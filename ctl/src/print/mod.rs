//! Output: the `-o` formats (`wide`, `yaml`, `json`, `name`, `jsonpath=…`,
//! `custom-columns=…`) and the server-side table printer kubectl uses for `get`.

pub mod age;
pub mod columns;
pub mod json;
pub mod jsonpath;
pub mod table;
pub mod tabwriter;
pub mod yaml;

use serde_json::{Value, json};

use jsonpath::{JsonPath, JsonPathError};

/// Why an output format cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PrintError {
    /// `-o` names no known format.
    #[error(
        "unable to match a printer suitable for the output format \"{0}\", allowed formats are: custom-columns,json,jsonpath,name,wide,yaml"
    )]
    UnknownFormat(String),
    /// A JSONPath template does not parse.
    #[error("{0}")]
    JsonPath(#[from] JsonPathError),
    /// A custom-columns spec is malformed.
    #[error("{0}")]
    Columns(String),
}

/// The output format of `-o`.
#[derive(Debug, Clone)]
pub enum OutputFormat {
    /// The server's table (no `-o`).
    Table,
    /// The table with priority columns.
    Wide,
    /// YAML documents.
    Yaml,
    /// Indented JSON.
    Json,
    /// `kind.group/name` lines.
    Name,
    /// A JSONPath template.
    JsonPath(JsonPath),
    /// Columns from JSONPath expressions.
    CustomColumns(columns::CustomColumns),
}

impl OutputFormat {
    /// Parses `-o` (an empty value means the table).
    pub fn parse(o: Option<&str>) -> Result<OutputFormat, PrintError> {
        let Some(o) = o.filter(|s| !s.is_empty()) else {
            return Ok(OutputFormat::Table);
        };
        let (name, arg) = match o.split_once('=') {
            Some((n, a)) => (n, Some(a)),
            None => (o, None),
        };
        Ok(match (name, arg) {
            ("wide", None) => OutputFormat::Wide,
            ("yaml", None) => OutputFormat::Yaml,
            ("json", None) => OutputFormat::Json,
            ("name", None) => OutputFormat::Name,
            ("jsonpath", Some(t)) => OutputFormat::JsonPath(JsonPath::parse(t)?),
            ("custom-columns", Some(spec)) => {
                OutputFormat::CustomColumns(columns::CustomColumns::parse(spec)?)
            }
            _ => return Err(PrintError::UnknownFormat(o.to_string())),
        })
    }

    /// True for the formats drawn from the server's tables.
    pub fn is_table(&self) -> bool {
        matches!(self, OutputFormat::Table | OutputFormat::Wide)
    }
}

/// The list kubectl prints when several objects go to one YAML/JSON/JSONPath output.
pub fn as_list(items: Vec<Value>) -> Value {
    json!({
        "apiVersion": "v1",
        "items": items,
        "kind": "List",
        "metadata": {"resourceVersion": ""},
    })
}

/// `kind.group/name` of an object, as `-o name` and the apply/delete messages print it.
pub fn kind_name(kind: &str, group: &str, name: &str) -> String {
    if group.is_empty() {
        format!("{}/{name}", kind.to_lowercase())
    } else {
        format!("{}.{group}/{name}", kind.to_lowercase())
    }
}

/// The group of an object's `apiVersion` (`""` for the core group).
pub fn group_of(api_version: &str) -> &str {
    match api_version.split_once('/') {
        Some((g, _)) => g,
        None => "",
    }
}

/// `kind.group/name` of a JSON object.
pub fn object_kind_name(obj: &Value) -> String {
    kind_name(
        obj["kind"].as_str().unwrap_or_default(),
        group_of(obj["apiVersion"].as_str().unwrap_or_default()),
        obj["metadata"]["name"].as_str().unwrap_or_default(),
    )
}

/// Prints objects in a non-table format (YAML, JSON, name, JSONPath, custom columns): one
/// object as itself, several (or a list request) as a `List`.
pub fn print_objects(format: &OutputFormat, objects: Vec<Value>, single: bool) -> String {
    match format {
        OutputFormat::Name => objects
            .iter()
            .map(|o| format!("{}\n", object_kind_name(o)))
            .collect(),
        OutputFormat::Yaml => yaml::to_string(&one_or_list(objects, single)),
        OutputFormat::Json => json::to_pretty(&one_or_list(objects, single)),
        OutputFormat::JsonPath(t) => t.render(&one_or_list(objects, single)),
        OutputFormat::CustomColumns(c) => c.print(&objects, true),
        OutputFormat::Table | OutputFormat::Wide => String::new(),
    }
}

/// Prints objects rkubectl built itself (generators, client dry runs): as
/// [`print_objects`], except that JSON keeps the Go types' field order as kubectl does.
pub fn print_generated(format: &OutputFormat, objects: Vec<Value>, single: bool) -> String {
    match format {
        OutputFormat::Json => json::to_pretty_struct_order(&one_or_list(objects, single)),
        other => print_objects(other, objects, single),
    }
}

fn one_or_list(mut objects: Vec<Value>, single: bool) -> Value {
    if single && objects.len() == 1 {
        objects.remove(0)
    } else {
        as_list(objects)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse() {
        assert!(matches!(
            OutputFormat::parse(None).unwrap(),
            OutputFormat::Table
        ));
        assert!(matches!(
            OutputFormat::parse(Some("wide")).unwrap(),
            OutputFormat::Wide
        ));
        assert!(matches!(
            OutputFormat::parse(Some("jsonpath={.a}")).unwrap(),
            OutputFormat::JsonPath(_)
        ));
        assert_eq!(
            OutputFormat::parse(Some("xml")).unwrap_err().to_string(),
            "unable to match a printer suitable for the output format \"xml\", allowed formats are: custom-columns,json,jsonpath,name,wide,yaml"
        );
    }

    #[test]
    fn names_carry_kind_and_group() {
        let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}});
        assert_eq!(object_kind_name(&d), "deployment.apps/web");
        let p = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}});
        assert_eq!(
            print_objects(&OutputFormat::Name, vec![p, d], false),
            "pod/p\ndeployment.apps/web\n"
        );
    }

    #[test]
    fn several_objects_print_as_a_list() {
        let p = json!({"kind": "Pod"});
        let out = print_objects(&OutputFormat::Json, vec![p.clone()], false);
        assert!(out.contains("\"kind\": \"List\""), "{out}");
        let out = print_objects(&OutputFormat::Json, vec![p], true);
        assert_eq!(out, "{\n    \"kind\": \"Pod\"\n}\n");
    }
}
