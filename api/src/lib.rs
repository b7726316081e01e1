//! The videoamt HTTP server and the `videoamt` command-line tool.
//!
//! This crate stays thin: it parses input, calls core through the ports, reads projections and
//! renders them. Rules live in `videoamt-core`, IO in `videoamt-adapters`. Imports point one
//! way: `cli` and `bench` → `http` → `workers` → `app`; `app` and `workers` import neither
//! `http` nor `cli`, and `http` never imports `cli` or `bench`.

pub mod app;
pub(crate) mod bench;
pub mod cli;
pub mod http;
pub mod workers;
