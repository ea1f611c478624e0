//! Loading a flow file: YAML text → JSON value plus a JSON-pointer → source-span index.
//!
//! The YAML is read with saphyr's event parser, so every node keeps its position. Duplicate
//! keys are errors (most YAML libraries silently keep the last one, which hides mistakes),
//! aliases are expanded, and merge keys (`<<`) are expanded with YAML 1.1 semantics: keys
//! written in the mapping itself win over merged ones.

use super::diagnostic::Diagnostic;
use super::source::{Pos, Span};
use saphyr_parser::{Event, Marker, Parser, ScalarStyle, Tag};
use serde_json::{Map, Number, Value};
use std::collections::HashMap;

/// Where one node of the document stands in the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeSpan {
    /// The node's value.
    pub value: Span,
    /// The key naming it, when the node is a mapping value.
    pub key: Option<Span>,
}

/// A loaded document: its JSON value and where each node came from.
#[derive(Debug, Clone, Default)]
pub struct Document {
    /// The document as JSON: aliases and merge keys expanded, scalars resolved (YAML 1.2 core).
    pub value: Value,
    spans: HashMap<String, NodeSpan>,
    /// The files whose nodes were mounted into this one ([`Document::mount`]): a span with
    /// `file: n` is in `files[n - 1]`.
    pub files: Vec<std::sync::Arc<super::source::Source>>,
}

impl Document {
    /// Places `other`, read from `source`, at `at` (a mapping): its keys are added to the node
    /// there, except those the node already has (written beside the include, they win), and
    /// the added nodes keep their spans in `source`. Returns the file number `source` got.
    pub fn mount(&mut self, at: &str, other: Document, source: std::sync::Arc<super::source::Source>) -> u32 {
        self.files.push(source);
        let own = self.files.len() as u32;
        // The other document's own includes come along, numbered after this one's.
        let base = own;
        self.files.extend(other.files.iter().cloned());
        let renumber = |s: Span| match s.file {
            0 => s.in_file(own),
            n => s.in_file(base + n),
        };
        let Some(Value::Object(here)) = self.value.pointer_mut(at) else {
            return own;
        };
        let Value::Object(theirs) = other.value else {
            return own;
        };
        let kept: Vec<String> = theirs
            .keys()
            .filter(|k| !here.contains_key(*k))
            .cloned()
            .collect();
        for (k, v) in theirs {
            if !here.contains_key(&k) {
                here.insert(k, v);
            }
        }
        for (pointer, span) in other.spans {
            let first = pointer
                .trim_start_matches('/')
                .split('/')
                .next()
                .unwrap_or_default();
            let first = first.replace("~1", "/").replace("~0", "~");
            if pointer.is_empty() || !kept.contains(&first) {
                continue;
            }
            let node = NodeSpan {
                value: renumber(span.value),
                key: span.key.map(renumber),
            };
            self.spans.insert(format!("{at}{pointer}"), node);
        }
        own
    }

    /// The node at `at` as a document of its own: its value, and the spans under it with
    /// pointers made relative to it.
    pub fn sub(&self, at: &str) -> Document {
        let spans = self
            .spans
            .iter()
            .filter_map(|(p, s)| {
                let rest = p.strip_prefix(at)?;
                (rest.is_empty() || rest.starts_with('/')).then(|| (rest.to_string(), *s))
            })
            .collect();
        Document {
            value: self.value.pointer(at).cloned().unwrap_or(Value::Null),
            spans,
            files: self.files.clone(),
        }
    }

    /// The file a span of this document is in, when it is not the document's own.
    pub fn file_of(&self, span: Span) -> Option<&std::sync::Arc<super::source::Source>> {
        (span.file as usize)
            .checked_sub(1)
            .and_then(|i| self.files.get(i))
    }

    /// The span of the node at JSON pointer `pointer` (`""` is the root).
    pub fn span(&self, pointer: &str) -> Option<NodeSpan> {
        self.spans.get(pointer).copied()
    }

    /// The span of the node at `pointer`, or of its nearest ancestor that has one.
    pub fn value_span(&self, pointer: &str) -> Span {
        let mut p = pointer;
        loop {
            if let Some(s) = self.spans.get(p) {
                return s.value;
            }
            match p.rfind('/') {
                Some(i) => p = &p[..i],
                None => return Span::default(),
            }
        }
    }

    /// The span of the key naming the node at `pointer`, falling back to its value.
    pub fn key_span(&self, pointer: &str) -> Span {
        match self.spans.get(pointer) {
            Some(NodeSpan { key: Some(k), .. }) => *k,
            _ => self.value_span(pointer),
        }
    }
}

/// Appends one reference token to a JSON pointer, escaping `~` and `/`.
pub fn push_pointer(base: &str, token: &str) -> String {
    let mut p = String::with_capacity(base.len() + token.len() + 1);
    p.push_str(base);
    p.push('/');
    for c in token.chars() {
        match c {
            '~' => p.push_str("~0"),
            '/' => p.push_str("~1"),
            c => p.push(c),
        }
    }
    p
}

/// The kinds of problem the loader reports.
#[derive(Debug, Clone, PartialEq)]
pub enum LoadError {
    /// The text is not valid YAML (the parser's message); loading stops here.
    Syntax(String),
    /// The file holds no document at all (empty, or only comments).
    Empty,
    /// The top-level value is a list or a scalar, not a mapping of keys.
    NotAMapping,
    /// A second YAML document (`---`) follows the first.
    MultipleDocuments,
    /// A key appears twice in one mapping.
    DuplicateKey {
        /// The repeated key.
        key: String,
        /// The line where the key was first set.
        first_line: usize,
    },
    /// A mapping key is a list or a mapping instead of a scalar.
    ComplexKey,
    /// A YAML tag other than a core one that fits the node (`!!str`, `!!int`, ...); the tag as written.
    UnsupportedTag(String),
    /// A core tag on a value it does not fit (`!!int abc`).
    BadTaggedValue {
        /// The tag as written.
        tag: String,
        /// The scalar text it was put on.
        value: String,
    },
    /// A merge key `<<` given something other than a mapping or a list of mappings.
    BadMerge,
    /// An infinite or NaN number (`.inf`, `.nan`), which JSON cannot hold; the text as written.
    NotFinite(String),
    /// Aliases would expand the document past [`MAX_NODES`] nodes (a "billion laughs").
    TooLarge,
    /// The document itself holds more than [`MAX_NODES`] values.
    TooManyValues,
    /// Nesting deeper than [`MAX_DEPTH`] levels.
    TooDeep,
}

/// The most nodes a document may expand to, aliases included. A flow has hundreds; the limit
/// stops an alias bomb (a few hundred bytes that expand to gigabytes) early.
pub const MAX_NODES: usize = 200_000;

/// The deepest nesting of lists and mappings a document may have. A flow nests a dozen levels;
/// the limit keeps every stage's recursion far from the end of a 2 MiB thread stack, even
/// in a debug build.
pub const MAX_DEPTH: usize = 64;

impl LoadError {
    fn at(self, span: Span) -> Diagnostic {
        match self {
            LoadError::Syntax(msg) => {
                let hint = if mentions_tab(&msg) {
                    Some("indent with spaces: YAML does not allow tabs for indentation")
                } else if msg.contains("unprintable") {
                    Some(
                        "the file holds a control character here (a NUL byte, for one): YAML text cannot; remove it",
                    )
                } else if msg.contains("did not find expected key") || msg.contains("mapping values") {
                    Some("check the indentation and that each `key: value` has a space after the colon")
                } else {
                    None
                };
                Diagnostic::error("yaml-syntax", span, format!("invalid YAML: {msg}"))
                    .with_hint_opt(hint.map(str::to_string))
            }
            LoadError::Empty => Diagnostic::error("empty-file", span, "the file holds no flow")
                .with_hint("a flow starts with `version: 1`, a `name` and a list of `steps`"),
            LoadError::NotAMapping => Diagnostic::error(
                "not-a-mapping",
                span,
                "a flow file must be a mapping of keys (version, name, steps, ...)",
            ),
            LoadError::MultipleDocuments => Diagnostic::error(
                "multiple-documents",
                span,
                "a flow file holds one YAML document, but a second one starts here",
            )
            .with_hint("put each flow in its own file, or remove the `---` line"),
            LoadError::DuplicateKey { key, first_line } => {
                Diagnostic::error("duplicate-key", span, format!("duplicate key `{key}`")).with_hint(format!(
                    "`{key}` is already set on line {first_line}; remove one of them"
                ))
            }
            LoadError::ComplexKey => Diagnostic::error(
                "complex-key",
                span,
                "a mapping key must be a plain value, not a list or a mapping",
            ),
            LoadError::UnsupportedTag(tag) => {
                Diagnostic::error("unsupported-tag", span, format!("unsupported YAML tag `{tag}`"))
                    .with_hint("only the core tags !!str, !!int, !!float, !!bool and !!null are understood")
            }
            LoadError::BadTaggedValue { tag, value } => Diagnostic::error(
                "bad-tagged-value",
                span,
                format!("`{value}` is not a valid {tag} value"),
            ),
            LoadError::BadMerge => Diagnostic::error(
                "bad-merge",
                span,
                "a merge key `<<` takes a mapping or a list of mappings",
            )
            .with_hint("write `<<: *anchor` where the anchor names a mapping"),
            LoadError::NotFinite(v) => {
                Diagnostic::error("not-finite", span, format!("`{v}` cannot be represented in JSON"))
                    .with_hint("quote it to send it as a string")
            }
            LoadError::TooLarge => Diagnostic::error(
                "too-large",
                span,
                format!("this alias expands the document past {MAX_NODES} values"),
            )
            .with_hint(
                "aliases that repeat aliases grow exponentially; write the values out, or anchor less",
            ),
            LoadError::TooManyValues => Diagnostic::error(
                "too-large",
                span,
                format!("the document holds more than {MAX_NODES} values"),
            )
            .with_hint("a flowrun file holds hundreds; split the data (a batch reads JSON lines)"),
            LoadError::TooDeep => Diagnostic::error(
                "too-deep",
                span,
                format!("lists and mappings nest deeper than {MAX_DEPTH} levels here"),
            )
            .with_hint("a flow needs a dozen levels at most; flatten the structure"),
        }
    }
}

/// Whether a parser message is about a tab (the word, not `unprintable`).
fn mentions_tab(message: &str) -> bool {
    message
        .split(|c: char| !c.is_ascii_alphabetic())
        .any(|w| w.eq_ignore_ascii_case("tab") || w.eq_ignore_ascii_case("tabs"))
}

#[derive(Debug, Clone)]
enum Kind {
    Scalar(Value),
    Seq(Vec<Node>),
    Map(Vec<(String, Span, Node)>),
}

#[derive(Debug, Clone)]
struct Node {
    span: Span,
    kind: Kind,
    /// How many nodes this one holds, itself included: what an alias of it costs.
    size: usize,
}

impl Node {
    fn new(span: Span, kind: Kind) -> Self {
        let size = 1 + match &kind {
            Kind::Scalar(_) => 0,
            Kind::Seq(items) => items.iter().map(|n| n.size).sum(),
            Kind::Map(entries) => entries.iter().map(|(_, _, n)| n.size).sum(),
        };
        Node { span, kind, size }
    }
}

fn pos(m: &Marker) -> Pos {
    Pos {
        line: m.line(),
        col: m.col() + 1,
    }
}

fn span_of(s: &saphyr_parser::Span) -> Span {
    Span::new(pos(&s.start), pos(&s.end))
}

/// Loads YAML text into a [`Document`]. A syntax error stops loading, since nothing after it
/// can be trusted (no document is returned); other problems (duplicate keys, tags, merges) are
/// all reported beside the document, so later stages still check the rest of the file.
pub fn load(text: &str) -> (Option<Document>, Vec<Diagnostic>) {
    let mut loader = Loader {
        text,
        parser: Parser::new_from_str(text),
        anchors: HashMap::new(),
        errors: Vec::new(),
        last: Span::default(),
        nodes: 0,
        depth: 0,
    };
    let root = match loader.document() {
        Ok(Some(root)) => root,
        Ok(None) => {
            loader
                .errors
                .push(LoadError::Empty.at(Span::on_line(Pos { line: 1, col: 1 }, 1)));
            return (None, loader.errors);
        }
        Err(d) => {
            loader.errors.push(d);
            return (None, loader.errors);
        }
    };
    if !matches!(root.kind, Kind::Map(_)) {
        loader.errors.push(LoadError::NotAMapping.at(root.span));
        return (None, loader.errors);
    }
    let mut doc = Document::default();
    doc.value = flatten(root, String::new(), None, &mut doc.spans);
    (Some(doc), loader.errors)
}

fn flatten(node: Node, pointer: String, key: Option<Span>, spans: &mut HashMap<String, NodeSpan>) -> Value {
    let value = match node.kind {
        Kind::Scalar(v) => v,
        Kind::Seq(items) => Value::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(i, n)| flatten(n, push_pointer(&pointer, &i.to_string()), None, spans))
                .collect(),
        ),
        Kind::Map(entries) => {
            let mut map = Map::with_capacity(entries.len());
            for (k, kspan, n) in entries {
                let v = flatten(n, push_pointer(&pointer, &k), Some(kspan), spans);
                map.insert(k, v);
            }
            Value::Object(map)
        }
    };
    spans.insert(
        pointer,
        NodeSpan {
            value: node.span,
            key,
        },
    );
    value
}

struct Loader<'a> {
    text: &'a str,
    parser: Parser<'a, saphyr_parser::StrInput<'a>>,
    anchors: HashMap<usize, Node>,
    errors: Vec<Diagnostic>,
    last: Span,
    /// Nodes built so far, aliases counted at their expanded size.
    nodes: usize,
    /// Lists and mappings open around the node being read.
    depth: usize,
}

impl<'a> Loader<'a> {
    fn next(&mut self) -> Result<Event<'a>, Diagnostic> {
        match self.parser.next_event() {
            Some(Ok((ev, span))) => {
                self.last = span_of(&span);
                Ok(ev)
            }
            Some(Err(e)) => {
                let mut p = pos(e.marker());
                // The scanner reports a tab after it has passed it; point at the tab itself.
                if mentions_tab(e.info())
                    && let Some(line) = self.text.lines().nth(p.line.saturating_sub(1))
                    && let Some(i) = line.chars().position(|c| c == '\t')
                {
                    p.col = i + 1;
                }
                Err(LoadError::Syntax(e.info().to_string()).at(Span::on_line(p, 1)))
            }
            None => Err(LoadError::Syntax("unexpected end of input".into()).at(self.last)),
        }
    }

    fn document(&mut self) -> Result<Option<Node>, Diagnostic> {
        let mut root = None;
        loop {
            match self.next()? {
                Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
                Event::StreamEnd => return Ok(root),
                Event::DocumentStart(_) => {
                    let ev = self.next()?;
                    if let Event::DocumentEnd = ev {
                        continue;
                    }
                    if root.is_some() {
                        return Err(LoadError::MultipleDocuments.at(self.last));
                    }
                    let start = self.last;
                    root = Some(self.node(ev, start)?);
                }
                _ => {
                    let ev_span = self.last;
                    return Err(LoadError::Syntax("unexpected content".into()).at(ev_span));
                }
            }
        }
    }

    /// Counts `n` more nodes against [`MAX_NODES`].
    fn count(&mut self, n: usize, at: Span) -> Result<(), Diagnostic> {
        self.nodes = self.nodes.saturating_add(n);
        if self.nodes > MAX_NODES {
            return Err(LoadError::TooManyValues.at(at));
        }
        Ok(())
    }

    fn node(&mut self, ev: Event<'a>, start: Span) -> Result<Node, Diagnostic> {
        match ev {
            Event::Scalar(text, style, anchor, tag) => {
                self.count(1, start)?;
                let value = self.scalar(&text, style, tag.as_deref(), start);
                let node = Node::new(start, Kind::Scalar(value));
                self.remember(anchor, &node);
                Ok(node)
            }
            Event::Alias(id) => {
                let size = match self.anchors.get(&id) {
                    Some(n) => n.size,
                    None => return Err(LoadError::Syntax("unknown alias".into()).at(start)),
                };
                // Checked before the copy is made: the budget bounds memory, not only time.
                if self.count(size, start).is_err() {
                    return Err(LoadError::TooLarge.at(start));
                }
                Ok(self.anchors[&id].clone())
            }
            Event::SequenceStart(anchor, tag) => {
                self.count(1, start)?;
                self.check_tag(tag.as_deref(), "seq", start);
                self.enter(start)?;
                let mut items = Vec::new();
                loop {
                    let ev = self.next()?;
                    if let Event::SequenceEnd = ev {
                        break;
                    }
                    let s = self.last;
                    items.push(self.node(ev, s)?);
                }
                self.depth -= 1;
                let node = Node::new(Span::new(start.start, self.last.end), Kind::Seq(items));
                self.remember(anchor, &node);
                Ok(node)
            }
            Event::MappingStart(anchor, tag) => {
                self.count(1, start)?;
                self.check_tag(tag.as_deref(), "map", start);
                self.enter(start)?;
                let node = self.mapping(start)?;
                self.depth -= 1;
                self.remember(anchor, &node);
                Ok(node)
            }
            _ => Err(LoadError::Syntax("unexpected event".into()).at(start)),
        }
    }

    /// One level deeper, within [`MAX_DEPTH`].
    fn enter(&mut self, at: Span) -> Result<(), Diagnostic> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(LoadError::TooDeep.at(at));
        }
        Ok(())
    }

    fn mapping(&mut self, start: Span) -> Result<Node, Diagnostic> {
        let mut entries: Vec<(String, Span, Node)> = Vec::new();
        let mut merged: Vec<(String, Span, Node)> = Vec::new();
        loop {
            let ev = self.next()?;
            let key_span = self.last;
            let key = match ev {
                Event::MappingEnd => break,
                Event::Scalar(text, style, _, _) => {
                    if style == ScalarStyle::Plain && text == "<<" {
                        let ev = self.next()?;
                        let s = self.last;
                        let value = self.node(ev, s)?;
                        self.merge(value, &mut merged);
                        continue;
                    }
                    text.into_owned()
                }
                other => {
                    // Skip the complex key and its value so the rest of the file is still read.
                    let _ = self.node(other, key_span)?;
                    self.errors.push(LoadError::ComplexKey.at(key_span));
                    let ev = self.next()?;
                    let s = self.last;
                    let _ = self.node(ev, s)?;
                    continue;
                }
            };
            let ev = self.next()?;
            let vs = self.last;
            let value = self.node(ev, vs)?;
            if let Some((_, first, _)) = entries.iter().find(|(k, _, _)| *k == key) {
                let first_line = first.start.line;
                self.errors
                    .push(LoadError::DuplicateKey { key, first_line }.at(key_span));
                continue;
            }
            entries.push((key, key_span, value));
        }
        for (k, ks, v) in merged {
            if !entries.iter().any(|(e, _, _)| *e == k) {
                entries.push((k, ks, v));
            }
        }
        Ok(Node::new(
            Span::new(start.start, self.last.end),
            Kind::Map(entries),
        ))
    }

    /// Collects the entries a `<<` value brings in; earlier sources win over later ones.
    fn merge(&mut self, value: Node, into: &mut Vec<(String, Span, Node)>) {
        let sources = match value.kind {
            Kind::Map(_) => vec![value],
            Kind::Seq(items) if items.iter().all(|n| matches!(n.kind, Kind::Map(_))) => items,
            _ => {
                self.errors.push(LoadError::BadMerge.at(value.span));
                return;
            }
        };
        for source in sources {
            if let Kind::Map(entries) = source.kind {
                for (k, ks, v) in entries {
                    if !into.iter().any(|(e, _, _)| *e == k) {
                        into.push((k, ks, v));
                    }
                }
            }
        }
    }

    fn remember(&mut self, anchor: usize, node: &Node) {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
    }

    fn check_tag(&mut self, tag: Option<&Tag>, expected: &str, span: Span) {
        if let Some(tag) = tag
            && !(tag.is_yaml_core_schema() && tag.suffix == expected)
        {
            self.errors
                .push(LoadError::UnsupportedTag(tag.to_string()).at(span));
        }
    }

    fn scalar(&mut self, text: &str, style: ScalarStyle, tag: Option<&Tag>, span: Span) -> Value {
        let resolved = match tag {
            None if style == ScalarStyle::Plain => resolve_plain(text),
            None => Ok(Value::String(text.to_string())),
            Some(tag) if tag.is_yaml_core_schema() => match tag.suffix.as_str() {
                "str" => Ok(Value::String(text.to_string())),
                "null" | "bool" | "int" | "float" => match resolve_plain(text) {
                    Ok(v) if type_matches(&tag.suffix, &v) => Ok(v),
                    Ok(_) => Err(LoadError::BadTaggedValue {
                        tag: tag.to_string(),
                        value: text.to_string(),
                    }),
                    Err(e) => Err(e),
                },
                _ => Err(LoadError::UnsupportedTag(tag.to_string())),
            },
            Some(tag) => Err(LoadError::UnsupportedTag(tag.to_string())),
        };
        // Keep the text so later stages do not report a second, confusing problem.
        resolved.unwrap_or_else(|e| {
            self.errors.push(e.at(span));
            Value::String(text.to_string())
        })
    }
}

fn type_matches(suffix: &str, v: &Value) -> bool {
    match suffix {
        "null" => v.is_null(),
        "bool" => v.is_boolean(),
        "int" => v.is_i64() || v.is_u64(),
        "float" => v.is_number(),
        _ => false,
    }
}

/// Resolves a plain scalar with the YAML 1.2 core schema.
fn resolve_plain(text: &str) -> Result<Value, LoadError> {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Ok(Value::Null),
        "true" | "True" | "TRUE" => return Ok(Value::Bool(true)),
        "false" | "False" | "FALSE" => return Ok(Value::Bool(false)),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" | "-.inf" | "-.Inf" | "-.INF" | ".nan"
        | ".NaN" | ".NAN" => return Err(LoadError::NotFinite(text.to_string())),
        _ => {}
    }
    if let Some(n) = resolve_int(text) {
        return Ok(Value::Number(n));
    }
    if is_float(text)
        && let Some(n) = text.parse::<f64>().ok().and_then(Number::from_f64)
    {
        return Ok(Value::Number(n));
    }
    Ok(Value::String(text.to_string()))
}

fn resolve_int(text: &str) -> Option<Number> {
    if let Some(hex) = text.strip_prefix("0x") {
        return u64::from_str_radix(hex, 16).ok().map(Number::from);
    }
    if let Some(oct) = text.strip_prefix("0o") {
        return u64::from_str_radix(oct, 8).ok().map(Number::from);
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let trimmed = text.strip_prefix('+').unwrap_or(text);
    if let Ok(i) = trimmed.parse::<i64>() {
        return Some(Number::from(i));
    }
    trimmed.parse::<u64>().ok().map(Number::from)
}

/// `[-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?`
fn is_float(text: &str) -> bool {
    let b = text.strip_prefix(['-', '+']).unwrap_or(text).as_bytes();
    let mut i = 0;
    let int_digits = b.iter().take_while(|c| c.is_ascii_digit()).count();
    i += int_digits;
    let mut frac_digits = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        frac_digits = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        i += frac_digits;
    }
    if int_digits == 0 && frac_digits == 0 {
        return false;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'-' | b'+')) {
            i += 1;
        }
        let exp = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        if exp == 0 {
            return false;
        }
        i += exp;
    }
    i == b.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(text: &str) -> Document {
        let (doc, errors) = load(text);
        assert!(errors.is_empty(), "{errors:?}");
        doc.unwrap()
    }

    fn errors(text: &str) -> Vec<Diagnostic> {
        load(text).1
    }

    #[test]
    fn scalars_resolve_with_the_core_schema() {
        let d = doc("a: 1\nb: '1'\nc: 090\nd: \"090\"\ne: 1.5\nf: true\ng: ~\nh: 0x1F\ni: 1e3\nj: abc\n");
        assert_eq!(
            d.value,
            serde_json::json!({"a": 1, "b": "1", "c": 90, "d": "090", "e": 1.5, "f": true, "g": null, "h": 31, "i": 1000.0, "j": "abc"})
        );
    }

    #[test]
    fn spans_point_at_keys_and_values() {
        let d = doc("steps:\n  - id: one\n    request: {method: GET}\n");
        let s = d.span("/steps/0/id").unwrap();
        assert_eq!(s.key.unwrap().start, Pos { line: 2, col: 5 });
        assert_eq!(s.value.start, Pos { line: 2, col: 9 });
        assert_eq!(s.value.end, Pos { line: 2, col: 12 });
        let m = d.span("/steps/0/request/method").unwrap();
        assert_eq!(m.value.start, Pos { line: 3, col: 23 });
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let e = errors("a: 1\nb: 2\na: 3\n");
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].code, "duplicate-key");
        assert_eq!(e[0].span.start, Pos { line: 3, col: 1 });
        assert_eq!(
            e[0].hint.as_deref(),
            Some("`a` is already set on line 1; remove one of them")
        );
    }

    #[test]
    fn merge_keys_expand_and_explicit_keys_win() {
        let d = doc("base: &b {x: 1, y: 2}\nm:\n  <<: *b\n  y: 3\n");
        assert_eq!(d.value["m"], serde_json::json!({"y": 3, "x": 1}));
        let d = doc("a: &a {x: 1}\nb: &b {x: 2, z: 3}\nm:\n  <<: [*a, *b]\n");
        assert_eq!(d.value["m"], serde_json::json!({"x": 1, "z": 3}));
    }

    #[test]
    fn bad_merge_and_tags_are_reported() {
        let e = errors("m:\n  <<: 3\nt: !custom x\n");
        let codes: Vec<_> = e.iter().map(|d| d.code).collect();
        assert_eq!(codes, ["bad-merge", "unsupported-tag"]);
    }

    #[test]
    fn pointers_escape_slashes() {
        let d = doc("a/b: {c~d: 1}\n");
        assert!(d.span("/a~1b/c~0d").is_some());
    }
}
