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

/// The connection files and steps files a flow uses (directly or through each other), as read
/// now: what a change to the flow includes.
pub fn used_files(source: &Source) -> Vec<Arc<Source>> {
    match yaml::load(&source.text).0 {
        Some(mut doc) => {
            expand(&source.path, &mut doc);
            super::calls::expand(&source.path, &mut doc);
            doc.files
        }
        None => Vec::new(),
    }
}

/// Mounts the connection file `doc`'s `connection.use` names (and the ones it uses in turn),
/// read relative to `path`. Problems inside an included file carry that file as their origin.
pub fn expand(path: &Path, doc: &mut Document) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let mut chain = vec![Link::start(path)];
    expand_into(path, doc, &mut chain, &mut out);
    out
}

/// What kind of shared file a chain of includes follows, for its messages.
pub(super) struct Kind {
    /// `connection file`, `steps file`.
    pub noun: &'static str,
    /// The key that names the next file: `use`, `call`.
    pub key: &'static str,
    /// `uses`, `calls`.
    pub verb: &'static str,
    /// `use each other`, `call each other`.
    pub each_other: &'static str,
}

const CONNECTION: Kind = Kind {
    noun: "connection file",
    key: "use",
    verb: "uses",
    each_other: "`use` each other",
};

/// One file of the chain of includes being followed.
pub(super) struct Link {
    pub path: PathBuf,
    pub shown: String,
    /// Where the file before it names it: `file:line:col`.
    pub at: Option<String>,
}

impl Link {
    /// The first link: the file being checked.
    pub fn start(path: &Path) -> Self {
        Link {
            path: canonical(path),
            shown: path.display().to_string(),
            at: None,
        }
    }
}

fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// A shared file read and loaded, ready to check and mount.
pub(super) struct Opened {
    /// The file's path, as named (relative to the including file's folder).
    pub path: PathBuf,
    pub source: Arc<Source>,
    pub doc: Document,
    /// The file as shown in messages.
    pub shown: String,
    /// The link to push on the chain while the file's own includes are followed.
    pub link: Link,
}

/// Reads and loads the file `used` names, relative to `path`, from the key at `at`. A missing
/// file, a cycle back into `chain`, a chain too deep, or YAML problems in the file are
/// diagnostics (the file's own carry it as their origin); then there is nothing to mount.
pub(super) fn open(
    path: &Path,
    used: &str,
    at: Span,
    chain: &[Link],
    kind: &Kind,
    out: &mut Vec<Diagnostic>,
) -> Option<Opened> {
    let target = path.parent().unwrap_or(Path::new("")).join(used);
    let shown = target.display().to_string();
    if chain.len() > MAX_DEPTH {
        out.push(Diagnostic::error(
            "include-depth",
            at,
            format!("{}s {} more than {MAX_DEPTH} deep", kind.noun, kind.each_other),
        ));
        return None;
    }
    let source = match Source::read(&target) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            let why = crate::base::source::read_error(&e);
            out.push(
                Diagnostic::error(
                    "include-missing",
                    at,
                    format!("cannot read the {} {shown}: {why}", kind.noun),
                )
                .with_hint(format!(
                    "`{}` is a path relative to {}",
                    kind.key,
                    path.display()
                )),
            );
            return None;
        }
    };
    let place = format!("{}:{}:{}", path.display(), at.start.line, at.start.col);
    let real = canonical(&target);
    if let Some(first) = chain.iter().position(|l| l.path == real) {
        let mut steps: Vec<String> = chain[first..]
            .iter()
            .map(|l| match &l.at {
                Some(at) => format!("{} ({} at {at})", l.shown, past(kind.key)),
                None => l.shown.clone(),
            })
            .collect();
        steps.push(format!("{shown} ({} at {place})", past(kind.key)));
        out.push(
            Diagnostic::error(
                "include-cycle",
                at,
                format!("the {} {shown} {} itself", kind.noun, kind.verb),
            )
            .with_hint(format!("the chain: {}", steps.join(" → "))),
        );
        return None;
    }
    let (loaded, problems) = yaml::load(&source.text);
    let had_problems = !problems.is_empty();
    out.extend(problems.into_iter().map(|d| in_file(d, &source)));
    let doc = loaded.filter(|_| !had_problems)?;
    Some(Opened {
        path: target,
        source,
        doc,
        link: Link {
            path: real,
            shown: shown.clone(),
            at: Some(place),
        },
        shown,
    })
}

fn past(key: &str) -> &'static str {
    if key == "use" { "used" } else { "called" }
}

/// `d`, placed in `source` unless it already has a file.
pub(super) fn in_file(d: Diagnostic, source: &Arc<Source>) -> Diagnostic {
    Diagnostic {
        origin: d.origin.or_else(|| Some(Origin(source.clone()))),
        ..d
    }
}

/// Places the problems from `before` on, found while following `included`'s own includes: what
/// was found at its own keys is in its file (or in a file mounted into it).
pub(super) fn place(out: &mut [Diagnostic], included: &Document, source: &Arc<Source>) {
    for d in out {
        if d.origin.is_none() {
            d.origin = Some(Origin(included.file_of(d.span).unwrap_or(source).clone()));
        }
    }
}

fn expand_into(path: &Path, doc: &mut Document, chain: &mut Vec<Link>, out: &mut Vec<Diagnostic>) {
    let Some(used) = doc.value.pointer("/connection/use").and_then(Value::as_str) else {
        return;
    };
    let used = used.to_string();
    let at = doc.value_span("/connection/use");
    let Some(Opened {
        path: target,
        source,
        doc: mut included,
        shown,
        link,
    }) = open(path, &used, at, chain, &CONNECTION, out)
    else {
        return;
    };
    if !is_connection_file(&included) || included.value.get("connection").is_none_or(|c| !c.is_object()) {
        out.push(
            Diagnostic::error("include-kind", at, format!("{shown} is not a connection file"))
                .with_hint("a connection file has `kind: connection` and a `connection:` mapping"),
        );
        return;
    }
    out.extend(
        connection_file_problems(&included)
            .into_iter()
            .map(|d| in_file(d, &source)),
    );
    chain.push(link);
    let before = out.len();
    expand_into(&target, &mut included, chain, out);
    chain.pop();
    place(&mut out[before..], &included, &source);
    let connection = included.sub("/connection");
    doc.mount("/connection", connection, source);
}
