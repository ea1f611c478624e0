//! Diagnostics: what every stage reports, rendered in one place like a compiler's.

use super::source::{Source, Span};
use serde::Serialize;
use std::fmt::Write as _;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

impl Severity {
    fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// The most characters of a source line a diagnostic shows.
const WINDOW: usize = 160;

/// One problem found in a flow file, with where it is and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    /// A stable, kebab-case name for the kind of problem (`unknown-key`, `undeclared-input`, ...).
    pub code: &'static str,
    pub message: String,
    pub span: Span,
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn error(code: &'static str, span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            span,
            hint: None,
        }
    }

    pub fn warning(code: &'static str, span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, span, message)
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn with_hint_opt(mut self, hint: Option<String>) -> Self {
        self.hint = hint.or(self.hint);
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// Renders the diagnostic as `file:line:col: error: message`, the source line, a caret line
    /// under the exact token, and the hint.
    pub fn render(&self, source: &Source) -> String {
        self.render_with(source, false)
    }

    /// [`Diagnostic::render`] with terminal colours (ANSI): the severity and the caret. Print it
    /// through a stream that strips them where colour is off (`anstream`).
    pub fn render_styled(&self, source: &Source) -> String {
        self.render_with(source, true)
    }

    fn render_with(&self, source: &Source, styled: bool) -> String {
        let paint = |style: anstyle::Style, text: &str| {
            if styled {
                format!("{style}{text}{style:#}")
            } else {
                text.to_string()
            }
        };
        let color = match self.severity {
            Severity::Error => anstyle::AnsiColor::Red,
            Severity::Warning => anstyle::AnsiColor::Yellow,
        };
        let strong = anstyle::Style::new().bold().fg_color(Some(color.into()));
        let mut out = String::new();
        let start = self.span.start;
        let _ = writeln!(
            out,
            "{}:{}:{}: {}: {}",
            source.display_name(),
            start.line,
            start.col,
            paint(strong, self.severity.as_str()),
            self.message
        );
        if let Some(text) = source.line(start.line) {
            let gutter = start.line.to_string().len();
            // Tabs are shown as one space so that the caret column matches the character column;
            // other control characters (a NUL byte) as `�`, never raw on a terminal.
            let chars: Vec<char> = text
                .trim_end()
                .chars()
                .map(|c| match c {
                    '\t' => ' ',
                    c if c.is_control() => '\u{FFFD}',
                    c => c,
                })
                .collect();
            let col = start.col.max(1);
            let width = if self.span.end.line == start.line && self.span.end.col > col {
                self.span.end.col - col
            } else {
                chars.len().saturating_sub(col - 1).max(1)
            };
            // A long line is shown as a window around the caret, so one diagnostic on a
            // megabyte-long line prints a line, not a megabyte.
            let from = (col - 1).saturating_sub(WINDOW / 2).min(chars.len());
            let to = (from + WINDOW).min(chars.len());
            let mut shown: String = chars[from..to].iter().collect();
            let mut pad = col - 1 - from;
            if from > 0 {
                shown.insert(0, '…');
                pad += 1;
            }
            if to < chars.len() {
                shown.push('…');
            }
            let width = width.min(WINDOW);
            let _ = writeln!(out, "{:gutter$} |", "");
            let _ = writeln!(out, "{} | {}", start.line, shown);
            let _ = writeln!(
                out,
                "{:gutter$} | {}{}",
                "",
                " ".repeat(pad),
                paint(strong, &"^".repeat(width.max(1)))
            );
        }
        if let Some(hint) = &self.hint {
            let _ = writeln!(out, "  = hint: {hint}");
        }
        out
    }
}

/// The machine-readable form printed by `--format json`.
#[derive(Debug, Serialize)]
pub struct JsonDiagnostic<'a> {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub end_line: usize,
    pub end_column: usize,
    pub severity: Severity,
    pub code: &'a str,
    pub message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<&'a str>,
}

impl<'a> JsonDiagnostic<'a> {
    pub fn new(diagnostic: &'a Diagnostic, source: &Source) -> Self {
        JsonDiagnostic {
            file: source.display_name(),
            line: diagnostic.span.start.line,
            column: diagnostic.span.start.col,
            end_line: diagnostic.span.end.line,
            end_column: diagnostic.span.end.col,
            severity: diagnostic.severity,
            code: diagnostic.code,
            message: &diagnostic.message,
            hint: diagnostic.hint.as_deref(),
        }
    }
}
