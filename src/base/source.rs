//! A flow file's text and positions inside it.

use std::path::{Path, PathBuf};

/// A position in a source file: 1-based line, 1-based column counted in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    /// 1-based line number.
    pub line: usize,
    /// 1-based column, counted in characters (not bytes).
    pub col: usize,
}

/// A half-open range of source text. `end` may be on a later line than `start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Span {
    /// Which file the span is in: `0` is the file being read; `n` is the `n`th file it
    /// includes ([`crate::base::yaml::Document::files`]).
    pub file: u32,
    /// The first position covered.
    pub start: Pos,
    /// The position just after the last one covered.
    pub end: Pos,
}

impl Span {
    /// The span from `start` up to (not including) `end`.
    pub fn new(start: Pos, end: Pos) -> Self {
        Span { file: 0, start, end }
    }

    /// The same span, in file `file`.
    pub fn in_file(self, file: u32) -> Self {
        Span { file, ..self }
    }

    /// A span of `len` characters starting at `start` on one line.
    pub fn on_line(start: Pos, len: usize) -> Self {
        Span {
            file: 0,
            start,
            end: Pos {
                line: start.line,
                col: start.col + len,
            },
        }
    }
}

/// The text of one flow file and the name it is reported under.
#[derive(Debug, Clone)]
pub struct Source {
    /// The path the file was read from (or is reported under), as the user gave it.
    pub path: PathBuf,
    /// The whole text of the file.
    pub text: String,
    /// Byte offset of the start of each line.
    line_starts: Vec<usize>,
}

/// The largest flow, inputs, test or simulator file read: far more than any holds.
pub const MAX_FILE: usize = 16 * 1024 * 1024;

impl Source {
    /// A source named `path` holding `text`; indexes where each line starts.
    pub fn new(path: impl Into<PathBuf>, text: impl Into<String>) -> Self {
        let text = text.into();
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Source {
            path: path.into(),
            text,
            line_starts,
        }
    }

    /// The byte offset of `pos`, if it lies inside the text.
    pub fn offset(&self, pos: Pos) -> Option<usize> {
        let start = *self.line_starts.get(pos.line.checked_sub(1)?)?;
        let line = &self.text[start..];
        let col = line
            .char_indices()
            .nth(pos.col.checked_sub(1)?)
            .map(|(i, _)| i)
            .unwrap_or(line.len());
        Some(start + col)
    }

    /// The text a span covers, when it stays on one line.
    pub fn text_of(&self, span: Span) -> Option<&str> {
        if span.start.line != span.end.line {
            return None;
        }
        let from = self.offset(span.start)?;
        let to = self.offset(span.end)?;
        self.text.get(from..to)
    }

    /// The position of byte offset `offset`.
    pub fn pos(&self, offset: usize) -> Pos {
        let line = self.line_starts.partition_point(|&s| s <= offset);
        let start = self.line_starts[line - 1];
        Pos {
            line,
            col: self.text[start..offset].chars().count() + 1,
        }
    }

    /// Where `needle` first stands inside `within`, as a whole word (not followed by a name
    /// character), so a diagnostic can point at one token of a longer value.
    pub fn find_in(&self, within: Span, needle: &str) -> Option<Span> {
        let from = self.offset(within.start)?;
        let to = self.offset(within.end).unwrap_or(self.text.len()).max(from);
        let hay = &self.text[from..to];
        let mut search = 0;
        while let Some(i) = hay[search..].find(needle) {
            let at = search + i;
            let after = hay[at + needle.len()..].chars().next();
            if !after.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                let start = self.pos(from + at);
                return Some(Span::on_line(start, needle.chars().count()));
            }
            search = at + needle.len();
        }
        None
    }

    /// Reads a file of at most `MAX_FILE` (16 MiB) bytes. A fifo, socket or device is refused (reading
    /// one could wait, or grow, forever), and so is a larger file.
    pub fn read(path: &Path) -> std::io::Result<Self> {
        use std::io::{Error, ErrorKind, Read};
        let meta = std::fs::metadata(path)?;
        if !meta.is_file() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "not a regular file (a fifo, socket, device or directory)",
            ));
        }
        let mut text = String::new();
        std::fs::File::open(path)?
            .take(MAX_FILE as u64 + 1)
            .read_to_string(&mut text)?;
        if text.len() > MAX_FILE {
            return Err(Error::new(
                ErrorKind::InvalidData,
                format!(
                    "larger than {} MiB, more than a flowrun file may be",
                    MAX_FILE >> 20
                ),
            ));
        }
        Ok(Source::new(path, text))
    }

    /// The text of 1-based line `line`, without its line ending.
    pub fn line(&self, line: usize) -> Option<&str> {
        let start = *self.line_starts.get(line.checked_sub(1)?)?;
        let end = self.line_starts.get(line).map_or(self.text.len(), |e| e - 1);
        let l = &self.text[start..end];
        Some(l.strip_suffix('\r').unwrap_or(l))
    }

    /// The name shown in diagnostics: the path as the user gave it, with `/` separators.
    pub fn display_name(&self) -> String {
        self.path.to_string_lossy().replace('\\', "/")
    }
}

/// Why a file named in another could not be read, in a few words: `no such file`, else the
/// system's own wording.
pub fn read_error(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".to_string(),
        _ => e.to_string(),
    }
}
