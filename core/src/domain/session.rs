//! `session-{id}`: the video session of an appointment, from the waiting room to the end.
//!
//! Invariants: nobody is admitted before accepting the privacy notice; services that need an
//! identity check or a signature cannot be completed without them; nothing is recorded, so
//! the stream holds only what happened, never media or ID images.

use std::collections::{BTreeMap, BTreeSet};

use super::events::{Party, SessionOutcome};
use super::{DocumentId, DomainError, DomainEvent, FormId};
use crate::tenant::FormTemplateId;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionState {
    pub opened: Option<super::events::SessionOpened>,
    pub citizen_present: bool,
    pub clerk_present: bool,
    pub citizen_connection_lost: bool,
    pub privacy_accepted: bool,
    pub admitted: bool,
    pub identity_verified: bool,
    pub documents: BTreeSet<DocumentId>,
    pub forms: BTreeMap<FormId, FormTemplateId>,
    pub feedback_given: bool,
    pub handed_over: bool,
    pub ended: Option<SessionOutcome>,
}

impl SessionState {
    pub fn evolve(mut self, event: &DomainEvent) -> Self {
        match event {
            DomainEvent::SessionOpened(e) => self.opened = Some(e.clone()),
            DomainEvent::ParticipantJoined(e) => self.set_present(e.party, true),
            DomainEvent::ParticipantLeft(e) => self.set_present(e.party, false),
            DomainEvent::ConnectionLost(e) if e.party == Party::Citizen => {
                self.citizen_connection_lost = true;
            }
            DomainEvent::ConnectionRestored(e) if e.party == Party::Citizen => {
                self.citizen_connection_lost = false;
            }
            DomainEvent::PrivacyNoticeAccepted(_) => self.privacy_accepted = true,
            DomainEvent::AdmittedFromWaitingRoom(_) => self.admitted = true,
            DomainEvent::IdentityVerified(_) => self.identity_verified = true,
            DomainEvent::DocumentUploaded(e) => {
                self.documents.insert(e.document);
            }
            DomainEvent::FormAttached(e) => {
                self.forms.insert(e.form, e.template.clone());
            }
            DomainEvent::FeedbackSubmitted(_) => self.feedback_given = true,
            DomainEvent::HandedOverToCaseSystem(_) => self.handed_over = true,
            DomainEvent::SessionEnded(e) => self.ended = Some(e.outcome),
            _ => {}
        }
        self
    }

    fn set_present(&mut self, party: Party, present: bool) {
        match party {
            Party::Citizen => self.citizen_present = present,
            Party::Clerk => self.clerk_present = present,
        }
    }

    /// The session is open and not yet ended.
    pub fn running(&self) -> Result<&super::events::SessionOpened, DomainError> {
        let opened = self.opened.as_ref().ok_or(DomainError::UnknownSession)?;
        if self.ended.is_some() {
            return Err(DomainError::SessionEnded);
        }
        Ok(opened)
    }

    /// Running and the citizen admitted: the precondition of everything done together.
    pub fn in_room(&self) -> Result<&super::events::SessionOpened, DomainError> {
        let opened = self.running()?;
        if !self.admitted {
            return Err(DomainError::NotAdmitted);
        }
        Ok(opened)
    }

    pub fn admit(&self) -> Result<(), DomainError> {
        self.running()?;
        if self.admitted {
            return Err(DomainError::AlreadyAdmitted);
        }
        if !self.citizen_present {
            return Err(DomainError::CitizenNotWaiting);
        }
        if !self.privacy_accepted {
            return Err(DomainError::PrivacyNoticeNotAccepted);
        }
        Ok(())
    }

    pub fn has_document(&self, document: DocumentId) -> Result<(), DomainError> {
        self.in_room()?;
        if self.documents.contains(&document) {
            Ok(())
        } else {
            Err(DomainError::UnknownDocument)
        }
    }
}
