//! Every command of the workflow, dispatched to the module of its stream kind, which names the
//! streams it reads and writes and decides it.
//!
//! A command names its streams in rounds: [`Command::streams`] is asked again after each load,
//! so a command that only knows an appointment id can ask for that appointment's calendar slots
//! once the appointment is loaded. The command bus appends the decision to all of them in one
//! atomic batch, each with the version it read.

use super::account::AccountCommand;
use super::appointment::AppointmentCommand;
use super::form::FormCommand;
use super::payment::PaymentCommand;
use super::record::RecordCommand;
use super::session::SessionCommand;
use super::subject::SubjectCommand;
use super::{Context, Decision, DomainError, Histories};
use crate::event::StreamId;

/// A command of any stream kind; each kind's module decides its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Account(AccountCommand),
    Appointment(AppointmentCommand),
    Session(SessionCommand),
    Form(FormCommand),
    Payment(PaymentCommand),
    Subject(SubjectCommand),
    Record(RecordCommand),
}

macro_rules! kinds {
    ($($variant:ident($kind:ty)),* $(,)?) => {
        $(
            impl From<$kind> for Command {
                fn from(command: $kind) -> Self {
                    Self::$variant(command)
                }
            }
        )*
    };
}

kinds!(
    Account(AccountCommand),
    Appointment(AppointmentCommand),
    Session(SessionCommand),
    Form(FormCommand),
    Payment(PaymentCommand),
    Subject(SubjectCommand),
    Record(RecordCommand),
);

impl Command {
    /// The streams this command needs, given what is loaded so far. The bus loads what is
    /// missing and asks again until nothing new is named.
    pub fn streams(&self, loaded: &Histories, ctx: &Context<'_>) -> Vec<StreamId> {
        use Command::*;
        match self {
            Account(c) => c.streams(loaded, ctx),
            Appointment(c) => c.streams(loaded, ctx),
            Session(c) => c.streams(loaded, ctx),
            Form(c) => c.streams(loaded, ctx),
            Payment(c) => c.streams(loaded, ctx),
            Subject(c) => c.streams(loaded, ctx),
            Record(c) => c.streams(loaded, ctx),
        }
    }

    /// The streams still to load before deciding: what [`Command::streams`] names now, less
    /// what is loaded. Empty when loading is done.
    pub fn streams_to_load(&self, loaded: &Histories, ctx: &Context<'_>) -> Vec<StreamId> {
        self.streams(loaded, ctx)
            .into_iter()
            .filter(|s| !loaded.contains(s))
            .collect()
    }

    /// Loads every stream the command needs, in rounds, from a synchronous source (an
    /// in-memory log in tests).
    pub fn load_with(
        &self,
        ctx: &Context<'_>,
        mut fetch: impl FnMut(&StreamId) -> Vec<super::DomainEvent>,
    ) -> Histories {
        let mut histories = Histories::default();
        loop {
            let wanted = self.streams_to_load(&histories, ctx);
            if wanted.is_empty() {
                return histories;
            }
            for stream in wanted {
                let events = fetch(&stream);
                histories.insert(stream, events);
            }
        }
    }

    /// Decides the command over the loaded streams. An empty decision means "nothing to do"
    /// (e.g. a timer that finds its work already done).
    pub fn decide(&self, h: &Histories, ctx: &Context<'_>) -> Result<Decision, DomainError> {
        use Command::*;
        match self {
            Account(c) => c.decide(h, ctx),
            Appointment(c) => c.decide(h, ctx),
            Session(c) => c.decide(h, ctx),
            Form(c) => c.decide(h, ctx),
            Payment(c) => c.decide(h, ctx),
            Subject(c) => c.decide(h, ctx),
            Record(c) => c.decide(h, ctx),
        }
    }
}
