//! The `videoamt` command-line tool: serves the product and operates its store.

/// Folding projections on several tasks allocates a lot of small, short-lived values; the
/// system allocator's arena locks made the tasks wait on each other.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    videoamt_api::cli::main()
}
