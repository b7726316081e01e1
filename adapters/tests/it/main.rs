//! Integration tests of the adapters crate, in one binary.

mod bus;
mod contract;
#[cfg(feature = "kurrentdb")]
mod kurrent;
#[cfg(feature = "media")]
mod media;
mod payment;
mod scripted;
mod sms;
mod support;
