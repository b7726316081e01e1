//! Integration tests of the api crate, in one binary: the router in-process and the real
//! `videoamt` binary as a child process.

mod audit;
mod cli;
mod crash;
mod projection_crash;
mod purge_crash;
mod retention;
mod router;

/// Path of the `videoamt` binary cargo built for these tests.
fn videoamt() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_videoamt"))
}
