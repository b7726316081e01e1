//! What `serve` spawns beside the HTTP server: the outbox worker (mail), the timers
//! (reminders, no-shows) and the retention scheduler (purge and verify). Workers import
//! neither `http` nor `cli`.

pub mod outbox;
pub mod retention;
pub mod timers;
