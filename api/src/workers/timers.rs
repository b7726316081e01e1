//! Fires the appointments' due timers (the reminder a day before, the no-show check after the
//! start) from the due-timer projection. Each command decides idempotently (a reminder is sent
//! once, a no-show recorded once, neither for a cancelled or finished appointment), so firing a
//! timer again after a crash, or before the projection has removed it, changes nothing.

use time::OffsetDateTime;
use uuid::Uuid;
use videoamt_adapters::bus::{BusError, Issued};
use videoamt_core::event::{Actor, ActorRole, TenantId};
use videoamt_projections::timers::{self, AppointmentTimer, TimerKind};

use crate::app::System;

/// Timers fired per kind and round at most; the rest wait for the next round.
const PAGE: u32 = 500;

/// Fires every reminder and no-show timer due at `now`; returns how many commands ran.
pub async fn fire_due(system: &System, now: OffsetDateTime) -> anyhow::Result<usize> {
    let bus = system.bus();
    let actor = Actor::new(ActorRole::System, "scheduler")?;
    let mut fired = 0;
    for kind in [TimerKind::Reminder, TimerKind::NoShow] {
        let due =
            timers::due::<AppointmentTimer>(system.store.as_ref(), kind, now, "", PAGE).await?;
        for (_, timer) in due {
            let Some(command) = timer.command(kind) else {
                continue;
            };
            let issued = Issued {
                tenant: TenantId::parse(&timer.tenant)?,
                actor: actor.clone(),
                correlation_id: timer.appointment.0,
                command_id: Uuid::now_v7(),
                now,
            };
            match bus.execute(&command, &issued).await {
                Ok(_) => fired += 1,
                Err(BusError::Refused(e)) => {
                    tracing::info!(refusal = %e, "timer refused by the workflow");
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(fired)
}
