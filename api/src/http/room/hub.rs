//! The sockets of the rooms this process serves: one seat per party and session. The hub tells
//! a session's sockets at once what happened (the clerk admitted, the other side's quality),
//! while the log stays the record: a socket that misses a nudge still sees the change when the
//! live feed moves and it reads the session again.
//!
//! **One tab per party.** A second socket for the same party and session takes the seat; the
//! first one is told that the room opened elsewhere and closes without recording a lost
//! connection. So the newest tab wins, on a reload as on a second device.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use videoamt_core::domain::SessionId;
use videoamt_core::domain::events::Party;

/// What the hub hands a socket.
#[derive(Debug, Clone)]
pub(crate) enum Nudge {
    /// A message for the browser, as it is.
    Send(serde_json::Value),
    /// Read the session again: something changed.
    Refresh,
    /// Another socket took this seat.
    Replaced,
}

#[derive(Debug)]
struct Seat {
    generation: u64,
    tx: mpsc::UnboundedSender<Nudge>,
}

#[derive(Debug, Default)]
struct Seats {
    citizen: Option<Seat>,
    clerk: Option<Seat>,
}

impl Seats {
    fn of(&mut self, party: Party) -> &mut Option<Seat> {
        match party {
            Party::Citizen => &mut self.citizen,
            Party::Clerk => &mut self.clerk,
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    rooms: HashMap<SessionId, Seats>,
    next: u64,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct RoomHub {
    inner: Arc<Mutex<Inner>>,
}

/// A socket's seat; `generation` tells it apart from a later socket of the same party.
#[derive(Debug)]
pub(crate) struct Taken {
    pub generation: u64,
    pub nudges: mpsc::UnboundedReceiver<Nudge>,
}

impl RoomHub {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes `party`'s seat in `session`, replacing the socket that had it.
    pub(crate) fn take(&self, session: SessionId, party: Party) -> Taken {
        let (tx, nudges) = mpsc::unbounded_channel();
        let mut inner = self.lock();
        inner.next += 1;
        let generation = inner.next;
        let seat = inner.rooms.entry(session).or_default().of(party);
        let old = seat.replace(Seat { generation, tx });
        if let Some(old) = old {
            let _ = old.tx.send(Nudge::Replaced);
        }
        Taken { generation, nudges }
    }

    /// Gives the seat up; `true` if it was still this socket's (not taken by a newer one).
    pub(crate) fn leave(&self, session: SessionId, party: Party, generation: u64) -> bool {
        let mut inner = self.lock();
        let Some(seats) = inner.rooms.get_mut(&session) else {
            return false;
        };
        let seat = seats.of(party);
        let own = seat.as_ref().is_some_and(|s| s.generation == generation);
        if own {
            *seat = None;
        }
        if seats.citizen.is_none() && seats.clerk.is_none() {
            inner.rooms.remove(&session);
        }
        own
    }

    /// Whether `party` has a socket in `session`.
    pub(crate) fn seated(&self, session: SessionId, party: Party) -> bool {
        let mut inner = self.lock();
        inner
            .rooms
            .get_mut(&session)
            .is_some_and(|s| s.of(party).is_some())
    }

    /// Whether `session` has a socket here at all.
    pub(crate) fn occupied(&self, session: SessionId) -> bool {
        self.lock().rooms.contains_key(&session)
    }

    /// Hands `nudge` to `party`'s socket, if it has one.
    pub(crate) fn tell(&self, session: SessionId, party: Party, nudge: Nudge) {
        let mut inner = self.lock();
        if let Some(seat) = inner
            .rooms
            .get_mut(&session)
            .and_then(|s| s.of(party).as_ref())
        {
            let _ = seat.tx.send(nudge);
        }
    }

    /// Asks both sockets of `session` to read it again.
    pub(crate) fn refresh(&self, session: SessionId) {
        self.tell(session, Party::Citizen, Nudge::Refresh);
        self.tell(session, Party::Clerk, Nudge::Refresh);
    }

    /// Sessions with at least one socket, for the leak checks.
    #[cfg(test)]
    pub(crate) fn rooms(&self) -> usize {
        self.lock().rooms.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_socket_takes_the_seat_and_the_old_one_leaves_quietly() {
        let hub = RoomHub::default();
        let session = SessionId(uuid::Uuid::from_u128(1));
        let mut first = hub.take(session, Party::Citizen);
        let second = hub.take(session, Party::Citizen);
        assert!(matches!(first.nudges.try_recv(), Ok(Nudge::Replaced)));
        assert!(
            !hub.leave(session, Party::Citizen, first.generation),
            "the old socket's leaving is not a lost connection"
        );
        assert!(hub.seated(session, Party::Citizen));
        assert!(hub.leave(session, Party::Citizen, second.generation));
        assert!(!hub.seated(session, Party::Citizen));
        assert_eq!(hub.rooms(), 0, "nothing is kept for an empty room");
        assert!(!hub.occupied(session));
    }
}
