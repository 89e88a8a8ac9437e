//! Reading `-f FILE|DIR|-` (`-R` for subdirectories): multi-document YAML and JSON, `List`
//! kinds expanded into their items. Errors name the file, the document number and the line.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// Why manifests could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The path does not exist.
    #[error("the path \"{0}\" does not exist")]
    Missing(String),
    /// A file could not be read.
    #[error("error reading {path}: {message}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// A document is not valid YAML or JSON.
    #[error("error parsing {path}: document {document}, line {line}: {message}")]
    Parse {
        /// The file (`STDIN` for `-`).
        path: String,
        /// Document number, from 1.
        document: usize,
        /// Line in the file, from 1.
        line: usize,
        /// The parser's message.
        message: String,
    },
    /// A document is not an object with `apiVersion` and `kind`.
    #[error("error validating {path}: document {document}: {message}")]
    Shape {
        /// The file.
        path: String,
        /// Document number, from 1.
        document: usize,
        /// What is missing.
        message: String,
    },
    /// `-f` was not given.
    #[error("must specify one of -f and -k")]
    NoFiles,
}

/// One object read from a manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The file it came from (`STDIN` for `-`).
    pub source: String,
    /// Its document number in the file, from 1.
    pub document: usize,
    /// The object.
    pub object: Value,
}

/// Reads every object of the `-f` arguments, in order.
pub fn read(files: &[String], recursive: bool) -> Result<Vec<Manifest>, ManifestError> {
    if files.is_empty() {
        return Err(ManifestError::NoFiles);
    }
    let mut out = Vec::new();
    for f in files {
        if f == "-" {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).map_err(|e| {
                ManifestError::Read {
                    path: "STDIN".into(),
                    message: e.to_string(),
                }
            })?;
            out.extend(parse("STDIN", &text)?);
            continue;
        }
        let path = Path::new(f);
        if !path.exists() {
            return Err(ManifestError::Missing(f.clone()));
        }
        for file in expand(path, recursive, true)? {
            let text = std::fs::read_to_string(&file).map_err(|e| ManifestError::Read {
                path: file.display().to_string(),
                message: e.to_string(),
            })?;
            out.extend(parse(&file.display().to_string(), &text)?);
        }
    }
    Ok(out)
}

/// The files of a path: itself, or the `.yaml`/`.yml`/`.json` files of a directory sorted by
/// name (and of its subdirectories with `recursive`).
fn expand(path: &Path, recursive: bool, top: bool) -> Result<Vec<PathBuf>, ManifestError> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| ManifestError::Read {
            path: path.display().to_string(),
            message: e.to_string(),
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    let mut out = Vec::new();
    for e in entries {
        if e.is_dir() {
            if recursive {
                out.extend(expand(&e, recursive, false)?);
            }
        } else if matches!(
            e.extension().and_then(|x| x.to_str()),
            Some("yaml" | "yml" | "json")
        ) {
            out.push(e);
        }
    }
    let _ = top;
    Ok(out)
}

/// Parses the objects of a file's text (YAML documents or JSON values), expanding `List`s.
pub fn parse(source: &str, text: &str) -> Result<Vec<Manifest>, ManifestError> {
    let mut out = Vec::new();
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        let stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
        for (i, v) in stream.enumerate() {
            let v = v.map_err(|e| ManifestError::Parse {
                path: source.into(),
                document: i + 1,
                line: e.line(),
                message: e
                    .to_string()
                    .split(" at line ")
                    .next()
                    .unwrap_or("")
                    .to_string(),
            })?;
            push_object(&mut out, source, i + 1, v)?;
        }
        return Ok(out);
    }
    for (i, (start_line, doc)) in split_documents(text).into_iter().enumerate() {
        let document = i + 1;
        if doc.lines().all(|l| {
            let t = l.trim();
            t.is_empty() || t.starts_with('#')
        }) {
            continue;
        }
        let v: Value = serde_saphyr::from_str(&doc).map_err(|e| {
            let line = e
                .location()
                .map(|l| l.line() as usize)
                .filter(|l| *l > 0)
                .unwrap_or(1);
            ManifestError::Parse {
                path: source.into(),
                document,
                line: start_line + line - 1,
                message: first_line(&e.to_string()),
            }
        })?;
        if v.is_null() {
            continue;
        }
        push_object(&mut out, source, document, v)?;
    }
    Ok(out)
}

/// The message of a parser error without its location and source excerpt.
fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or_default();
    let line = line.strip_prefix("error: ").unwrap_or(line);
    match line.find(" at line ") {
        Some(i) => line[..i].to_string(),
        None => line.to_string(),
    }
}

/// Splits YAML text at `---` lines: (first line number of the document, its text).
fn split_documents(text: &str) -> Vec<(usize, String)> {
    let mut docs = Vec::new();
    let mut cur = String::new();
    let mut start = 1;
    for (i, line) in text.lines().enumerate() {
        let is_sep = line == "---" || line.starts_with("--- ") || line.starts_with("---\t");
        if is_sep {
            if !cur.is_empty() || i > 0 {
                docs.push((start, std::mem::take(&mut cur)));
            }
            start = i + 2;
            let rest = line[3..].trim();
            if !rest.is_empty() && !rest.starts_with('#') {
                cur.push_str(rest);
                cur.push('\n');
                start = i + 1;
            }
            continue;
        }
        if line == "..." {
            continue;
        }
        cur.push_str(line);
        cur.push('\n');
    }
    docs.push((start, cur));
    docs
}

fn push_object(
    out: &mut Vec<Manifest>,
    source: &str,
    document: usize,
    v: Value,
) -> Result<(), ManifestError> {
    let shape = |message: &str| ManifestError::Shape {
        path: source.into(),
        document,
        message: message.into(),
    };
    if let Value::Array(items) = v {
        for item in items {
            push_object(out, source, document, item)?;
        }
        return Ok(());
    }
    if !v.is_object() {
        return Err(shape("the document is not an object"));
    }
    let kind = v["kind"].as_str().unwrap_or_default();
    if v["apiVersion"].as_str().unwrap_or_default().is_empty() {
        return Err(shape("apiVersion not set"));
    }
    if kind.is_empty() {
        return Err(shape("kind not set"));
    }
    if kind == "List" || (kind.ends_with("List") && v["items"].is_array()) {
        for item in v["items"].as_array().cloned().unwrap_or_default() {
            push_object(out, source, document, item)?;
        }
        return Ok(());
    }
    out.push(Manifest {
        source: source.into(),
        document,
        object: v,
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_document_yaml_and_lists() {
        let text = "# leading comment\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\n---\napiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Secret\n  metadata:\n    name: b\n- apiVersion: v1\n  kind: Service\n  metadata:\n    name: c\n";
        let m = parse("f.yaml", text).unwrap();
        let names: Vec<&str> = m
            .iter()
            .map(|x| x.object["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(m[0].document, 1);
        assert_eq!(m[1].document, 3);
    }

    #[test]
    fn json_streams() {
        let text = "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"p\"}}\n{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"q\"}}";
        assert_eq!(parse("x.json", text).unwrap().len(), 2);
        let err = parse("x.json", "{\"a\":\n  }").unwrap_err();
        assert!(matches!(err, ManifestError::Parse { line: 2, .. }), "{err}");
    }

    #[test]
    fn yaml_errors_name_file_document_and_line() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [b\n";
        let err = parse("bad.yaml", text).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("error parsing bad.yaml: document 2, line "),
            "{msg}"
        );
        let ManifestError::Parse { line, document, .. } = err else {
            panic!("{msg}")
        };
        assert_eq!(document, 2);
        assert!((9..=10).contains(&line), "{msg}");
    }

    #[test]
    fn objects_need_kind_and_api_version() {
        let err = parse("k.yaml", "apiVersion: v1\nmetadata:\n  name: x\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "error validating k.yaml: document 1: kind not set"
        );
        let err = parse("k.yaml", "- a\n").unwrap_err();
        assert!(err.to_string().contains("not an object"), "{err}");
    }

    #[test]
    fn directories_and_missing_paths() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("b.yaml"),
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: b\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("a.json"),
            "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"a\"}}",
        )
        .unwrap();
        std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(
            dir.path().join("sub/c.yml"),
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: c\n",
        )
        .unwrap();
        let d = dir.path().display().to_string();
        let flat = read(std::slice::from_ref(&d), false).unwrap();
        assert_eq!(flat.len(), 2);
        assert_eq!(flat[0].object["metadata"]["name"], "a");
        assert_eq!(read(std::slice::from_ref(&d), true).unwrap().len(), 3);
        let err = read(&["/no/such/file.yaml".to_string()], false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the path \"/no/such/file.yaml\" does not exist"
        );
    }
}
