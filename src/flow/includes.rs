//! Shared pieces in files of their own: `connection: { use: FILE }` reads the connection from
//! a connection file (`kind: connection`), so many flows share one. Keys written beside `use`
//! win over the file's. A connection file may itself `use` another; a cycle, a missing file or
//! a file of another kind is a diagnostic at the `use` that names it.

use crate::base::diagnostic::{Diagnostic, Origin};
use crate::base::source::{Source, Span};
use crate::base::yaml::{self, Document};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The keys a connection file may hold.
const CONNECTION_FILE_KEYS: &[&str] = &["version", "kind", "description", "anchors", "connection"];

/// How deep connection files may `use` each other: far more than anyone needs, and a bound on
/// what a hostile chain of files can make flowrun read.
const MAX_DEPTH: usize = 16;

/// Whether a loaded document is a connection file (`kind: connection`).
pub fn is_connection_file(doc: &Document) -> bool {
    doc.value.get("kind").and_then(Value::as_str) == Some("connection")
}

/// Problems only a connection file can have: keys a flow has (`steps`, `inputs`, ...).
pub fn connection_file_problems(doc: &Document) -> Vec<Diagnostic> {
    let Some(map) = doc.value.as_object() else {
        return Vec::new();
    };
    map.keys()
        .filter(|k| !CONNECTION_FILE_KEYS.contains(&k.as_str()))
        .map(|k| {
            let span = doc.key_span(&yaml::push_pointer("", k));
            Diagnostic::error(
                "not-in-connection-file",
                span,
                format!("a connection file holds no `{k}`"),
            )
            .with_hint("a connection file has `version`, `kind: connection`, `description`, `anchors` and `connection`; flows that `use` it declare the rest")
        })
        .collect()
}

/// The connection files a flow uses (directly or through each other), as read now: what a
/// change to the flow includes.
pub fn used_files(source: &Source) -> Vec<Arc<Source>> {
    match yaml::load(&source.text).0 {
        Some(mut doc) => {
            expand(&source.path, &mut doc);
            doc.files
        }
        None => Vec::new(),
    }
}

/// Mounts the connection file `doc`'s `connection.use` names (and the ones it uses in turn),
/// read relative to `path`. Problems inside an included file carry that file as their origin.
pub fn expand(path: &Path, doc: &mut Document) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let mut chain = vec![Link {
        path: canonical(path),
        shown: path.display().to_string(),
        at: None,
    }];
    expand_into(path, doc, &mut chain, &mut out);
    out
}

/// One file of the chain of `use`s being followed.
struct Link {
    path: PathBuf,
    shown: String,
    /// Where the file before it names it: `file:line:col`.
    at: Option<String>,
}

fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

fn expand_into(path: &Path, doc: &mut Document, chain: &mut Vec<Link>, out: &mut Vec<Diagnostic>) {
    let Some(used) = doc.value.pointer("/connection/use").and_then(Value::as_str) else {
        return;
    };
    let used = used.to_string();
    let at = doc.value_span("/connection/use");
    let target = path.parent().unwrap_or(Path::new("")).join(&used);
    let shown = target.display().to_string();
    if chain.len() > MAX_DEPTH {
        out.push(Diagnostic::error(
            "include-depth",
            at,
            format!("connection files `use` each other more than {MAX_DEPTH} deep"),
        ));
        return;
    }
    let source = match Source::read(&target) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            let why = match e.kind() {
                std::io::ErrorKind::NotFound => "no such file".to_string(),
                _ => e.to_string(),
            };
            out.push(
                Diagnostic::error(
                    "include-missing",
                    at,
                    format!("cannot read the connection file {shown}: {why}"),
                )
                .with_hint(format!("`use` is a path relative to {}", path.display())),
            );
            return;
        }
    };
    let place = |pos: Span| format!("{}:{}:{}", path.display(), pos.start.line, pos.start.col);
    let real = canonical(&target);
    if let Some(first) = chain.iter().position(|l| l.path == real) {
        let mut steps: Vec<String> = chain[first..]
            .iter()
            .map(|l| match &l.at {
                Some(at) => format!("{} (used at {at})", l.shown),
                None => l.shown.clone(),
            })
            .collect();
        steps.push(format!("{shown} (used at {})", place(at)));
        out.push(
            Diagnostic::error(
                "include-cycle",
                at,
                format!("the connection file {shown} uses itself"),
            )
            .with_hint(format!("the chain: {}", steps.join(" → "))),
        );
        return;
    }
    let (loaded, problems) = yaml::load(&source.text);
    let origin = |d: Diagnostic| Diagnostic {
        origin: Some(Origin(source.clone())),
        ..d
    };
    let had_problems = !problems.is_empty();
    out.extend(problems.into_iter().map(origin));
    let Some(mut included) = loaded else { return };
    if had_problems {
        return;
    }
    if !is_connection_file(&included) || included.value.get("connection").is_none_or(|c| !c.is_object()) {
        out.push(
            Diagnostic::error("include-kind", at, format!("{shown} is not a connection file"))
                .with_hint("a connection file has `kind: connection` and a `connection:` mapping"),
        );
        return;
    }
    out.extend(connection_file_problems(&included).into_iter().map(origin));
    chain.push(Link {
        path: real,
        shown: shown.clone(),
        at: Some(place(at)),
    });
    let before = out.len();
    expand_into(&target, &mut included, chain, out);
    chain.pop();
    // What the included file's own includes reported is placed in their files already; what
    // it reported at its own `use` lines is in the included file.
    for d in &mut out[before..] {
        if d.origin.is_none() {
            d.origin = match included.file_of(d.span) {
                Some(f) => Some(Origin(f.clone())),
                None => Some(Origin(source.clone())),
            };
        }
    }
    let connection = included.sub("/connection");
    doc.mount("/connection", connection, source);
}
