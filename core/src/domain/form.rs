//! `form-{id}`: a form filled in together and signed.
//!
//! Invariant: after `FormSigned` no change of any kind is accepted, from anyone, clerks
//! included; the form is `FormLocked` in the same append.

use std::collections::BTreeMap;

use super::document::Sha256;
use super::events::{
    FieldChanged, FormAttached, FormLocked, FormSigned, FormStarted, Party, SignatureRequested,
    TanAccepted, TanIssued, TanRejected,
};
use super::session::SessionState;
use super::{
    Context, Decision, DomainError, DomainEvent, FormId, Histories, Personal, SessionId, one,
};
use crate::event::StreamId;
use crate::tenant::{FieldKind, FormTemplate, FormTemplateId, SignatureMethod};

/// How often a field was written, and by whom last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldVersion {
    /// The number of `FieldChanged` of the field so far (0: never written).
    pub version: u64,
    pub by: Party,
}

/// How often a TAN may be typed in wrongly before a new one is needed.
pub const TAN_ATTEMPTS: u8 = 5;

/// How long a TAN is valid.
pub const TAN_VALIDITY: time::Duration = time::Duration::minutes(5);

/// The latest TAN of a form: only the newest one counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TanState {
    pub issued: TanIssued,
    pub attempts: u8,
    pub accepted: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FormState {
    /// The newest TAN, if one was issued.
    pub tan: Option<TanState>,
    pub started: Option<FormStarted>,
    pub values: BTreeMap<String, Personal>,
    /// Each written field's version; a field not in here is at version 0.
    pub versions: BTreeMap<String, FieldVersion>,
    /// The number of `FieldChanged` so far: what a rendering of the form was based on.
    pub edits: u64,
    pub requested: Option<SignatureMethod>,
    pub signed: bool,
    pub locked: bool,
}

impl FormState {
    /// The form's state as its loaded stream folds.
    pub fn of(h: &Histories, form: FormId) -> Self {
        h.fold(&form.stream(), Self::evolve)
    }

    pub fn evolve(mut self, event: &DomainEvent) -> Self {
        match event {
            DomainEvent::FormStarted(e) => self.started = Some(e.clone()),
            DomainEvent::FieldChanged(e) => {
                self.edits += 1;
                let version = self.version(&e.field) + 1;
                self.versions
                    .insert(e.field.clone(), FieldVersion { version, by: e.by });
                // An empty plain value is how clearing was written before sealing.
                match &e.value {
                    None => {
                        self.values.remove(&e.field);
                    }
                    Some(Personal::Plain(text)) if text.is_empty() => {
                        self.values.remove(&e.field);
                    }
                    Some(value) => {
                        self.values.insert(e.field.clone(), value.clone());
                    }
                }
            }
            DomainEvent::SignatureRequested(e) => self.requested = Some(e.method),
            DomainEvent::FormSigned(_) => self.signed = true,
            DomainEvent::FormLocked(_) => self.locked = true,
            DomainEvent::TanIssued(e) => {
                self.tan = Some(TanState {
                    issued: e.clone(),
                    attempts: 0,
                    accepted: false,
                });
            }
            DomainEvent::TanRejected(e) => {
                if let Some(t) = self.tan.as_mut().filter(|t| t.issued.tan == e.tan) {
                    t.attempts = e.attempts;
                }
            }
            DomainEvent::TanAccepted(e) => {
                if let Some(t) = self.tan.as_mut().filter(|t| t.issued.tan == e.tan) {
                    t.accepted = true;
                }
            }
            _ => {}
        }
        self
    }

    /// The state the events fold to (a stream read by itself).
    pub fn of_events(events: &[DomainEvent]) -> Self {
        events.iter().fold(Self::default(), |s, e| s.evolve(e))
    }

    /// The field's version: how many writes it had.
    pub fn version(&self, field: &str) -> u64 {
        self.versions.get(field).map_or(0, |v| v.version)
    }

    /// Open for changes: started and neither signed nor locked.
    pub fn editable(&self) -> Result<&FormStarted, DomainError> {
        let started = self.started.as_ref().ok_or(DomainError::UnknownForm)?;
        if self.signed || self.locked {
            return Err(DomainError::FormLocked);
        }
        Ok(started)
    }

    /// Every required field has a value.
    pub fn complete(&self, template: &FormTemplate) -> Result<(), DomainError> {
        match template
            .fields
            .iter()
            .find(|f| f.required && !self.values.contains_key(&f.id))
        {
            Some(missing) => Err(DomainError::RequiredFieldEmpty(missing.label.clone())),
            None => Ok(()),
        }
    }
}

/// The commands of a form's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormCommand {
    /// Starts a form of one of the session's services and attaches it to the session.
    StartForm {
        session: SessionId,
        form: FormId,
        template: FormTemplateId,
    },
    /// Sets a field. `based_on` is the field's version the writer saw (`None`: not known,
    /// taken as the current one). A stale write is applied all the same, last writer wins in
    /// log order, and its event names the party whose unseen value it replaced.
    ChangeField {
        form: FormId,
        field: String,
        value: Personal,
        by: Party,
        based_on: Option<u64>,
    },
    RequestSignature {
        form: FormId,
        method: SignatureMethod,
    },
    /// Issues a new TAN for the requested TAN signature; it replaces any earlier one. The
    /// caller made the code and passes only its keyed digest.
    IssueTan {
        form: FormId,
        method: SignatureMethod,
        tan: uuid::Uuid,
        digest: Sha256,
    },
    /// The citizen typed a code in; `digest` is its keyed digest for the newest TAN. A wrong
    /// code is recorded (`TanRejected`), a right one uses the TAN up (`TanAccepted`).
    EnterTan { form: FormId, digest: Sha256 },
    /// Signs and locks. `edits_seen` is [`FormState::edits`] when the document was rendered:
    /// a change since then is refused, so the signed document always shows the values the
    /// form holds at `FormLocked`.
    SignForm {
        form: FormId,
        method: SignatureMethod,
        evidence_sha256: Sha256,
        document_sha256: Sha256,
        edits_seen: Option<u64>,
    },
}

impl FormCommand {
    pub fn form(&self) -> FormId {
        match self {
            Self::StartForm { form, .. }
            | Self::ChangeField { form, .. }
            | Self::RequestSignature { form, .. }
            | Self::IssueTan { form, .. }
            | Self::EnterTan { form, .. }
            | Self::SignForm { form, .. } => *form,
        }
    }

    pub fn streams(&self, _loaded: &Histories, _ctx: &Context<'_>) -> Vec<StreamId> {
        match self {
            Self::StartForm { session, form, .. } => vec![session.stream(), form.stream()],
            _ => vec![self.form().stream()],
        }
    }

    pub fn decide(&self, h: &Histories, ctx: &Context<'_>) -> Result<Decision, DomainError> {
        let tenant = ctx.tenant;
        let form = self.form();
        let state = FormState::of(h, form);
        let template_of = |started: &FormStarted| {
            tenant
                .forms
                .get(&started.template)
                .ok_or(DomainError::UnknownTemplate)
        };
        match self {
            Self::StartForm {
                session, template, ..
            } => {
                let session_state = SessionState::of(h, *session);
                let opened = session_state.in_room()?;
                let t = tenant
                    .forms
                    .get(template)
                    .ok_or(DomainError::UnknownTemplate)?;
                if !opened.services.contains(&t.service) {
                    return Err(DomainError::UnknownTemplate);
                }
                if state.started.is_some() {
                    return Err(DomainError::FormAlreadyStarted);
                }
                Ok(vec![
                    (
                        form.stream(),
                        FormStarted {
                            session: *session,
                            subject: opened.subject,
                            template: template.clone(),
                            service: t.service.clone(),
                        }
                        .into(),
                    ),
                    (
                        session.stream(),
                        FormAttached {
                            form,
                            template: template.clone(),
                        }
                        .into(),
                    ),
                ])
            }
            Self::ChangeField {
                field,
                value,
                by,
                based_on,
                ..
            } => {
                let template = template_of(state.editable()?)?;
                // A command carries what was typed; a sealed value cannot be checked.
                let Personal::Plain(text) = value else {
                    return Err(DomainError::InvalidFieldValue {
                        field: field.clone(),
                        reason: "bereits versiegelter Wert",
                    });
                };
                check_value(template, field, text, *by)?;
                let value = (!text.is_empty()).then(|| value.clone());
                if state.values.get(field) == value.as_ref() {
                    return Ok(vec![]);
                }
                let current = state.versions.get(field.as_str());
                let overwrote = match (current, based_on) {
                    (Some(c), Some(seen)) if *seen < c.version && c.by != *by => Some(c.by),
                    _ => None,
                };
                Ok(one(
                    form.stream(),
                    FieldChanged {
                        field: field.clone(),
                        value,
                        by: *by,
                        based_on: *based_on,
                        overwrote,
                    },
                ))
            }
            Self::RequestSignature { method, .. } => {
                let template = template_of(state.editable()?)?;
                // The template's methods, a subset of the tenant's (checked when it is read).
                if !template.signature_methods.contains(method) {
                    return Err(DomainError::SignatureMethodNotOffered(*method));
                }
                state.complete(template)?;
                Ok(one(form.stream(), SignatureRequested { method: *method }))
            }
            Self::IssueTan {
                method,
                tan,
                digest,
                ..
            } => {
                state.editable()?;
                if !is_tan(*method) || state.requested != Some(*method) {
                    return Err(DomainError::SignatureNotRequested);
                }
                Ok(one(
                    form.stream(),
                    TanIssued {
                        tan: *tan,
                        method: *method,
                        digest: *digest,
                        expires_at: ctx.now + TAN_VALIDITY,
                    },
                ))
            }
            Self::EnterTan { digest, .. } => {
                state.editable()?;
                let t = state.tan.as_ref().ok_or(DomainError::NoTan)?;
                if t.accepted {
                    return Err(DomainError::TanUsed);
                }
                if t.attempts >= TAN_ATTEMPTS {
                    return Err(DomainError::TanLocked);
                }
                if ctx.now > t.issued.expires_at {
                    return Err(DomainError::TanExpired);
                }
                if *digest == t.issued.digest {
                    Ok(one(form.stream(), TanAccepted { tan: t.issued.tan }))
                } else {
                    Ok(one(
                        form.stream(),
                        TanRejected {
                            tan: t.issued.tan,
                            attempts: t.attempts + 1,
                        },
                    ))
                }
            }
            Self::SignForm {
                method,
                evidence_sha256,
                document_sha256,
                edits_seen,
                ..
            } => {
                let started = state.editable()?;
                if state.requested != Some(*method) {
                    return Err(DomainError::SignatureNotRequested);
                }
                if edits_seen.is_some_and(|seen| seen != state.edits) {
                    return Err(DomainError::FormChangedWhileSigning);
                }
                // A TAN signature needs the newest TAN, of this method, typed in correctly.
                if is_tan(*method)
                    && !state
                        .tan
                        .as_ref()
                        .is_some_and(|t| t.accepted && t.issued.method == *method)
                {
                    return Err(DomainError::TanNotAccepted);
                }
                state.complete(template_of(started)?)?;
                Ok(vec![
                    (
                        form.stream(),
                        FormSigned {
                            method: *method,
                            evidence_sha256: *evidence_sha256,
                            document_sha256: *document_sha256,
                        }
                        .into(),
                    ),
                    (form.stream(), FormLocked {}.into()),
                ])
            }
        }
    }
}

fn is_tan(method: SignatureMethod) -> bool {
    matches!(
        method,
        SignatureMethod::HiddenTan | SignatureMethod::HandyTan
    )
}

/// Checks a value against its field definition. An empty value clears an optional field.
fn check_value(
    template: &FormTemplate,
    field: &str,
    value: &str,
    _by: Party,
) -> Result<(), DomainError> {
    let def = template
        .field(field)
        .ok_or_else(|| DomainError::UnknownField(field.to_owned()))?;
    let invalid = |reason| {
        Err(DomainError::InvalidFieldValue {
            field: def.label.clone(),
            reason,
        })
    };
    if value.is_empty() {
        return Ok(());
    }
    match &def.kind {
        FieldKind::Text { max_length } if value.chars().count() > *max_length => {
            invalid("der Text ist zu lang")
        }
        FieldKind::Text { .. } => Ok(()),
        FieldKind::Date => match FieldKind::parse_date(value) {
            Some(_) => Ok(()),
            None => invalid("bitte als Datum JJJJ-MM-TT angeben"),
        },
        FieldKind::Email => {
            let ok = value.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty() && domain.contains('.') && !domain.starts_with('.')
            }) && !value.chars().any(char::is_whitespace);
            if ok {
                Ok(())
            } else {
                invalid("keine gültige E-Mail-Adresse")
            }
        }
        FieldKind::Number { min, max } => match value.parse::<i64>() {
            Ok(n) if n >= *min && n <= *max => Ok(()),
            Ok(_) => invalid("die Zahl liegt außerhalb des erlaubten Bereichs"),
            Err(_) => invalid("bitte eine ganze Zahl angeben"),
        },
        FieldKind::Choice { options } if options.iter().any(|o| o == value) => Ok(()),
        FieldKind::Choice { .. } => invalid("bitte eine der angebotenen Möglichkeiten wählen"),
        FieldKind::Checkbox if value == "ja" || value == "nein" => Ok(()),
        FieldKind::Checkbox => invalid("bitte ja oder nein"),
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::domain::appointment::tests::{TUE_9, appointment, booked, booking};
    use crate::domain::command::Command;
    use crate::domain::events::*;
    use crate::domain::gwt::{ettlingen, given};
    use crate::domain::session::SessionCommand;
    use crate::domain::{Decision, FormId, SessionId};
    use crate::tenant::Tenant;

    fn form() -> FormId {
        FormId(Uuid::from_u128(9))
    }

    fn session() -> SessionId {
        SessionId(Uuid::from_u128(77))
    }

    fn then(tenant: &'static Tenant, history: &Decision, command: impl Into<Command>) -> Decision {
        booked(tenant, history.clone(), command)
    }

    fn started(tenant: &'static Tenant) -> Decision {
        let mut h = booked(
            tenant,
            vec![],
            booking(
                1,
                "gewerbebehoerde",
                &["gewerbeanmeldung"],
                TUE_9 - time::Duration::minutes(10),
            ),
        );
        let steps: [Command; 5] = [
            SessionCommand::OpenSession {
                appointment: appointment(1),
                session: session(),
            }
            .into(),
            SessionCommand::Join {
                session: session(),
                party: Party::Citizen,
            }
            .into(),
            SessionCommand::AcceptPrivacyNotice { session: session() }.into(),
            SessionCommand::Admit {
                session: session(),
                clerk: "k.wagner".into(),
            }
            .into(),
            FormCommand::StartForm {
                session: session(),
                form: form(),
                template: "antrag-gewerbeanmeldung".into(),
            }
            .into(),
        ];
        for c in steps {
            h = then(tenant, &h, c);
        }
        h
    }

    fn change(field: &str, value: &str, by: Party) -> FormCommand {
        FormCommand::ChangeField {
            form: form(),
            field: field.into(),
            value: Personal::plain(value),
            by,
            based_on: None,
        }
    }

    fn filled(tenant: &'static Tenant) -> Decision {
        let mut h = started(tenant);
        for (field, value) in [
            ("familienname", "Mustermann"),
            ("vorname", "Erika"),
            ("geburtsdatum", "1964-08-12"),
            ("staatsangehoerigkeit", "deutsch"),
            ("betriebsstaette", "Marktplatz 2, 76275 Ettlingen"),
            ("taetigkeit", "Fahrradreparatur"),
            ("beginn", "2027-01-01"),
            ("rechtsform", "Einzelunternehmen"),
            ("niederlassung", "Hauptniederlassung"),
        ] {
            h = then(tenant, &h, change(field, value, Party::Citizen));
        }
        h
    }

    fn digest(hex: char) -> Sha256 {
        hex.to_string().repeat(64).parse().expect("64 hex digits")
    }

    fn sign(method: SignatureMethod) -> FormCommand {
        FormCommand::SignForm {
            form: form(),
            method,
            evidence_sha256: digest('e'),
            document_sha256: digest('d'),
            edits_seen: None,
        }
    }

    pub(crate) fn signed() -> Decision {
        let h = then(
            ettlingen(),
            &filled(ettlingen()),
            FormCommand::RequestSignature {
                form: form(),
                method: SignatureMethod::HiddenTan,
            },
        );
        let h = tan_accepted(&h, SignatureMethod::HiddenTan);
        then(ettlingen(), &h, sign(SignatureMethod::HiddenTan))
    }

    const TAN: Uuid = Uuid::from_u128(0x7a4);

    fn issue(method: SignatureMethod) -> FormCommand {
        FormCommand::IssueTan {
            form: form(),
            method,
            tan: TAN,
            digest: digest('1'),
        }
    }

    fn enter(c: char) -> FormCommand {
        FormCommand::EnterTan {
            form: form(),
            digest: digest(c),
        }
    }

    /// `h` with a TAN of `method` issued and typed in correctly.
    fn tan_accepted(h: &Decision, method: SignatureMethod) -> Decision {
        let h = then(ettlingen(), h, issue(method));
        then(ettlingen(), &h, enter('1'))
    }

    fn requested(method: SignatureMethod) -> Decision {
        then(
            ettlingen(),
            &filled(ettlingen()),
            FormCommand::RequestSignature {
                form: form(),
                method,
            },
        )
    }

    #[test]
    fn a_tan_is_issued_for_a_requested_tan_signature_only_and_valid_five_minutes() {
        given(ettlingen(), filled(ettlingen()))
            .when(issue(SignatureMethod::HiddenTan))
            .then_error(DomainError::SignatureNotRequested);
        given(ettlingen(), requested(SignatureMethod::Touchpad))
            .when(issue(SignatureMethod::Touchpad))
            .then_error(DomainError::SignatureNotRequested);
        given(ettlingen(), requested(SignatureMethod::HiddenTan))
            .when(issue(SignatureMethod::HiddenTan))
            .then_expect(vec![(
                form().stream(),
                TanIssued {
                    tan: TAN,
                    method: SignatureMethod::HiddenTan,
                    digest: digest('1'),
                    expires_at: crate::domain::gwt::MONDAY_8 + time::Duration::minutes(5),
                }
                .into(),
            )]);
        // Without the TAN typed in, a TAN signature is refused.
        given(ettlingen(), requested(SignatureMethod::HiddenTan))
            .when(sign(SignatureMethod::HiddenTan))
            .then_error(DomainError::TanNotAccepted);
    }

    #[test]
    fn five_wrong_tans_lock_it_until_a_new_one_is_issued() {
        let mut h = then(
            ettlingen(),
            &requested(SignatureMethod::HandyTan),
            issue(SignatureMethod::HandyTan),
        );
        for attempt in 1..=TAN_ATTEMPTS {
            given(ettlingen(), h.clone())
                .when(enter('9'))
                .then_expect(vec![(
                    form().stream(),
                    TanRejected {
                        tan: TAN,
                        attempts: attempt,
                    }
                    .into(),
                )]);
            h = then(ettlingen(), &h, enter('9'));
        }
        // Locked: even the right code is refused, and nothing is recorded.
        given(ettlingen(), h.clone())
            .when(enter('1'))
            .then_error(DomainError::TanLocked);
        given(ettlingen(), h.clone())
            .when(sign(SignatureMethod::HandyTan))
            .then_error(DomainError::TanNotAccepted);
        // A new TAN starts over.
        let fresh = Uuid::from_u128(0x7a5);
        let h = then(
            ettlingen(),
            &h,
            FormCommand::IssueTan {
                form: form(),
                method: SignatureMethod::HandyTan,
                tan: fresh,
                digest: digest('2'),
            },
        );
        given(ettlingen(), h.clone())
            .when(enter('1'))
            .then_expect(vec![(
                form().stream(),
                TanRejected {
                    tan: fresh,
                    attempts: 1,
                }
                .into(),
            )]);
        given(ettlingen(), h)
            .when(enter('2'))
            .then_expect(vec![(form().stream(), TanAccepted { tan: fresh }.into())]);
    }

    #[test]
    fn an_expired_or_used_tan_is_refused_and_recorded_nowhere() {
        let h = then(
            ettlingen(),
            &requested(SignatureMethod::HiddenTan),
            issue(SignatureMethod::HiddenTan),
        );
        let later = crate::domain::gwt::MONDAY_8 + time::Duration::minutes(5);
        given(ettlingen(), h.clone())
            .at(later)
            .when(enter('1'))
            .then_expect(vec![(form().stream(), TanAccepted { tan: TAN }.into())]);
        given(ettlingen(), h.clone())
            .at(later + time::Duration::seconds(1))
            .when(enter('1'))
            .then_error(DomainError::TanExpired);
        let h = then(ettlingen(), &h, enter('1'));
        given(ettlingen(), h.clone())
            .when(enter('1'))
            .then_error(DomainError::TanUsed);
        given(ettlingen(), vec![])
            .when(enter('1'))
            .then_error(DomainError::UnknownForm);
        given(ettlingen(), requested(SignatureMethod::HiddenTan))
            .when(enter('1'))
            .then_error(DomainError::NoTan);
        // Signed with it, the form is locked: the TAN cannot be used again.
        let h = then(ettlingen(), &h, sign(SignatureMethod::HiddenTan));
        given(ettlingen(), h)
            .when(enter('1'))
            .then_error(DomainError::FormLocked);
    }

    #[test]
    fn starting_a_form_attaches_it_to_the_session() {
        let h = started(ettlingen());
        assert!(
            h.contains(&(
                session().stream(),
                FormAttached {
                    form: form(),
                    template: "antrag-gewerbeanmeldung".into()
                }
                .into()
            ))
        );
        given(ettlingen(), h.clone())
            .when(FormCommand::StartForm {
                session: session(),
                form: form(),
                template: "antrag-gewerbeanmeldung".into(),
            })
            .then_error(DomainError::FormAlreadyStarted);
        given(ettlingen(), h)
            .when(FormCommand::StartForm {
                session: session(),
                form: FormId(Uuid::from_u128(10)),
                template: "antrag-personalausweis".into(),
            })
            .then_error(DomainError::UnknownTemplate);
    }

    #[test]
    fn both_parties_edit_and_every_change_is_an_event() {
        let h = started(ettlingen());
        given(ettlingen(), h.clone())
            .when(change("familienname", "Mustermann", Party::Clerk))
            .then_expect(vec![(
                form().stream(),
                FieldChanged {
                    field: "familienname".into(),
                    value: Some(Personal::plain("Mustermann")),
                    by: Party::Clerk,
                    based_on: None,
                    overwrote: None,
                }
                .into(),
            )]);
        let h = then(
            ettlingen(),
            &h,
            change("familienname", "Mustermann", Party::Clerk),
        );
        given(ettlingen(), h)
            .when(change("familienname", "Mustermann", Party::Citizen))
            .then_nothing();
    }

    fn change_seen(field: &str, value: &str, by: Party, based_on: u64) -> FormCommand {
        FormCommand::ChangeField {
            form: form(),
            field: field.into(),
            value: Personal::plain(value),
            by,
            based_on: Some(based_on),
        }
    }

    /// The form as its part of a test history folds.
    fn folded(h: &Decision) -> FormState {
        h.iter()
            .filter(|(stream, _)| *stream == form().stream())
            .fold(FormState::default(), |s, (_, e)| s.evolve(e))
    }

    fn changed(value: &str, by: Party, based_on: u64, overwrote: Option<Party>) -> Decision {
        vec![(
            form().stream(),
            FieldChanged {
                field: "vorname".into(),
                value: Some(Personal::plain(value)),
                by,
                based_on: Some(based_on),
                overwrote,
            }
            .into(),
        )]
    }

    #[test]
    fn a_stale_write_wins_in_log_order_and_names_whose_value_it_replaced() {
        // The clerk types "Erika" into an empty field (version 0 → 1).
        let h = started(ettlingen());
        given(ettlingen(), h.clone())
            .when(change_seen("vorname", "Erika", Party::Clerk, 0))
            .then_expect(changed("Erika", Party::Clerk, 0, None));
        let h = then(
            ettlingen(),
            &h,
            change_seen("vorname", "Erika", Party::Clerk, 0),
        );
        assert_eq!(folded(&h).version("vorname"), 1);
        // The citizen, who still saw the empty field, writes "Erica": applied, and the clerk's
        // unseen "Erika" is named as overwritten.
        given(ettlingen(), h.clone())
            .when(change_seen("vorname", "Erica", Party::Citizen, 0))
            .then_expect(changed("Erica", Party::Citizen, 0, Some(Party::Clerk)));
        // Had the citizen seen version 1, nobody's value was lost.
        given(ettlingen(), h.clone())
            .when(change_seen("vorname", "Erica", Party::Citizen, 1))
            .then_expect(changed("Erica", Party::Citizen, 1, None));
        // A writer's own earlier value is not "overwritten" by its later write.
        given(ettlingen(), h.clone())
            .when(change_seen("vorname", "Erik", Party::Clerk, 0))
            .then_expect(changed("Erik", Party::Clerk, 0, None));
        // The log decides: after the citizen's stale write the field holds "Erica", version 2.
        let h = then(
            ettlingen(),
            &h,
            change_seen("vorname", "Erica", Party::Citizen, 0),
        );
        let state = folded(&h);
        assert_eq!(state.values["vorname"], Personal::plain("Erica"));
        assert_eq!(
            state.versions["vorname"],
            FieldVersion {
                version: 2,
                by: Party::Citizen
            }
        );
    }

    #[test]
    fn a_form_that_was_never_started_cannot_be_edited_or_signed() {
        given(ettlingen(), vec![])
            .when(change("vorname", "Erika", Party::Clerk))
            .then_error(DomainError::UnknownForm);
        given(ettlingen(), vec![])
            .when(FormCommand::RequestSignature {
                form: form(),
                method: SignatureMethod::Touchpad,
            })
            .then_error(DomainError::UnknownForm);
    }

    #[test]
    fn values_are_checked_against_the_template() {
        let h = started(ettlingen());
        let refused = |field: &str, value: &str| {
            given(ettlingen(), h.clone())
                .when(change(field, value, Party::Citizen))
                .0
        };
        assert_eq!(
            refused("lieblingsfarbe", "blau"),
            Err(DomainError::UnknownField("lieblingsfarbe".into()))
        );
        assert!(matches!(
            refused("geburtsdatum", "12.08.1964"),
            Err(DomainError::InvalidFieldValue { .. })
        ));
        assert!(matches!(
            refused("beschaeftigte", "-1"),
            Err(DomainError::InvalidFieldValue { .. })
        ));
        assert!(matches!(
            refused("beschaeftigte", "viele"),
            Err(DomainError::InvalidFieldValue { .. })
        ));
        assert!(matches!(
            refused("rechtsform", "AG & Co"),
            Err(DomainError::InvalidFieldValue { .. })
        ));
        assert!(matches!(
            refused("vorname", &"x".repeat(101)),
            Err(DomainError::InvalidFieldValue { .. })
        ));
        assert!(refused("beschaeftigte", "3").is_ok());
    }

    #[test]
    fn a_signature_needs_every_required_field_and_a_request_with_the_same_method() {
        let h = started(ettlingen());
        given(ettlingen(), h)
            .when(FormCommand::RequestSignature {
                form: form(),
                method: SignatureMethod::Touchpad,
            })
            .then_error(DomainError::RequiredFieldEmpty("Familienname".into()));
        let h = filled(ettlingen());
        given(ettlingen(), h.clone())
            .when(sign(SignatureMethod::Touchpad))
            .then_error(DomainError::SignatureNotRequested);
        let h = then(
            ettlingen(),
            &h,
            FormCommand::RequestSignature {
                form: form(),
                method: SignatureMethod::HandyTan,
            },
        );
        given(ettlingen(), h.clone())
            .when(sign(SignatureMethod::Touchpad))
            .then_error(DomainError::SignatureNotRequested);
        let h = tan_accepted(&h, SignatureMethod::HandyTan);
        given(ettlingen(), h)
            .when(sign(SignatureMethod::HandyTan))
            .then_expect(vec![
                (
                    form().stream(),
                    FormSigned {
                        method: SignatureMethod::HandyTan,
                        evidence_sha256: digest('e'),
                        document_sha256: digest('d'),
                    }
                    .into(),
                ),
                (form().stream(), FormLocked {}.into()),
            ]);
    }

    #[test]
    fn a_method_the_tenant_does_not_offer_is_refused() {
        let (file, text) = crate::tenant::EXAMPLE_TENANTS[0];
        // The weapons forms allow touchpad and handy_tan, so the tenant keeps those two.
        let text = text.replace(
            r#"signature_methods = ["touchpad", "hidden_tan", "handy_tan"]"#,
            r#"signature_methods = ["touchpad", "handy_tan"]"#,
        );
        let without_hidden_tan: &'static Tenant =
            Box::leak(Box::new(Tenant::from_toml(file, &text).expect("valid")));
        given(without_hidden_tan, filled(without_hidden_tan))
            .when(FormCommand::RequestSignature {
                form: form(),
                method: SignatureMethod::HiddenTan,
            })
            .then_error(DomainError::SignatureMethodNotOffered(
                SignatureMethod::HiddenTan,
            ));
    }

    #[test]
    fn a_method_the_template_does_not_allow_is_refused() {
        let (file, text) = crate::tenant::EXAMPLE_TENANTS[0];
        let text = text.replace(
            "title = \"Gewerbeanmeldung (GewA 1)\"",
            "title = \"Gewerbeanmeldung (GewA 1)\"\nsignature_methods = [\"touchpad\"]",
        );
        let touchpad_form: &'static Tenant =
            Box::leak(Box::new(Tenant::from_toml(file, &text).expect("valid")));
        given(touchpad_form, filled(touchpad_form))
            .when(FormCommand::RequestSignature {
                form: form(),
                method: SignatureMethod::HiddenTan,
            })
            .then_error(DomainError::SignatureMethodNotOffered(
                SignatureMethod::HiddenTan,
            ));
        given(touchpad_form, filled(touchpad_form))
            .when(FormCommand::RequestSignature {
                form: form(),
                method: SignatureMethod::Touchpad,
            })
            .then_expect(one(
                form().stream(),
                SignatureRequested {
                    method: SignatureMethod::Touchpad,
                },
            ));
    }

    #[test]
    fn after_signing_nobody_changes_anything() {
        let h = signed();
        for by in [Party::Citizen, Party::Clerk] {
            given(ettlingen(), h.clone())
                .when(change("vorname", "Max", by))
                .then_error(DomainError::FormLocked);
            given(ettlingen(), h.clone())
                .when(change("beschaeftigte", "", by))
                .then_error(DomainError::FormLocked);
        }
        given(ettlingen(), h.clone())
            .when(FormCommand::RequestSignature {
                form: form(),
                method: SignatureMethod::Touchpad,
            })
            .then_error(DomainError::FormLocked);
        given(ettlingen(), h)
            .when(sign(SignatureMethod::HiddenTan))
            .then_error(DomainError::FormLocked);
    }
}
