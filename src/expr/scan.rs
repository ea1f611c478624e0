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

/// One lexical token of an expression: a name, a string literal, or one punctuation byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok<'a> {
    Name(&'a str),
    /// A string literal's contents, quotes removed (escapes left as written).
    Str(&'a str),
    Punct(u8),
}

/// The tokens of `code` (numbers are names; whitespace is dropped).
fn tokens(code: &str) -> Vec<Tok<'_>> {
    let bytes = code.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' | b'\'' => {
                let end = past_string(bytes, i);
                out.push(Tok::Str(
                    code.get(i + 1..end.saturating_sub(1)).unwrap_or_default(),
                ));
                i = end;
            }
            c if c.is_ascii_alphanumeric() || c == b'_' => {
                let start = i;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                out.push(Tok::Name(&code[start..i]));
            }
            c if c.is_ascii_whitespace() => i += 1,
            c => {
                out.push(Tok::Punct(c));
                i += 1;
            }
        }
    }
    out
}

/// The functions in `names` that `code` reads without calling them (`{{ now }}` instead of
/// `{{ now() }}`): a bare name that is not an attribute (`x.now`) and has no `(` after it.
pub fn uncalled<'a>(code: &str, names: &[&'a str]) -> Vec<&'a str> {
    let toks = tokens(code);
    let mut out = Vec::new();
    for (i, tok) in toks.iter().enumerate() {
        let Tok::Name(word) = tok else { continue };
        let Some(name) = names.iter().find(|n| *n == word) else {
            continue;
        };
        let after_dot = i > 0 && matches!(toks[i - 1], Tok::Punct(b'.' | b'|'));
        let after_is = i > 0 && matches!(toks[i - 1], Tok::Name("is" | "not"));
        let called = matches!(toks.get(i + 1), Some(Tok::Punct(b'(')));
        // `x = now` inside a call's arguments names a keyword argument only before `=`.
        let keyword = matches!(toks.get(i + 1), Some(Tok::Punct(b'=')))
            && !matches!(toks.get(i + 2), Some(Tok::Punct(b'=')));
        if !after_dot && !after_is && !called && !keyword && !out.contains(name) {
            out.push(*name);
        }
    }
    out
}

/// Whether `code` changes a `secret(...)` value before using it: a filter (`| lower`), a
/// subscript or slice (`[1:]`) or an attribute (`.upper()`) applied to the call or to a
/// parenthesised group holding it. Masking finds a secret only as the exact value (and its
/// encodings), so a transformed secret would reach output unmasked. Using it as is, or joined
/// with other text (`~`, `+`), stays allowed.
pub fn transforms_secret(code: &str) -> bool {
    let toks = tokens(code);
    // For each `(`, where its group ends; for each group, whether it is a call.
    let mut close = vec![usize::MAX; toks.len()];
    let mut open_of = vec![usize::MAX; toks.len()];
    let mut stack = Vec::new();
    for (i, t) in toks.iter().enumerate() {
        match t {
            Tok::Punct(b'(' | b'[') => stack.push(i),
            Tok::Punct(b')' | b']') => {
                if let Some(o) = stack.pop() {
                    close[o] = i;
                    open_of[i] = o;
                }
            }
            _ => {}
        }
    }
    let transformed_after = |end: usize| matches!(toks.get(end + 1), Some(Tok::Punct(b'|' | b'[' | b'.')));
    for (i, t) in toks.iter().enumerate() {
        if *t != Tok::Name("secret") || !matches!(toks.get(i + 1), Some(Tok::Punct(b'('))) {
            continue;
        }
        if i > 0 && matches!(toks[i - 1], Tok::Punct(b'.')) {
            continue;
        }
        let mut end = close[i + 1];
        if end == usize::MAX {
            continue;
        }
        loop {
            if transformed_after(end) {
                return true;
            }
            // Walk out of a plain parenthesised group (`(secret('A') ~ 'x') | lower`); a call's
            // arguments (`f(secret('A'))`) end the walk: the call decides what it returns.
            let Some(enclosing) = stack_parent(&toks, &close, end) else {
                break;
            };
            // A filter's argument (`x | default(secret('A'))`) may be what the filter returns,
            // so the walk goes on past the filter.
            let filter_arg = enclosing > 1
                && matches!(toks[enclosing - 1], Tok::Name(_))
                && toks[enclosing - 2] == Tok::Punct(b'|');
            let is_call =
                enclosing > 0 && matches!(toks[enclosing - 1], Tok::Name(_) | Tok::Punct(b')' | b']'));
            if (is_call && !filter_arg) || toks[enclosing] != Tok::Punct(b'(') {
                break;
            }
            end = close[enclosing];
        }
    }
    false
}

/// The `(` or `[` of the innermost group that encloses position `at`, if any.
fn stack_parent(toks: &[Tok], close: &[usize], at: usize) -> Option<usize> {
    (0..at)
        .rev()
        .find(|&o| matches!(toks[o], Tok::Punct(b'(' | b'[')) && close[o] != usize::MAX && close[o] > at)
}

/// Filters and tests named as strings: `map('lower')` names the filter `lower`,
/// `select('odd')`, `reject('none')` and the second argument of `selectattr('a', 'odd')` name
/// tests. MiniJinja looks them up only at render time.
pub fn named_by_string(code: &str) -> Vec<Use<'_>> {
    let toks = tokens(code);
    let mut out = Vec::new();
    for (i, t) in toks.iter().enumerate() {
        let Tok::Name(name) = t else { continue };
        if i == 0 || toks[i - 1] != Tok::Punct(b'|') || toks.get(i + 1) != Some(&Tok::Punct(b'(')) {
            continue;
        }
        let arg = |n: usize| match (toks.get(i + 2 + 2 * n), toks.get(i + 3 + 2 * n)) {
            (Some(Tok::Str(s)), Some(Tok::Punct(b',' | b')'))) => Some(*s),
            _ => None,
        };
        match *name {
            "map" => out.extend(arg(0).map(Use::Filter)),
            "select" | "reject" => out.extend(arg(0).map(Use::Test)),
            "selectattr" | "rejectattr" => out.extend(arg(1).map(Use::Test)),
            _ => {}
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

    #[test]
    fn finds_functions_read_without_a_call() {
        assert_eq!(
            uncalled("now ~ uuid() ~ x.now ~ env", &["now", "uuid", "env"]),
            ["now", "env"]
        );
        assert_eq!(
            uncalled("'now' ~ x is now ~ f(now=1)", &["now"]),
            Vec::<&str>::new()
        );
    }

    #[test]
    fn finds_transformed_secrets() {
        for bad in [
            "secret('A') | lower",
            "secret('A')[1:]",
            "secret('A').upper()",
            "(secret('A') ~ 'x') | lower",
            "((secret('A'))) | b64encode",
        ] {
            assert!(transforms_secret(bad), "{bad}");
        }
        assert!(transforms_secret("x | default(secret('A')) | lower"));
        for fine in [
            "secret('A')",
            "'Bearer ' ~ secret('A')",
            "f(secret('A')) | lower",
            "x | default(secret('A'))",
        ] {
            assert!(!transforms_secret(fine), "{fine}");
        }
    }

    #[test]
    fn finds_filters_and_tests_named_by_strings() {
        assert_eq!(
            named_by_string("xs | map('lowr') | select('od') | selectattr('a', 'nne') | map(attribute='x')"),
            [Use::Filter("lowr"), Use::Test("od"), Use::Test("nne")]
        );
    }
}
