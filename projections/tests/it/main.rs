//! Integration tests of the projections: rebuild equals incremental on both backends.

mod rebuild;
mod statistics;
mod timetravel;
