//! The command bus against real stores: races on the calendar resolve into exactly one
//! winner per slot and clear refusals for the rest.

use std::sync::Arc;

use time::macros::{date, datetime};
use time::{OffsetDateTime, PrimitiveDateTime, Time};
use uuid::Uuid;
use videoamt_adapters::bus::{BusError, CommandBus, Issued};
use videoamt_adapters::keys::Keyring;
use videoamt_core::domain::appointment::BookAppointment;
use videoamt_core::domain::calendar::{self, CalendarState};
use videoamt_core::domain::command::Command;
use videoamt_core::domain::events::Contact;
use videoamt_core::domain::{AppointmentId, DomainError, DomainEvent, Personal, SubjectId};
use videoamt_core::event::{Actor, ActorRole, TenantId};
use videoamt_core::keys::{KeyStore as _, Revealed, reveal};
use videoamt_core::tenant::{BookingChannel, DepartmentId, example_tenants};

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
            let command = Command::BookAppointment(BookAppointment {
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
            });
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

    // Each slot holds exactly one appointment, and the log is sound.
    let events = store
        .read_stream(&calendar::stream(&stuttgart, &department, day), 0)
        .await
        .expect("read");
    let state = events.iter().fold(CalendarState::default(), |s, e| {
        let event = DomainEvent::from_payload(e.event_type.as_str(), e.schema_version, &e.payload)
            .expect("decodes");
        s.evolve(&event)
    });
    assert_eq!(state.reservations.len(), 10);
    for start in &starts {
        let minute = calendar::minute_of(stuttgart.local(*start).time());
        assert_eq!(state.occupancy(minute, dept.slot_minutes), 1);
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
    let outside = Command::BookAppointment(BookAppointment {
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
    });
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

    let Command::BookAppointment(mut fine) = outside else {
        unreachable!("built above")
    };
    fine.start = datetime!(2026-11-26 07:00 UTC);
    let done = bus
        .execute(&Command::BookAppointment(fine.clone()), &issued(NOW))
        .await
        .expect("booked");
    assert_eq!((done.positions.len(), done.attempts), (3, 1));
    // A timer that finds nothing to do writes nothing.
    let nothing = bus
        .execute(
            &Command::SendReminder {
                appointment: fine.appointment,
            },
            &issued(NOW),
        )
        .await
        .expect("reminder");
    assert_eq!(nothing.positions.len(), 1);
    let again = bus
        .execute(
            &Command::SendReminder {
                appointment: fine.appointment,
            },
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
    };
    bus.execute(&Command::BookAppointment(booking.clone()), &issued(NOW))
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
    assert_eq!(
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
    let cancel = Command::CancelAppointment {
        appointment: booking.appointment,
        by: videoamt_core::domain::events::CancelledBy::Clerk,
        reason: Some(Personal::plain("Umzug")),
    };
    let refused = bus.execute(&cancel, &issued(NOW)).await;
    assert!(matches!(refused, Err(BusError::Sealing(_))), "{refused:?}");
    assert_eq!(store.last_position().await.expect("head"), head);
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
    refusals_write_nothing_and_retries_are_counted,
    personal_values_are_sealed_before_they_are_stored
);
