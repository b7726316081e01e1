//! The municipalities' seals from `VIDEOAMT_SEAL_DIR` (ADR 0018): a configured key and chain
//! seal the forms signed in the room, and `serve` refuses to start on a key it cannot use,
//! naming the file.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::Stdio;

use videoamt_adapters::seal::{SealFiles, SealIdentity};
use videoamt_api::app::Settings;
use videoamt_core::blobs::{BlobContent, BlobName, BlobStore as _};
use videoamt_core::event::TenantId;

use crate::room_handover::{sign_the_weapons_card_form, weapons_card_room};

/// Ettlingen's key and chain in `dir` as an operator puts them there, made for `name` (the
/// certificate's common name is "Demo-Siegel {name}").
fn configure_ettlingen(dir: &Path, name: &str) -> SealFiles {
    let made = tempfile::tempdir().expect("tempdir");
    let tenant = TenantId::parse("ettlingen").expect("valid");
    SealIdentity::demo(made.path(), &tenant, name).expect("a key and a certificate");
    std::fs::create_dir_all(dir).expect("the seal folder");
    let files = SealFiles::in_dir(dir, &tenant);
    // `copy` keeps the key file's mode 0600.
    std::fs::copy(made.path().join("ettlingen.key.pem"), &files.key).expect("the key");
    std::fs::copy(made.path().join("ettlingen.crt.pem"), &files.chain).expect("the chain");
    files
}

#[tokio::test]
async fn a_configured_seal_seals_the_forms_signed_in_the_room() {
    let seals = tempfile::tempdir().expect("tempdir");
    let name = format!("Siegeltest {}", uuid::Uuid::now_v7().simple());
    configure_ettlingen(seals.path(), &name);
    let mut room = weapons_card_room().await;
    let system = room.api.state.system.clone().with_settings(Settings {
        seal_dir: Some(seals.path().to_path_buf()),
        ..Settings::default()
    });
    system.check_seals().expect("every seal loads");
    room.api.state.system = system.clone();

    let form = sign_the_weapons_card_form(&room, "Mustermann").await;
    let blob = BlobName::parse(&format!("{form}-signed")).expect("name");
    let BlobContent::Bytes(pdf) = system.blobs.get(room.subject, &blob).await.expect("stored")
    else {
        panic!("the signed PDF is there");
    };
    let file = seals.path().join("formular.pdf");
    std::fs::write(&file, &pdf).expect("write");
    let output = std::process::Command::new("pdfsig")
        .arg(&file)
        .output()
        .expect("pdfsig runs (poppler-utils; scripts/test installs it)");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(report.contains("Signature is Valid."), "{report}");
    assert!(
        report.contains(&format!("Common Name: Demo-Siegel {name}")),
        "sealed with the configured certificate: {report}"
    );
    let demo = system.data_dir.join("seal");
    assert!(
        !demo.join("ettlingen.key.pem").exists(),
        "no demo identity for Ettlingen"
    );
    assert!(
        demo.join("stuttgart.key.pem").exists(),
        "Stuttgart, without files, has its demo identity from the start"
    );
}

#[test]
fn serve_refuses_to_start_with_a_broken_seal_key_and_names_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let seals = dir.path().join("siegel");
    let files = configure_ettlingen(&seals, "Siegeltest Ettlingen");
    std::fs::write(&files.key, "-----BEGIN PRIVATE KEY-----\nkaputt\n").expect("write");
    let mut child = crate::videoamt()
        .arg("--store")
        .arg(format!("sqlite:{}", dir.path().join("events.db").display()))
        .arg("serve")
        .args(["--listen", "127.0.0.1:0", "--no-demo"])
        .env("VIDEOAMT_SEAL_DIR", &seals)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn serve");
    // A server that starts says so on its first line; one that refuses closes stdout.
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read");
    if !line.is_empty() {
        child.kill().expect("stop");
        child.wait().expect("reap");
        panic!("serve started with a broken seal key: {line}");
    }
    let output = child.wait_with_output().expect("exits");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let message = stderr
        .lines()
        .find(|l| l.starts_with("videoamt: "))
        .unwrap_or_else(|| panic!("an error line: {stderr}"));
    assert!(
        message.contains(&files.key.display().to_string()),
        "{message}"
    );
    assert!(
        message.contains("seal of Stadt Ettlingen") && message.contains("PKCS#8"),
        "{message}"
    );
}
