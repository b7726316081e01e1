//! `calendar-{tenant}-{department}-{date}`: the slots of one department of one tenant on one
//! local day. The tenant is part of the name because department slugs are only unique within a
//! tenant; two municipalities' `buergerbuero` must never share capacity.
//!
//! Invariant: at no minute do more appointments hold a slot than the department's parallel
//! capacity. Several concerns take several consecutive slots.

use std::collections::BTreeMap;

use time::{Date, Weekday};

use super::events::{SlotsReleased, SlotsReserved};
use super::{AppointmentId, DomainError, DomainEvent};
use crate::event::StreamId;
use crate::tenant::{Department, DepartmentId, Tenant};

/// The calendar stream of a department's local day.
pub fn stream(tenant: &Tenant, department: &DepartmentId, date: Date) -> StreamId {
    StreamId::of("calendar", format!("{}-{department}-{date}", tenant.id))
        .expect("department slugs and ISO dates make valid stream ids")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Reservation {
    pub first_minute: u16,
    pub slots: u16,
}

/// Serializable so the free-slots read model can keep the very state the deciders fold.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CalendarState {
    pub reservations: BTreeMap<AppointmentId, Reservation>,
}

impl CalendarState {
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
    pub fn occupancy(&self, minute: u16, slot_minutes: u16) -> u16 {
        let held = self.reservations.values().filter(|r| {
            let end = u32::from(r.first_minute) + u32::from(r.slots) * u32::from(slot_minutes);
            r.first_minute <= minute && u32::from(minute) < end
        });
        u16::try_from(held.count()).unwrap_or(u16::MAX)
    }

    /// Reserves `slots` consecutive slots from `first_minute` on a day that is a `weekday`.
    pub fn reserve(
        &self,
        department: &Department,
        weekday: Weekday,
        appointment: AppointmentId,
        first_minute: u16,
        slots: u16,
    ) -> Result<SlotsReserved, DomainError> {
        if !fits_opening_hours(department, weekday, first_minute, slots) {
            return Err(DomainError::OutsideOpeningHours);
        }
        if self.reservations.contains_key(&appointment) {
            return Err(DomainError::AlreadyBooked);
        }
        for i in 0..slots {
            let minute = first_minute + i * department.slot_minutes;
            if self.occupancy(minute, department.slot_minutes) >= department.capacity {
                return Err(DomainError::SlotTaken);
            }
        }
        Ok(SlotsReserved {
            appointment,
            first_minute,
            slots,
        })
    }

    pub fn release(&self, appointment: AppointmentId) -> Option<SlotsReleased> {
        self.reservations
            .contains_key(&appointment)
            .then_some(SlotsReleased { appointment })
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
            first >= from && (first - from) % department.slot_minutes == 0 && end <= u32::from(to)
        })
}
