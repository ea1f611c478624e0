//! `flowrun sim`: the Interaction Service simulator as a server.

use super::exit;
use flowrun::sim::{SimConfig, environment, start};
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct Args {
    /// Port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 8787)]
    port: u16,
    /// The simulator's configuration (YAML). Default: the built-in one, which the shipped flows
    /// and their example inputs match.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

/// The configuration in `path`, or the built-in one.
pub fn load_config(path: Option<&Path>) -> Result<SimConfig, u8> {
    let Some(path) = path else {
        return Ok(SimConfig::default());
    };
    if let Err(e) = std::fs::metadata(path) {
        super::error(format_args!("cannot read {}: {e}", path.display()));
        return Err(exit::USAGE);
    }
    SimConfig::read(path).map_err(|e| {
        super::error(format_args!("{e}"));
        exit::INVALID
    })
}

/// Starts the simulator in the background and points `world`'s environment at it (its
/// variables over the process's): what `--sim` does. Keep the result alive while it is used.
pub fn attach(world: &mut flowrun::World, config: Option<&Path>) -> Result<flowrun::sim::Running, u8> {
    let config = load_config(config)?;
    let running = flowrun::sim::start_in_background(config).map_err(|e| {
        super::error(format_args!("cannot start the simulator: {e}"));
        exit::USAGE
    })?;
    let overlay = environment(&running);
    let outer = world.env.clone();
    world.env = std::sync::Arc::new(move |name| {
        overlay
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .or_else(|| outer(name))
    });
    Ok(running)
}

pub fn run(args: Args) -> u8 {
    let config = match load_config(args.config.as_deref()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            super::error(format_args!("{e}"));
            return exit::USAGE;
        }
    };
    runtime.block_on(async {
        let running = match start(config, ([127, 0, 0, 1], args.port).into()).await {
            Ok(r) => r,
            Err(e) => {
                super::error(format_args!("cannot listen on 127.0.0.1:{}: {e}", args.port));
                return exit::USAGE;
            }
        };
        println!(
            "Interaction Service simulator on {} (Ctrl-C stops it)",
            running.base_url()
        );
        println!("Point a flow at it with:");
        for (k, v) in environment(&running) {
            println!("  export {k}='{v}'");
        }
        println!(
            "State: GET {0}/sim/state   Reset: POST {0}/sim/reset",
            running.base_url()
        );
        let _ = flowrun::signals::stop_requested().await;
        exit::OK
    })
}
