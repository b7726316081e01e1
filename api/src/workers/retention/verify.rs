//! The deletion verifier. It shares no code with the purge: it finds a subject's data anew,
//! from the log, and looks everywhere it could have gone.
//!
//! For each purged subject it checks that
//! - the key store no longer holds the subject's key;
//! - every sealed value of the subject in the log (found in its appointment, session and form
//!   streams) no longer opens;
//! - no row of any table in the database, no file in the blob folder, the outbox or the log
//!   folder holds one of the subject's fingerprints: neither a copy of a sealed value outside
//!   the log, nor a plaintext whose keyed fingerprint is the subject's (every text is cut into
//!   candidates and each candidate fingerprinted).
//!
//! The fingerprints it looks for are its own (ADR 0024): before the purge destroys a subject's
//! key, [`Verifier::prepare`] finds the subject's values in the log, opens them and keeps their
//! fingerprints under the KEK's key in the manifest, a table outside the log. The log's own
//! fingerprints are keyed by the subject's data key and die with it. Once a deletion is
//! verified, the subject's manifest goes too: then nothing lets the KEK confirm a guess about
//! the subject or link it to another.
//!
//! Then it appends `DeletionVerified` with the checks, or `DeletionVerificationFailed` naming
//! the places (tables, projections, files; never the values). Subjects are verified in batches
//! that share one scan of everything.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::{Hash as _, Hasher as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use time::OffsetDateTime;
use uuid::Uuid;
use videoamt_adapters::bus::{BusError, CommandBus, Issued};
use videoamt_adapters::keys::SUBJECT_FINGERPRINT_PREFIX;
use videoamt_adapters::store::AdminStore;
use videoamt_core::domain::subject::SubjectCommand;
use videoamt_core::domain::{DomainError, SubjectId};
use videoamt_core::event::{Actor, RecordedEvent, StreamId, TenantId};
use videoamt_core::keys::{KeyError, KeyStore, Opened, Sealed};

use crate::app::System;

/// The log table: sealed values belong there; only plaintext in it is a finding.
const LOG_TABLE: &str = "events";
/// The verifier's own manifests: the fingerprints it looks for, not a finding.
const MANIFEST_TABLE: &str = "deletion_manifests";
/// Manifests of verified subjects swept per round (left by a verification that stopped
/// between its verdict and deleting them).
const SWEEP: u32 = 1_000;
/// Longer texts are not personal values (they are ciphertext or documents).
const MAX_CANDIDATE: usize = 1024;
/// Words per candidate phrase, so that a name inside a sentence is found.
const MAX_WORDS: usize = 4;
/// Candidates remembered as already fingerprinted before the memory is cleared.
const SEEN_LIMIT: usize = 2_000_000;
/// Streams read in one round trip.
const READ_CHUNK: usize = 500;

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Store(#[from] videoamt_core::store::StoreError),
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("subject {0} is unknown")]
    UnknownSubject(SubjectId),
    #[error("the scan stopped: {0}")]
    Scan(String),
}

/// The result for one subject.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Verdict {
    pub subject: SubjectId,
    /// Where traces were found; empty when the deletion is verified.
    pub places: Vec<String>,
    pub checks: Vec<String>,
    /// `false` if the subject is not purged yet: nothing was appended.
    pub recorded: bool,
}

impl Verdict {
    pub fn passed(&self) -> bool {
        self.places.is_empty()
    }
}

/// What the log says about one subject.
struct Evidence {
    tenant: TenantId,
    sealed: Vec<(StreamId, Sealed)>,
    /// The log records the deletion as verified already (then the manifest is gone).
    verified: bool,
}

#[derive(Clone)]
pub struct Verifier {
    bus: CommandBus,
    store: Arc<dyn AdminStore>,
    keys: Arc<dyn KeyStore>,
    data_dir: PathBuf,
    /// Subjects whose streams, keys and verdicts are handled together: the purge's page.
    page: usize,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier").finish_non_exhaustive()
    }
}

/// Every sealed value in a JSON document, wherever it is nested.
fn sealed_values(value: &serde_json::Value, out: &mut Vec<Sealed>) {
    match value {
        serde_json::Value::Object(map) => {
            if map.contains_key("fingerprint")
                && map.contains_key("sealed")
                && let Ok(s) = serde_json::from_value::<Sealed>(value.clone())
            {
                out.push(s);
                return;
            }
            map.values().for_each(|v| sealed_values(v, out));
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| sealed_values(v, out)),
        _ => {}
    }
}

fn is_separator(c: char) -> bool {
    matches!(
        c,
        '"' | '\u{1f}'
            | '\n'
            | '\r'
            | '\t'
            | '\\'
            | '('
            | ')'
            | '{'
            | '}'
            | '['
            | ']'
            | ','
            | '<'
            | '>'
            | '\0'
    )
}

/// The texts of `text` that could be a personal value: each delimited piece (a JSON string, a
/// cell, a line), and within it every run of up to [`MAX_WORDS`] words.
fn candidates(text: &str, mut each: impl FnMut(&str)) {
    for piece in text.split(is_separator) {
        let piece = piece.trim();
        if piece.is_empty() || piece.len() > MAX_CANDIDATE {
            continue;
        }
        each(piece);
        let words: Vec<&str> = piece.split_whitespace().collect();
        if words.len() < 2 {
            continue;
        }
        for start in 0..words.len() {
            for n in 1..=MAX_WORDS.min(words.len() - start) {
                if n == words.len() {
                    continue; // the whole piece, done above
                }
                let first = words[start];
                let last = words[start + n - 1];
                // A run of words is the piece's text between the first and the last.
                let from = first.as_ptr() as usize - piece.as_ptr() as usize;
                let to = last.as_ptr() as usize - piece.as_ptr() as usize + last.len();
                each(&piece[from..to]);
            }
        }
    }
}

/// A fingerprint's place in the index: the first 128 of its 256 bits, whichever key made it (the
/// KEK's, base64, or the subject's, `2.` and base64). Fingerprints are MACs, so 128 bits tell a
/// batch's million apart as well as 256 do, in a sixth of the memory of the text; a collision
/// could only report a trace that is not there, never hide one. `None` for a text that is no
/// fingerprint.
fn fingerprint_bits(text: &str) -> Option<u128> {
    use base64::Engine as _;
    let b64 = text
        .strip_prefix(SUBJECT_FINGERPRINT_PREFIX)
        .unwrap_or(text);
    // 32 bytes in padded base64.
    if b64.len() != 44 {
        return None;
    }
    let mut bytes = [0u8; 33];
    let n = base64::engine::general_purpose::STANDARD
        .decode_slice(b64, &mut bytes)
        .ok()?;
    let head: [u8; 16] = bytes[..n].get(..16)?.try_into().ok()?;
    (n == 32).then_some(u128::from_le_bytes(head))
}

/// The fingerprints a batch looks for, each with the index of its subject in the batch.
#[derive(Default)]
struct Fingerprints(HashMap<u128, u32>);

impl Fingerprints {
    fn insert(&mut self, fingerprint: &str, subject: usize) {
        if let (Some(bits), Ok(subject)) = (fingerprint_bits(fingerprint), u32::try_from(subject)) {
            self.0.insert(bits, subject);
        }
    }

    fn get(&self, text: &str) -> Option<usize> {
        let bits = fingerprint_bits(text)?;
        self.0.get(&bits).map(|&i| i as usize)
    }
}

/// Looks for the batch's fingerprints in texts.
struct Scanner<'k> {
    keys: &'k dyn KeyStore,
    fingerprints: Fingerprints,
    seen: HashSet<u64>,
}

impl Scanner<'_> {
    /// The subjects whose data `text` holds; `sealed_allowed` for the log, where sealed values
    /// are what should be there.
    fn scan(&mut self, text: &str, sealed_allowed: bool, found: &mut BTreeSet<usize>) {
        let (keys, fingerprints, seen) = (self.keys, &self.fingerprints, &mut self.seen);
        candidates(text, |candidate| {
            if !sealed_allowed && let Some(i) = fingerprints.get(candidate) {
                found.insert(i);
            }
            let mut h = DefaultHasher::new();
            candidate.hash(&mut h);
            if !seen.insert(h.finish()) {
                return;
            }
            if let Some(i) = fingerprints.get(&keys.fingerprint(candidate.as_bytes())) {
                found.insert(i);
            }
        });
        if seen.len() > SEEN_LIMIT {
            seen.clear();
        }
    }
}

/// A table's place name; projections are named by the first cell of a read-model row.
fn table_place(table: &str, row: &str) -> String {
    if table == "read_models" {
        let projection = row
            .trim_start_matches('(')
            .split(['\u{1f}', ','])
            .next()
            .unwrap_or_default();
        return format!("Tabelle {table} (Projektion {projection})");
    }
    format!("Tabelle {table}")
}

/// Every file below `root` (none if it does not exist).
fn files(root: &Path) -> Result<Vec<PathBuf>, VerifyError> {
    let mut out = Vec::new();
    let mut folders = vec![root.to_path_buf()];
    while let Some(folder) = folders.pop() {
        let entries = match std::fs::read_dir(&folder) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(VerifyError::Io {
                    path: folder,
                    source: e,
                });
            }
        };
        for entry in entries {
            let entry = entry.map_err(|e| VerifyError::Io {
                path: folder.clone(),
                source: e,
            })?;
            let path = entry.path();
            if path.is_dir() {
                folders.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

impl Verifier {
    pub fn new(system: &System) -> Self {
        Self {
            bus: system.bus(),
            store: system.store.clone(),
            keys: system.keys.clone(),
            data_dir: system.data_dir.clone(),
            page: usize::try_from(system.settings.purge_page.max(1)).unwrap_or(1),
        }
    }

    /// Whole streams in round trips of [`READ_CHUNK`], in the order of `streams`.
    async fn read_whole(
        &self,
        streams: &[StreamId],
    ) -> Result<Vec<Vec<RecordedEvent>>, VerifyError> {
        let mut read = Vec::with_capacity(streams.len());
        for chunk in streams.chunks(READ_CHUNK) {
            read.extend(self.store.read_streams(chunk).await?);
        }
        Ok(read)
    }

    /// Each subject's tenant and sealed values, from its streams in the log: its own stream
    /// names the appointment, the appointment its sessions, a session its forms. One level of
    /// that chain is read for all the subjects together, so a page of subjects costs a few round
    /// trips, not a few per subject.
    async fn evidence(&self, subjects: &[SubjectId]) -> Result<Vec<Evidence>, VerifyError> {
        let payload = |e: &RecordedEvent| -> serde_json::Value {
            e.payload.parse().unwrap_or(serde_json::Value::Null)
        };
        let own: Vec<StreamId> = subjects.iter().map(|s| s.stream()).collect();
        let mut evidence = Vec::with_capacity(subjects.len());
        let mut visited: Vec<HashSet<StreamId>> = Vec::with_capacity(subjects.len());
        let mut pending: Vec<(usize, StreamId)> = Vec::new();
        for (i, (&subject, events)) in subjects
            .iter()
            .zip(self.read_whole(&own).await?)
            .enumerate()
        {
            let first = events.first().ok_or(VerifyError::UnknownSubject(subject))?;
            evidence.push(Evidence {
                tenant: first.meta.tenant.clone(),
                sealed: Vec::new(),
                verified: events
                    .iter()
                    .any(|e| e.event_type.as_str() == "DeletionVerified"),
            });
            visited.push(HashSet::from([subject.stream()]));
            pending.extend(
                events
                    .iter()
                    .find_map(|e| payload(e)["appointment"].as_str().map(str::to_owned))
                    .and_then(|id| StreamId::of("appointment", &id).ok())
                    .map(|stream| (i, stream)),
            );
        }
        while !pending.is_empty() {
            pending.retain(|(i, stream)| visited[*i].insert(stream.clone()));
            let mut unique = HashSet::new();
            let streams: Vec<StreamId> = pending
                .iter()
                .filter(|(_, stream)| unique.insert(stream.clone()))
                .map(|(_, stream)| stream.clone())
                .collect();
            let read: HashMap<StreamId, Vec<RecordedEvent>> = streams
                .iter()
                .cloned()
                .zip(self.read_whole(&streams).await?)
                .collect();
            for (i, stream) in std::mem::take(&mut pending) {
                for event in read.get(&stream).map_or(&[][..], Vec::as_slice) {
                    let value = payload(event);
                    // The linking event names the linked stream's category as its field.
                    let linked = match event.event_type.as_str() {
                        "SessionLinked" => Some("session"),
                        "FormAttached" => Some("form"),
                        _ => None,
                    };
                    if let Some(kind) = linked
                        && let Some(id) = value[kind].as_str()
                    {
                        pending.extend(StreamId::of(kind, id).ok().map(|s| (i, s)));
                    }
                    let mut found = Vec::new();
                    sealed_values(&value, &mut found);
                    evidence[i].sealed.extend(
                        found
                            .into_iter()
                            .filter(|s| s.subject == subjects[i])
                            .map(|s| (stream.clone(), s)),
                    );
                }
            }
        }
        Ok(evidence)
    }

    /// Before the purge: the verifier's fingerprints of each subject's values, opened while the
    /// key still exists, into the manifest. Values that no longer open (a purge that stopped
    /// half-way and is run again) add nothing; the manifest kept what they had. How many
    /// fingerprints the manifest got.
    pub async fn prepare(&self, subjects: &[SubjectId]) -> Result<usize, VerifyError> {
        let mut rows = Vec::new();
        for page in subjects.chunks(self.page) {
            let sealed: Vec<Sealed> = self
                .evidence(page)
                .await?
                .into_iter()
                .flat_map(|e| e.sealed.into_iter().map(|(_, sealed)| sealed))
                .collect();
            for (sealed, opened) in sealed.iter().zip(self.keys.open_all(&sealed).await?) {
                // The verification reports what does not open as it should.
                if let Ok(Opened::Plain(plain)) = opened {
                    rows.push((sealed.subject, self.keys.fingerprint(&plain)));
                }
            }
        }
        rows.sort();
        rows.dedup();
        let added = rows.len();
        self.store.add_to_manifest(rows).await?;
        Ok(added)
    }

    /// Deletes the manifests of subjects whose deletion the log records as verified; how many.
    pub async fn sweep(&self) -> Result<usize, VerifyError> {
        let subjects = self.store.manifest_subjects(SWEEP).await?;
        let streams: Vec<StreamId> = subjects.iter().map(|s| s.stream()).collect();
        let verified: Vec<SubjectId> = subjects
            .into_iter()
            .zip(self.read_whole(&streams).await?)
            .filter(|(_, events)| {
                events
                    .iter()
                    .any(|e| e.event_type.as_str() == "DeletionVerified")
            })
            .map(|(subject, _)| subject)
            .collect();
        if !verified.is_empty() {
            self.store.drop_manifests(&verified).await?;
            self.store.forget_deleted().await?;
        }
        Ok(verified.len())
    }

    /// Verifies a batch of subjects with one scan of the database and the data folder, and
    /// records each verdict in the log (purged subjects only). Everything but the scan goes
    /// page by page for all the page's subjects at once: their streams, whether their keys
    /// are gone, opening their values, appending the verdicts, deleting the manifests.
    pub async fn verify(
        &self,
        subjects: &[SubjectId],
        now: OffsetDateTime,
    ) -> Result<Vec<Verdict>, VerifyError> {
        let mut places: Vec<BTreeSet<String>> = vec![BTreeSet::new(); subjects.len()];
        let mut fingerprints = Fingerprints::default();
        let index: HashMap<SubjectId, usize> =
            subjects.iter().enumerate().map(|(i, s)| (*s, i)).collect();
        let mut manifested = vec![0usize; subjects.len()];
        for (subject, fingerprint) in self.store.manifest_of(subjects).await? {
            if let Some(&i) = index.get(&subject) {
                fingerprints.insert(&fingerprint, i);
                manifested[i] += 1;
            }
        }
        // Per subject only what the verdict needs: tenant, count of sealed values, verified.
        let mut found = Vec::with_capacity(subjects.len());
        for (first, page) in (0..).step_by(self.page).zip(subjects.chunks(self.page)) {
            let evidence = self.evidence(page).await?;
            let held = self.keys.held_among(page).await?;
            let sealed: Vec<Sealed> = evidence
                .iter()
                .flat_map(|e| e.sealed.iter().map(|(_, sealed)| sealed.clone()))
                .collect();
            let mut opened = self.keys.open_all(&sealed).await?.into_iter();
            for (i, (subject, e)) in (first..).zip(page.iter().zip(evidence)) {
                if held.contains(subject) {
                    places[i].insert("Schlüsselablage (Tabelle subject_keys)".to_owned());
                }
                // Values sealed under the subject's own fingerprint key can only be looked for
                // through the manifest prepared before the purge.
                let own = e
                    .sealed
                    .iter()
                    .any(|(_, s)| s.fingerprint.starts_with(SUBJECT_FINGERPRINT_PREFIX));
                // Once verified, the manifest is gone on purpose: a later check still finds the
                // key gone, the values shut and copies of them, but no plaintext by its
                // fingerprint.
                if own && manifested[i] == 0 && !e.verified {
                    places[i].insert(
                        "Manifest der Löschprüfung fehlt (Tabelle deletion_manifests): \
                         Klartextkopien können nicht gesucht werden"
                            .to_owned(),
                    );
                }
                for ((stream, sealed), opened) in e.sealed.iter().zip(opened.by_ref()) {
                    // Verbatim copies of the log's fingerprints outside the log; before ADR
                    // 0024 they were the KEK's, and so they serve as the verifier's too.
                    fingerprints.insert(&sealed.fingerprint, i);
                    match opened {
                        Ok(Opened::Erased) => {}
                        Ok(Opened::Plain(_)) => {
                            places[i]
                                .insert(format!("Protokoll: Wert in {stream} lässt sich öffnen"));
                        }
                        Err(KeyError::Tampered { .. }) => {
                            places[i]
                                .insert(format!("Protokoll: Wert in {stream} ist manipuliert"));
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                found.push((e.tenant, e.sealed.len(), e.verified));
            }
        }
        let (rows, files_scanned) = self.scan(fingerprints, &mut places, subjects).await?;
        let mut verdicts = Vec::with_capacity(subjects.len());
        let mut dropped = 0usize;
        for (first, page) in (0..).step_by(self.page).zip(subjects.chunks(self.page)) {
            let mut commands = Vec::with_capacity(page.len());
            let mut page_verdicts = Vec::with_capacity(page.len());
            for (i, &subject) in (first..).zip(page) {
                let (tenant, sealed, verified) = &found[i];
                let mut checks = vec![
                    "Schlüssel vernichtet".to_owned(),
                    format!(
                        "{sealed} versiegelte Werte im Protokoll lassen sich nicht mehr öffnen"
                    ),
                    format!("{rows} Tabellenzeilen ohne Fingerabdruck der Person"),
                    format!(
                        "{files_scanned} Dateien (Blobs, Postausgang, Protokolldateien) ohne Fingerabdruck der Person"
                    ),
                ];
                if manifested[i] == 0 && *verified {
                    checks.push(
                        "Klartextsuche beim ersten Nachweis erledigt; ihr Manifest ist seither \
                         gelöscht"
                            .to_owned(),
                    );
                }
                let places: Vec<String> = std::mem::take(&mut places[i]).into_iter().collect();
                let command = if places.is_empty() {
                    SubjectCommand::VerifyDeletion {
                        subject,
                        checks: checks.clone(),
                    }
                    .into()
                } else {
                    SubjectCommand::FailDeletionVerification {
                        subject,
                        places: places.clone(),
                    }
                    .into()
                };
                let id = Uuid::now_v7();
                let issued = Issued {
                    tenant: tenant.clone(),
                    actor: Actor::system("verifier"),
                    correlation_id: id,
                    command_id: id,
                    now,
                };
                commands.push((command, issued));
                page_verdicts.push(Verdict {
                    subject,
                    places,
                    checks,
                    recorded: false,
                });
            }
            // One combined append for the page's verdicts.
            let mut verified = Vec::new();
            for (verdict, done) in page_verdicts
                .iter_mut()
                .zip(self.bus.execute_all(&commands).await)
            {
                verdict.recorded = match done {
                    Ok(_) => true,
                    Err(BusError::Refused(DomainError::NotYetPurged)) => false,
                    Err(e) => return Err(e.into()),
                };
                // Verified: the manifest has done its work and goes (a stop in between leaves
                // it to the next round's sweep). A failed verification keeps it for the next
                // try.
                if verdict.recorded && verdict.passed() && manifested[index[&verdict.subject]] > 0 {
                    verified.push(verdict.subject);
                }
            }
            if !verified.is_empty() {
                self.store.drop_manifests(&verified).await?;
                dropped += verified.len();
            }
            verdicts.extend(page_verdicts);
        }
        if dropped > 0 {
            // Deleted rows are no copy either (the WAL on SQLite).
            self.store.forget_deleted().await?;
        }
        Ok(verdicts)
    }

    /// One pass over every table and every file of the data folder; the rows and files seen.
    async fn scan(
        &self,
        fingerprints: Fingerprints,
        places: &mut [BTreeSet<String>],
        subjects: &[SubjectId],
    ) -> Result<(u64, u64), VerifyError> {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<(String, String)>(1024);
        let store = self.store.clone();
        let producer = tokio::spawn(async move { store.scan_rows(tx).await });
        let keys = self.keys.clone();
        let data_dir = self.data_dir.clone();
        let folders: Vec<(PathBuf, &'static str)> = vec![
            (data_dir.join("blobs"), "Blob-Ordner"),
            (data_dir.join("outbox"), "Postausgang"),
            (data_dir.join("logs"), "Protokolldateien"),
        ];
        let subject_folders: Vec<(usize, PathBuf)> = subjects
            .iter()
            .enumerate()
            .flat_map(|(i, s)| {
                [
                    (i, data_dir.join("blobs").join(s.to_string())),
                    (i, data_dir.join("outbox").join(s.to_string())),
                ]
            })
            .collect();
        let found = tokio::task::spawn_blocking(move || {
            let mut scanner = Scanner {
                keys: keys.as_ref(),
                fingerprints,
                seen: HashSet::new(),
            };
            let mut found: Vec<(usize, String)> = Vec::new();
            let mut hits = BTreeSet::new();
            while let Some((table, row)) = rx.blocking_recv() {
                if table == MANIFEST_TABLE {
                    continue;
                }
                scanner.scan(&row, table == LOG_TABLE, &mut hits);
                for i in std::mem::take(&mut hits) {
                    found.push((i, table_place(&table, &row)));
                }
            }
            let mut files_scanned = 0u64;
            for (i, folder) in subject_folders {
                if folder.exists() {
                    found.push((i, format!("Ordner {}", folder.display())));
                }
            }
            for (folder, label) in folders {
                for file in files(&folder)? {
                    let bytes = std::fs::read(&file).map_err(|e| VerifyError::Io {
                        path: file.clone(),
                        source: e,
                    })?;
                    files_scanned += 1;
                    scanner.scan(&String::from_utf8_lossy(&bytes), false, &mut hits);
                    let name = file
                        .strip_prefix(&folder)
                        .unwrap_or(&file)
                        .display()
                        .to_string();
                    for i in std::mem::take(&mut hits) {
                        found.push((i, format!("{label}: Datei {name}")));
                    }
                }
            }
            Ok::<_, VerifyError>((found, files_scanned))
        })
        .await
        .map_err(|e| VerifyError::Scan(e.to_string()))??;
        let rows = producer
            .await
            .map_err(|e| VerifyError::Scan(e.to_string()))??;
        let (found, files_scanned) = found;
        for (i, place) in found {
            places[i].insert(place);
        }
        Ok((rows, files_scanned))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as B64;

    #[test]
    fn fingerprints_are_found_by_their_bits_whichever_key_made_them() {
        let kek_made = B64.encode([7u8; 32]);
        let subject_made = format!("{SUBJECT_FINGERPRINT_PREFIX}{}", B64.encode([9u8; 32]));
        let mut index = Fingerprints::default();
        index.insert(&kek_made, 3);
        index.insert(&subject_made, 5);
        assert_eq!(index.get(&kek_made), Some(3));
        assert_eq!(index.get(&subject_made), Some(5));
        let other = B64.encode([8u8; 32]);
        let short = B64.encode([7u8; 31]);
        for text in ["Erika Mustermann", &kek_made[..43], "2.", &short, &other] {
            assert_eq!(index.get(text), None, "{text}");
        }
        // What is no fingerprint is not indexed (and so never found).
        index.insert("Erika Mustermann", 1);
        assert_eq!(index.0.len(), 2);
    }

    #[test]
    fn candidates_are_pieces_and_runs_of_words() {
        let mut seen = Vec::new();
        candidates(
            r#"{"name":"Erika Mustermann","x":"Herr Max Otto Schulz aus Ulm"}"#,
            |c| {
                seen.push(c.to_owned());
            },
        );
        for wanted in [
            "Erika Mustermann",
            "Erika",
            "Mustermann",
            "Max Otto Schulz",
            "Ulm",
        ] {
            assert!(seen.iter().any(|c| c == wanted), "{wanted} in {seen:?}");
        }
        assert!(!seen.iter().any(|c| c.contains('"')));
    }
}
