//! Integration tests of the api crate, in one binary: the router in-process and the real
//! `videoamt` binary as a child process.

/// One test module per function named, each running it on SQLite and on PostgreSQL:
/// `$site::sqlite()` gives the function's argument, `$site::postgres()` an `Option` of it
/// (`None`: no server, and the test passes as skipped outside CI).
macro_rules! on_both_backends {
    ($site:ident: $($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name(super::$site::sqlite().await).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    let Some(site) = super::$site::postgres().await else { return };
                    super::$name(site).await;
                }
            }
        )*
    };
}

mod abuse;
mod audit;
mod backup;
mod browser;
mod cli;
mod crash;
mod crash_loop;
mod edge;
mod exposure;
mod failover;
mod http;
mod layout;
mod mail;
mod municipality;
mod nodes;
mod projection_crash;
mod purge_crash;
mod retention;
mod room;
mod room_documents;
mod room_forms;
mod room_handover;
mod room_payment;
mod room_signing;
mod router;
mod seal;
mod signon;
mod staff;
mod timers;

/// Path of the `videoamt` binary cargo built for these tests.
/// The binary, with the daily booking caps raised: the tests book many appointments from one
/// address and mailbox (`abuse::` shows the caps themselves).
fn videoamt() -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_videoamt"));
    command.env("VIDEOAMT_BOOKING_CAPS", "100000,100000");
    command
}

/// An embedded store at `db` with `count` subjects whose purge was due yesterday, sealed under
/// the KEK of the data folder `data` (where `videoamt` will load it from).
async fn due_subjects(
    db: &std::path::Path,
    data: &std::path::Path,
    count: usize,
) -> Vec<videoamt_core::domain::SubjectId> {
    let store: std::sync::Arc<dyn videoamt_adapters::store::AdminStore> = std::sync::Arc::new(
        videoamt_adapters::store::sqlite::SqliteStore::open(db)
            .await
            .expect("open"),
    );
    due_subjects_in(store, data, count).await
}

/// [`due_subjects`] in any store.
async fn due_subjects_in(
    store: std::sync::Arc<dyn videoamt_adapters::store::AdminStore>,
    data: &std::path::Path,
    count: usize,
) -> Vec<videoamt_core::domain::SubjectId> {
    use std::sync::Arc;
    let kek = videoamt_adapters::keys::Kek::load(data).expect("kek");
    let system = videoamt_api::app::System::new(
        store.clone(),
        kek,
        data,
        videoamt_core::tenant::example_tenants().expect("valid"),
    );
    let events: Arc<dyn videoamt_core::store::EventStore> = store;
    let blobs: Arc<dyn videoamt_core::blobs::BlobStore> = system.blobs.clone();
    videoamt_scenarios::due::due_subjects(
        &events,
        &system.keys,
        &blobs,
        count,
        time::OffsetDateTime::now_utc() - time::Duration::days(1),
        |_| {},
    )
    .await
    .expect("due subjects")
}
