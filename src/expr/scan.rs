//! A light lexical scan of expressions for the filters and tests they name, which MiniJinja
//! only resolves at render time but `check` must report before anything runs.

/// A filter (`x | name`) or test (`x is name`) used in an expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Use<'a> {
    /// A filter, by name: `upper` in `x | upper`.
    Filter(&'a str),
    /// A test, by name: `defined` in `x is defined`.
    Test(&'a str),
}

/// The code regions of a template: the insides of `{{ }}` and `{% %}` (not `{% raw %}` text).
pub fn code_regions(template: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = template;
    let mut in_raw = false;
    // One pass: the next `{{` or `{%`, found by looking at each `{` once (searching for each
    // opener separately rescans the rest of a long template for every region).
    let opener = |t: &str| {
        t.match_indices('{')
            .map(|(i, _)| i)
            .find(|&i| matches!(t.as_bytes().get(i + 1), Some(b'{' | b'%')))
    };
    while let Some(open) = opener(rest) {
        let close_tag = if rest[open..].starts_with("{{") {
            "}}"
        } else {
            "%}"
        };
        let Some(close) = rest[open + 2..].find(close_tag) else {
            break;
        };
        let inner = &rest[open + 2..open + 2 + close];
        let word = inner.trim().trim_start_matches('-').trim();
        if close_tag == "%}" && word.starts_with("endraw") {
            in_raw = false;
        } else if close_tag == "%}" && word.starts_with("raw") {
            in_raw = true;
        } else if !in_raw {
            out.push(inner);
        }
        rest = &rest[open + 2 + close + 2..];
    }
    out
}

/// The index just past the string literal that opens at `start` (a quote), escapes skipped.
fn past_string(bytes: &[u8], start: usize) -> usize {
    let quote = bytes[start];
    let mut i = start + 1;
    while i < bytes.len() && bytes[i] != quote {
        i += if bytes[i] == b'\\' { 2 } else { 1 };
    }
    i + 1
}

/// The most operators one expression (or one `{{ }}` / `{% %}` of a template) may hold.
/// MiniJinja parses and evaluates expressions recursively: tens of thousands of `not`s, `+`s
/// or `|f`s overflow the stack. A flow's expressions hold a few dozen.
pub const MAX_OPERATORS: usize = 300;

/// How many operators `code` holds outside its string literals: punctuation (`+ - * / % ~ |
/// . ( [ { , < > = !`) and the word operators (`not and or if else in is`).
pub fn operator_count(code: &str) -> usize {
    let bytes = code.as_bytes();
    let mut count = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' | b'\'' => i = past_string(bytes, i),
            b'+' | b'-' | b'*' | b'/' | b'%' | b'~' | b'|' | b'.' | b'(' | b'[' | b'{' | b',' | b'<'
            | b'>' | b'=' | b'!' => {
                count += 1;
                i += 1;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                if matches!(
                    &code[start..i],
                    "not" | "and" | "or" | "if" | "else" | "in" | "is"
                ) {
                    count += 1;
                }
            }
            _ => i += 1,
        }
    }
    count
}

/// The longest run of digits an expression may hold.
pub const MAX_DIGITS: usize = 1_000;

/// Why an expression or template is too complex to compile safely, if it is.
pub fn too_complex(text: &str, template: bool) -> Option<String> {
    let worst = if template {
        code_regions(text)
            .into_iter()
            .map(operator_count)
            .max()
            .unwrap_or(0)
    } else {
        operator_count(text)
    };
    if worst > MAX_OPERATORS {
        return Some(format!(
            "{worst} operators in one expression; at most {MAX_OPERATORS} are allowed"
        ));
    }
    // MiniJinja's lexer cannot take a number literal tens of thousands of digits long.
    let longest = text
        .split(|c: char| !c.is_ascii_digit())
        .map(str::len)
        .max()
        .unwrap_or(0);
    (longest > MAX_DIGITS).then(|| format!("a number of {longest} digits; at most {MAX_DIGITS} are allowed"))
}

/// The filters and tests an expression names, skipping string literals.
pub fn uses(expr: &str) -> Vec<Use<'_>> {
    let bytes = expr.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let ident_at = |mut j: usize| {
        while j < bytes.len() && bytes[j].is_ascii_whitespace() {
            j += 1;
        }
        let start = j;
        while j < bytes.len() && (bytes[j].is_ascii_alphanumeric() || bytes[j] == b'_') {
            j += 1;
        }
        (&expr[start..j], j)
    };
    while i < bytes.len() {
        match bytes[i] {
            b'"' | b'\'' => i = past_string(bytes, i),
            b'|' => {
                let (name, end) = ident_at(i + 1);
                if !name.is_empty() {
                    out.push(Use::Filter(name));
                }
                i = end.max(i + 1);
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let (word, end) = ident_at(i);
                if word == "is" {
                    let (mut name, mut next) = ident_at(end);
                    if name == "not" {
                        (name, next) = ident_at(next);
                    }
                    if !name.is_empty() {
                        out.push(Use::Test(name));
                    }
                    i = next;
                } else {
                    i = end;
                }
            }
            _ => i += 1,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_filters_and_tests_outside_strings() {
        assert_eq!(
            uses("a | upper ~ '|x' is not defined and b is number"),
            [Use::Filter("upper"), Use::Test("defined"), Use::Test("number")]
        );
        assert_eq!(
            code_regions("x {{ a }} {% raw %}{{ b }}{% endraw %} {% if c %}"),
            [" a ", " if c "]
        );
    }
}
