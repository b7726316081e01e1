//! The `videoamt` command-line tool: serves the product and operates its store.

fn main() -> std::process::ExitCode {
    videoamt_api::cli::main()
}
