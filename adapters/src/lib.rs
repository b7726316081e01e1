//! Implementations of the ports declared in `videoamt-core`.
//!
//! Heavy backends sit behind cargo features (`postgres`; later `kurrentdb` and `media`) so
//! that crates which need only the embedded store build quickly. The `videoamt` binary enables
//! all of them.

pub mod access;
pub mod blobs;
pub mod bus;
pub mod keys;
#[cfg(feature = "mail")]
pub mod mail;
pub mod passwords;
pub mod store;
