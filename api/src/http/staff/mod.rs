//! What staff reach after logging in: sessions, the desk (who may see what), the JSON API and
//! the pages of clerks, auditors, data-protection officers and admins, and the pages of their
//! accounts (`accounts`).

pub(crate) mod accounts;
pub(crate) mod api;
pub(crate) mod desk;
pub(crate) mod pages;
pub mod session;
pub mod signon;

pub use session::{create_account, log_in};
