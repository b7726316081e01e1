//! What `serve` spawns beside the HTTP server: the outbox worker (mail), the timers
//! (reminders, no-shows), the retention scheduler (purge and verify) and the live feed of the
//! clerks' views. Workers import neither `http` nor `cli`.

pub mod duty;
pub mod live;
pub mod outbox;
pub mod retention;
pub mod timers;
