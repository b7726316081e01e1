//! The command bus against real stores: bookers of different slots never conflict, races for
//! a slot resolve into exactly one winner per place and clear refusals for the rest; commands
//! executed together keep their own results.

use std::sync::Arc;

use time::macros::{date, datetime};
use time::{Date, OffsetDateTime, PrimitiveDateTime, Time};
use uuid::Uuid;
use videoamt_adapters::bus::{BusError, CommandBus, Issued};
use videoamt_adapters::keys::Keyring;
use videoamt_core::domain::appointment::AppointmentCommand;
use videoamt_core::domain::appointment::BookAppointment;
use videoamt_core::domain::calendar::{self, CalendarState, SlotState};
use videoamt_core::domain::command::Command;
use videoamt_core::domain::events::Contact;
use videoamt_core::domain::{AppointmentId, DomainError, DomainEvent, Personal, SubjectId};
use videoamt_core::event::{
    Actor, ActorRole, GlobalPosition, RecordedEvent, StreamId, StreamVersion, TenantId,
};
use videoamt_core::keys::{KeyStore as _, Revealed, reveal};
use videoamt_core::store::{
    AppendBatch, AppendError, Appended, EventStore, EventStream, StoreError,
};
use videoamt_core::tenant::{
    BookingChannel, DepartmentId, EXAMPLE_TENANTS, Tenant, example_tenants,
};

use crate::contract::Backend;

/// Monday 23 November 2026, 08:00 in Germany.
const NOW: OffsetDateTime = datetime!(2026-11-23 07:00 UTC);

fn issued(now: OffsetDateTime) -> Issued {
    Issued {
        tenant: TenantId::parse("stuttgart").expect("valid"),
        actor: Actor::new(ActorRole::Citizen, "booking-page").expect("valid"),
        correlation_id: Uuid::now_v7(),
        command_id: Uuid::now_v7(),
        now,
    }
}

pub(crate) async fn sixty_four_bookers_ten_slots<B: Backend>(b: &B) {
    let store = b.open().await;
    let bus = CommandBus::new(
        store.clone(),
        Keyring::ephemeral(store.clone()),
        example_tenants().expect("examples are valid"),
    );
    let stuttgart = bus
        .tenant(&TenantId::parse("stuttgart").expect("valid"))
        .expect("tenant")
        .clone();
    let department = DepartmentId::from("ordnung-waffen");
    let dept = stuttgart
        .department(&department)
        .expect("department")
        .clone();
    assert_eq!(dept.capacity, 1);
    // Thursday 26 November 2026: the first ten 30-minute slots.
    let day = date!(2026 - 11 - 26);
    let starts: Vec<OffsetDateTime> = CalendarState::default()
        .free_starts(&dept, day.weekday(), 1)
        .into_iter()
        .take(10)
        .map(|minute| {
            let time = Time::from_hms(
                u8::try_from(minute / 60).expect("hour"),
                u8::try_from(minute % 60).expect("minute"),
                0,
            )
            .expect("valid time");
            stuttgart.instant(PrimitiveDateTime::new(day, time))
        })
        .collect();
    assert_eq!(starts.len(), 10);

    let bookers = (0..64u32).map(|i| {
        let bus = bus.clone();
        let start = starts[i as usize % 10];
        let department = department.clone();
        tokio::spawn(async move {
            let command = AppointmentCommand::BookAppointment(BookAppointment {
                appointment: AppointmentId(Uuid::now_v7()),
                subject: SubjectId(Uuid::now_v7()),
                department,
                services: vec!["jagdschein".into()],
                start,
                channel: BookingChannel::Online,
                invited_by: None,
                contact: Contact {
                    name: Personal::plain(format!("Bürger {i}")),
                    email: Personal::plain(format!("buerger{i}@example.org")),
                    phone: None,
                },
                access: None,
            })
            .into();
            bus.execute(&command, &issued(NOW)).await
        })
    });
    let results: Vec<_> = futures::future::join_all(bookers)
        .await
        .into_iter()
        .map(|r| r.expect("booker task"))
        .collect();
    let won = results.iter().filter(|r| r.is_ok()).count();
    let taken = results
        .iter()
        .filter(|r| matches!(r, Err(BusError::Refused(DomainError::SlotTaken))))
        .count();
    let other: Vec<_> = results
        .iter()
        .filter_map(|r| r.as_ref().err())
        .filter(|e| !matches!(e, BusError::Refused(DomainError::SlotTaken)))
        .collect();
    assert!(other.is_empty(), "unexpected outcomes: {other:?}");
    assert_eq!((won, taken), (10, 54));
    // Bookers of one process queue for a slot instead of racing for it: no one decides twice.
    for done in results.iter().filter_map(|r| r.as_ref().ok()) {
        assert_eq!(done.attempts, 1);
    }

    // Each slot holds exactly one appointment, and the log is sound.
    for start in &starts {
        let minute = calendar::minute_of(stuttgart.local(*start).time());
        let slot = slot_state(
            store.as_ref(),
            &calendar::slot_stream(&stuttgart, &department, day, minute),
        )
        .await;
        assert_eq!(slot.holders.len(), 1);
    }
    let report = store.verify().await.expect("verify");
    assert!(report.is_ok(), "{:?}", report.problems);
}

async fn slot_state(store: &dyn EventStore, stream: &StreamId) -> SlotState {
    let events = store.read_stream(stream, 0).await.expect("read");
    events.iter().fold(SlotState::default(), |s, e| {
        let event = DomainEvent::from_payload(e.event_type.as_str(), e.schema_version, &e.payload)
            .expect("decodes");
        s.evolve(&event)
    })
}

/// Ettlingen with a consultation hour of 96 five-minute slots each weekday (08:00–16:00), one
/// place each.
fn with_short_slots() -> Tenant {
    let (file, text) = EXAMPLE_TENANTS
        .iter()
        .find(|(f, _)| f.contains("ettlingen"))
        .expect("example exists");
    let text = format!(
        r#"{text}
[[departments]]
id = "sprechstunde"
name = "Sprechstunde"
slot_minutes = 5
capacity = 1
hours = [{{ days = ["mo", "di", "mi", "do", "fr"], from = "08:00", to = "16:00" }}]

[[services]]
id = "kurzberatung"
department = "sprechstunde"
name = "Kurzberatung"
duration_minutes = 5
fee_cents = 0
"#
    );
    Tenant::from_toml(file, &text).expect("valid tenant")
}

fn booking_of(
    tenant: &Tenant,
    department: &str,
    service: &str,
    day: Date,
    minute: u16,
    i: u32,
) -> Command {
    let time = Time::from_hms(
        u8::try_from(minute / 60).expect("hour"),
        u8::try_from(minute % 60).expect("minute"),
        0,
    )
    .expect("valid time");
    AppointmentCommand::BookAppointment(BookAppointment {
        appointment: AppointmentId(Uuid::now_v7()),
        subject: SubjectId(Uuid::now_v7()),
        department: department.into(),
        services: vec![service.into()],
        start: tenant.instant(PrimitiveDateTime::new(day, time)),
        channel: BookingChannel::Online,
        invited_by: None,
        contact: Contact {
            name: Personal::plain(format!("Bürger {i}")),
            email: Personal::plain(format!("buerger{i}@example.org")),
            phone: None,
        },
        access: None,
    })
    .into()
}

fn issued_for(tenant: &Tenant) -> Issued {
    Issued {
        tenant: tenant.id.clone(),
        ..issued(NOW)
    }
}

/// Bookings of different slots share no stream they write, so none of 64 racing bookers of one
/// day has to decide twice.
pub(crate) async fn sixty_four_bookers_sixty_four_slots_decide_once<B: Backend>(b: &B) {
    let store = b.open().await;
    let tenant = with_short_slots();
    let bus = CommandBus::new(
        store.clone(),
        Keyring::ephemeral(store.clone()),
        [tenant.clone()],
    );
    let dept = tenant
        .department(&"sprechstunde".into())
        .expect("department")
        .clone();
    let day = date!(2026 - 11 - 26);
    let minutes: Vec<u16> = CalendarState::default()
        .free_starts(&dept, day.weekday(), 1)
        .into_iter()
        .take(64)
        .collect();
    assert_eq!(minutes.len(), 64);
    let bookers = minutes.iter().enumerate().map(|(i, &minute)| {
        let bus = bus.clone();
        let command = booking_of(
            &tenant,
            "sprechstunde",
            "kurzberatung",
            day,
            minute,
            i as u32,
        );
        let issued = issued_for(&tenant);
        tokio::spawn(async move { bus.execute(&command, &issued).await })
    });
    let results: Vec<_> = futures::future::join_all(bookers)
        .await
        .into_iter()
        .map(|r| r.expect("booker task"))
        .collect();
    for result in &results {
        let done = result.as_ref().expect("every booker books");
        assert_eq!(done.attempts, 1, "decided once");
    }
    for &minute in &minutes {
        let slot = slot_state(
            store.as_ref(),
            &calendar::slot_stream(&tenant, &dept.id, day, minute),
        )
        .await;
        assert_eq!(slot.holders.len(), 1);
    }
    let report = store.verify().await.expect("verify");
    assert!(report.is_ok(), "{:?}", report.problems);
}

/// Two bookers for the last place of a slot: exactly one wins, the other is told the slot was
/// just taken. Once in one process (they queue) and once from two (they race for the slot
/// stream's version).
pub(crate) async fn two_bookers_for_the_last_place_one_wins<B: Backend>(b: &B) {
    let store = b.open().await;
    let keys = Keyring::ephemeral(store.clone());
    let tenants = example_tenants().expect("valid");
    let ettlingen = tenants
        .iter()
        .find(|t| t.id.as_str() == "ettlingen")
        .expect("ettlingen")
        .clone();
    let dept = ettlingen
        .department(&"buergerbuero".into())
        .expect("department")
        .clone();
    assert_eq!(dept.capacity, 2);
    let day = date!(2026 - 11 - 26);
    let one = CommandBus::new(store.clone(), keys.clone(), tenants.clone());
    let other = CommandBus::new(store.clone(), keys, tenants);
    for (minute, second_bus) in [(9 * 60, &one), (10 * 60, &other)] {
        let book = |i| {
            booking_of(
                &ettlingen,
                "buergerbuero",
                "meldebescheinigung",
                day,
                minute,
                i,
            )
        };
        one.execute(&book(0), &issued_for(&ettlingen))
            .await
            .expect("the first place is free");
        let (a, b) = (book(1), book(2));
        let issued = issued_for(&ettlingen);
        let (a, b) = tokio::join!(one.execute(&a, &issued), second_bus.execute(&b, &issued));
        let outcomes = [a, b];
        let won = outcomes.iter().filter(|r| r.is_ok()).count();
        let taken = outcomes
            .iter()
            .filter(|r| matches!(r, Err(BusError::Refused(DomainError::SlotTaken))))
            .count();
        assert_eq!((won, taken), (1, 1), "{outcomes:?}");
        let slot = slot_state(
            store.as_ref(),
            &calendar::slot_stream(&ettlingen, &dept.id, day, minute),
        )
        .await;
        assert_eq!(slot.holders.len(), 2);
    }
    let report = store.verify().await.expect("verify");
    assert!(report.is_ok(), "{:?}", report.problems);
}

pub(crate) async fn refusals_write_nothing_and_retries_are_counted<B: Backend>(b: &B) {
    let store = b.open().await;
    let bus = Arc::new(CommandBus::new(
        store.clone(),
        Keyring::ephemeral(store.clone()),
        example_tenants().expect("valid"),
    ));
    let outside = AppointmentCommand::BookAppointment(BookAppointment {
        appointment: AppointmentId(Uuid::now_v7()),
        subject: SubjectId(Uuid::now_v7()),
        department: "ordnung-waffen".into(),
        services: vec!["jagdschein".into()],
        start: datetime!(2026-11-26 05:00 UTC), // 06:00, before opening
        channel: BookingChannel::Online,
        invited_by: None,
        contact: Contact {
            name: Personal::plain("A"),
            email: Personal::plain("a@example.org"),
            phone: None,
        },
        access: None,
    })
    .into();
    let refused = bus.execute(&outside, &issued(NOW)).await;
    assert!(
        matches!(
            refused,
            Err(BusError::Refused(DomainError::OutsideOpeningHours))
        ),
        "{refused:?}"
    );
    assert_eq!(store.last_position().await.expect("head"), 0);

    let mut unknown = issued(NOW);
    unknown.tenant = TenantId::parse("atlantis").expect("valid slug");
    assert!(matches!(
        bus.execute(&outside, &unknown).await,
        Err(BusError::UnknownTenant(_))
    ));

    let Command::Appointment(AppointmentCommand::BookAppointment(mut fine)) = outside else {
        unreachable!("built above")
    };
    fine.start = datetime!(2026-11-26 07:00 UTC);
    let done = bus
        .execute(
            &AppointmentCommand::BookAppointment(fine.clone()).into(),
            &issued(NOW),
        )
        .await
        .expect("booked");
    assert_eq!((done.positions.len(), done.attempts), (3, 1));
    // A timer that finds nothing to do writes nothing.
    let nothing = bus
        .execute(
            &AppointmentCommand::SendReminder {
                appointment: fine.appointment,
            }
            .into(),
            &issued(NOW),
        )
        .await
        .expect("reminder");
    assert_eq!(nothing.positions.len(), 1);
    let again = bus
        .execute(
            &AppointmentCommand::SendReminder {
                appointment: fine.appointment,
            }
            .into(),
            &issued(NOW),
        )
        .await
        .expect("reminder");
    assert!(again.positions.is_empty());
}

/// Every personal value is sealed before it is stored: the log holds ciphertext and a keyed
/// fingerprint, readers get the value back, and after the key is destroyed they get "[gelöscht]".
pub(crate) async fn personal_values_are_sealed_before_they_are_stored<B: Backend>(b: &B) {
    let store = b.open().await;
    let keys = Keyring::ephemeral(store.clone());
    let bus = CommandBus::new(
        store.clone(),
        keys.clone(),
        example_tenants().expect("valid"),
    );
    let subject = SubjectId(Uuid::now_v7());
    let canary = format!("canary-{}", Uuid::now_v7().simple());
    let booking = BookAppointment {
        appointment: AppointmentId(Uuid::now_v7()),
        subject,
        department: "ordnung-waffen".into(),
        services: vec!["jagdschein".into()],
        start: datetime!(2026-11-26 07:00 UTC),
        channel: BookingChannel::Online,
        invited_by: None,
        contact: Contact {
            name: Personal::plain(format!("{canary}-name")),
            email: Personal::plain(format!("{canary}@example.org")),
            phone: Some(Personal::plain(format!("{canary}-phone"))),
        },
        access: None,
    };
    bus.execute(
        &AppointmentCommand::BookAppointment(booking.clone()).into(),
        &issued(NOW),
    )
    .await
    .expect("booked");
    assert!(keys.holds(subject).await.expect("key lookup"), "key issued");
    let stored = store
        .read_stream(&booking.appointment.stream(), 0)
        .await
        .expect("read");
    let raw = stored[0].payload.as_str().to_owned();
    assert!(!raw.contains(&canary), "plaintext reached the log");
    let DomainEvent::AppointmentBooked(booked) =
        DomainEvent::from_payload("AppointmentBooked", 1, &stored[0].payload).expect("decodes")
    else {
        panic!("first event is the booking")
    };
    let name = booked.contact.name.sealed().expect("sealed").clone();
    assert_eq!(name.subject, subject);
    // The subject's own fingerprint, never the KEK's (ADR 0024).
    assert!(name.fingerprint.starts_with("2."));
    assert_ne!(
        name.fingerprint,
        keys.fingerprint(format!("{canary}-name").as_bytes())
    );
    let shown = reveal(keys.as_ref(), &booked.contact.name)
        .await
        .expect("opens");
    assert_eq!(shown.shown(), format!("{canary}-name"));

    assert!(keys.destroy(subject).await.expect("destroy"));
    for value in [&booked.contact.name, &booked.contact.email] {
        let shown = reveal(keys.as_ref(), value)
            .await
            .expect("erased is no error");
        assert_eq!(shown, Revealed::Erased);
        assert_eq!(shown.shown(), "[gelöscht]");
    }
    // Nothing can be sealed for a subject whose key is gone: the bus refuses, writes nothing.
    let head = store.last_position().await.expect("head");
    let cancel = AppointmentCommand::CancelAppointment {
        appointment: booking.appointment,
        by: videoamt_core::domain::events::CancelledBy::Clerk,
        reason: Some(Personal::plain("Umzug")),
    }
    .into();
    let refused = bus.execute(&cancel, &issued(NOW)).await;
    assert!(matches!(refused, Err(BusError::Sealing(_))), "{refused:?}");
    assert_eq!(store.last_position().await.expect("head"), head);
}

/// A store that lets one other writer in just before the first combined append, so that the
/// combined batch conflicts.
struct Interfering {
    inner: Arc<dyn EventStore>,
    interference: std::sync::Mutex<Option<(CommandBus, Command)>>,
    /// Reads of streams asked of the store, one per call whatever its number of streams.
    round_trips: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl EventStore for Interfering {
    async fn append(&self, batch: AppendBatch) -> Result<Appended, AppendError> {
        let interference = if batch.streams().len() > 3 {
            self.interference.lock().expect("lock").take()
        } else {
            None
        };
        if let Some((bus, command)) = interference {
            bus.execute(&command, &issued(NOW))
                .await
                .expect("the other writer books");
        }
        self.inner.append(batch).await
    }
    async fn read_stream(
        &self,
        stream: &StreamId,
        from: StreamVersion,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.round_trips
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.read_stream(stream, from).await
    }
    async fn read_streams(
        &self,
        streams: &[StreamId],
    ) -> Result<Vec<Vec<RecordedEvent>>, StoreError> {
        self.round_trips
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.read_streams(streams).await
    }
    async fn read_all(
        &self,
        after: GlobalPosition,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_all(after, limit).await
    }
    async fn read_positions(
        &self,
        positions: &[GlobalPosition],
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_positions(positions).await
    }
    async fn last_position(&self) -> Result<GlobalPosition, StoreError> {
        self.inner.last_position().await
    }
    fn subscribe(&self, after: GlobalPosition) -> EventStream {
        self.inner.subscribe(after)
    }
}

fn booking_at(start: OffsetDateTime, i: u32) -> Command {
    AppointmentCommand::BookAppointment(BookAppointment {
        appointment: AppointmentId(Uuid::now_v7()),
        subject: SubjectId(Uuid::now_v7()),
        department: "ordnung-waffen".into(),
        services: vec!["jagdschein".into()],
        start,
        channel: BookingChannel::Online,
        invited_by: None,
        contact: Contact {
            name: Personal::plain(format!("Bürger {i}")),
            email: Personal::plain(format!("buerger{i}@example.org")),
            phone: None,
        },
        access: None,
    })
    .into()
}

/// `execute_all` gives every command its own result, in order: commands on other streams go
/// into one combined append, one that overlaps an earlier command's streams is decided after
/// it, a refusal stays that command's own, and a combined append that conflicts is redone
/// command by command.
pub(crate) async fn commands_executed_together<B: Backend>(b: &B) {
    let store = b.open().await;
    let keys = Keyring::ephemeral(store.clone());
    let inner: Arc<dyn EventStore> = store.clone();
    let interfering = Arc::new(Interfering {
        inner: inner.clone(),
        interference: std::sync::Mutex::new(None),
        round_trips: std::sync::atomic::AtomicUsize::new(0),
    });
    let bus = CommandBus::new(
        interfering.clone(),
        keys.clone(),
        example_tenants().expect("valid"),
    );
    // Thursday and Friday, 08:00 and 08:30 local; 06:00 is before opening.
    let thursday = datetime!(2026-11-26 07:00 UTC);
    let friday = datetime!(2026-11-27 07:00 UTC);
    let half_hour = time::Duration::minutes(30);
    let commands: Vec<(Command, Issued)> = [
        booking_at(thursday, 0),
        booking_at(friday, 1),
        booking_at(datetime!(2026-11-26 05:00 UTC), 2),
        booking_at(thursday, 3),
        booking_at(thursday + half_hour, 4),
    ]
    .into_iter()
    .map(|c| (c, issued(NOW)))
    .collect();
    let results = bus.execute_all(&commands).await;
    assert_eq!(results.len(), 5);
    // The five are loaded together: a read per round of loading a booking, not one per
    // command and round; only the one on the first's slot is loaded again on its own.
    let round_trips = interfering
        .round_trips
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(matches!(
        results[2],
        Err(BusError::Refused(DomainError::OutsideOpeningHours))
    ));
    // Same slot as the first: decided after it, so it finds the slot taken.
    assert!(
        matches!(results[3], Err(BusError::Refused(DomainError::SlotTaken))),
        "{:?}",
        results[3]
    );
    let head = store.last_position().await.expect("head");
    assert_eq!(head, 9, "three bookings of three events each");
    for i in [0, 1, 4] {
        let done = results[i].as_ref().expect("booked");
        assert_eq!(done.positions.len(), 3);
        let Command::Appointment(AppointmentCommand::BookAppointment(booking)) = &commands[i].0
        else {
            unreachable!("bookings only")
        };
        let stored = store
            .read_positions(&done.positions)
            .await
            .expect("read positions");
        assert!(
            stored
                .iter()
                .any(|e| e.stream_id == booking.appointment.stream()),
            "command {i}'s positions hold its own appointment"
        );
    }

    // A booking on its own: the five together took the reads of two (one loading for all,
    // one for the command decided after the first); one by one they would take six.
    let alone = Arc::new(Interfering {
        inner: inner.clone(),
        interference: std::sync::Mutex::new(None),
        round_trips: std::sync::atomic::AtomicUsize::new(0),
    });
    let one = CommandBus::new(
        alone.clone(),
        keys.clone(),
        example_tenants().expect("valid"),
    );
    one.execute(&booking_at(friday + half_hour * 3, 9), &issued(NOW))
        .await
        .expect("a lone booking");
    let rounds = alone.round_trips.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        (1..=2 * rounds).contains(&round_trips),
        "{round_trips} reads for five bookings, {rounds} for one"
    );

    // Another writer books Friday 08:30 just before the next combined append: the combined
    // batch conflicts on Friday's calendar, nothing of it is written, and each command is
    // decided again on its own.
    *interfering.interference.lock().expect("lock") = Some((
        CommandBus::new(inner.clone(), keys, example_tenants().expect("valid")),
        booking_at(friday + half_hour, 5),
    ));
    let commands: Vec<(Command, Issued)> = [
        booking_at(friday + half_hour * 2, 6),
        booking_at(thursday + half_hour * 2, 7),
        booking_at(friday + half_hour, 8),
    ]
    .into_iter()
    .map(|c| (c, issued(NOW)))
    .collect();
    let results = bus.execute_all(&commands).await;
    assert!(
        interfering.interference.lock().expect("lock").is_none(),
        "the other writer got in"
    );
    assert!(results[0].is_ok() && results[1].is_ok(), "{results:?}");
    assert!(
        matches!(results[2], Err(BusError::Refused(DomainError::SlotTaken))),
        "{:?}",
        results[2]
    );
    assert_eq!(store.last_position().await.expect("head"), 9 + 3 + 3 + 6);
    let report = store.verify().await.expect("verify");
    assert!(report.is_ok(), "{:?}", report.problems);
}

macro_rules! bus_suite {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                use crate::contract::Backend as _;

                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn sqlite() {
                    let backend = crate::contract::sqlite::Sqlite::fresh().await.expect("sqlite");
                    super::$name(&backend).await;
                    backend.drop_database().await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn postgres() {
                    let Some(backend) = crate::contract::postgres::Postgres::fresh().await else { return };
                    super::$name(&backend).await;
                    backend.drop_database().await;
                }
            }
        )*
    };
}

bus_suite!(
    sixty_four_bookers_ten_slots,
    sixty_four_bookers_sixty_four_slots_decide_once,
    two_bookers_for_the_last_place_one_wins,
    refusals_write_nothing_and_retries_are_counted,
    personal_values_are_sealed_before_they_are_stored,
    commands_executed_together
);
