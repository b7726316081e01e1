//! Integration tests of the core crate, in one binary: the event catalogue against the code
//! and the stored samples, and property tests of the workflow's invariants.

mod catalogue;
mod log;
mod properties;
