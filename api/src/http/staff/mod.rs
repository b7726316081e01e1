//! What staff reach after logging in: sessions, the desk (who may see what), the JSON API and
//! the pages of clerks, auditors, data-protection officers and admins, the pages of their
//! accounts (`accounts`), and the throttle of failed logins (`throttle`).

pub(crate) mod accounts;
pub(crate) mod api;
pub(crate) mod desk;
pub(crate) mod pages;
pub mod session;
pub mod signon;
pub(crate) mod throttle;

pub use session::{create_account, log_in};
