//! Diagnostics: what every stage reports, rendered in one place like a compiler's.

use super::source::{Source, Span};
use serde::Serialize;
use std::fmt::Write as _;

/// How serious a diagnostic is: errors make a flow invalid, warnings are only reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// A problem that stops the flow from being run.
    Error,
    /// A likely mistake that is reported but does not stop the flow.
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
    /// Whether this is an error or a warning.
    pub severity: Severity,
    /// A stable, kebab-case name for the kind of problem (`unknown-key`, `undeclared-input`, ...).
    pub code: &'static str,
    /// The one-line statement of the problem, shown after `error:` or `warning:`.
    pub message: String,
    /// Where in the source file the problem is; the caret line underlines it.
    pub span: Span,
    /// What to do about it, shown as `= hint:` under the source line.
    pub hint: Option<String>,
    /// The file the span is in, when it is not the one being checked (a connection file a
    /// flow uses).
    pub origin: Option<Origin>,
}

/// The file a diagnostic points into, when it is another than the one checked.
#[derive(Debug, Clone)]
pub struct Origin(pub std::sync::Arc<Source>);

impl PartialEq for Origin {
    fn eq(&self, other: &Self) -> bool {
        self.0.path == other.0.path
    }
}

impl Eq for Origin {}

impl Diagnostic {
    /// An error with `code` at `span`, without a hint.
    pub fn error(code: &'static str, span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            span,
            hint: None,
            origin: None,
        }
    }

    /// A warning with `code` at `span`, without a hint.
    pub fn warning(code: &'static str, span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, span, message)
        }
    }

    /// Moves the diagnostic to `span`.
    pub fn with_span(mut self, span: Span) -> Self {
        self.span = span;
        self
    }

    /// Sets the hint, replacing any earlier one.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Sets the hint when `hint` is `Some`; `None` keeps the current one.
    pub fn with_hint_opt(mut self, hint: Option<String>) -> Self {
        self.hint = hint.or(self.hint);
        self
    }

    /// Whether this diagnostic is an error (as opposed to a warning).
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

    /// The file the diagnostic points into: its own origin, else `source`.
    pub fn source<'a>(&'a self, source: &'a Source) -> &'a Source {
        self.origin.as_ref().map_or(source, |o| &o.0)
    }

    fn render_with(&self, source: &Source, styled: bool) -> String {
        let source = self.source(source);
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
    /// The file's display name, with `/` separators.
    pub file: String,
    /// 1-based line where the problem starts.
    pub line: usize,
    /// 1-based column (in characters) where the problem starts.
    pub column: usize,
    /// 1-based line where the problem's span ends.
    pub end_line: usize,
    /// 1-based column where the span ends (exclusive).
    pub end_column: usize,
    /// `error` or `warning`.
    pub severity: Severity,
    /// The stable kebab-case code of the problem, as in [`Diagnostic::code`].
    pub code: &'a str,
    /// The statement of the problem.
    pub message: &'a str,
    /// What to do about it; left out of the JSON when there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<&'a str>,
}

impl<'a> JsonDiagnostic<'a> {
    /// The JSON form of `diagnostic`, found in `source`.
    pub fn new(diagnostic: &'a Diagnostic, source: &Source) -> Self {
        let source = diagnostic.source(source);
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
