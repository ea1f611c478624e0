//! Finding flow files under the paths a user names.

use std::path::{Path, PathBuf};

/// The flow files found, in a stable order, and the paths that could not be read.
#[derive(Debug, Default)]
pub struct FlowFiles {
    pub files: Vec<PathBuf>,
    pub errors: Vec<String>,
}

/// Files named directly are always taken. Directories are searched recursively for `*.yaml`
/// and `*.yml`, skipping hidden folders, `target/`, and files that are not flows by name:
/// `*.test.yaml` (flow tests), `*.inputs.yaml` (input sets), `*.transcript.yaml` (golden
/// transcripts) and `*.sim.yaml` (simulator configurations).
pub fn flow_files(paths: &[PathBuf]) -> FlowFiles {
    let mut out = FlowFiles::default();
    for path in paths {
        if path.is_dir() {
            let mut found = Vec::new();
            walk(path, &is_flow_name, &mut found, &mut out.errors);
            found.sort();
            out.files.extend(found);
        } else if path.is_file() {
            out.files.push(path.clone());
        } else {
            out.errors.push(format!(
                "cannot read {}: no such file or directory",
                path.display()
            ));
        }
    }
    out
}

/// Collects the files under `dir` whose names `wanted` accepts, recursively, skipping hidden
/// folders and `target/`.
pub fn walk(dir: &Path, wanted: &dyn Fn(&str) -> bool, found: &mut Vec<PathBuf>, errors: &mut Vec<String>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            errors.push(format!("cannot read {}: {e}", dir.display()));
            return;
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            if !name.starts_with('.') && name != "target" {
                walk(&path, wanted, found, errors);
            }
        } else if wanted(&name) {
            found.push(path);
        }
    }
}

fn is_flow_name(name: &str) -> bool {
    let yaml = name.ends_with(".yaml") || name.ends_with(".yml");
    let other = [
        ".test.yaml",
        ".test.yml",
        ".inputs.yaml",
        ".inputs.yml",
        ".transcript.yaml",
        ".transcript.yml",
        ".sim.yaml",
        ".sim.yml",
    ];
    yaml && !other.iter().any(|s| name.ends_with(s))
}
