//! What wraps every request: the security guard (headers, origin check, rate limits), the
//! time limits, the observer, and read-your-writes over the in-memory read models (`stand`) (metrics and the request log by route template).

pub mod guard;
pub(crate) mod observe;
pub mod stand;
pub mod timeouts;

pub use guard::RateLimits;
