//! A flow file's text and positions inside it.

use std::path::{Path, PathBuf};

/// A position in a source file: 1-based line, 1-based column counted in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

/// A half-open range of source text. `end` may be on a later line than `start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Span {
    pub start: Pos,
    pub end: Pos,
}

impl Span {
    pub fn new(start: Pos, end: Pos) -> Self {
        Span { start, end }
    }

    /// A span of `len` characters starting at `start` on one line.
    pub fn on_line(start: Pos, len: usize) -> Self {
        Span {
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
    pub path: PathBuf,
    pub text: String,
}

impl Source {
    pub fn new(path: impl Into<PathBuf>, text: impl Into<String>) -> Self {
        Source {
            path: path.into(),
            text: text.into(),
        }
    }

    pub fn read(path: &Path) -> std::io::Result<Self> {
        Ok(Source::new(path, std::fs::read_to_string(path)?))
    }

    /// The text of 1-based line `line`, without its line ending.
    pub fn line(&self, line: usize) -> Option<&str> {
        self.text
            .split('\n')
            .nth(line.checked_sub(1)?)
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
    }

    /// The name shown in diagnostics: the path as the user gave it, with `/` separators.
    pub fn display_name(&self) -> String {
        self.path.to_string_lossy().replace('\\', "/")
    }
}
