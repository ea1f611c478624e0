//! The pipeline is the layout: every folder of `src/` imports only folders of lower layers
//! (docs/architecture.md draws them). A `crate::x` that points up or sideways fails here.

use std::path::Path;

/// Each folder (or top-level file) and its layer; a module may use only lower layers.
const LAYERS: &[(&str, usize)] = &[
    ("base", 0),
    ("paths", 0),
    ("signals", 0),
    ("expr", 1),
    ("api", 1),
    ("flow", 2),
    ("http", 2),
    ("engine", 3),
    ("pubsub", 3),
    ("sim", 4),
    ("report", 4),
    ("journal", 4),
    ("testing", 5),
    ("service", 5),
    ("cli", 6),
    ("allocator", 6),
];

fn layer(module: &str) -> usize {
    LAYERS
        .iter()
        .find(|(m, _)| *m == module)
        .map(|(_, l)| *l)
        .unwrap_or_else(|| {
            panic!("module `{module}` has no layer: add it to LAYERS and docs/architecture.md")
        })
}

fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_module_imports_a_later_stage() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = Vec::new();
    files(&src, &mut all);
    let mut wrong = Vec::new();
    for path in all {
        let relative = path.strip_prefix(&src).unwrap();
        let first = relative
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .into_owned();
        let module = first.trim_end_matches(".rs").to_string();
        if module == "lib" || module == "main" {
            continue;
        }
        let own = layer(&module);
        let text = std::fs::read_to_string(&path).unwrap();
        for (n, line) in text.lines().enumerate() {
            for prefix in ["crate::", "flowrun::"] {
                for (i, _) in line.match_indices(prefix) {
                    let rest = &line[i + prefix.len()..];
                    let target: String = rest
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    if target.is_empty()
                        || target == module
                        || target.chars().next().is_some_and(|c| c.is_uppercase())
                    {
                        continue;
                    }
                    if layer(&target) >= own {
                        wrong.push(format!(
                            "{}:{}: {module} (layer {own}) uses {target} (layer {})",
                            relative.display(),
                            n + 1,
                            layer(&target)
                        ));
                    }
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
