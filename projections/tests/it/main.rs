//! Integration tests of the projections: rebuild equals incremental on both backends.

mod memory;
mod rebuild;
mod statistics;
mod timetravel;
