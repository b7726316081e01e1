//! Who may enter a session room, and as whom. The citizen enters with the appointment's
//! capability link; a clerk with their staff session, for appointments of their own
//! departments only. Anything else (a stale or guessed link, another department's clerk, an
//! unknown id) is one and the same 404, so that a guess learns nothing.

use axum::http::HeaderMap;
use uuid::Uuid;
use videoamt_adapters::bus::Issued;
use videoamt_core::domain::appointment::AppointmentState;
use videoamt_core::domain::command::Command;
use videoamt_core::domain::events::Party;
use videoamt_core::domain::session::SessionState;
use videoamt_core::domain::{AppointmentId, DomainEvent, SessionId, SubjectId};
use videoamt_core::event::Actor;
use videoamt_core::tenant::{ClerkId, Tenant};

use crate::http::AppState;
use crate::http::citizen::service::{self, Found};
use crate::http::error::Error;
use crate::http::staff::session::{Staff, staff_of};
use videoamt_core::domain::account::StaffRole;

/// One party's way into one session.
#[derive(Debug, Clone)]
pub(crate) struct Room {
    pub session: SessionId,
    pub appointment: AppointmentId,
    /// Whose key seals what the room stores (the documents).
    pub subject: SubjectId,
    pub tenant: Tenant,
    pub party: Party,
    /// Who acts, as recorded in the events this party causes.
    pub actor: Actor,
    /// The clerk's login, for the events that name the clerk.
    pub clerk: Option<ClerkId>,
    pub state: SessionState,
    /// When the last `ConnectionLost` of this party was recorded, if the connection is lost.
    pub lost_since: Option<time::OffsetDateTime>,
}

/// The answer for every room that cannot be entered.
pub(crate) fn no_room() -> Error {
    Error::not_found("Diese Videositzung gibt es nicht.")
}

impl Room {
    /// Runs a command of the session or its forms as this party.
    pub(crate) async fn act(
        &self,
        state: &AppState,
        command: impl Into<Command>,
    ) -> Result<(), Error> {
        let command: Command = command.into();
        let issued = Issued {
            tenant: self.tenant.id.clone(),
            actor: self.actor.clone(),
            correlation_id: self.appointment.0,
            command_id: Uuid::now_v7(),
            now: state.now(),
        };
        state
            .system
            .bus()
            .execute(&command, &issued)
            .await
            .map(|_| ())
            .map_err(Error::from)
    }

    /// The same room with its session state read again.
    pub(crate) async fn refreshed(mut self, state: &AppState) -> Result<Self, Error> {
        let (session, lost) = load(state, self.session, self.party).await?;
        self.state = session;
        self.lost_since = lost;
        Ok(self)
    }

    /// The clerk's name for events; refuses for a citizen.
    pub(crate) fn clerk_id(&self) -> Result<ClerkId, Error> {
        self.clerk.clone().ok_or(Error::Forbidden)
    }
}

/// The session's state and, if `party`'s connection is lost, since when.
async fn load(
    state: &AppState,
    session: SessionId,
    party: Party,
) -> Result<(SessionState, Option<time::OffsetDateTime>), Error> {
    let history = state.system.history(&session.stream()).await?;
    let mut folded = SessionState::default();
    let mut lost = None;
    for (e, event) in &history {
        match event {
            DomainEvent::ConnectionLost(l) if l.party == party => {
                lost = Some(e.meta.recorded_at);
            }
            DomainEvent::ConnectionRestored(r) if r.party == party => lost = None,
            DomainEvent::ReconnectGraceExpired(r) if r.party == party => lost = None,
            DomainEvent::ParticipantJoined(j) if j.party == party => lost = None,
            _ => {}
        }
        folded = folded.evolve(event);
    }
    if folded.opened.is_none() {
        return Err(no_room());
    }
    Ok((folded, lost))
}

/// The citizen's room of the appointment `token` opens. The session must exist (it opens
/// when the citizen enters the waiting room or runs the pre-call check).
pub(crate) async fn citizen(state: &AppState, token: &str) -> Result<Room, Error> {
    let found = service::by_token(state, token).await?;
    let session = found.state.session.ok_or_else(no_room)?;
    citizen_of(state, &found, session).await
}

async fn citizen_of(state: &AppState, found: &Found, session: SessionId) -> Result<Room, Error> {
    let subject = subject_of(&found.state)?;
    let (session_state, lost) = load(state, session, Party::Citizen).await?;
    Ok(Room {
        session,
        appointment: found.id,
        subject,
        tenant: found.tenant.clone(),
        party: Party::Citizen,
        actor: service::citizen_actor(&found.token),
        clerk: None,
        state: session_state,
        lost_since: lost,
    })
}

/// The citizen's session, opened first if it is not yet (idempotent, like entering the
/// waiting room).
pub(crate) async fn citizen_opening(state: &AppState, token: &str) -> Result<Room, Error> {
    let found = service::by_token(state, token).await?;
    let session = service::ensure_session(state, &found).await?;
    citizen_of(state, &found, session).await
}

fn subject_of(appointment: &AppointmentState) -> Result<SubjectId, Error> {
    appointment
        .booking
        .as_ref()
        .map(|b| b.subject)
        .ok_or_else(no_room)
}

/// The room of appointment `appointment` for the clerk logged in with `headers`: a clerk of
/// the appointment's department, else 404 (401 without a staff session).
pub(crate) async fn clerk(
    state: &AppState,
    headers: &HeaderMap,
    appointment: &str,
) -> Result<Room, Error> {
    let staff = staff_of(headers, state)
        .await?
        .ok_or(Error::LoginRequired)?;
    clerk_of(state, &staff, appointment).await
}

pub(crate) async fn clerk_of(
    state: &AppState,
    staff: &Staff,
    appointment: &str,
) -> Result<Room, Error> {
    if staff.role != StaffRole::Clerk {
        return Err(Error::Forbidden);
    }
    let id = Uuid::parse_str(appointment)
        .map(AppointmentId)
        .map_err(|_| no_room())?;
    let (found, tenant_id) = state
        .system
        .appointment(id)
        .await
        .map_err(|e| Error::unavailable(format!("appointment unavailable: {e}")))?
        .ok_or_else(no_room)?;
    let booking = found.booking.as_ref().ok_or_else(no_room)?;
    if tenant_id != staff.tenant || !staff.may_work_on(&booking.department) {
        return Err(no_room());
    }
    let session = found.session.ok_or_else(no_room)?;
    let tenant = staff.tenant(state)?.clone();
    let (session_state, lost) = load(state, session, Party::Clerk).await?;
    Ok(Room {
        session,
        appointment: id,
        subject: booking.subject,
        tenant,
        party: Party::Clerk,
        actor: staff.actor(),
        clerk: Some(ClerkId::from(staff.login.as_str())),
        state: session_state,
        lost_since: lost,
    })
}
