//! The `flowrun` command line. It only wires the library to arguments and exit codes.

mod allocator;
mod cli;

#[global_allocator]
static GLOBAL: allocator::Mimalloc = allocator::Mimalloc;

fn main() -> std::process::ExitCode {
    cli::main()
}
