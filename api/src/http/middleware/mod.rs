//! What wraps every request: the security guard (headers, origin check, rate limits), the
//! time limits, and the observer (metrics and the request log by route template).

pub mod guard;
pub(crate) mod observe;
pub mod timeouts;

pub use guard::RateLimits;
