//! Hostile input is normal input: the shipped flows, mutated at random (lines deleted,
//! duplicated, re-indented, cut short; hostile fragments spliced in: aliases, anchors, merge
//! keys, braces, tags, tabs, NULs, deep nesting, huge numbers), always check to diagnostics or
//! success — never a panic — within a time bound; and what passes `check` compiles.

use flowrun::flow::{Source, check_source, load_checked};
use proptest::prelude::*;
use std::time::{Duration, Instant};

const FLOWS: [&str; 3] = [
    include_str!("../flows/inbound.yaml"),
    include_str!("../flows/transfer.yaml"),
    include_str!("../flows/transfer-route-first.yaml"),
];

/// Pieces a hostile or careless author writes.
const FRAGMENTS: &[&str] = &[
    "{{",
    "}}",
    "{%",
    "%}",
    "{{ inputs.",
    "{{ steps.",
    "{{ vars.",
    "{{ response.body }}",
    "*a",
    "&a ",
    "<<: *a",
    "<<: [*a, *a]",
    ": ",
    "- ",
    "\t",
    "\0",
    "'",
    "\"",
    "[",
    "]",
    "{",
    "}",
    "? ",
    "!!binary ",
    "!custom ",
    "---\n",
    "...\n",
    "1e999",
    "-0",
    "0x1F",
    "~",
    "null",
    "é😀",
    "not not not not ",
    "| upper",
    "|",
    ">-\n",
    "#",
    "\\",
    "\r\n",
    "    ",
    "vars:\n  a: 1\n",
    "stop_if: true\n",
    "[[[[[[[[[[",
    "{a: {b: {c: {d:",
    "- - - - - - - -",
    "&x [*x]",
    "${HOME}",
    "%",
];

#[derive(Debug, Clone)]
enum Mutation {
    DeleteLine(usize),
    DuplicateLine(usize),
    Splice(usize, usize, String),
    Indent(usize, bool),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let fragment = prop_oneof![
        proptest::sample::select(FRAGMENTS).prop_map(str::to_string),
        "[ -~]{0,12}",
        any::<String>().prop_map(|s| s.chars().take(8).collect()),
    ];
    prop_oneof![
        any::<usize>().prop_map(Mutation::DeleteLine),
        any::<usize>().prop_map(Mutation::DuplicateLine),
        (any::<usize>(), any::<usize>(), fragment).prop_map(|(l, c, f)| Mutation::Splice(l, c, f)),
        (any::<usize>(), any::<bool>()).prop_map(|(l, d)| Mutation::Indent(l, d)),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn apply(text: &str, mutations: &[Mutation]) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    for m in mutations {
        if lines.is_empty() {
            break;
        }
        let n = lines.len();
        match m {
            Mutation::DeleteLine(i) => {
                lines.remove(i % n);
            }
            Mutation::DuplicateLine(i) => {
                let line = lines[i % n].clone();
                lines.insert(i % n, line);
            }
            Mutation::Splice(i, col, fragment) => {
                let line = &mut lines[i % n];
                let chars: Vec<char> = line.chars().collect();
                let at = col % (chars.len() + 1);
                let mut out: String = chars[..at].iter().collect();
                out.push_str(fragment);
                out.extend(&chars[at..]);
                *line = out;
            }
            Mutation::Indent(i, deeper) => {
                let line = &mut lines[i % n];
                if *deeper {
                    line.insert_str(0, "  ");
                } else if line.starts_with("  ") {
                    line.drain(..2);
                }
            }
            Mutation::Truncate(i) => lines.truncate(i % n + 1),
        }
    }
    lines.join("\n") + "\n"
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mutated_flows_check_without_panicking(flow in 0..FLOWS.len(), mutations in prop::collection::vec(mutation(), 1..6)) {
        let text = apply(FLOWS[flow], &mutations);
        let source = Source::new("mutated.yaml", text);
        let started = Instant::now();
        let diagnostics = check_source(&source);
        for d in &diagnostics {
            let rendered = d.render(&source);
            prop_assert!(rendered.starts_with("mutated.yaml:"), "{}", rendered);
        }
        if !diagnostics.iter().any(|d| d.is_error()) {
            // What passes `check` compiles.
            let checked = load_checked(&source).map_err(|d| TestCaseError::fail(format!("{d:?}")))?;
            let runtime = flowrun::expr::World::deterministic(0, Vec::new());
            let compiled = flowrun::flow::compile(checked.flow, &checked.document, "mutated.yaml", runtime, ".".into());
            prop_assert!(compiled.is_ok(), "{:?}", compiled.err());
        }
        prop_assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    }

    /// Any text at all as an `if`, a template and an input default: a diagnostic or nothing.
    #[test]
    fn any_expression_checks_without_panicking(expr in "[ -~]{0,80}", template in "[ -~]{0,80}") {
        let text = format!(
            "version: 1\nname: x\ninputs:\n  a: {{ default: {} }}\nconnection: {{ base_url: http://127.0.0.1 }}\nsteps:\n  - id: one\n    if: {}\n    request: {{ method: GET, path: {} }}\n",
            serde_json::to_string(&template).unwrap(),
            serde_json::to_string(&expr).unwrap(),
            serde_json::to_string(&format!("/{template}")).unwrap(),
        );
        let source = Source::new("expr.yaml", text);
        let _ = check_source(&source);
    }
}

/// Deep nesting used to overflow the stack (SIGABRT): 10,000 nested block sequences, a
/// 4,000-deep mapping, 20,000 `not`s or `+`s in an expression. Each is now one diagnostic.
/// (Test threads have a 2 MiB stack, a quarter of the main thread's.)
#[test]
fn deep_nesting_is_a_diagnostic_not_a_stack_overflow() {
    let head = "version: 1\nname: deep\nconnection: { base_url: http://127.0.0.1 }\n";
    let mut sequences = format!("{head}x-deep:\n");
    for i in 0..10_000 {
        sequences.push_str(&"  ".repeat(i + 1));
        sequences.push_str("-\n");
    }
    let mut mapping = format!("{head}x-deep:\n");
    for i in 0..4_000 {
        mapping.push_str(&format!("{}k:\n", "  ".repeat(i + 1)));
    }
    let step = |cond: String| {
        format!("{head}steps:\n  - id: one\n    if: \"{cond}\"\n    request: {{ method: GET, path: / }}\n")
    };
    let nots = step(format!("{}true", "not ".repeat(20_000)));
    let sums = step(format!("{} > 0", vec!["1"; 20_000].join(" + ")));
    let big_number = step(format!("{} > 1", "9".repeat(70_000)));
    for (text, code, message) in [
        (
            sequences,
            "too-deep",
            "lists and mappings nest deeper than 64 levels here",
        ),
        (
            mapping,
            "too-deep",
            "lists and mappings nest deeper than 64 levels here",
        ),
        (
            nots,
            "too-complex",
            "expression too complex: 20000 operators in one expression; at most 300 are allowed",
        ),
        (
            sums,
            "too-complex",
            "expression too complex: 20000 operators in one expression; at most 300 are allowed",
        ),
        (
            big_number,
            "too-complex",
            "expression too complex: a number of 70000 digits; at most 1000 are allowed",
        ),
    ] {
        let diagnostics = check_source(&Source::new("deep.yaml", text));
        let found: Vec<(&str, &str)> = diagnostics.iter().map(|d| (d.code, d.message.as_str())).collect();
        assert!(found.contains(&(code, message)), "{found:?}");
    }
}

/// One long template line with tens of thousands of `{{ }}`: finding the code regions was
/// quadratic (18 s for 60,000 of them); it is one pass now.
#[test]
fn a_long_template_line_checks_in_linear_time() {
    let path = "{{ inputs.a }}-".repeat(60_000);
    let text = format!(
        "version: 1\nname: long\ninputs:\n  a: {{}}\nconnection: {{ base_url: http://127.0.0.1 }}\nsteps:\n  - id: one\n    request: {{ method: GET, path: \"/{path}\" }}\n"
    );
    let started = Instant::now();
    let diagnostics = check_source(&Source::new("long.yaml", text));
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
}
