//! Integration tests of the adapters crate, in one binary.

mod bus;
mod contract;
mod support;
