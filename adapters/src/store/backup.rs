//! Backups in two parts, kept apart on purpose (ADR 0027).
//!
//! The **log backup** is the database without the key store: SQLite's online backup API copies
//! the file page by page beside the running writer, then the copy's key table and ephemeral
//! tables are emptied and the file rebuilt (`secure_delete`, `VACUUM`), so no deleted row is
//! left in a free page; on PostgreSQL it is `pg_dump` in the custom format with
//! `--exclude-table-data` for the same tables. Every other table goes along, whatever later
//! migrations add.
//!
//! The **key backup** is the wrapped data keys as JSON lines, on a schedule of its own. The
//! keys stay wrapped under the KEK, which never enters the database nor either backup: without
//! it the key backup opens nothing. It is written after every purge round and replaces the
//! previous one in one rename, so a destroyed key leaves the backup with its round.
//!
//! A restore takes both into an empty store and refuses a key backup older than the log
//! backup, whose newer subjects would otherwise lose their keys.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use time::OffsetDateTime;
use uuid::Uuid;
use videoamt_core::domain::SubjectId;
use videoamt_core::store::StoreError;

use super::{AdminStore, StoreLocation};
use crate::keys::WrappedKey;

/// Tables a log backup carries without their rows: the wrapped keys, which have their own
/// backup; the deletion verifier's manifests, which must not outlive a verification in a
/// backup (ADR 0024); and what lives only minutes (staff sessions, sign-ons under way, duty
/// leases).
pub const TABLES_WITHOUT_ROWS: [&str; 5] = [
    "subject_keys",
    "deletion_manifests",
    "staff_sessions",
    "sign_ons",
    "leases",
];

/// The first line of a key backup names its format.
const KEY_BACKUP_FORMAT: u32 = 1;
/// Keys read, written or restored at a time.
const KEY_PAGE: u32 = 1_000;

/// Why a backup or restore did not happen. The refusals ([`BackupError::is_refusal`]) are the
/// operator's to fix and leave the target as it was.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(
        "{program} ist nicht installiert oder nicht im PATH ({source}); Sicherungen einer \
         PostgreSQL-Datenbank brauchen die Client-Programme pg_dump und pg_restore in der \
         Hauptversion des Servers oder neuer (Debian: postgresql-client)"
    )]
    MissingTool {
        program: &'static str,
        source: std::io::Error,
    },
    #[error("{program} ist fehlgeschlagen ({status}): {stderr}")]
    ToolFailed {
        program: &'static str,
        status: std::process::ExitStatus,
        stderr: String,
    },
    #[error("am Ziel liegt kein Protokoll: {0}")]
    NoStore(String),
    #[error(
        "das Ziel ist nicht leer ({events} Ereignisse, {keys} Schlüssel); eine Sicherung wird \
         nur in einen leeren Speicher zurückgespielt (neue SQLite-Datei oder neue Datenbank)"
    )]
    NotEmpty { events: u64, keys: u64 },
    #[error(
        "die Schlüsselsicherung (Stand Position {keys}) ist älter als die Protokollsicherung \
         (Position {log}): Personen, die dazwischen gebucht haben, hätten keinen Schlüssel \
         mehr; nehmen Sie die neueste Schlüsselsicherung"
    )]
    KeysOlderThanLog { keys: u64, log: u64 },
    #[error("{}: keine Protokollsicherung von videoamt: {reason}", .path.display())]
    NotALogBackup { path: PathBuf, reason: String },
    #[error("{}, Zeile {line}: keine vollständige Schlüsselsicherung von videoamt: {reason}", .path.display())]
    NotAKeyBackup {
        path: PathBuf,
        line: u64,
        reason: String,
    },
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl BackupError {
    /// A refusal: the backups or the target are not what a restore needs. Nothing was written.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            Self::NotEmpty { .. }
                | Self::KeysOlderThanLog { .. }
                | Self::NotALogBackup { .. }
                | Self::NotAKeyBackup { .. }
        )
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        path: path.to_owned(),
        source,
    }
}

/// A log backup written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogBackup {
    /// The log's last position in the backup.
    pub position: u64,
    pub bytes: u64,
}

/// A key backup written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyBackup {
    /// The log's last position when the keys were read: every key of a subject booked up to
    /// it is in the backup unless it was destroyed.
    pub position: u64,
    pub keys: u64,
}

/// A restore done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Restored {
    /// The restored log's last position.
    pub position: u64,
    pub keys: u64,
    /// Keys of subjects the restored log does not know (booked after the log backup): left
    /// out, since nothing would ever purge them.
    pub keys_without_subject: u64,
}

/// A file written beside its destination and renamed over it when complete; removed if it
/// never is. Created with mode 0600: backups hold sealed personal data.
struct Partial {
    path: PathBuf,
    done: bool,
}

impl Partial {
    fn create(to: &Path) -> Result<(Self, std::fs::File), BackupError> {
        let mut name = to.as_os_str().to_owned();
        name.push(".partial");
        let path = PathBuf::from(name);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let file = options.open(&path).map_err(io(&path))?;
        Ok((Self { path, done: false }, file))
    }

    /// Flushes the file to disk and renames it over `to`; the folder's entry is flushed too,
    /// so a crash leaves either the old backup or the new one.
    fn finish(mut self, to: &Path) -> Result<u64, BackupError> {
        let file = std::fs::File::open(&self.path).map_err(io(&self.path))?;
        file.sync_all().map_err(io(&self.path))?;
        let bytes = file.metadata().map_err(io(&self.path))?.len();
        std::fs::rename(&self.path, to).map_err(io(to))?;
        self.done = true;
        if let Some(dir) = to.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io(dir))?;
        }
        Ok(bytes)
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        if !self.done {
            // Best effort: a leftover `.partial` is overwritten by the next run.
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Writes the log backup of the store at `location` to `to`.
pub async fn backup_log(location: &StoreLocation, to: &Path) -> Result<LogBackup, BackupError> {
    match location {
        StoreLocation::Sqlite(db) => {
            let (db, to) = (db.clone(), to.to_owned());
            tokio::task::spawn_blocking(move || sqlite::backup(&db, &to))
                .await
                .map_err(StoreError::new)?
        }
        #[cfg(feature = "postgres")]
        StoreLocation::Postgres(url) => pg::backup(url, to).await,
        #[cfg(not(feature = "postgres"))]
        StoreLocation::Postgres(_) => Err(no_postgres()),
    }
}

#[cfg(not(feature = "postgres"))]
fn no_postgres() -> BackupError {
    StoreError::new("this build has no PostgreSQL support (feature `postgres`)").into()
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyHeader {
    videoamt_key_backup: u32,
    position: u64,
    #[serde(with = "time::serde::rfc3339")]
    taken_at: OffsetDateTime,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyLine {
    subject: Uuid,
    /// The wrapped key, base64.
    wrapped: String,
    #[serde(with = "time::serde::rfc3339")]
    issued_at: OffsetDateTime,
}

/// The last line: how many keys came before it. A file without it was cut off.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyTrailer {
    keys: u64,
}

#[derive(serde::Deserialize)]
#[serde(untagged)]
enum KeyEntry {
    Key(KeyLine),
    End { end: KeyTrailer },
}

/// Writes every wrapped key of `store` to `to`, replacing the file there in one rename.
/// Writers of the same file take turns (a lock on `to.lock`), so the file that stays is always
/// the one read last: an older read can never replace a newer one that lacks a destroyed key.
pub async fn backup_keys(store: &dyn AdminStore, to: &Path) -> Result<KeyBackup, BackupError> {
    let lock = {
        let mut name = to.as_os_str().to_owned();
        name.push(".lock");
        let path = PathBuf::from(name);
        tokio::task::spawn_blocking(move || {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(io(dir))?;
            }
            let file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(io(&path))?;
            file.lock().map_err(io(&path))?;
            Ok::<_, BackupError>(file)
        })
        .await
        .map_err(StoreError::new)??
    };
    // The head first: every key of a subject whose `SubjectKeyIssued` is at or before it was
    // inserted before that event, so it is read below unless it was destroyed meanwhile.
    let position = store.last_position().await?;
    let (partial, file) = Partial::create(to)?;
    let mut out = std::io::BufWriter::new(file);
    let header = KeyHeader {
        videoamt_key_backup: KEY_BACKUP_FORMAT,
        position,
        taken_at: OffsetDateTime::now_utc(),
    };
    json_line(&mut out, &header).map_err(io(&partial.path))?;
    let mut keys = 0;
    let mut after = None;
    loop {
        let page = store.wrapped_keys_after(after, KEY_PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.subject);
        for key in &page {
            let line = KeyLine {
                subject: key.subject.0,
                wrapped: B64.encode(&key.wrapped),
                issued_at: key.issued_at,
            };
            json_line(&mut out, &line).map_err(io(&partial.path))?;
        }
        keys += page.len() as u64;
    }
    json_line(
        &mut out,
        &EndLine {
            end: KeyTrailer { keys },
        },
    )
    .map_err(io(&partial.path))?;
    out.into_inner()
        .map_err(|e| BackupError::Io {
            path: partial.path.clone(),
            source: e.into_error(),
        })?
        .sync_all()
        .map_err(io(&partial.path))?;
    partial.finish(to)?;
    drop(lock);
    Ok(KeyBackup { position, keys })
}

#[derive(serde::Serialize)]
struct EndLine {
    end: KeyTrailer,
}

fn json_line(out: &mut impl std::io::Write, value: &impl serde::Serialize) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    out.write_all(b"\n")
}

/// A key backup read line by line: the header, then each key once the file was checked whole.
struct KeyFile {
    path: PathBuf,
    position: u64,
}

impl KeyFile {
    /// Reads the whole file once: a header of this format, well-formed keys, and the trailer
    /// with their count as the last line. Nothing is restored from a file cut off or mixed up.
    fn check(path: &Path) -> Result<Self, BackupError> {
        let mut position = None;
        let mut keys = 0u64;
        let mut ended = false;
        Self::lines(path, |number, text| {
            let refuse = |reason: String| BackupError::NotAKeyBackup {
                path: path.to_owned(),
                line: number,
                reason,
            };
            if ended {
                return Err(refuse("Zeilen nach dem Abschluss".into()));
            }
            if number == 1 {
                let header: KeyHeader = serde_json::from_str(text)
                    .map_err(|e| refuse(format!("Kopfzeile fehlt ({e})")))?;
                if header.videoamt_key_backup != KEY_BACKUP_FORMAT {
                    return Err(refuse(format!(
                        "unbekanntes Format {}",
                        header.videoamt_key_backup
                    )));
                }
                position = Some(header.position);
                return Ok(());
            }
            match serde_json::from_str::<KeyEntry>(text) {
                Ok(KeyEntry::Key(line)) => {
                    key_of(&line).map_err(refuse)?;
                    keys += 1;
                }
                Ok(KeyEntry::End { end }) if end.keys == keys => ended = true,
                Ok(KeyEntry::End { end }) => {
                    return Err(refuse(format!(
                        "der Abschluss nennt {} Schlüssel, die Datei enthält {keys}",
                        end.keys
                    )));
                }
                Err(e) => return Err(refuse(format!("keine Schlüsselzeile ({e})"))),
            }
            Ok(())
        })?;
        let refuse = |reason: &str| BackupError::NotAKeyBackup {
            path: path.to_owned(),
            line: keys + 1,
            reason: reason.to_owned(),
        };
        let position = position.ok_or_else(|| refuse("die Datei ist leer"))?;
        if !ended {
            return Err(refuse("der Abschluss fehlt: die Datei ist abgeschnitten"));
        }
        Ok(Self {
            path: path.to_owned(),
            position,
        })
    }

    /// Calls `each` with every line and its number (from 1).
    fn lines(
        path: &Path,
        mut each: impl FnMut(u64, &str) -> Result<(), BackupError>,
    ) -> Result<(), BackupError> {
        let file = std::fs::File::open(path).map_err(io(path))?;
        for (i, line) in BufReader::new(file).lines().enumerate() {
            each(i as u64 + 1, &line.map_err(io(path))?)?;
        }
        Ok(())
    }

    /// The keys of a checked file, a page at a time.
    fn pages(
        &self,
        mut each: impl FnMut(Vec<WrappedKey>) -> Result<(), BackupError>,
    ) -> Result<(), BackupError> {
        let mut page = Vec::new();
        Self::lines(&self.path, |number, text| {
            if number == 1 {
                return Ok(());
            }
            if let Ok(KeyEntry::Key(line)) = serde_json::from_str::<KeyEntry>(text) {
                page.push(key_of(&line).map_err(|reason| BackupError::NotAKeyBackup {
                    path: self.path.clone(),
                    line: number,
                    reason,
                })?);
            }
            if page.len() >= KEY_PAGE as usize {
                each(std::mem::take(&mut page))?;
            }
            Ok(())
        })?;
        if !page.is_empty() {
            each(page)?;
        }
        Ok(())
    }
}

fn key_of(line: &KeyLine) -> Result<WrappedKey, String> {
    Ok(WrappedKey {
        subject: SubjectId(line.subject),
        wrapped: B64
            .decode(&line.wrapped)
            .map_err(|_| "der Schlüssel ist kein Base64".to_owned())?,
        issued_at: line.issued_at,
    })
}

/// Restores the log backup `log` and the key backup `keys` into the empty store at
/// `location`. Refused, before anything is written, when the target holds events or keys,
/// when a file is not a complete backup of its kind, or when the key backup is older than the
/// log backup. Keys of subjects the restored log does not know are left out.
pub async fn restore(
    location: &StoreLocation,
    log: &Path,
    keys: &Path,
) -> Result<Restored, BackupError> {
    let key_file = {
        let keys = keys.to_owned();
        tokio::task::spawn_blocking(move || KeyFile::check(&keys))
            .await
            .map_err(StoreError::new)??
    };
    let head = match location {
        StoreLocation::Sqlite(db) => {
            let (db, log) = (db.clone(), log.to_owned());
            tokio::task::spawn_blocking(move || {
                sqlite::refuse_unless_empty(&db)?;
                sqlite::head_of(&log)
            })
            .await
            .map_err(StoreError::new)??
        }
        #[cfg(feature = "postgres")]
        StoreLocation::Postgres(url) => {
            pg::refuse_unless_empty(url).await?;
            pg::head_of(log).await?
        }
        #[cfg(not(feature = "postgres"))]
        StoreLocation::Postgres(_) => return Err(no_postgres()),
    };
    if key_file.position < head {
        return Err(BackupError::KeysOlderThanLog {
            keys: key_file.position,
            log: head,
        });
    }
    match location {
        StoreLocation::Sqlite(db) => {
            let (db, log) = (db.clone(), log.to_owned());
            tokio::task::spawn_blocking(move || sqlite::restore(&log, &db))
                .await
                .map_err(StoreError::new)??;
        }
        #[cfg(feature = "postgres")]
        StoreLocation::Postgres(url) => pg::restore(url, log).await?,
        #[cfg(not(feature = "postgres"))]
        StoreLocation::Postgres(_) => return Err(no_postgres()),
    }
    let store = location.open().await?;
    let position = store.last_position().await?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<WrappedKey>>(2);
    let reader = tokio::task::spawn_blocking(move || {
        key_file.pages(|page| {
            // The receiver only goes away when restoring failed; that error is reported.
            let _ = tx.blocking_send(page);
            Ok(())
        })
    });
    let (mut restored, mut without_subject) = (0, 0);
    while let Some(page) = rx.recv().await {
        let streams: Vec<_> = page.iter().map(|k| k.subject.stream()).collect();
        let histories = store.read_streams(&streams).await?;
        let (known, unknown): (Vec<_>, Vec<_>) = page
            .into_iter()
            .zip(histories)
            .partition(|(_, history)| !history.is_empty());
        without_subject += unknown.len() as u64;
        restored += store
            .restore_wrapped_keys(known.into_iter().map(|(key, _)| key).collect())
            .await?;
    }
    reader.await.map_err(StoreError::new)??;
    Ok(Restored {
        position,
        keys: restored,
        keys_without_subject: without_subject,
    })
}

/// The embedded store's side.
mod sqlite {
    use std::path::Path;
    use std::time::{Duration, Instant};

    use rusqlite::backup::{Backup, StepResult};
    use rusqlite::{Connection, OpenFlags};

    use super::{BackupError, LogBackup, Partial, TABLES_WITHOUT_ROWS};
    use crate::store::sqlite::raw_connection;

    /// How long a copy waits for another connection's lock before it gives up.
    const BUSY: Duration = Duration::from_secs(30);

    fn err(e: rusqlite::Error) -> BackupError {
        BackupError::Store(videoamt_core::store::StoreError::new(e))
    }

    /// Copies every page of `from` into `to` in one step. Smaller steps would let other
    /// processes write in between, and SQLite restarts a backup whose source changed under
    /// another connection, so under steady traffic it might never finish; one step is one
    /// read transaction, beside which WAL lets every writer go on.
    fn copy(from: &Connection, to: &mut Connection) -> Result<(), BackupError> {
        let backup = Backup::new(from, to).map_err(err)?;
        let deadline = Instant::now() + BUSY;
        loop {
            match backup.step(-1).map_err(err)? {
                StepResult::Done => return Ok(()),
                // Busy, locked (or a step that did not finish): wait a little, within bounds.
                _ if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ => {
                    return Err(err(rusqlite::Error::SqliteFailure(
                        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                        Some("the store stayed locked".into()),
                    )));
                }
            }
        }
    }

    fn tables(conn: &Connection) -> Result<Vec<String>, BackupError> {
        conn.prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .map_err(err)
    }

    fn count(conn: &Connection, table: &str) -> Result<u64, BackupError> {
        conn.query_row(&format!("SELECT COUNT(*) FROM \"{table}\""), [], |r| {
            r.get::<_, i64>(0)
        })
        .map(super::super::to_u64)
        .map_err(err)
    }

    fn head(conn: &Connection) -> Result<u64, BackupError> {
        conn.query_row(
            "SELECT COALESCE(MAX(global_position), 0) FROM events",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map(super::super::to_u64)
        .map_err(err)
    }

    pub(super) fn backup(db: &Path, to: &Path) -> Result<LogBackup, BackupError> {
        if !db.exists() {
            return Err(BackupError::NoStore(db.display().to_string()));
        }
        // The rename at the end would put the copy in the store's place.
        if to.canonicalize().ok() == db.canonicalize().ok() {
            return Err(BackupError::Io {
                path: to.to_owned(),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "das ist die Datei des Speichers selbst",
                ),
            });
        }
        let source = raw_connection(db)?;
        let (partial, file) = Partial::create(to)?;
        drop(file);
        let mut copy_conn = Connection::open(&partial.path).map_err(err)?;
        copy(&source, &mut copy_conn)?;
        drop(source);
        // The copy took the source's WAL mode with its pages; one file is what is shipped.
        // Then no journal at all while its rows are deleted: a rollback journal would hold
        // the deleted keys' pages in a file beside it.
        copy_conn
            .pragma_update(None, "journal_mode", "DELETE")
            .and_then(|()| copy_conn.pragma_update(None, "journal_mode", "OFF"))
            .and_then(|()| copy_conn.pragma_update(None, "secure_delete", "ON"))
            .map_err(err)?;
        let present = tables(&copy_conn)?;
        for table in TABLES_WITHOUT_ROWS
            .iter()
            .filter(|t| present.iter().any(|p| p == *t))
        {
            copy_conn
                .execute(&format!("DELETE FROM \"{table}\""), [])
                .map_err(err)?;
        }
        // Rebuilt from its rows: no free page, no overflow page of a deleted row is left.
        copy_conn.execute_batch("VACUUM").map_err(err)?;
        let position = head(&copy_conn)?;
        copy_conn
            .pragma_update(None, "journal_mode", "DELETE")
            .map_err(err)?;
        drop(copy_conn);
        let bytes = partial.finish(to)?;
        Ok(LogBackup { position, bytes })
    }

    /// The last position of a log backup, after checking it is one: a videoamt log whose
    /// key and ephemeral tables are empty.
    pub(super) fn head_of(log: &Path) -> Result<u64, BackupError> {
        let refuse = |reason: String| BackupError::NotALogBackup {
            path: log.to_owned(),
            reason,
        };
        if !log.is_file() {
            return Err(refuse("die Datei fehlt".into()));
        }
        let conn = Connection::open_with_flags(log, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| refuse(e.to_string()))?;
        let present = tables(&conn).map_err(|e| refuse(e.to_string()))?;
        if !present.iter().any(|t| t == "events") {
            return Err(refuse("keine Tabelle events".into()));
        }
        for table in TABLES_WITHOUT_ROWS
            .iter()
            .filter(|t| present.iter().any(|p| p == *t))
        {
            let rows = count(&conn, table)?;
            if rows > 0 {
                return Err(refuse(format!(
                    "die Tabelle {table} hat {rows} Zeilen; eine Protokollsicherung \
                     (`videoamt backup log`) hat dort keine"
                )));
            }
        }
        head(&conn)
    }

    pub(super) fn refuse_unless_empty(db: &Path) -> Result<(), BackupError> {
        if !db.exists() {
            return Ok(());
        }
        let conn = raw_connection(db)?;
        let present = tables(&conn)?;
        let rows = |table: &str| {
            if present.iter().any(|p| p == table) {
                count(&conn, table)
            } else {
                Ok(0)
            }
        };
        let (events, keys) = (rows("events")?, rows("subject_keys")?);
        if events + keys > 0 {
            return Err(BackupError::NotEmpty { events, keys });
        }
        Ok(())
    }

    /// Copies the log backup into the store file `db` (created if missing, else an empty
    /// store), with the same backup API.
    pub(super) fn restore(log: &Path, db: &Path) -> Result<(), BackupError> {
        if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(super::io(dir))?;
        }
        let source =
            Connection::open_with_flags(log, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(err)?;
        let mut target = raw_connection(db)?;
        copy(&source, &mut target)
    }
}

/// PostgreSQL's side: its own client programs, given the connection in their environment so
/// that a password never shows in the process list.
#[cfg(feature = "postgres")]
mod pg {
    use std::path::Path;

    use tokio_postgres::config::{Host, SslMode};

    use super::{BackupError, LogBackup, Partial, TABLES_WITHOUT_ROWS};
    use videoamt_core::store::StoreError;

    /// A store whose application role does not exist yet gets it, as migration 1 would, so
    /// that the dump's grants to it can be restored.
    const APP_ROLE: &str = "DO $$
        BEGIN
            IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'videoamt_app') THEN
                CREATE ROLE videoamt_app NOLOGIN;
            END IF;
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE NOTICE 'cannot create role videoamt_app; grant it by hand';
        END $$";

    fn config(url: &str) -> Result<tokio_postgres::Config, BackupError> {
        url.parse()
            .map_err(|e| BackupError::Store(StoreError::new(e)))
    }

    /// `program` with the connection of `url` as libpq's environment variables.
    fn tool(program: &'static str, url: &str) -> Result<tokio::process::Command, BackupError> {
        let config = config(url)?;
        let mut command = tokio::process::Command::new(program);
        let hosts: Vec<String> = config
            .get_hosts()
            .iter()
            .map(|h| match h {
                Host::Tcp(name) => name.clone(),
                Host::Unix(path) => path.display().to_string(),
            })
            .collect();
        if !hosts.is_empty() {
            command.env("PGHOST", hosts.join(","));
        }
        let ports: Vec<String> = config.get_ports().iter().map(u16::to_string).collect();
        if !ports.is_empty() {
            command.env("PGPORT", ports.join(","));
        }
        if let Some(user) = config.get_user() {
            command.env("PGUSER", user);
        }
        if let Some(password) = config.get_password() {
            command.env("PGPASSWORD", String::from_utf8_lossy(password).into_owned());
        }
        if let Some(db) = config.get_dbname().or(config.get_user()) {
            command.env("PGDATABASE", db);
        }
        if let Some(options) = config.get_options() {
            command.env("PGOPTIONS", options);
        }
        command.env(
            "PGSSLMODE",
            match config.get_ssl_mode() {
                SslMode::Require => "require",
                SslMode::Disable => "disable",
                _ => "prefer",
            },
        );
        Ok(command)
    }

    async fn run(
        program: &'static str,
        mut command: tokio::process::Command,
    ) -> Result<Vec<u8>, BackupError> {
        let output = command
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .map_err(|source| match source.kind() {
                std::io::ErrorKind::NotFound => BackupError::MissingTool { program, source },
                _ => BackupError::Io {
                    path: program.into(),
                    source,
                },
            })?;
        if !output.status.success() {
            return Err(BackupError::ToolFailed {
                program,
                status: output.status,
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            });
        }
        Ok(output.stdout)
    }

    pub(super) async fn backup(url: &str, to: &Path) -> Result<LogBackup, BackupError> {
        let (partial, file) = Partial::create(to)?;
        drop(file);
        let mut dump = tool("pg_dump", url)?;
        dump.arg("--format=custom").arg("--file").arg(&partial.path);
        for table in TABLES_WITHOUT_ROWS {
            dump.arg(format!("--exclude-table-data={table}"));
        }
        run("pg_dump", dump).await?;
        let position = head_of(&partial.path).await?;
        let bytes = partial.finish(to)?;
        Ok(LogBackup { position, bytes })
    }

    /// The last position of a log backup, after checking it is one: a dump with the log's
    /// data and without rows of the key and ephemeral tables.
    pub(super) async fn head_of(log: &Path) -> Result<u64, BackupError> {
        let refuse = |reason: String| BackupError::NotALogBackup {
            path: log.to_owned(),
            reason,
        };
        if !log.is_file() {
            return Err(refuse("die Datei fehlt".into()));
        }
        let mut list = tokio::process::Command::new("pg_restore");
        list.arg("--list").arg(log);
        let listing = match run("pg_restore", list).await {
            Err(BackupError::ToolFailed { stderr, .. }) => return Err(refuse(stderr)),
            other => other?,
        };
        // Entries read `ID; OID OID TABLE DATA schema name owner`.
        let data: Vec<String> = String::from_utf8_lossy(&listing)
            .lines()
            .filter(|l| !l.starts_with(';'))
            .filter_map(|l| {
                let words: Vec<&str> = l.split_whitespace().collect();
                let at = words.windows(2).position(|w| w == ["TABLE", "DATA"])?;
                words.get(at + 3).map(|name| (*name).to_owned())
            })
            .collect();
        if !data.iter().any(|t| t == "events") {
            return Err(refuse("keine Daten der Tabelle events".into()));
        }
        if let Some(table) = TABLES_WITHOUT_ROWS
            .iter()
            .find(|t| data.iter().any(|d| d == *t))
        {
            return Err(refuse(format!(
                "sie enthält die Zeilen der Tabelle {table}; eine Protokollsicherung \
                 (`videoamt backup log`) enthält sie nicht"
            )));
        }
        let mut counter = tokio::process::Command::new("pg_restore");
        counter
            .args(["--data-only", "--table=event_position", "--file=-"])
            .arg(log);
        let script = run("pg_restore", counter).await?;
        // `COPY schema.event_position (singleton, last) FROM stdin;` then one row, `t\tN`.
        let script = String::from_utf8_lossy(&script);
        let mut lines = script.lines();
        lines
            .find(|l| l.starts_with("COPY ") && l.contains("event_position"))
            .and_then(|_| lines.next())
            .and_then(|row| row.split('\t').nth(1))
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| refuse("kein Positionszähler (event_position)".into()))
    }

    pub(super) async fn refuse_unless_empty(url: &str) -> Result<(), BackupError> {
        let client = super::super::postgres::dedicated(&config(url)?).await?;
        let store = |e| BackupError::Store(StoreError::new(e));
        let present: Vec<String> = client
            .query(
                "SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema()",
                &[],
            )
            .await
            .map_err(store)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut rows = [0u64; 2];
        for (n, table) in ["events", "subject_keys"].into_iter().enumerate() {
            if present.iter().any(|p| p == table) {
                let count: i64 = client
                    .query_one(&format!("SELECT COUNT(*) FROM {table}"), &[])
                    .await
                    .map_err(store)?
                    .get(0);
                rows[n] = super::super::to_u64(count);
            }
        }
        if rows != [0, 0] {
            return Err(BackupError::NotEmpty {
                events: rows[0],
                keys: rows[1],
            });
        }
        Ok(())
    }

    /// Restores the dump in one transaction: all of it or nothing. An empty store that was
    /// migrated already has the tables; they are dropped first (`--clean`).
    pub(super) async fn restore(url: &str, log: &Path) -> Result<(), BackupError> {
        let client = super::super::postgres::dedicated(&config(url)?).await?;
        let store = |e| BackupError::Store(StoreError::new(e));
        client.batch_execute(APP_ROLE).await.map_err(store)?;
        let migrated = client
            .query_one(
                "SELECT COUNT(*) FROM pg_tables WHERE schemaname = current_schema()",
                &[],
            )
            .await
            .map_err(store)?
            .get::<_, i64>(0)
            > 0;
        drop(client);
        let config = config(url)?;
        let db = config
            .get_dbname()
            .or(config.get_user())
            .unwrap_or("postgres")
            .to_owned();
        let mut restore = tool("pg_restore", url)?;
        restore
            .args(["--exit-on-error", "--single-transaction", "--no-owner"])
            .arg(format!("--dbname={db}"));
        if migrated {
            restore.args(["--clean", "--if-exists"]);
        }
        restore.arg(log);
        run("pg_restore", restore).await.map(|_| ())
    }
}
