//! The calendar of a department: its slots (Zeitfenster) on the tenant's local days.
//!
//! - `slot-{tenant}-{department}-{YYYY-MM-DD}-{HHMM}`: one slot, starting at local time `HHMM`.
//!   It is the consistency boundary of bookings: an appointment writes `SlotsReserved` to each
//!   slot it takes and `SlotsReleased` to each it gives back, so two bookings conflict only when
//!   they want the same slot (ADR 0012).
//! - `calendar-{tenant}-{department}-{YYYY-MM-DD}`: the whole day, where schema 1 kept every
//!   reservation. Nothing is reserved there any more; decisions still read it, so that
//!   reservations of schema 1 keep counting, and release them there.
//!
//! The tenant is part of both names because department slugs are only unique within a tenant;
//! two municipalities' `buergerbuero` must never share capacity.
//!
//! Invariant: no slot holds more appointments than the department's parallel capacity. Several
//! concerns take several consecutive slots.

use std::collections::{BTreeMap, BTreeSet};

use time::{Date, Weekday};

use super::events::{SlotsReleased, SlotsReserved};
use super::{AppointmentId, Decision, DomainError, DomainEvent, Histories};
use crate::event::StreamId;
use crate::tenant::{Department, DepartmentId, Tenant};

/// The stream of one slot of a department's local day, starting `minute` minutes after local
/// midnight.
pub fn slot_stream(
    tenant: &Tenant,
    department: &DepartmentId,
    date: Date,
    minute: u16,
) -> StreamId {
    StreamId::of(
        "slot",
        format!(
            "{}-{department}-{date}-{:02}{:02}",
            tenant.id,
            minute / 60,
            minute % 60
        ),
    )
    .expect("tenant and department slugs, ISO dates and HHMM make valid stream ids")
}

/// The calendar stream of a department's local day, where schema 1 kept the reservations.
pub fn day_stream(tenant: &Tenant, department: &DepartmentId, date: Date) -> StreamId {
    StreamId::of("calendar", format!("{}-{department}-{date}", tenant.id))
        .expect("department slugs and ISO dates make valid stream ids")
}

/// Whether commands only read the stream, but for the rare release of a reservation of schema
/// 1: the calendar-day streams. Every booking of the day reads its day stream, so the command
/// bus does not queue commands on it; a conflict there is retried.
pub fn is_day_stream(stream: &StreamId) -> bool {
    stream.category() == "calendar"
}

/// Where an appointment lies on its department's calendar: `slots` consecutive slots of the
/// local day `date`, the first starting `first_minute` minutes after local midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    pub date: Date,
    pub first_minute: u16,
    pub slots: u16,
}

impl Placement {
    /// The start minutes of its slots; empty if it does not end within the day.
    pub fn minutes(self, slot_minutes: u16) -> Vec<u16> {
        let end = u32::from(self.first_minute) + u32::from(self.slots) * u32::from(slot_minutes);
        if end > 24 * 60 {
            return vec![];
        }
        (0..self.slots)
            .map(|i| self.first_minute + i * slot_minutes)
            .collect()
    }

    /// The streams a decision about this placement reads: the stream of each of its slots (if
    /// it fits the opening hours; otherwise the decision refuses it without them) and the day's
    /// calendar stream.
    pub fn streams(self, tenant: &Tenant, department: &Department) -> Vec<StreamId> {
        let mut streams = Vec::new();
        if fits_opening_hours(
            department,
            self.date.weekday(),
            self.first_minute,
            self.slots,
        ) {
            streams.extend(
                self.minutes(department.slot_minutes)
                    .into_iter()
                    .map(|m| slot_stream(tenant, &department.id, self.date, m)),
            );
        }
        streams.push(day_stream(tenant, &department.id, self.date));
        streams
    }
}

/// The appointments holding one slot, folded from the slot's own stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlotState {
    pub holders: BTreeSet<AppointmentId>,
}

impl SlotState {
    pub fn evolve(mut self, event: &DomainEvent) -> Self {
        match event {
            DomainEvent::SlotsReserved(e) => {
                self.holders.insert(e.appointment);
            }
            DomainEvent::SlotsReleased(e) => {
                self.holders.remove(&e.appointment);
            }
            _ => {}
        }
        self
    }
}

/// What a decision sees of one department's calendar: the slots of the placements it was
/// loaded for, each folded from its own stream, and the reservations of schema 1 on their days.
#[derive(Debug, Clone, Default)]
pub struct Slots {
    slots: BTreeMap<(Date, u16), SlotState>,
    days: BTreeMap<Date, CalendarState>,
}

impl Slots {
    /// Folds the streams [`Placement::streams`] names for `placements`.
    pub fn load(
        h: &Histories,
        tenant: &Tenant,
        department: &Department,
        placements: &[Placement],
    ) -> Self {
        let mut view = Self::default();
        for p in placements {
            for minute in p.minutes(department.slot_minutes) {
                let stream = slot_stream(tenant, &department.id, p.date, minute);
                view.slots
                    .insert((p.date, minute), h.fold(&stream, SlotState::evolve));
            }
            let day = day_stream(tenant, &department.id, p.date);
            view.days
                .insert(p.date, h.fold(&day, CalendarState::evolve));
        }
        view
    }

    /// The appointments holding the slot at `minute` of `date`, on its stream or its day's.
    fn holders(&self, date: Date, minute: u16, slot_minutes: u16) -> BTreeSet<AppointmentId> {
        let mut holders = self
            .slots
            .get(&(date, minute))
            .map(|s| s.holders.clone())
            .unwrap_or_default();
        if let Some(day) = self.days.get(&date) {
            holders.extend(day.holders(minute, slot_minutes));
        }
        holders
    }

    fn holds_anywhere(&self, appointment: AppointmentId) -> bool {
        self.slots
            .values()
            .any(|s| s.holders.contains(&appointment))
            || self
                .days
                .values()
                .any(|d| d.reservations.contains_key(&appointment))
    }

    /// The view once `appointment` has given back everything it holds here.
    pub fn without(mut self, appointment: AppointmentId) -> Self {
        for slot in self.slots.values_mut() {
            slot.holders.remove(&appointment);
        }
        for day in self.days.values_mut() {
            day.reservations.remove(&appointment);
        }
        self
    }

    /// Reserves the placement for `appointment`: `SlotsReserved` on each of its slot streams.
    pub fn reserve(
        &self,
        tenant: &Tenant,
        department: &Department,
        appointment: AppointmentId,
        placement: Placement,
    ) -> Result<Decision, DomainError> {
        let Placement {
            date,
            first_minute,
            slots,
        } = placement;
        if !fits_opening_hours(department, date.weekday(), first_minute, slots) {
            return Err(DomainError::OutsideOpeningHours);
        }
        if self.holds_anywhere(appointment) {
            return Err(DomainError::AlreadyBooked);
        }
        let minutes = placement.minutes(department.slot_minutes);
        for &minute in &minutes {
            let held = self.holders(date, minute, department.slot_minutes).len();
            if held >= usize::from(department.capacity) {
                return Err(DomainError::SlotTaken);
            }
        }
        let reserved = SlotsReserved {
            appointment,
            first_minute,
            slots,
        };
        Ok(minutes
            .into_iter()
            .map(|m| {
                (
                    slot_stream(tenant, &department.id, date, m),
                    reserved.clone().into(),
                )
            })
            .collect())
    }

    /// Gives back what `appointment` holds of the placement: `SlotsReleased` on each slot
    /// stream it holds, and on the day stream if it holds a reservation of schema 1 there.
    pub fn release(
        &self,
        tenant: &Tenant,
        department: &Department,
        appointment: AppointmentId,
        placement: Placement,
    ) -> Decision {
        let released = || SlotsReleased { appointment }.into();
        let mut decision: Decision = placement
            .minutes(department.slot_minutes)
            .into_iter()
            .filter(|m| {
                self.slots
                    .get(&(placement.date, *m))
                    .is_some_and(|s| s.holders.contains(&appointment))
            })
            .map(|m| {
                (
                    slot_stream(tenant, &department.id, placement.date, m),
                    released(),
                )
            })
            .collect();
        if self
            .days
            .get(&placement.date)
            .is_some_and(|d| d.reservations.contains_key(&appointment))
        {
            decision.push((
                day_stream(tenant, &department.id, placement.date),
                released(),
            ));
        }
        decision
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Reservation {
    pub first_minute: u16,
    pub slots: u16,
}

/// The reservations of a department's local day, by appointment: the free-slots read model
/// folds every slot stream of the day (and the day's stream of schema 1) into it in global
/// order, and decisions fold a day stream of schema 1 into it. Serializable so the read model
/// can keep the very state the deciders fold.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CalendarState {
    pub reservations: BTreeMap<AppointmentId, Reservation>,
}

impl CalendarState {
    /// Each slot stream of a reservation carries the whole reservation, so folding several of
    /// them inserts the same entry again; a release removes it.
    pub fn evolve(mut self, event: &DomainEvent) -> Self {
        match event {
            DomainEvent::SlotsReserved(e) => {
                self.reservations.insert(
                    e.appointment,
                    Reservation {
                        first_minute: e.first_minute,
                        slots: e.slots,
                    },
                );
            }
            DomainEvent::SlotsReleased(e) => {
                self.reservations.remove(&e.appointment);
            }
            _ => {}
        }
        self
    }

    /// Appointments holding the slot that starts at `minute`.
    fn holders(&self, minute: u16, slot_minutes: u16) -> impl Iterator<Item = AppointmentId> {
        self.reservations.iter().filter_map(move |(id, r)| {
            let end = u32::from(r.first_minute) + u32::from(r.slots) * u32::from(slot_minutes);
            (r.first_minute <= minute && u32::from(minute) < end).then_some(*id)
        })
    }

    /// How many appointments hold the slot that starts at `minute`.
    pub fn occupancy(&self, minute: u16, slot_minutes: u16) -> u16 {
        u16::try_from(self.holders(minute, slot_minutes).count()).unwrap_or(u16::MAX)
    }

    /// Every start minute where `slots` consecutive slots are free, in order.
    pub fn free_starts(&self, department: &Department, weekday: Weekday, slots: u16) -> Vec<u16> {
        let mut starts = Vec::new();
        for window in department.hours.iter().filter(|w| w.weekday == weekday) {
            let (from, to) = (minute_of(window.from), minute_of(window.to));
            let mut first = from;
            while u32::from(first) + u32::from(slots) * u32::from(department.slot_minutes)
                <= u32::from(to)
            {
                let free = (0..slots).all(|i| {
                    self.occupancy(first + i * department.slot_minutes, department.slot_minutes)
                        < department.capacity
                });
                if free {
                    starts.push(first);
                }
                first += department.slot_minutes;
            }
        }
        starts.sort_unstable();
        starts
    }
}

pub fn minute_of(t: time::Time) -> u16 {
    u16::from(t.hour()) * 60 + u16::from(t.minute())
}

/// Starts on the slot grid of one opening window and ends inside it.
fn fits_opening_hours(department: &Department, weekday: Weekday, first: u16, slots: u16) -> bool {
    department
        .hours
        .iter()
        .filter(|w| w.weekday == weekday)
        .any(|w| {
            let (from, to) = (minute_of(w.from), minute_of(w.to));
            let end = u32::from(first) + u32::from(slots) * u32::from(department.slot_minutes);
            first >= from
                && (first - from).is_multiple_of(department.slot_minutes)
                && end <= u32::from(to)
        })
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;
    use crate::domain::gwt::ettlingen;

    #[test]
    fn slot_streams_name_the_tenant_department_day_and_local_start() {
        let stream = slot_stream(
            ettlingen(),
            &"buergerbuero".into(),
            date!(2026 - 11 - 24),
            545,
        );
        assert_eq!(
            stream.as_str(),
            "slot-ettlingen-buergerbuero-2026-11-24-0905"
        );
        assert!(!is_day_stream(&stream));
        assert!(is_day_stream(&day_stream(
            ettlingen(),
            &"buergerbuero".into(),
            date!(2026 - 11 - 24)
        )));
    }

    #[test]
    fn a_placement_past_midnight_has_no_slots() {
        let late = Placement {
            date: date!(2026 - 11 - 24),
            first_minute: 23 * 60 + 45,
            slots: 2,
        };
        assert!(late.minutes(15).is_empty());
        let two = Placement {
            first_minute: 9 * 60,
            ..late
        };
        assert_eq!(two.minutes(15), vec![540, 555]);
    }
}
