//! The application's wiring, shared by every entry point: the `System` (store, keys, blobs,
//! data folder), the settings, the municipalities' configuration, the staff accounts' life
//! cycle, the audited audit desk and the mails' texts. `app` imports neither `http` nor `cli`.

pub mod accounts;
pub mod audit;
pub(crate) mod export;
pub(crate) mod mails;
pub mod retention;
pub mod settings;
pub mod system;
pub mod tenants;

pub use settings::Settings;
pub use system::System;

/// What a `serve` process does (`--role`): so that operators can run the pages and the API on
/// some machines and the background work on others, all on one log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// Pages, API and rooms, with the hot read models in memory (ADR 0029); no background
    /// work (mails, timers, purges, the database copy of the read models).
    Web,
    /// The background work only; the listener answers `/healthz` and `/readyz`.
    Worker,
    /// Both (the default).
    All,
}

impl Role {
    pub fn serves_web(self) -> bool {
        matches!(self, Self::Web | Self::All)
    }

    pub fn works(self) -> bool {
        matches!(self, Self::Worker | Self::All)
    }
}
