//! Duties that run in one process at a time, however many processes serve the log: the outbox
//! (every mail goes out once) and the scheduler (every timer and purge round runs once). Each
//! process that may do a duty tries to take its lease (`core::lease`); the holder renews it
//! every third of its lifetime and works, the others wait and try again. When the holder dies
//! its lease runs out and another process takes the duty over, from the duty's checkpoint.
//!
//! The holder stops working before its lease can have run out: when a renewal is refused, and
//! when renewals failed for two thirds of the lifetime (the store unreachable). A unit of work
//! already under way then finishes; a mail sent twice that way carries the same Message-ID
//! (ADR 0023).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use videoamt_adapters::store::AdminStore;
use videoamt_core::lease::Duty;

/// The outbox worker's duty.
pub const OUTBOX: Duty = "outbox";
/// The scheduler's duty: timers, purges, deletion verifications.
pub const SCHEDULER: Duty = "scheduler";

/// This process's name as a lease holder: unique per start.
pub fn holder() -> String {
    let uuid = uuid::Uuid::now_v7().simple().to_string();
    format!("{}-{}", std::process::id(), &uuid[uuid.len() - 12..])
}

/// Runs `work` while this process holds `duty`, until `stop` turns true; then gives the duty
/// up. `work` gets a receiver that turns true when it must stop (the duty was lost, or the
/// process stops), and is started again whenever the duty is taken again.
pub async fn hold<F, W>(
    store: Arc<dyn AdminStore>,
    duty: Duty,
    holder: String,
    ttl: Duration,
    mut stop: watch::Receiver<bool>,
    work: F,
) where
    F: Fn(watch::Receiver<bool>) -> W,
    W: Future<Output = ()> + Send + 'static,
{
    let every = ttl / 3;
    loop {
        if *stop.borrow() {
            return;
        }
        match store.acquire(duty, &holder, ttl).await {
            Ok(true) => {}
            Ok(false) => {
                if wait(&mut stop, every).await {
                    return;
                }
                continue;
            }
            Err(e) => {
                tracing::warn!(duty, error = %e, "cannot ask for the duty's lease; retrying");
                if wait(&mut stop, every).await {
                    return;
                }
                continue;
            }
        }
        tracing::info!(duty, holder, "duty taken");
        let mut renewed = Instant::now();
        let (halt, halted) = watch::channel(false);
        let mut task = tokio::spawn(work(halted));
        let mut ticks = tokio::time::interval_at(Instant::now() + every, every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let stopping = loop {
            tokio::select! {
                _ = ticks.tick() => match store.acquire(duty, &holder, ttl).await {
                    Ok(true) => renewed = Instant::now(),
                    Ok(false) => {
                        tracing::warn!(duty, "duty lost to another process");
                        break false;
                    }
                    Err(e) => {
                        tracing::warn!(duty, error = %e, "cannot renew the duty's lease");
                        if renewed.elapsed() >= ttl - every {
                            tracing::warn!(duty, "duty given up: its lease may run out");
                            break false;
                        }
                    }
                },
                _ = stop.changed() => break true,
                ended = &mut task => {
                    // The work ends only when told to; anything else is a failure, retried.
                    if let Err(e) = ended {
                        tracing::error!(duty, error = %e, "duty's work failed");
                    }
                    task = tokio::spawn(std::future::ready(()));
                    break false;
                }
            }
        };
        let _ = halt.send(true);
        let _ = (&mut task).await;
        if stopping {
            // The next holder need not wait for the lease to run out.
            if let Err(e) = store.release(duty, &holder).await {
                tracing::warn!(duty, error = %e, "duty's lease not given up");
            }
            return;
        }
        if wait(&mut stop, every).await {
            return;
        }
    }
}

/// Waits `pause`, or less when `stop` turns true; whether it did.
async fn wait(stop: &mut watch::Receiver<bool>, pause: Duration) -> bool {
    tokio::select! {
        () = tokio::time::sleep(pause) => *stop.borrow(),
        _ = stop.changed() => true,
    }
}
