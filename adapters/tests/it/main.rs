//! Integration tests of the adapters crate, in one binary.

mod contract;
mod support;
