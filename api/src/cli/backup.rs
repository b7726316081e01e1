//! `videoamt backup log|keys` and `videoamt restore`: the two backups kept apart, and the
//! restore of both into an empty store (ADR 0027, `docs/operations/backup.md`).

use std::path::Path;
use std::process::ExitCode;

use videoamt_adapters::store::StoreLocation;
use videoamt_adapters::store::backup;

/// The exit code of a refused restore: the target or the backups are not what it needs, and
/// nothing was written. Failures (a missing program, a disk error) exit with 1.
const REFUSED: u8 = 2;

/// `videoamt backup log --to FILE`.
pub(crate) async fn log(location: &StoreLocation, to: &Path) -> anyhow::Result<ExitCode> {
    let written = backup::backup_log(location, to).await?;
    println!(
        "Protokollsicherung geschrieben: {} (bis Position {}, {:.1} MiB), ohne Schlüssel, \
         Sitzungen, laufende Anmeldungen und Leases; die Schlüssel sichert `videoamt backup \
         keys`",
        to.display(),
        written.position,
        super::mib(written.bytes),
    );
    Ok(ExitCode::SUCCESS)
}

/// `videoamt backup keys --to FILE`.
pub(crate) async fn keys(location: &StoreLocation, to: &Path) -> anyhow::Result<ExitCode> {
    let store = super::open(location).await?;
    let written = backup::backup_keys(store.as_ref(), to).await?;
    println!(
        "Schlüsselsicherung geschrieben: {} ({} Schlüssel, Stand Position {}). Die Schlüssel \
         sind mit dem Schlüssel-Verschlüsselungsschlüssel (KEK) verschlüsselt, der weder in \
         der Datenbank noch in einer Sicherung liegt: ihn getrennt aufbewahren.",
        to.display(),
        written.keys,
        written.position,
    );
    Ok(ExitCode::SUCCESS)
}

/// `videoamt restore --log FILE --keys FILE`.
pub(crate) async fn restore(
    location: &StoreLocation,
    log: &Path,
    keys: &Path,
) -> anyhow::Result<ExitCode> {
    match backup::restore(location, log, keys).await {
        Ok(restored) => {
            println!(
                "wiederhergestellt: Protokoll bis Position {}, {} Schlüssel",
                restored.position, restored.keys
            );
            if restored.keys_without_subject > 0 {
                println!(
                    "{} Schlüssel von Personen, die das Protokoll nicht kennt (nach der \
                     Protokollsicherung gebucht), nicht übernommen",
                    restored.keys_without_subject
                );
            }
            println!(
                "Vor `videoamt serve`: `videoamt store verify`, `videoamt retention run` \
                 (fällige Löschungen, auch die nach der Protokollsicherung ausgeführten) und \
                 `videoamt retention verify --all`."
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) if e.is_refusal() => {
            eprintln!("videoamt: Wiederherstellung abgelehnt: {e}");
            Ok(ExitCode::from(REFUSED))
        }
        Err(e) => Err(e.into()),
    }
}
