//! The application's wiring, shared by every entry point: the `System` (store, keys, blobs,
//! data folder), the settings, the municipalities' configuration, the staff accounts' life
//! cycle, the audited audit desk and the mails' texts. `app` imports neither `http` nor `cli`.

pub mod accounts;
pub mod audit;
pub(crate) mod export;
pub(crate) mod mails;
pub mod retention;
pub mod settings;
pub mod system;
pub mod tenants;

pub use settings::Settings;
pub use system::System;
