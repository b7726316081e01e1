//! `session-{id}`: the video session of an appointment, from the waiting room to the end.
//!
//! Invariants: nobody is admitted before accepting the privacy notice; services that need an
//! identity check or a signature cannot be completed without them; nothing is recorded, so
//! the stream holds only what happened, never media or ID images.

use std::collections::{BTreeMap, BTreeSet};

use super::appointment::AppointmentState;
use super::document::{MediaType, Sha256};
use super::events::*;
use super::form::FormState;
use super::identity::{DocumentType, SecurityFeature};
use super::{
    AppointmentId, Context, Decision, DocumentId, DomainError, DomainEvent, FormId, Histories,
    PaymentId, Personal, SessionId, one,
};
use crate::event::StreamId;
use crate::tenant::{ClerkId, FormTemplateId};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionState {
    pub opened: Option<SessionOpened>,
    pub citizen_present: bool,
    pub clerk_present: bool,
    pub citizen_connection_lost: bool,
    pub privacy_accepted: bool,
    pub admitted: bool,
    /// The clerk removed the citizen; the link no longer enters.
    pub citizen_removed: bool,
    /// The last pre-call check's result.
    pub pre_call_check: Option<PreCallCheckRecorded>,
    pub identity_verified: bool,
    pub documents: BTreeSet<DocumentId>,
    pub forms: BTreeMap<FormId, FormTemplateId>,
    /// The fees the clerk asked for in this session, if any.
    pub payment: Option<PaymentId>,
    pub feedback_given: bool,
    /// The case systems the session's data was handed over to.
    pub handed_over_to: BTreeSet<String>,
    pub ended: Option<SessionOutcome>,
}

impl SessionState {
    /// The session's state as its loaded stream folds.
    pub fn of(h: &Histories, session: SessionId) -> Self {
        h.fold(&session.stream(), Self::evolve)
    }

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
            DomainEvent::PreCallCheckRecorded(e) => self.pre_call_check = Some(e.clone()),
            DomainEvent::SentBackToWaitingRoom(_) => self.admitted = false,
            DomainEvent::RemovedFromSession(_) => {
                self.citizen_removed = true;
                self.citizen_present = false;
                self.citizen_connection_lost = false;
                self.admitted = false;
            }
            DomainEvent::ReconnectGraceExpired(e) if e.party == Party::Citizen => {
                self.citizen_connection_lost = false;
                self.admitted = false;
            }
            DomainEvent::IdentityVerified(_) => self.identity_verified = true,
            DomainEvent::DocumentUploaded(e) => {
                self.documents.insert(e.document);
            }
            DomainEvent::FormAttached(e) => {
                self.forms.insert(e.form, e.template.clone());
            }
            DomainEvent::PaymentAttached(e) => self.payment = Some(e.payment),
            DomainEvent::FeedbackSubmitted(_) => self.feedback_given = true,
            DomainEvent::HandedOverToCaseSystem(e) => {
                self.handed_over_to.insert(e.target.clone());
            }
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
    pub fn running(&self) -> Result<&SessionOpened, DomainError> {
        let opened = self.opened.as_ref().ok_or(DomainError::UnknownSession)?;
        if self.ended.is_some() {
            return Err(DomainError::SessionEnded);
        }
        Ok(opened)
    }

    /// Running and the citizen admitted: the precondition of everything done together.
    pub fn in_room(&self) -> Result<&SessionOpened, DomainError> {
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

/// The commands of a session's stream, from opening to the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionCommand {
    OpenSession {
        appointment: AppointmentId,
        session: SessionId,
    },
    Join {
        session: SessionId,
        party: Party,
    },
    Leave {
        session: SessionId,
        party: Party,
    },
    LoseConnection {
        session: SessionId,
        party: Party,
    },
    RestoreConnection {
        session: SessionId,
        party: Party,
    },
    AcceptPrivacyNotice {
        session: SessionId,
    },
    /// The citizen's pre-call check; only the result and the measured upload are kept.
    RecordPreCallCheck {
        session: SessionId,
        passed: bool,
        upload_kbit_s: u32,
    },
    Admit {
        session: SessionId,
        clerk: ClerkId,
    },
    /// The clerk sends an admitted citizen back to the waiting room.
    SendBackToWaitingRoom {
        session: SessionId,
        clerk: ClerkId,
    },
    /// The clerk removes the citizen from the session; the link no longer enters it.
    RemoveFromSession {
        session: SessionId,
        clerk: ClerkId,
    },
    /// The grace period of a lost connection is over. Nothing if it was restored meanwhile.
    ExpireReconnectGrace {
        session: SessionId,
        party: Party,
    },
    /// The clerk checked the document shown on camera: security features of at least three
    /// categories.
    VerifyIdentity {
        session: SessionId,
        document_type: DocumentType,
        features_checked: Vec<SecurityFeature>,
        /// Control questions were asked; their content is not kept.
        questions_asked: bool,
        clerk: ClerkId,
    },
    FailIdentityCheck {
        session: SessionId,
        document_type: DocumentType,
        reason: Personal,
        questions_asked: bool,
        clerk: ClerkId,
    },
    UploadDocument {
        session: SessionId,
        document: DocumentId,
        by: Party,
        file_name: Personal,
        media_type: MediaType,
        size_bytes: u64,
        sha256: Sha256,
    },
    ShareDocument {
        session: SessionId,
        document: DocumentId,
    },
    DownloadDocument {
        session: SessionId,
        document: DocumentId,
        by: Party,
    },
    /// The citizen's feedback after the end: an overall mark and, from the questionnaire,
    /// the marks per aspect (then the overall mark must be their rounded mean).
    SubmitFeedback {
        session: SessionId,
        score: u8,
        aspects: Option<FeedbackAspects>,
        comment: Option<Personal>,
    },
    HandOverToCaseSystem {
        session: SessionId,
        target: String,
        reference: String,
    },
    /// Ends the session and completes its appointment; completing checks the session's forms.
    EndSession {
        session: SessionId,
        outcome: SessionOutcome,
    },
}

impl SessionCommand {
    pub fn session(&self) -> SessionId {
        use SessionCommand::*;
        match self {
            OpenSession { session, .. }
            | Join { session, .. }
            | Leave { session, .. }
            | LoseConnection { session, .. }
            | RestoreConnection { session, .. }
            | AcceptPrivacyNotice { session }
            | RecordPreCallCheck { session, .. }
            | Admit { session, .. }
            | SendBackToWaitingRoom { session, .. }
            | RemoveFromSession { session, .. }
            | ExpireReconnectGrace { session, .. }
            | VerifyIdentity { session, .. }
            | FailIdentityCheck { session, .. }
            | UploadDocument { session, .. }
            | ShareDocument { session, .. }
            | DownloadDocument { session, .. }
            | SubmitFeedback { session, .. }
            | HandOverToCaseSystem { session, .. }
            | EndSession { session, .. } => *session,
        }
    }

    pub fn streams(&self, loaded: &Histories, _ctx: &Context<'_>) -> Vec<StreamId> {
        let session = self.session();
        match self {
            Self::OpenSession { appointment, .. } => vec![appointment.stream(), session.stream()],
            Self::EndSession { .. } => {
                let state = SessionState::of(loaded, session);
                let mut streams = vec![session.stream()];
                if let Some(opened) = &state.opened {
                    streams.push(opened.appointment.stream());
                }
                streams.extend(state.forms.keys().map(|f| f.stream()));
                streams
            }
            _ => vec![session.stream()],
        }
    }

    pub fn decide(&self, h: &Histories, ctx: &Context<'_>) -> Result<Decision, DomainError> {
        use SessionCommand::*;
        let session = self.session();
        let state = SessionState::of(h, session);
        let stream = session.stream();
        match self {
            OpenSession { appointment, .. } => {
                let appointment_state = h.fold(&appointment.stream(), AppointmentState::evolve);
                let booking = appointment_state.open_booking()?;
                if appointment_state.session.is_some() || state.opened.is_some() {
                    return Err(DomainError::SessionAlreadyOpen);
                }
                let services: Vec<_> = booking
                    .services
                    .iter()
                    .filter_map(|s| ctx.tenant.service(s))
                    .collect();
                Ok(vec![
                    (
                        stream,
                        SessionOpened {
                            appointment: *appointment,
                            subject: Some(booking.subject),
                            department: booking.department.clone(),
                            services: booking.services.clone(),
                            identity_check_required: services.iter().any(|s| s.identity_check),
                            signature_required: services.iter().any(|s| s.signature),
                        }
                        .into(),
                    ),
                    (appointment.stream(), SessionLinked { session }.into()),
                ])
            }
            Join { party, .. } => {
                state.running()?;
                if *party == Party::Citizen && state.citizen_removed {
                    return Err(DomainError::RemovedFromSession);
                }
                let present = match party {
                    Party::Citizen => state.citizen_present,
                    Party::Clerk => state.clerk_present,
                };
                if present {
                    return Ok(vec![]);
                }
                Ok(one(stream, ParticipantJoined { party: *party }))
            }
            Leave { party, .. } => {
                state.running()?;
                Ok(one(stream, ParticipantLeft { party: *party }))
            }
            LoseConnection { party, .. } => {
                state.running()?;
                Ok(one(stream, ConnectionLost { party: *party }))
            }
            RestoreConnection { party, .. } => {
                state.running()?;
                Ok(one(stream, ConnectionRestored { party: *party }))
            }
            AcceptPrivacyNotice { .. } => {
                state.running()?;
                if state.privacy_accepted {
                    return Ok(vec![]);
                }
                Ok(one(stream, PrivacyNoticeAccepted {}))
            }
            RecordPreCallCheck {
                passed,
                upload_kbit_s,
                ..
            } => {
                state.running()?;
                Ok(one(
                    stream,
                    PreCallCheckRecorded {
                        passed: *passed,
                        upload_kbit_s: *upload_kbit_s,
                    },
                ))
            }
            SendBackToWaitingRoom { clerk, .. } => {
                state.in_room()?;
                Ok(one(
                    stream,
                    SentBackToWaitingRoom {
                        clerk: clerk.clone(),
                    },
                ))
            }
            RemoveFromSession { clerk, .. } => {
                state.running()?;
                if state.citizen_removed {
                    return Ok(vec![]);
                }
                Ok(one(
                    stream,
                    RemovedFromSession {
                        clerk: clerk.clone(),
                    },
                ))
            }
            ExpireReconnectGrace { party, .. } => {
                state.running()?;
                let lost = match party {
                    Party::Citizen => state.citizen_connection_lost,
                    Party::Clerk => false,
                };
                if !lost {
                    return Ok(vec![]);
                }
                Ok(one(stream, ReconnectGraceExpired { party: *party }))
            }
            Admit { clerk, .. } => {
                state.admit()?;
                Ok(one(
                    stream,
                    AdmittedFromWaitingRoom {
                        clerk: clerk.clone(),
                    },
                ))
            }
            VerifyIdentity {
                document_type,
                features_checked,
                questions_asked,
                clerk,
                ..
            } => {
                state.in_room()?;
                SecurityFeature::enough(features_checked)?;
                Ok(one(
                    stream,
                    IdentityVerified {
                        document_type: *document_type,
                        questions_asked: *questions_asked,
                        features_checked: features_checked.clone(),
                        clerk: clerk.clone(),
                    },
                ))
            }
            FailIdentityCheck {
                document_type,
                reason,
                questions_asked,
                clerk,
                ..
            } => {
                state.in_room()?;
                Ok(one(
                    stream,
                    IdentityCheckFailed {
                        document_type: *document_type,
                        questions_asked: *questions_asked,
                        reason: reason.clone(),
                        clerk: clerk.clone(),
                    },
                ))
            }
            UploadDocument {
                document,
                by,
                file_name,
                media_type,
                size_bytes,
                sha256,
                ..
            } => {
                state.in_room()?;
                if state.documents.contains(document) {
                    return Ok(vec![]);
                }
                Ok(one(
                    stream,
                    DocumentUploaded {
                        document: *document,
                        by: *by,
                        file_name: file_name.clone(),
                        media_type: *media_type,
                        size_bytes: *size_bytes,
                        sha256: *sha256,
                    },
                ))
            }
            ShareDocument { document, .. } => {
                state.has_document(*document)?;
                Ok(one(
                    stream,
                    DocumentShared {
                        document: *document,
                    },
                ))
            }
            DownloadDocument { document, by, .. } => {
                state.has_document(*document)?;
                Ok(one(
                    stream,
                    DocumentDownloaded {
                        document: *document,
                        by: *by,
                    },
                ))
            }
            SubmitFeedback {
                score,
                aspects,
                comment,
                ..
            } => {
                state.opened.as_ref().ok_or(DomainError::UnknownSession)?;
                if state.ended.is_none() {
                    return Err(DomainError::FeedbackBeforeEnd);
                }
                if state.feedback_given {
                    return Err(DomainError::FeedbackAlreadyGiven);
                }
                let marks = aspects.map(|a| a.all()).unwrap_or_default();
                if !(1..=5).contains(score)
                    || aspects.is_some() && marks.iter().any(|m| !(1..=5).contains(m))
                {
                    return Err(DomainError::ScoreOutOfRange);
                }
                if aspects.is_some_and(|a| a.overall() != *score) {
                    return Err(DomainError::ScoreOutOfRange);
                }
                Ok(one(
                    stream,
                    FeedbackSubmitted {
                        score: *score,
                        aspects: *aspects,
                        comment: comment.clone(),
                    },
                ))
            }
            HandOverToCaseSystem {
                target, reference, ..
            } => {
                state.opened.as_ref().ok_or(DomainError::UnknownSession)?;
                Ok(one(
                    stream,
                    HandedOverToCaseSystem {
                        target: target.clone(),
                        reference: reference.clone(),
                    },
                ))
            }
            EndSession { outcome, .. } => {
                let opened = state.running()?;
                if *outcome == SessionOutcome::Completed {
                    if opened.identity_check_required && !state.identity_verified {
                        return Err(DomainError::IdentityNotVerified);
                    }
                    let forms: Vec<FormState> =
                        state.forms.keys().map(|f| FormState::of(h, *f)).collect();
                    let all_signed = forms.iter().all(|f| f.signed);
                    if opened.signature_required && (forms.is_empty() || !all_signed) {
                        return Err(DomainError::SignatureMissing);
                    }
                }
                Ok(vec![
                    (stream, SessionEnded { outcome: *outcome }.into()),
                    (
                        opened.appointment.stream(),
                        AppointmentCompleted { outcome: *outcome }.into(),
                    ),
                ])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use time::Duration;
    use uuid::Uuid;

    use super::*;
    use crate::domain::appointment::tests::{TUE_9, appointment, booked, booking};
    use crate::domain::command::Command;
    use crate::domain::form::FormCommand;
    use crate::domain::gwt::{ettlingen, given};

    fn session() -> SessionId {
        SessionId(Uuid::from_u128(77))
    }

    fn opened(services: &[&str]) -> Decision {
        let history = booked(
            ettlingen(),
            vec![],
            booking(1, "buergerbuero", services, TUE_9),
        );
        booked(
            ettlingen(),
            history,
            SessionCommand::OpenSession {
                appointment: appointment(1),
                session: session(),
            },
        )
    }

    fn then(history: &Decision, command: impl Into<Command>) -> Decision {
        booked(ettlingen(), history.clone(), command)
    }

    fn admitted(services: &[&str]) -> Decision {
        let h = opened(services);
        let h = then(
            &h,
            SessionCommand::Join {
                session: session(),
                party: Party::Citizen,
            },
        );
        let h = then(
            &h,
            SessionCommand::AcceptPrivacyNotice { session: session() },
        );
        then(
            &h,
            SessionCommand::Admit {
                session: session(),
                clerk: "a.becker".into(),
            },
        )
    }

    #[test]
    fn opening_links_the_session_and_records_what_the_services_require() {
        let history = booked(
            ettlingen(),
            vec![],
            booking(1, "buergerbuero", &["personalausweis"], TUE_9),
        );
        given(ettlingen(), history.clone())
            .when(SessionCommand::OpenSession {
                appointment: appointment(1),
                session: session(),
            })
            .then_expect(vec![
                (
                    session().stream(),
                    SessionOpened {
                        appointment: appointment(1),
                        subject: Some(crate::domain::appointment::tests::subject(1)),
                        department: "buergerbuero".into(),
                        services: vec!["personalausweis".into()],
                        identity_check_required: true,
                        signature_required: true,
                    }
                    .into(),
                ),
                (
                    appointment(1).stream(),
                    SessionLinked { session: session() }.into(),
                ),
            ]);
        given(ettlingen(), opened(&["meldebescheinigung"]))
            .when(SessionCommand::OpenSession {
                appointment: appointment(1),
                session: SessionId(Uuid::from_u128(78)),
            })
            .then_error(DomainError::SessionAlreadyOpen);
        given(ettlingen(), vec![])
            .when(SessionCommand::OpenSession {
                appointment: appointment(9),
                session: session(),
            })
            .then_error(DomainError::UnknownAppointment);
    }

    #[test]
    fn admission_needs_the_citizen_waiting_and_the_privacy_notice_accepted() {
        let admit = || SessionCommand::Admit {
            session: session(),
            clerk: "a.becker".into(),
        };
        let h = opened(&["meldebescheinigung"]);
        given(ettlingen(), h.clone())
            .when(admit())
            .then_error(DomainError::CitizenNotWaiting);
        let h = then(
            &h,
            SessionCommand::Join {
                session: session(),
                party: Party::Citizen,
            },
        );
        given(ettlingen(), h.clone())
            .when(admit())
            .then_error(DomainError::PrivacyNoticeNotAccepted);
        let h = then(
            &h,
            SessionCommand::AcceptPrivacyNotice { session: session() },
        );
        given(ettlingen(), h.clone())
            .when(admit())
            .then_expect(vec![(
                session().stream(),
                AdmittedFromWaitingRoom {
                    clerk: "a.becker".into(),
                }
                .into(),
            )]);
        let h = then(&h, admit());
        given(ettlingen(), h)
            .when(admit())
            .then_error(DomainError::AlreadyAdmitted);
        given(ettlingen(), vec![])
            .when(admit())
            .then_error(DomainError::UnknownSession);
    }

    #[test]
    fn the_clerk_sends_back_and_admits_again_and_a_removed_citizen_stays_out() {
        let send_back = || SessionCommand::SendBackToWaitingRoom {
            session: session(),
            clerk: "a.becker".into(),
        };
        let admit = || SessionCommand::Admit {
            session: session(),
            clerk: "a.becker".into(),
        };
        given(ettlingen(), opened(&["meldebescheinigung"]))
            .when(send_back())
            .then_error(DomainError::NotAdmitted);
        let h = admitted(&["meldebescheinigung"]);
        given(ettlingen(), h.clone())
            .when(send_back())
            .then_expect(vec![(
                session().stream(),
                SentBackToWaitingRoom {
                    clerk: "a.becker".into(),
                }
                .into(),
            )]);
        let back = then(&h, send_back());
        given(ettlingen(), back.clone())
            .when(SessionCommand::UploadDocument {
                session: session(),
                document: DocumentId(Uuid::from_u128(5)),
                by: Party::Citizen,
                file_name: Personal::plain("a.pdf"),
                media_type: MediaType::PDF,
                size_bytes: 1,
                sha256: Sha256::from_bytes([7; 32]),
            })
            .then_error(DomainError::NotAdmitted);
        given(ettlingen(), back.clone())
            .when(admit())
            .then_expect(vec![(
                session().stream(),
                AdmittedFromWaitingRoom {
                    clerk: "a.becker".into(),
                }
                .into(),
            )]);

        let remove = || SessionCommand::RemoveFromSession {
            session: session(),
            clerk: "a.becker".into(),
        };
        given(ettlingen(), back.clone())
            .when(remove())
            .then_expect(vec![(
                session().stream(),
                RemovedFromSession {
                    clerk: "a.becker".into(),
                }
                .into(),
            )]);
        let removed = then(&back, remove());
        given(ettlingen(), removed.clone())
            .when(remove())
            .then_expect(vec![]);
        given(ettlingen(), removed.clone())
            .when(SessionCommand::Join {
                session: session(),
                party: Party::Citizen,
            })
            .then_error(DomainError::RemovedFromSession);
        given(ettlingen(), removed)
            .when(admit())
            .then_error(DomainError::CitizenNotWaiting);
    }

    #[test]
    fn a_lost_connection_past_its_grace_puts_the_citizen_back_in_the_waiting_room() {
        let expire = |party| SessionCommand::ExpireReconnectGrace {
            session: session(),
            party,
        };
        let h = admitted(&["meldebescheinigung"]);
        given(ettlingen(), h.clone())
            .when(expire(Party::Citizen))
            .then_expect(vec![]);
        let lost = then(
            &h,
            SessionCommand::LoseConnection {
                session: session(),
                party: Party::Citizen,
            },
        );
        given(ettlingen(), lost.clone())
            .when(expire(Party::Clerk))
            .then_expect(vec![]);
        given(ettlingen(), lost.clone())
            .when(expire(Party::Citizen))
            .then_expect(vec![(
                session().stream(),
                ReconnectGraceExpired {
                    party: Party::Citizen,
                }
                .into(),
            )]);
        let restored = then(
            &lost,
            SessionCommand::RestoreConnection {
                session: session(),
                party: Party::Citizen,
            },
        );
        given(ettlingen(), restored)
            .when(expire(Party::Citizen))
            .then_expect(vec![]);
        let expired = then(&lost, expire(Party::Citizen));
        given(ettlingen(), expired.clone())
            .when(SessionCommand::ShareDocument {
                session: session(),
                document: DocumentId(Uuid::from_u128(5)),
            })
            .then_error(DomainError::NotAdmitted);
        given(ettlingen(), expired)
            .when(SessionCommand::Admit {
                session: session(),
                clerk: "a.becker".into(),
            })
            .then_expect(vec![(
                session().stream(),
                AdmittedFromWaitingRoom {
                    clerk: "a.becker".into(),
                }
                .into(),
            )]);
    }

    #[test]
    fn the_pre_call_check_keeps_only_the_result_and_the_upload() {
        given(ettlingen(), opened(&["meldebescheinigung"]))
            .when(SessionCommand::RecordPreCallCheck {
                session: session(),
                passed: false,
                upload_kbit_s: 1_500,
            })
            .then_expect(vec![(
                session().stream(),
                PreCallCheckRecorded {
                    passed: false,
                    upload_kbit_s: 1_500,
                }
                .into(),
            )]);
        given(ettlingen(), vec![])
            .when(SessionCommand::RecordPreCallCheck {
                session: session(),
                passed: true,
                upload_kbit_s: 20_000,
            })
            .then_error(DomainError::UnknownSession);
    }

    #[test]
    fn joining_twice_accepting_twice_and_reconnecting() {
        let h = opened(&["meldebescheinigung"]);
        let h = then(
            &h,
            SessionCommand::Join {
                session: session(),
                party: Party::Citizen,
            },
        );
        given(ettlingen(), h.clone())
            .when(SessionCommand::Join {
                session: session(),
                party: Party::Citizen,
            })
            .then_nothing();
        let h = then(
            &h,
            SessionCommand::AcceptPrivacyNotice { session: session() },
        );
        given(ettlingen(), h.clone())
            .when(SessionCommand::AcceptPrivacyNotice { session: session() })
            .then_nothing();
        given(ettlingen(), h.clone())
            .when(SessionCommand::LoseConnection {
                session: session(),
                party: Party::Citizen,
            })
            .then_expect(vec![(
                session().stream(),
                ConnectionLost {
                    party: Party::Citizen,
                }
                .into(),
            )]);
        given(ettlingen(), h.clone())
            .when(SessionCommand::RestoreConnection {
                session: session(),
                party: Party::Citizen,
            })
            .then_expect(vec![(
                session().stream(),
                ConnectionRestored {
                    party: Party::Citizen,
                }
                .into(),
            )]);
        given(ettlingen(), h)
            .when(SessionCommand::Leave {
                session: session(),
                party: Party::Citizen,
            })
            .then_expect(vec![(
                session().stream(),
                ParticipantLeft {
                    party: Party::Citizen,
                }
                .into(),
            )]);
    }

    /// A check of three categories: optically variable, personalisation, security print.
    fn three_categories() -> Vec<SecurityFeature> {
        vec![
            SecurityFeature::Hologramm,
            SecurityFeature::Lichtbild,
            SecurityFeature::Guillochen,
        ]
    }

    fn verify(features_checked: Vec<SecurityFeature>) -> SessionCommand {
        SessionCommand::VerifyIdentity {
            session: session(),
            document_type: DocumentType::Personalausweis,
            questions_asked: true,
            features_checked,
            clerk: "a.becker".into(),
        }
    }

    #[test]
    fn work_in_the_room_needs_admission() {
        let h = opened(&["personalausweis"]);
        given(ettlingen(), h)
            .when(verify(three_categories()))
            .then_error(DomainError::NotAdmitted);
        given(ettlingen(), admitted(&["personalausweis"]))
            .when(verify(three_categories()))
            .then_expect(vec![(
                session().stream(),
                IdentityVerified {
                    document_type: DocumentType::Personalausweis,
                    questions_asked: true,
                    features_checked: three_categories(),
                    clerk: "a.becker".into(),
                }
                .into(),
            )]);
        given(ettlingen(), admitted(&["personalausweis"]))
            .when(SessionCommand::FailIdentityCheck {
                session: session(),
                document_type: DocumentType::Personalausweis,
                questions_asked: true,
                reason: crate::domain::Personal::plain("abgelaufen"),
                clerk: "a.becker".into(),
            })
            .decision();
    }

    #[test]
    fn given_an_admitted_citizen_when_fewer_than_three_categories_are_checked_then_refused() {
        use SecurityFeature::*;
        for too_few in [
            vec![Hologramm, Lichtbild],
            vec![Hologramm, Kinegramm, Identigram, Lichtbild],
            vec![Hologramm, Lichtbild, Gueltigkeit],
        ] {
            given(ettlingen(), admitted(&["personalausweis"]))
                .when(verify(too_few))
                .then_error(DomainError::TooFewSecurityFeatures);
        }
        given(ettlingen(), admitted(&["personalausweis"]))
            .when(verify(vec![
                Kippbild,
                Lasergravur,
                Polycarbonat,
                Gueltigkeit,
            ]))
            .decision();
    }

    #[test]
    fn documents_are_uploaded_then_shared_and_downloaded() {
        let doc = DocumentId(Uuid::from_u128(5));
        let upload = SessionCommand::UploadDocument {
            session: session(),
            document: doc,
            by: Party::Citizen,
            file_name: crate::domain::Personal::plain("mietvertrag.pdf"),
            media_type: MediaType::PDF,
            size_bytes: 12_345,
            sha256: "ab".repeat(32).parse().expect("64 hex digits"),
        };
        let h = admitted(&["meldebescheinigung"]);
        given(ettlingen(), h.clone())
            .when(SessionCommand::ShareDocument {
                session: session(),
                document: doc,
            })
            .then_error(DomainError::UnknownDocument);
        let h = then(&h, upload.clone());
        given(ettlingen(), h.clone()).when(upload).then_nothing();
        given(ettlingen(), h.clone())
            .when(SessionCommand::ShareDocument {
                session: session(),
                document: doc,
            })
            .then_expect(vec![(
                session().stream(),
                DocumentShared { document: doc }.into(),
            )]);
        given(ettlingen(), h)
            .when(SessionCommand::DownloadDocument {
                session: session(),
                document: doc,
                by: Party::Citizen,
            })
            .then_expect(vec![(
                session().stream(),
                DocumentDownloaded {
                    document: doc,
                    by: Party::Citizen,
                }
                .into(),
            )]);
    }

    #[test]
    fn a_service_needing_identity_cannot_be_completed_without_it() {
        let end = SessionCommand::EndSession {
            session: session(),
            outcome: SessionOutcome::Completed,
        };
        given(ettlingen(), admitted(&["meldebescheinigung"]))
            .when(end.clone())
            .then_error(DomainError::IdentityNotVerified);
        // Aborting is always possible.
        given(ettlingen(), admitted(&["meldebescheinigung"]))
            .when(SessionCommand::EndSession {
                session: session(),
                outcome: SessionOutcome::Aborted,
            })
            .decision();
        let h = then(
            &admitted(&["meldebescheinigung"]),
            SessionCommand::VerifyIdentity {
                session: session(),
                document_type: DocumentType::Reisepass,
                questions_asked: true,
                features_checked: three_categories(),
                clerk: "a.becker".into(),
            },
        );
        given(ettlingen(), h.clone()).when(end).then_expect(vec![
            (
                session().stream(),
                SessionEnded {
                    outcome: SessionOutcome::Completed,
                }
                .into(),
            ),
            (
                appointment(1).stream(),
                AppointmentCompleted {
                    outcome: SessionOutcome::Completed,
                }
                .into(),
            ),
        ]);
    }

    #[test]
    fn a_service_needing_a_signature_cannot_be_completed_without_a_signed_form() {
        let h = then(&admitted(&["personalausweis"]), verify(three_categories()));
        let end = SessionCommand::EndSession {
            session: session(),
            outcome: SessionOutcome::Completed,
        };
        given(ettlingen(), h.clone())
            .when(end.clone())
            .then_error(DomainError::SignatureMissing);
        let form = crate::domain::FormId(Uuid::from_u128(9));
        let h = then(
            &h,
            FormCommand::StartForm {
                session: session(),
                form,
                template: "antrag-personalausweis".into(),
            },
        );
        given(ettlingen(), h.clone())
            .when(end.clone())
            .then_error(DomainError::SignatureMissing);
        let mut h = h;
        for (field, value) in [
            ("familienname", "Mustermann"),
            ("vorname", "Erika"),
            ("geburtsdatum", "1964-08-12"),
        ] {
            h = then(
                &h,
                FormCommand::ChangeField {
                    form,
                    field: field.into(),
                    value: crate::domain::Personal::plain(value),
                    by: Party::Clerk,
                    based_on: None,
                },
            );
        }
        let h = then(
            &h,
            FormCommand::RequestSignature {
                form,
                method: crate::tenant::SignatureMethod::HandyTan,
            },
        );
        let h = then(
            &h,
            FormCommand::IssueTan {
                form,
                method: crate::tenant::SignatureMethod::HandyTan,
                tan: Uuid::from_u128(0x7a4),
                digest: "1".repeat(64).parse().expect("64 hex digits"),
            },
        );
        let h = then(
            &h,
            FormCommand::EnterTan {
                form,
                digest: "1".repeat(64).parse().expect("64 hex digits"),
            },
        );
        let h = then(
            &h,
            FormCommand::SignForm {
                form,
                method: crate::tenant::SignatureMethod::HandyTan,
                evidence_sha256: "e".repeat(64).parse().expect("64 hex digits"),
                document_sha256: "d".repeat(64).parse().expect("64 hex digits"),
                edits_seen: None,
            },
        );
        given(ettlingen(), h.clone()).when(end.clone()).decision();
        let h = then(&h, end.clone());
        given(ettlingen(), h)
            .when(end)
            .then_error(DomainError::SessionEnded);
    }

    #[test]
    fn feedback_comes_once_after_the_end_with_a_score_from_1_to_5() {
        let feedback = |score| SessionCommand::SubmitFeedback {
            session: session(),
            score,
            aspects: None,
            comment: None,
        };
        let h = admitted(&["meldebescheinigung"]);
        given(ettlingen(), h.clone())
            .when(feedback(5))
            .then_error(DomainError::FeedbackBeforeEnd);
        let h = then(
            &h,
            SessionCommand::EndSession {
                session: session(),
                outcome: SessionOutcome::Aborted,
            },
        );
        given(ettlingen(), h.clone())
            .when(feedback(0))
            .then_error(DomainError::ScoreOutOfRange);
        given(ettlingen(), h.clone())
            .when(feedback(6))
            .then_error(DomainError::ScoreOutOfRange);
        // The questionnaire's marks per aspect, each 1 to 5, and their rounded mean overall.
        let rated = |score, marks: [u8; 4]| SessionCommand::SubmitFeedback {
            session: session(),
            score,
            aspects: Some(FeedbackAspects {
                picture_and_sound: marks[0],
                usability: marks[1],
                waiting_time: marks[2],
                result: marks[3],
            }),
            comment: Some(Personal::plain("Sehr freundlich")),
        };
        given(ettlingen(), h.clone())
            .when(rated(4, [5, 4, 0, 5]))
            .then_error(DomainError::ScoreOutOfRange);
        given(ettlingen(), h.clone())
            .when(rated(5, [5, 4, 3, 5]))
            .then_error(DomainError::ScoreOutOfRange);
        let decided = given(ettlingen(), h.clone())
            .when(rated(4, [5, 4, 3, 5]))
            .decision();
        assert!(matches!(
            &decided[..],
            [(_, DomainEvent::FeedbackSubmitted(FeedbackSubmitted { score: 4, aspects: Some(a), .. }))]
                if a.all() == [5, 4, 3, 5]
        ));
        assert_eq!(
            FeedbackAspects {
                picture_and_sound: 5,
                usability: 5,
                waiting_time: 4,
                result: 4
            }
            .overall(),
            5,
            "4.5 rounds up"
        );
        let h = then(&h, feedback(4));
        given(ettlingen(), h)
            .when(feedback(5))
            .then_error(DomainError::FeedbackAlreadyGiven);
    }

    #[test]
    fn handover_to_the_case_system_is_recorded_even_after_the_end() {
        let h = then(
            &admitted(&["meldebescheinigung"]),
            SessionCommand::EndSession {
                session: session(),
                outcome: SessionOutcome::Aborted,
            },
        );
        given(ettlingen(), h)
            .at(TUE_9 + Duration::hours(2))
            .when(SessionCommand::HandOverToCaseSystem {
                session: session(),
                target: "OK.EWO".into(),
                reference: "EWO-2026-0042".into(),
            })
            .then_expect(vec![(
                session().stream(),
                HandedOverToCaseSystem {
                    target: "OK.EWO".into(),
                    reference: "EWO-2026-0042".into(),
                }
                .into(),
            )]);
    }
}
