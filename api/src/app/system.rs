//! Everything a command of the product works with, wired once: the store, the key store on
//! top of it, the blob store and the data folder (KEK, blobs, outbox, logs).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use videoamt_adapters::access::AccessTokens;
use videoamt_adapters::blobs::FsBlobStore;
use videoamt_adapters::bus::CommandBus;
use videoamt_adapters::case_system::{FolderCaseSystem, HttpCaseSystem};
use videoamt_adapters::keys::{Kek, Keyring};
use videoamt_adapters::seal::{PadesSealer, SealConfig};
use videoamt_adapters::sms::{HttpSms, OutboxSms};
use videoamt_adapters::store::{AdminStore, StoreLocation};
use videoamt_adapters::tan::TanCodes;
use videoamt_core::case_system::CaseSystem;
use videoamt_core::domain::appointment::AppointmentState;
use videoamt_core::domain::events::DecodeError;
use videoamt_core::domain::{AppointmentId, DomainEvent};
use videoamt_core::event::{RecordedEvent, StreamId, TenantId};
use videoamt_core::keys::KeyStore;
use videoamt_core::sms::SmsGateway;
use videoamt_core::store::StoreError;
use videoamt_core::tenant::Tenant;

use super::Settings;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

#[derive(Clone)]
pub struct System {
    pub store: Arc<dyn AdminStore>,
    pub keys: Arc<dyn KeyStore>,
    pub blobs: Arc<FsBlobStore>,
    /// Derives citizens' capability links (from the KEK; nothing of them is stored).
    pub access: AccessTokens,
    /// Makes TAN codes and their keyed digests (from the KEK).
    pub tans: TanCodes,
    /// Renders signed forms to PDF and seals them with the municipality's seal (ADR 0018):
    /// its files in `VIDEOAMT_SEAL_DIR`, else a demo identity in the data folder's `seal/`.
    pub sealer: Arc<PadesSealer>,
    pub data_dir: PathBuf,
    pub tenants: Arc<Vec<Tenant>>,
    pub settings: Arc<Settings>,
    /// One bus for the whole process, so that commands on the same streams queue behind each
    /// other (ADR 0012) whichever request or worker issues them.
    bus: CommandBus,
}

impl std::fmt::Debug for System {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("System")
            .field("data_dir", &self.data_dir)
            .finish_non_exhaustive()
    }
}

/// The seals as the settings say: the configured folder, and demo identities in the data
/// folder's `seal/` for the municipalities without files there.
fn seal_config(data_dir: &Path, settings: &Settings) -> SealConfig {
    SealConfig {
        dir: settings.seal_dir.clone(),
        ..SealConfig::demo(data_dir.join("seal"))
    }
}

/// The data folder when none is given: beside the embedded store's file, else
/// `./videoamt-data`.
pub fn default_data_dir(location: &StoreLocation) -> PathBuf {
    match location {
        StoreLocation::Sqlite(path) => path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf),
        StoreLocation::Postgres(_) => PathBuf::from("videoamt-data"),
    }
}

impl System {
    /// Opens the store (running migrations) and loads the KEK as the settings say (inline, a
    /// file, or the data folder's own).
    pub async fn open(
        location: &StoreLocation,
        data_dir: &Path,
        settings: Settings,
    ) -> anyhow::Result<Self> {
        let store = location
            .open()
            .await
            .with_context(|| format!("cannot open the store {location:?}"))?;
        let kek = Kek::resolve(settings.kek.clone(), settings.kek_file.clone(), data_dir)
            .context("cannot load the key-encryption key")?;
        let tenants = super::tenants::load(settings.tenants.as_deref())
            .context("cannot load the municipalities (--tenants, VIDEOAMT_TENANTS)")?;
        Ok(Self::new(store, kek, data_dir, tenants).with_settings(settings))
    }

    pub fn new(
        store: Arc<dyn AdminStore>,
        kek: Kek,
        data_dir: &Path,
        tenants: Vec<Tenant>,
    ) -> Self {
        let access = kek.access_tokens();
        let tans = kek.tan_codes();
        let keys: Arc<dyn KeyStore> = Arc::new(Keyring::new(kek, store.clone()));
        let bus = CommandBus::new(store.clone(), keys.clone(), tenants.iter().cloned());
        Self {
            bus,
            access,
            tans,
            sealer: Arc::new(PadesSealer::new(seal_config(
                data_dir,
                &Settings::default(),
            ))),
            blobs: Arc::new(FsBlobStore::new(data_dir.join("blobs"), keys.clone())),
            store,
            keys,
            data_dir: data_dir.to_path_buf(),
            tenants: Arc::new(tenants),
            settings: Arc::default(),
        }
    }

    pub fn with_settings(mut self, settings: Settings) -> Self {
        self.sealer = Arc::new(PadesSealer::new(seal_config(&self.data_dir, &settings)));
        self.settings = Arc::new(settings);
        self
    }

    /// Loads every municipality's seal identity, so that a configured key or chain that
    /// cannot be used stops the start instead of the first signature. A municipality without
    /// configured files gets its demo identity made now, with its warning.
    pub fn check_seals(&self) -> anyhow::Result<()> {
        for tenant in self.tenants.iter() {
            self.sealer
                .identity(&tenant.id, &tenant.name)
                .with_context(|| {
                    format!("cannot load the seal of {} ({})", tenant.name, tenant.id)
                })?;
        }
        Ok(())
    }

    /// The process's command bus; clones share its stream queues.
    pub fn bus(&self) -> CommandBus {
        self.bus.clone()
    }

    /// An appointment's state, folded from its stream with the deciders' `evolve`, and the
    /// tenant it was booked in; `None` when nothing was ever recorded for it.
    pub async fn appointment(
        &self,
        id: AppointmentId,
    ) -> Result<Option<(AppointmentState, TenantId)>, LoadError> {
        let history = self.history(&id.stream()).await?;
        let Some((first, _)) = history.first() else {
            return Ok(None);
        };
        let tenant = first.meta.tenant.clone();
        let state = history
            .iter()
            .fold(AppointmentState::default(), |s, (_, e)| s.evolve(e));
        Ok(Some((state, tenant)))
    }

    /// One stream's events, each decoded beside its envelope (whose time and actor the rooms
    /// need).
    pub async fn history(
        &self,
        stream: &StreamId,
    ) -> Result<Vec<(RecordedEvent, DomainEvent)>, LoadError> {
        let recorded = self.store.read_stream(stream, 0).await?;
        recorded
            .into_iter()
            .map(|e| {
                let event =
                    DomainEvent::from_payload(e.event_type.as_str(), e.schema_version, &e.payload)?;
                Ok((e, event))
            })
            .collect()
    }

    /// Where Handy-TANs go: the HTTP gateway the settings name, else the sandbox that files
    /// each SMS in the outbox (shown at `/dev/outbox`).
    pub fn sms(&self) -> anyhow::Result<Arc<dyn SmsGateway>> {
        match self.settings.sms_url.as_deref().filter(|u| !u.is_empty()) {
            Some(url) => {
                let token = self.settings.sms_token.clone().unwrap_or_default();
                Ok(Arc::new(
                    HttpSms::new(url, token).map_err(anyhow::Error::msg)?,
                ))
            }
            None => Ok(Arc::new(OutboxSms::new(self.outbox_dir()))),
        }
    }

    /// Where signed forms are handed over at the end of a visit: the case system's HTTP import
    /// the settings name, else the export folder.
    pub fn case_system(&self) -> anyhow::Result<Arc<dyn CaseSystem>> {
        match (self.settings.case_system_url.as_deref()).filter(|u| !u.is_empty()) {
            Some(url) => {
                let token = self.settings.case_system_token.clone().unwrap_or_default();
                Ok(Arc::new(
                    HttpCaseSystem::new(url, token).map_err(anyhow::Error::msg)?,
                ))
            }
            None => Ok(Arc::new(FolderCaseSystem::new(self.case_export_dir()))),
        }
    }

    /// The case export folder: the setting, else `fachverfahren-export` beside the data
    /// folder. Never inside it: the purge scrubs the data folder, the export must outlive it.
    pub fn case_export_dir(&self) -> PathBuf {
        if let Some(dir) = &self.settings.case_export_dir {
            return dir.clone();
        }
        let data = std::path::absolute(&self.data_dir).unwrap_or_else(|_| self.data_dir.clone());
        data.parent()
            .map_or_else(|| data.join(".."), Path::to_path_buf)
            .join("fachverfahren-export")
    }

    /// Where mail waits to be sent (`.eml` files, one folder per data subject).
    pub fn outbox_dir(&self) -> PathBuf {
        self.data_dir.join("outbox")
    }

    /// Where the server writes its JSON log files.
    pub fn log_dir(&self) -> PathBuf {
        self.data_dir.join("logs")
    }
}
