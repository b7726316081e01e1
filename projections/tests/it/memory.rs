//! The hot read models in memory: seeded from the database copy, kept current by their own
//! runner, bounded by the horizon, and waiting for a caller's own write only.

use std::sync::Arc;

use time::macros::{date, datetime};
use time::{Date, Duration, OffsetDateTime};
use uuid::Uuid;
use videoamt_adapters::bus::CommandBus;
use videoamt_adapters::keys::Keyring;
use videoamt_adapters::store::AdminStore;
use videoamt_adapters::store::sqlite::SqliteStore;
use videoamt_core::domain::AppointmentId;
use videoamt_core::domain::appointment::AppointmentCommand;
use videoamt_core::domain::events::CancelledBy;
use videoamt_core::event::ActorRole;
use videoamt_core::readmodel::{DocKey, ReadModelStore};
use videoamt_core::tenant::{Tenant, example_tenants};
use videoamt_projections::memory::{self, MemoryModels};
use videoamt_projections::runner::Runner;
use videoamt_projections::{Projection, all, schedule, slots};

use crate::rebuild::{booking, issued, tenants};

struct World {
    store: Arc<dyn AdminStore>,
    bus: CommandBus,
    _dir: tempfile::TempDir,
}

impl World {
    async fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let store: Arc<dyn AdminStore> = Arc::new(
            SqliteStore::open(dir.path().join("events.db"))
                .await
                .expect("open"),
        );
        let bus = CommandBus::new(
            store.clone(),
            Keyring::ephemeral(store.clone()),
            example_tenants().expect("valid"),
        );
        Self {
            store,
            bus,
            _dir: dir,
        }
    }

    async fn book(&self, start: OffsetDateTime) -> AppointmentId {
        let appointment = AppointmentId(Uuid::now_v7());
        let command = booking(appointment, start, "Erika Muster", "erika@example.org");
        self.bus
            .execute(
                &command.into(),
                &issued(datetime!(2026-11-23 07:00 UTC), ActorRole::Citizen),
            )
            .await
            .expect("booked");
        appointment
    }

    async fn cancel(&self, appointment: AppointmentId) {
        let command = AppointmentCommand::CancelAppointment {
            appointment,
            by: CancelledBy::CitizenByLink,
            reason: None,
        };
        self.bus
            .execute(
                &command.into(),
                &issued(datetime!(2026-11-23 07:00 UTC), ActorRole::Citizen),
            )
            .await
            .expect("cancelled");
    }

    /// The database copy brought up to the log's end.
    async fn database_caught_up(&self) {
        Runner::new(self.store.clone(), self.store.clone())
            .catch_up(&all(tenants()))
            .await
            .expect("caught up");
    }

    fn memory(&self, today: Date) -> Arc<MemoryModels> {
        Arc::new(MemoryModels::new(
            memory::hot(tenants()),
            self.store.clone(),
            Arc::new(move || today),
        ))
    }
}

fn hot() -> Vec<Arc<dyn Projection>> {
    memory::hot(tenants())
        .into_iter()
        .map(|h| h.projection)
        .collect()
}

fn ettlingen() -> Tenant {
    example_tenants()
        .expect("valid")
        .into_iter()
        .find(|t| t.id.as_str() == "ettlingen")
        .expect("Ettlingen is an example")
}

async fn appointments_on(models: &dyn ReadModelStore, day: Date) -> Vec<AppointmentId> {
    let tenant = ettlingen();
    schedule::for_departments(models, &tenant, [&"buergerbuero".into()], day, 1)
        .await
        .expect("schedule")
        .into_iter()
        .flat_map(|d| d.appointments)
        .map(|a| a.appointment)
        .collect()
}

async fn free_on(models: &dyn ReadModelStore, day: Date) -> Vec<OffsetDateTime> {
    slots::free_slots(
        models,
        &ettlingen(),
        &["meldebescheinigung".into()],
        day,
        datetime!(2026-11-23 07:00 UTC),
    )
    .await
    .expect("slots")
}

/// The slots held on 24 November, as the free-slots read model has them.
async fn reservations(models: &dyn ReadModelStore) -> usize {
    let day = DocKey::new("day", "ettlingen/buergerbuero/2026-11-24");
    models
        .get(slots::NAME, std::slice::from_ref(&day))
        .await
        .expect("get")
        .first()
        .and_then(|(_, v)| v.get("reservations")?.as_object().map(|r| r.len()))
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_come_from_memory_which_follows_the_log_on_its_own() {
    // Given three bookings folded into the database copy, and the memory copy seeded from it
    let world = World::new().await;
    let day = date!(2026 - 11 - 24);
    for i in 0..3 {
        world
            .book(datetime!(2026-11-24 07:00 UTC) + Duration::minutes(15 * i))
            .await;
    }
    world.database_caught_up().await;
    let memory = world.memory(date!(2026 - 11 - 23));
    memory.seed().await.expect("seeded");
    for p in hot() {
        assert_eq!(
            memory.dump(p.name()).await.expect("memory"),
            world.store.dump(p.name()).await.expect("database"),
            "{} seeded as stored",
            p.name()
        );
    }
    let free_before = free_on(world.store.as_ref(), day).await;
    let (first, last) = (free_before[0], free_before[free_before.len() - 1]);

    // When two more are booked and only the memory copy's own runner folds them
    let later = [world.book(first).await, world.book(last).await];
    Runner::new(world.store.clone(), memory.clone())
        .catch_up(&hot())
        .await
        .expect("memory caught up");

    // Then the reads through memory see five appointments and five held slots; the database
    // copy, not yet folded, still three: the reads did not go to it
    let seen = appointments_on(memory.as_ref(), day).await;
    assert_eq!(seen.len(), 5);
    assert!(later.iter().all(|a| seen.contains(a)));
    assert_eq!(appointments_on(world.store.as_ref(), day).await.len(), 3);
    assert_eq!(reservations(memory.as_ref()).await, 5);
    assert_eq!(reservations(world.store.as_ref()).await, 3);

    // And once the database copy folds them too, both copies are the same documents
    world.database_caught_up().await;
    for p in hot() {
        assert_eq!(
            memory.dump(p.name()).await.expect("memory"),
            world.store.dump(p.name()).await.expect("database"),
            "{} folds alike in memory and in the database",
            p.name()
        );
        assert_eq!(
            memory.checkpoint(p.name()).await.expect("memory").position,
            world.store.checkpoint(p.name()).await.expect("db").position,
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn days_before_the_horizon_leave_memory_and_are_read_from_the_database() {
    // Given an appointment on 24 November and one on 20 December, in the database copy
    let world = World::new().await;
    let old = world.book(datetime!(2026-11-24 07:00 UTC)).await;
    let recent = world.book(datetime!(2026-12-21 08:00 UTC)).await;
    world.database_caught_up().await;

    // When memory is seeded on 15 December (24 November is more than 14 days back)
    let memory = world.memory(date!(2026 - 12 - 15));
    memory.seed().await.expect("seeded");

    // Then it holds December's documents only: the entry and place of one appointment, one
    // day of free slots
    let held: std::collections::BTreeMap<&str, usize> = memory
        .holding()
        .into_iter()
        .map(|h| (h.projection, h.documents))
        .collect();
    let keys = |docs: Vec<(DocKey, serde_json::Value)>| -> Vec<String> {
        docs.into_iter()
            .map(|(k, _)| format!("{}:{}", k.kind, k.key))
            .collect()
    };
    let schedule_keys = keys(memory.dump(schedule::NAME).await.expect("dump"));
    let slot_keys = keys(memory.dump(slots::NAME).await.expect("dump"));
    assert_eq!(held[schedule::NAME], 2, "{schedule_keys:?}");
    assert_eq!(held[slots::NAME], 1, "{slot_keys:?}");
    let all_held = memory.dump(schedule::NAME).await.expect("dump");
    assert!(all_held.iter().all(|(k, _)| !k.key.contains("2026-11-24")));

    // And a read of the old day still answers, from the database copy
    assert_eq!(
        appointments_on(memory.as_ref(), date!(2026 - 11 - 24)).await,
        vec![old]
    );
    assert_eq!(
        appointments_on(memory.as_ref(), date!(2026 - 12 - 21)).await,
        vec![recent]
    );
    let place = DocKey::new("place", old.to_string());
    assert_eq!(
        memory
            .get(schedule::NAME, std::slice::from_ref(&place))
            .await
            .expect("get")
            .len(),
        1,
        "a dropped place is fetched from the database"
    );

    // And folding a change of the old appointment works and keeps it out of memory
    world.cancel(old).await;
    Runner::new(world.store.clone(), memory.clone())
        .catch_up(&hot())
        .await
        .expect("memory caught up");
    let held: std::collections::BTreeMap<&str, usize> = memory
        .holding()
        .into_iter()
        .map(|h| (h.projection, h.documents))
        .collect();
    assert_eq!(held[schedule::NAME], 2, "{held:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_after_its_own_write_waits_for_that_position_only() {
    // Given memory seeded and caught up
    let world = World::new().await;
    let day = date!(2026 - 11 - 24);
    world.book(datetime!(2026-11-24 07:00 UTC)).await;
    world.database_caught_up().await;
    let memory = world.memory(date!(2026 - 11 - 23));
    memory.seed().await.expect("seeded");

    // When a booking is written and its position known, before memory folds it
    let mine = world.book(datetime!(2026-11-24 08:00 UTC)).await;
    let written = world.store.last_position().await.expect("head");

    // Then a plain read answers at once without it
    assert_eq!(appointments_on(memory.as_ref(), day).await.len(), 1);
    // And a read that must see the write waits
    let mut own = Box::pin(memory::must_see(
        written,
        appointments_on(memory.as_ref(), day),
    ));
    assert!(futures::poll!(&mut own).is_pending(), "waits for its write");
    // And a read that must see an earlier position does not
    let seeded = memory
        .checkpoint(schedule::NAME)
        .await
        .expect("cp")
        .position;
    let earlier = memory::must_see(seeded, appointments_on(memory.as_ref(), day));
    assert_eq!(earlier.await.len(), 1);

    // And once memory folds the write, the waiting read answers with it
    Runner::new(world.store.clone(), memory.clone())
        .catch_up(&hot())
        .await
        .expect("memory caught up");
    let seen = own.await;
    assert_eq!(seen.len(), 2);
    assert!(seen.contains(&mine));
}
