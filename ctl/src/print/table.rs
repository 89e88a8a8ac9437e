//! Printing the server's `meta.k8s.io/v1` Tables like kubectl: upper-case headers, priority
//! columns only with `-o wide`, `NAMESPACE` first with `-A`, `kind.group/` name prefixes when
//! several types are listed, `LABELS` with `--show-labels`, `-L` label columns. Pages and watch
//! events of one type share the header and the column widths.

use serde_json::Value;

use super::json::number;
use super::tabwriter::TabWriter;

/// Options of the table printer.
#[derive(Debug, Clone, Default)]
pub struct TableOptions {
    /// Print priority (wide) columns.
    pub wide: bool,
    /// Print the NAMESPACE column (`-A`).
    pub with_namespace: bool,
    /// Print the LABELS column.
    pub show_labels: bool,
    /// `-L` label keys, one column each.
    pub label_columns: Vec<String>,
    /// Omit the header.
    pub no_headers: bool,
}

/// A table printer for one resource type at a time.
#[derive(Debug, Default)]
pub struct TablePrinter {
    opts: TableOptions,
    tw: TabWriter,
    /// The `kind.group` prefix of names (when several types are printed).
    kind_prefix: Option<String>,
    header_done: bool,
    columns: Vec<Value>,
    /// Rows printed since the current type started.
    pub rows_printed: usize,
    /// Tables (types) that printed rows.
    pub tables_printed: usize,
    /// A blank line is due before the next table's first rows.
    separator_pending: bool,
}

impl TablePrinter {
    /// A printer with the given options.
    pub fn new(opts: TableOptions) -> Self {
        TablePrinter {
            opts,
            ..Default::default()
        }
    }

    /// Starts a new resource type: a blank line separates it from the previous table (if that
    /// printed anything), the header is printed again and the widths start afresh.
    pub fn start_type(&mut self, kind_prefix: Option<String>) -> String {
        let out = String::new();
        if self.rows_printed > 0 {
            self.tables_printed += 1;
            self.separator_pending = true;
        }
        self.tw.reset_widths();
        self.kind_prefix = kind_prefix;
        self.header_done = false;
        self.columns.clear();
        self.rows_printed = 0;
        out
    }

    /// Total rows printed so far across types.
    pub fn any_printed(&self) -> bool {
        self.rows_printed > 0 || self.tables_printed > 0
    }

    /// Formats the rows of a Table (the header before the first rows of the type).
    pub fn print(&mut self, table: &Value) -> String {
        if let Some(cols) = table["columnDefinitions"].as_array()
            && !cols.is_empty()
        {
            self.columns = cols.clone();
        }
        let rows = table["rows"].as_array().cloned().unwrap_or_default();
        if rows.is_empty() {
            return String::new();
        }
        self.print_rows(&rows)
    }

    /// Formats rows (`{cells, object}`) with the current columns.
    pub fn print_rows(&mut self, rows: &[Value]) -> String {
        if rows.is_empty() {
            return String::new();
        }
        let visible: Vec<usize> = self
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| self.opts.wide || c["priority"].as_i64().unwrap_or(0) == 0)
            .map(|(i, _)| i)
            .collect();
        let name_col = self
            .columns
            .iter()
            .position(|c| c["format"] == "name")
            .unwrap_or(0);
        let mut prefix = String::new();
        if !self.header_done {
            self.header_done = true;
            if std::mem::take(&mut self.separator_pending) {
                prefix.push('\n');
            }
            if !self.opts.no_headers {
                let mut h: Vec<String> = Vec::new();
                if self.opts.with_namespace {
                    h.push("NAMESPACE".into());
                }
                for &i in &visible {
                    h.push(
                        self.columns[i]["name"]
                            .as_str()
                            .unwrap_or_default()
                            .to_uppercase(),
                    );
                }
                for l in &self.opts.label_columns {
                    h.push(label_header(l));
                }
                if self.opts.show_labels {
                    h.push("LABELS".into());
                }
                self.tw.write(&h.join("\t"));
                self.tw.write("\n");
            }
        }
        for row in rows {
            let cells = row["cells"].as_array().cloned().unwrap_or_default();
            let meta = &row["object"]["metadata"];
            let mut out: Vec<String> = Vec::new();
            if self.opts.with_namespace {
                out.push(meta["namespace"].as_str().unwrap_or_default().to_string());
            }
            for &i in &visible {
                let mut text = cell_text(cells.get(i).unwrap_or(&Value::Null));
                if i == name_col
                    && let Some(prefix) = &self.kind_prefix
                {
                    text = format!("{prefix}/{text}");
                }
                out.push(text);
            }
            for l in &self.opts.label_columns {
                out.push(
                    meta["labels"][l.as_str()]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                );
            }
            if self.opts.show_labels {
                out.push(format_labels(&meta["labels"]));
            }
            self.tw.write(&out.join("\t"));
            self.tw.write("\n");
            self.rows_printed += 1;
        }
        prefix + &self.tw.flush()
    }
}

/// The header of a `-L` column: the key's last path segment, upper-cased.
fn label_header(key: &str) -> String {
    key.rsplit('/').next().unwrap_or(key).to_uppercase()
}

/// A cell as kubectl prints it: strings up to their first line break (`...` if cut),
/// numbers and booleans as text, nothing for null.
pub fn cell_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => match s.find(['\n', '\r', '\x0c']) {
            Some(i) => format!("{}...", &s[..i]),
            None => s.clone(),
        },
        Value::Number(n) => number(n),
        Value::Bool(b) => b.to_string(),
        other => other.to_string(),
    }
}

/// Labels as `k=v,k2=v2` sorted by key, `<none>` without any.
pub fn format_labels(labels: &Value) -> String {
    match labels.as_object() {
        Some(m) if !m.is_empty() => {
            let mut pairs: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect();
            pairs.sort();
            pairs.join(",")
        }
        _ => "<none>".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn table() -> Value {
        json!({
            "kind": "Table",
            "columnDefinitions": [
                {"name": "Name", "type": "string", "format": "name", "priority": 0},
                {"name": "Ready", "type": "string", "format": "", "priority": 0},
                {"name": "IP", "type": "string", "format": "", "priority": 1},
                {"name": "Age", "type": "string", "format": "", "priority": 0}
            ],
            "rows": [
                {"cells": ["web-1", "0/1", "10.0.0.1", "5s"], "object": {"metadata": {"name": "web-1", "namespace": "demo", "labels": {"b": "2", "a": "1"}}}},
                {"cells": ["db", "1/1", null, "10d"], "object": {"metadata": {"name": "db", "namespace": "prod"}}}
            ]
        })
    }

    #[test]
    fn default_hides_priority_columns() {
        let mut p = TablePrinter::new(TableOptions::default());
        assert_eq!(
            p.print(&table()),
            "NAME    READY   AGE\nweb-1   0/1     5s\ndb      1/1     10d\n"
        );
    }

    #[test]
    fn wide_namespace_labels_and_kind() {
        let mut p = TablePrinter::new(TableOptions {
            wide: true,
            with_namespace: true,
            show_labels: true,
            label_columns: vec!["example.com/b".into()],
            no_headers: false,
        });
        assert_eq!(p.start_type(Some("pod".into())), "");
        assert_eq!(
            p.print(&table()),
            "NAMESPACE   NAME        READY   IP         AGE   B     LABELS\n\
             demo        pod/web-1   0/1     10.0.0.1   5s          a=1,b=2\n\
             prod        pod/db      1/1                10d         <none>\n"
        );
        // A second type: blank line, header again; an empty type prints nothing.
        p.start_type(Some("service".into()));
        assert_eq!(p.print(&json!({"rows": []})), "");
        p.start_type(Some("node".into()));
        assert!(p.print(&table()).starts_with("\nNAMESPACE   NAME"));
    }

    #[test]
    fn cells_are_cut_at_line_breaks() {
        assert_eq!(cell_text(&json!("a\nb")), "a...");
        assert_eq!(cell_text(&json!(3)), "3");
        assert_eq!(cell_text(&json!(true)), "true");
    }
}
