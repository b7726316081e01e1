//! Implementations of the ports declared in `videoamt-core`.
//!
//! Heavy backends sit behind cargo features (`postgres`, `mail`, `media`, `turn`, `seal`,
//! `payment`, `oidc`; later `kurrentdb`) so that crates which need only the embedded store build
//! quickly. The `videoamt` binary enables all of them.

pub mod access;
pub mod blobs;
pub mod bus;
pub mod case_system;
#[cfg(any(feature = "payment", feature = "sms-http", feature = "oidc"))]
mod http;
#[cfg(feature = "sms-http")]
mod http_post;
pub mod inspect;
pub mod keys;
#[cfg(feature = "mail")]
pub mod mail;
#[cfg(feature = "media")]
pub mod media;
#[cfg(feature = "oidc")]
pub mod oidc;
pub mod passwords;
#[cfg(feature = "payment")]
pub mod payment;
#[cfg(feature = "seal")]
pub mod seal;
pub mod sms;
pub mod store;
pub mod tan;
#[cfg(feature = "turn")]
pub mod turn;
