//! The videoamt HTTP server and the `videoamt` command-line tool.
//!
//! This crate stays thin: it parses input, calls core through the ports, reads projections and
//! renders them. Rules live in `videoamt-core`, IO in `videoamt-adapters`.

pub mod audit;
pub mod bench;
pub mod bench_api;
pub mod bench_projections;
pub mod bench_retention;
pub mod cli;
pub mod mails;
pub mod ops;
pub mod outbox;
pub mod problem;
pub mod retention;
pub mod server;
pub mod system;
pub mod timers;
pub mod web;
