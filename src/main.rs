//! The `flowrun` command line. It only wires the library to arguments and exit codes.

mod cli;

// A batch allocates small JSON maps and strings for every request from two threads at once;
// mimalloc's per-thread free lists ran the inbound benchmark 20% faster than glibc's malloc
// (bench/batch.sh, concurrency 64: median 20,300 against 16,600 requests/s), for about 10 MiB
// more resident memory.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cli::main()
}
