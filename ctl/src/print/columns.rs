//! `-o custom-columns=HEADER:.json.path,…`: one column per JSONPath expression, `<none>` where
//! a path selects nothing, several values joined with commas, aligned like kubectl's tables.

use serde_json::Value;

use super::PrintError;
use super::jsonpath::{JsonPath, value_text};
use super::tabwriter::TabWriter;

/// A parsed custom-columns spec.
#[derive(Debug, Clone)]
pub struct CustomColumns {
    columns: Vec<(String, JsonPath)>,
}

impl CustomColumns {
    /// Parses `NAME:.metadata.name,IMAGE:.spec.containers[*].image`.
    pub fn parse(spec: &str) -> Result<CustomColumns, PrintError> {
        if spec.is_empty() {
            return Err(PrintError::Columns(
                "custom-columns format specified but no custom columns given".into(),
            ));
        }
        let mut columns = Vec::new();
        for part in spec.split(',') {
            let Some((header, path)) = part.split_once(':') else {
                return Err(PrintError::Columns(format!(
                    "unexpected custom-columns spec: {part}, expected <header>:<json-path-expr>"
                )));
            };
            columns.push((header.to_string(), JsonPath::parse_relaxed(path)?));
        }
        Ok(CustomColumns { columns })
    }

    /// The table for the objects (with the header line if `headers`).
    pub fn print(&self, objects: &[Value], headers: bool) -> String {
        let mut w = TabWriter::new();
        if headers {
            let h: Vec<&str> = self.columns.iter().map(|(h, _)| h.as_str()).collect();
            w.write(&h.join("\t"));
            w.write("\n");
        }
        for obj in objects {
            let cells: Vec<String> = self
                .columns
                .iter()
                .map(|(_, p)| {
                    let vals = p.values(obj);
                    if vals.is_empty() {
                        "<none>".to_string()
                    } else {
                        vals.into_iter()
                            .map(value_text)
                            .collect::<Vec<_>>()
                            .join(",")
                    }
                })
                .collect();
            w.write(&cells.join("\t"));
            w.write("\n");
        }
        w.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn prints_columns_like_kubectl() {
        let c = CustomColumns::parse(
            "NAME:.metadata.name,IMAGES:.spec.containers[*].image,NODE:.spec.nodeName",
        )
        .unwrap();
        let objs = vec![
            json!({"metadata": {"name": "web"}, "spec": {"containers": [{"image": "a"}, {"image": "b"}]}}),
            json!({"metadata": {"name": "db-server"}, "spec": {"containers": [], "nodeName": "n1"}}),
        ];
        assert_eq!(
            c.print(&objs, true),
            "NAME        IMAGES   NODE\nweb         a,b      <none>\ndb-server   <none>   n1\n"
        );
    }

    #[test]
    fn malformed_specs_are_rejected() {
        assert!(CustomColumns::parse("NAME").is_err());
        assert!(CustomColumns::parse("").is_err());
    }
}
