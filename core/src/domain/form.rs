//! `form-{id}`: a form filled in together and signed.
//!
//! Invariant: after `FormSigned` no change of any kind is accepted, from anyone, clerks
//! included; the form is `FormLocked` in the same append.

use std::collections::BTreeMap;

use super::events::{FormStarted, Party};
use super::{DomainError, DomainEvent, Personal};
use crate::tenant::{FieldKind, FormTemplate, SignatureMethod};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FormState {
    pub started: Option<FormStarted>,
    pub values: BTreeMap<String, Personal<String>>,
    pub requested: Option<SignatureMethod>,
    pub signed: bool,
    pub locked: bool,
}

impl FormState {
    pub fn evolve(mut self, event: &DomainEvent) -> Self {
        match event {
            DomainEvent::FormStarted(e) => self.started = Some(e.clone()),
            DomainEvent::FieldChanged(e) => {
                if e.value.0.is_empty() {
                    self.values.remove(&e.field);
                } else {
                    self.values.insert(e.field.clone(), e.value.clone());
                }
            }
            DomainEvent::SignatureRequested(e) => self.requested = Some(e.method),
            DomainEvent::FormSigned(_) => self.signed = true,
            DomainEvent::FormLocked(_) => self.locked = true,
            _ => {}
        }
        self
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

/// Checks a value against its field definition. An empty value clears an optional field.
pub fn check_value(
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
        FieldKind::Date => {
            let format = time::macros::format_description!("[year]-[month]-[day]");
            match time::Date::parse(value, format) {
                Ok(_) => Ok(()),
                Err(_) => invalid("bitte als Datum JJJJ-MM-TT angeben"),
            }
        }
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
