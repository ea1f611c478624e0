//! `flowrun init [DIR]`: a partner project that passes its own `flowrun check .` and
//! `flowrun test .` from the start — the shipped flows, input examples, flow tests with their
//! goldens, a simulator configuration, the editor schemas, a `.gitignore` and a CI script.

use super::exit;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct Args {
    /// Where to create the project (created if missing). Default: the current directory.
    #[arg(value_name = "DIR", default_value = ".")]
    dir: PathBuf,
}

/// Files copied from flowrun's own tree, as shipped.
macro_rules! shipped {
    ($($path:literal,)*) => {
        &[$(($path, include_str!(concat!("../../", $path)))),*]
    };
}

const SHIPPED: &[(&str, &str)] = shipped!(
    "flows/connections/salesforce.yaml",
    "flows/inbound.yaml",
    "flows/transfer.yaml",
    "flows/transfer-route-first.yaml",
    "flows/examples/inbound.inputs.yaml",
    "flows/examples/transfer.inputs.yaml",
    "flows/examples/inbound.runs.jsonl",
    "flows/tests/inbound-agent-fails.transcript.yaml",
    "flows/tests/inbound-consent-rejected.transcript.yaml",
    "flows/tests/inbound-happy.transcript.yaml",
    "flows/tests/inbound-no-agent.transcript.yaml",
    "flows/tests/inbound-route-fails.transcript.yaml",
    "flows/tests/inbound-route-retry.transcript.yaml",
    "flows/tests/inbound.test.yaml",
    "flows/tests/salesforce-consent.sim.yaml",
    "flows/tests/transfer-agent.transcript.yaml",
    "flows/tests/transfer-external.transcript.yaml",
    "flows/tests/transfer-flow.transcript.yaml",
    "flows/tests/transfer-queue.transcript.yaml",
    "flows/tests/transfer-route-first-agent-fails.transcript.yaml",
    "flows/tests/transfer-route-first-agent.transcript.yaml",
    "flows/tests/transfer-route-first-external.transcript.yaml",
    "flows/tests/transfer-route-first-fails.transcript.yaml",
    "flows/tests/transfer-route-first-flow.transcript.yaml",
    "flows/tests/transfer-route-first-queue.transcript.yaml",
    "flows/tests/transfer-route-first.test.yaml",
    "flows/tests/transfer.test.yaml",
    "schemas/flow.schema.json",
    "schemas/flow-test.schema.json",
);

const GITIGNORE: &str =
    "# flowrun's outputs\nresults.jsonl\nreport.json\njunit.xml\n*.transcript.actual.yaml\n";

const CI: &str = "#!/usr/bin/env bash\n# Run in CI: every flow checked (nothing is sent), every flow test against the simulator.\nset -euo pipefail\nflowrun check flows\nflowrun test flows --junit flowrun-junit.xml\n";

const README: &str = "# Flows\n\n\
- `flows/*.yaml`: the flows (inbound; transfer, in both documented orders).\n\
- `flows/connections/salesforce.yaml`: the connection every flow uses (`connection: { use: ... }`).\n\
- `flows/examples/`: inputs for each flow; `flowrun run flows/inbound.yaml --sim --inputs flows/examples/inbound.inputs.yaml`.\n\
- `flows/tests/`: flow tests and their golden transcripts; `flowrun test flows` (`--update` after an intended change).\n\
- `flowrun.sim.yaml`: the simulator's configuration, to edit for your org's ids; `flowrun sim --config flowrun.sim.yaml`.\n\
- `ci/flowrun.sh`: what CI runs.\n";

pub fn run(args: Args) -> u8 {
    let sim = flowrun::report::transcript::to_yaml(
        &serde_json::to_value(flowrun::sim::SimConfig::default()).unwrap_or_default(),
    );
    let sim = format!(
        "# The simulator's org: channels, queues, flows, users. `flowrun sim --config flowrun.sim.yaml`\n{sim}"
    );
    let mut files: Vec<(String, String)> = SHIPPED
        .iter()
        .map(|(p, text)| (p.to_string(), text.to_string()))
        .collect();
    files.push((".gitignore".into(), GITIGNORE.into()));
    files.push(("ci/flowrun.sh".into(), CI.into()));
    files.push(("FLOWS.md".into(), README.into()));
    files.push(("flowrun.sim.yaml".into(), sim));
    // Nothing is overwritten: every file is checked before the first is written.
    let existing: Vec<String> = files
        .iter()
        .map(|(p, _)| args.dir.join(p))
        .filter(|p| p.exists())
        .map(|p| p.display().to_string())
        .collect();
    if !existing.is_empty() {
        super::error(format_args!("these files exist already; nothing was written:"));
        for p in &existing {
            eprintln!("  {p}");
        }
        return exit::USAGE;
    }
    for (path, text) in &files {
        if let Err(e) = write(&args.dir.join(path), text, path.ends_with(".sh")) {
            super::error(format_args!(
                "cannot write {}: {e}",
                args.dir.join(path).display()
            ));
            return exit::USAGE;
        }
    }
    println!(
        "created a flowrun project in {} ({} files)",
        args.dir.display(),
        files.len()
    );
    println!(
        "next: flowrun check {0}/flows && flowrun test {0}/flows",
        args.dir.display()
    );
    exit::OK
}

fn write(path: &Path, text: &str, executable: bool) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, text)?;
    #[cfg(unix)]
    if executable {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    }
    #[cfg(not(unix))]
    let _ = executable;
    Ok(())
}
