//! Valid flows that use the language's corners must check clean: no false alarms.

use flowrun::flow::{Source, check_source};

fn problems(text: &str) -> Vec<String> {
    let source = Source::new("valid.yaml", text);
    check_source(&source).iter().map(|d| d.render(&source)).collect()
}

const HEAD: &str = "version: 1\nname: t\ninputs:\n  a: { type: string }\n  n: { type: integer, default: 2, minimum: 1 }\n  o: { required: false }\nconnection:\n  base_url: http://127.0.0.1:1\n";

#[test]
fn finally_and_outputs_read_every_step() {
    let flow = format!(
        "{HEAD}steps:\n  - id: one\n    request: {{ method: GET, path: / }}\n    save: {{ x: response.body.x }}\n  - id: two\n    request: {{ method: GET, path: \"/{{{{ steps.one.x }}}}\" }}\n\
finally:\n  - id: cleanup\n    if: steps.two.succeeded and not steps.one.skipped\n    request: {{ method: DELETE, path: /, json: {{ x: \"{{{{ steps.one.x }}}}\" }} }}\n  - id: after\n    if: steps.cleanup.succeeded\n    request: {{ method: GET, path: / }}\n\
outputs:\n  x: steps.one.x\n  status: steps.cleanup.status\n"
    );
    assert_eq!(problems(&flow), Vec::<String>::new());
}

#[test]
fn filters_tests_functions_raw_blocks_and_block_scalars_are_accepted() {
    let flow = format!(
        "{HEAD}steps:\n  - id: one\n    if: inputs.o is defined or inputs.a | length > 3\n    request:\n      method: POST\n      path: \"/{{{{ inputs.a | lower }}}}/{{% raw %}}{{{{ literal }}}}{{% endraw %}}\"\n      query: {{ at: \"{{{{ now_ms() }}}}\", n: 3, id: \"{{{{ uuid() }}}}\" }}\n      headers: {{ X-Env: \"{{{{ env('HOME') ~ secret('T') }}}}\" }}\n      json:\n        body: >-\n          {{{{ {{\"a\": inputs.a, \"when\": now()}}\n             if inputs.n is number else none }}}}\n    expect:\n      status: [200, 202]\n      assert:\n        - response.status in [200, 202]\n        - response.body.items | selectattr(\"ok\") | list | length >= 0\n    stop_if: response.headers[\"x-done\"] is defined\n  - id: two\n    request: {{ method: GET, path: / }}\n"
    );
    assert_eq!(problems(&flow), Vec::<String>::new());
}

#[test]
fn vars_are_read_where_they_are_in_scope() {
    let body = r#"vars:
  id: "{{ uuid() }}"
  twice: "{{ vars.id ~ inputs.a }}"
  literal: 3
steps:
  - id: one
    if: vars.literal > 2
    vars:
      mine: "{{ vars.id }}-1"
      again: "{{ vars.mine }}"
    request: { method: POST, path: "/{{ vars.twice }}", json: { a: "{{ vars.mine }}", b: "{{ vars.again }}" } }
    expect: { assert: ["response.body.id == vars.mine"] }
    save: { mine: vars.mine }
finally:
  - id: after
    request: { method: DELETE, path: "/{{ vars.id }}/{{ steps.one.mine }}" }
outputs:
  id: vars.id
"#;
    assert_eq!(problems(&format!("{HEAD}{body}")), Vec::<String>::new());
}

#[test]
fn merge_keys_and_aliases_expand_before_checking() {
    let flow = format!(
        "{HEAD}x-defaults: &req {{ method: GET, path: / }}\nsteps:\n  - id: one\n    request:\n      <<: *req\n      path: /other\n"
    );
    // `x-defaults` is not a key of the language: an anchor must live where the schema allows it.
    assert_eq!(problems(&flow).len(), 1);
    let flow = format!(
        "{HEAD}steps:\n  - id: one\n    request: &req {{ method: GET, path: / }}\n  - id: two\n    request:\n      <<: *req\n      method: POST\n  - id: three\n    request: *req\n"
    );
    assert_eq!(problems(&flow), Vec::<String>::new());
}

/// A flow's templates are compiled once: running it reuses every template `check` compiled,
/// its connection file's and its called files' included, and compiles none again.
#[test]
fn running_a_checked_flow_compiles_no_template_again() {
    let flows = [
        "flows/inbound.yaml",
        "flows/transfer.yaml",
        "flows/transfer-route-first.yaml",
        "tests/flows/calls/flow.yaml",
    ];
    for path in flows {
        let path = std::path::Path::new(path);
        let source = Source::read(path).unwrap();
        let checked = flowrun::flow::load_checked(&source).unwrap();
        let compiled_by_check = checked.templates.len();
        assert!(compiled_by_check > 10, "{}: {compiled_by_check}", path.display());
        let world = flowrun::World::deterministic(0, Vec::new());
        let compiled =
            flowrun::flow::compile_checked(checked, &source.display_name(), world, ".".into()).unwrap();
        assert_eq!(compiled.templates.len(), compiled_by_check, "{}", path.display());
    }
}
