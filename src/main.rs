//! The `flowrun` command line. It only wires the library to arguments and exit codes.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
