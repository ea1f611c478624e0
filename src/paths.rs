//! Finding flow files under the paths a user names.

use std::path::{Path, PathBuf};

/// The flow files found, in a stable order, and the paths that could not be read.
#[derive(Debug, Default)]
pub struct FlowFiles {
    /// Flow files in the order the paths were given; each directory's finds sorted by path.
    pub files: Vec<PathBuf>,
    /// One `cannot read <path>: <reason>` line per path or directory that could not be read.
    pub errors: Vec<String>,
}

/// Files named directly are always taken. Directories are searched recursively for `*.yaml`
/// and `*.yml`, skipping hidden folders, `target/`, and files that are not flows by name:
/// `*.inputs.yaml` (input sets), `*.transcript.yaml` (golden transcripts) and `*.sim.yaml`
/// (simulator configurations). Flow tests (`*.test.yaml`) are taken: [`is_test_file`] tells
/// them apart.
pub fn flow_files(paths: &[PathBuf]) -> FlowFiles {
    let mut out = FlowFiles::default();
    for path in paths {
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => {
                let mut found = Vec::new();
                walk(path, &is_flow_name, &mut found, &mut out.errors);
                found.sort();
                out.files.extend(found);
            }
            Ok(m) if m.is_file() => out.files.push(path.clone()),
            // A fifo, a socket or a device: reading it could wait forever.
            Ok(_) => out.errors.push(format!(
                "cannot read {}: not a regular file (a fifo, socket or device)",
                path.display()
            )),
            Err(e) => out
                .errors
                .push(format!("cannot read {}: {}", path.display(), io_words(&e))),
        }
    }
    out
}

/// `no such file or directory`, as the error's kind says it (without the OS's `(os error 2)`).
fn io_words(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        _ => e.to_string(),
    }
}

/// Collects the regular files under `dir` whose names `wanted` accepts, recursively, skipping
/// hidden folders and `target/`. A directory reached twice (a symlink cycle) is read once;
/// fifos, sockets and devices are never opened.
pub fn walk(dir: &Path, wanted: &dyn Fn(&str) -> bool, found: &mut Vec<PathBuf>, errors: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    walk_once(dir, wanted, found, errors, &mut seen);
}

fn walk_once(
    dir: &Path,
    wanted: &dyn Fn(&str) -> bool,
    found: &mut Vec<PathBuf>,
    errors: &mut Vec<String>,
    seen: &mut std::collections::HashSet<PathBuf>,
) {
    if let Ok(real) = std::fs::canonicalize(dir)
        && !seen.insert(real)
    {
        return;
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            errors.push(format!("cannot read {}: {}", dir.display(), io_words(&e)));
            return;
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        // Follows symlinks: a link to a directory is walked (once), a link to a file taken.
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            if !name.starts_with('.') && name != "target" {
                walk_once(&path, wanted, found, errors, seen);
            }
        } else if meta.is_file() && wanted(&name) {
            found.push(path);
        }
    }
}

/// Whether `path` names a flow test file (`*.test.yaml`, `*.test.yml`).
pub fn is_test_file(path: &Path) -> bool {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    name.ends_with(".test.yaml") || name.ends_with(".test.yml")
}

fn is_flow_name(name: &str) -> bool {
    let yaml = name.ends_with(".yaml") || name.ends_with(".yml");
    let other = [
        ".inputs.yaml",
        ".inputs.yml",
        ".transcript.yaml",
        ".transcript.yml",
        ".sim.yaml",
        ".sim.yml",
    ];
    yaml && !other.iter().any(|s| name.ends_with(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlink_cycles_are_walked_once_and_fifos_never_opened() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(root.join("a/b/flow.yaml"), "x").unwrap();
        // Two cycles: b → a and a → root.
        std::os::unix::fs::symlink(root.join("a"), root.join("a/b/up")).unwrap();
        std::os::unix::fs::symlink(root, root.join("a/top")).unwrap();
        let fifo = root.join("pipe.yaml");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(made.success());
        let found = flow_files(&[root.to_path_buf()]);
        assert_eq!(found.files, [root.join("a/b/flow.yaml")]);
        assert!(found.errors.is_empty(), "{:?}", found.errors);
        let named = flow_files(&[fifo.clone(), root.join("missing.yaml")]);
        assert!(named.files.is_empty());
        assert_eq!(
            named.errors,
            [
                format!(
                    "cannot read {}: not a regular file (a fifo, socket or device)",
                    fifo.display()
                ),
                format!(
                    "cannot read {}: no such file or directory",
                    root.join("missing.yaml").display()
                ),
            ]
        );
    }
}
