//! What staff reach after logging in: sessions, the desk (who may see what), the JSON API and
//! the pages of clerks, auditors, data-protection officers and admins, the pages of their
//! accounts (`accounts`), the throttle of failed logins (`throttle`) and the cap on live
//! streams per session (`streams`).

pub(crate) mod accounts;
pub(crate) mod api;
pub(crate) mod desk;
pub(crate) mod pages;
pub mod session;
pub mod signon;
pub(crate) mod streams;
pub(crate) mod throttle;

pub use session::{create_account, log_in};
