//! The session room in two real browsers: a citizen and a clerk meet by video through the
//! server's media relay, in headless Chromium with a fake camera and microphone.
//!
//! WebRTC traffic may only go to loopback here, and Chromium would also gather the machine's
//! other addresses, so the test runs itself again in a network namespace of its own that has
//! only `lo` (DESIGN §13): `unshare -n`, as root. Inside it nothing of the machine is
//! reachable, so it uses the embedded store and needs no mail server.

use std::process::Command;
use std::time::Duration;

use super::cdp::{Browser, FAKE_MEDIA_ARGS};
use super::{Person, screenshots};
use crate::mail::server;

const IN_NAMESPACE: &str = "VIDEOAMT_TEST_IN_NETNS";

/// Runs the test `name` (in this module) again inside a loopback-only network namespace;
/// `true` when the caller is the copy inside and should go on.
fn inside_namespace(name: &str) -> bool {
    if std::env::var_os(IN_NAMESPACE).is_some() {
        return true;
    }
    let exe = std::env::current_exe().expect("the test binary");
    let test = format!("browser::room::{name}");
    let status = Command::new("unshare")
        .args(["-n", "sh", "-c", "ip link set lo up && exec \"$0\" \"$@\""])
        .arg(exe)
        .args(["--exact", &test, "--nocapture", "--test-threads=1"])
        .env(IN_NAMESPACE, "1")
        .status()
        .expect("unshare runs (util-linux, as root; scripts/test installs iproute2)");
    assert!(
        status.success(),
        "the room test inside the namespace failed"
    );
    false
}

/// Waits until the page's own record of the call (`window.videoamt`) says `condition`. On a
/// timeout the panic shows what the forms panel (or else the page) said then.
async fn until(person: &Person, condition: &str, what: &str) {
    let Err(e) = person
        .page
        .wait_for(condition, Duration::from_secs(45))
        .await
    else {
        return;
    };
    let shown = person
        .page
        .eval("(document.getElementById('formulare') || document.body).innerText.slice(0, 3000)")
        .await
        .map(|v| v.as_str().unwrap_or_default().to_owned())
        .unwrap_or_else(|e| format!("(unreadable: {e:#})"));
    panic!(
        "{} waited for {what}: {e:#}\nthe page showed:\n{shown}",
        person.who
    );
}

async fn inbound(person: &Person) -> u64 {
    person
        .page
        .eval("window.videoamt.inbound")
        .await
        .expect("stats")
        .as_u64()
        .unwrap_or(0)
}

/// Chromium for calls on loopback: a fake camera and microphone, video that plays at once.
async fn launch() -> Browser {
    let mut args: Vec<&str> = FAKE_MEDIA_ARGS.to_vec();
    args.extend([
        "--allow-loopback-in-peer-connection",
        "--autoplay-policy=no-user-gesture-required",
    ]);
    Browser::launch_with_args(&args)
        .await
        .expect("headless Chromium is needed (scripts/test installs it)")
}

/// From the appointment page: the privacy notice, then the waiting room.
async fn enter_waiting_room(citizen: &Person, token: &str) {
    citizen.goto(&format!("/termin/{token}")).await;
    citizen
        .page
        .click("#datenschutz")
        .await
        .expect("privacy notice");
    citizen.submit("form[action$='/warteraum'] button").await;
    until(
        citizen,
        "window.videoamt.state === 'waiting'",
        "the waiting room",
    )
    .await;
}

async fn appointment_of(citizen: &Person, token: &str) -> String {
    let appointment = citizen
        .page
        .eval(&format!(
            "fetch('/api/v1/appointments/by-token/{token}').then(r => r.json()).then(a => a.id)"
        ))
        .await
        .expect("the appointment's id");
    appointment.as_str().expect("an id").to_owned()
}

/// The clerk admits from the room page; then media arrives on both sides.
async fn admit_and_see_each_other(citizen: &Person, clerk: &Person, room: &str) {
    clerk
        .submit(&format!("form[action='{room}/einlassen'] button"))
        .await;
    until(citizen, "window.videoamt.state === 'admitted'", "admission").await;
    until(citizen, "window.videoamt.inbound > 0", "the clerk's media").await;
    until(clerk, "window.videoamt.inbound > 0", "the citizen's media").await;
}

/// Sends a write of `field` straight over the room's socket, as a page that saw the field at
/// version `based_on` would: past any disabled input and any debounce.
async fn write_over_socket(person: &Person, field: &str, value: &str, based_on: u64) {
    person
        .page
        .eval(&format!(
            "window.videoamtRoom.send({{ type: 'field', \
               form: document.querySelector('#formulare form[data-form]').dataset.form, \
               field: '{field}', value: '{value}', based_on: {based_on} }})"
        ))
        .await
        .unwrap_or_else(|e| panic!("{} writes {field}: {e:#}", person.who));
}

/// `steps` stand in `timeline` in this order.
fn assert_in_order(timeline: &str, steps: &[&str]) {
    let mut from = 0;
    for step in steps {
        let at = timeline[from..]
            .find(step)
            .unwrap_or_else(|| panic!("{step:?} missing or out of order in:\n{timeline}"));
        from += at + step.len();
    }
}

/// No page any of `people` checked had a serious or critical accessibility violation.
fn assert_accessible(people: &[&Person]) {
    let violations: Vec<String> = people.iter().flat_map(|p| p.violations.clone()).collect();
    assert!(
        violations.is_empty(),
        "serious accessibility violations:\n{}",
        violations.join("\n")
    );
}

/// The citizen types the TAN `code` into the form in `section` and signs; the clerk's page,
/// all of it, never held the code.
async fn sign_with_tan(citizen: &Person, clerk: &Person, section: &str, code: &str) {
    let clerk_sees = clerk
        .page
        .eval("document.documentElement.outerHTML")
        .await
        .expect("the clerk's page");
    assert!(
        !clerk_sees.as_str().unwrap_or("").contains(code),
        "the TAN is not on the clerk's page"
    );
    citizen
        .page
        .fill(&format!("{section} input[name=tan]"), code)
        .await
        .expect("type the TAN");
    citizen
        .page
        .click(&format!("{section} .tan-eingabe button"))
        .await
        .expect("sign");
}

/// The page fetches its forms panel again, as on the socket's `forms` message, and swaps it in.
async fn panel_again(person: &Person) {
    person
        .page
        .eval(
            "document.getElementById('formulare').dataset.before = 'ja'; \
             window.videoamtRoom.listeners.forEach((l) => l({ type: 'forms' })); true",
        )
        .await
        .expect("the forms message");
    until(
        person,
        "document.getElementById('formulare').dataset.before === undefined",
        "the panel swapped",
    )
    .await;
}

/// The clerk asks for a signature by `method` for the form in `section`.
async fn request_signature(clerk: &Person, section: &str, method: &str) {
    clerk
        .page
        .eval(&format!(
            "document.querySelector('{section} select[name=methode]').value = '{method}'"
        ))
        .await
        .expect("choose the method");
    clerk
        .submit(&format!("{section} form[action$='/unterschrift'] button"))
        .await;
}

/// The Bürgerbüro's pilot statistics summed over its weeks, as a promise in the page: sessions,
/// of them completed, and feedback answers.
const STATISTICS: &str = "fetch('/api/v1/statistics?department=buergerbuero').then(r => r.json()) \
     .then(rows => rows.reduce((a, r) => ({ sessions: a.sessions + r.sessions, \
       completed: a.completed + r.completed, \
       feedback: a.feedback + r.feedback.reduce((x, y) => x + y, 0) }), \
       { sessions: 0, completed: 0, feedback: 0 }))";

#[derive(Debug, serde::Deserialize)]
struct Counted {
    sessions: u64,
    completed: u64,
    feedback: u64,
}

async fn statistics(staff: &Person) -> Counted {
    let value = staff.page.eval(STATISTICS).await.expect("the statistics");
    serde_json::from_value(value).expect("the sums")
}

fn artifacts() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/artifacts")
}

/// Downloads what the link `selector` on the person's page points to, as the browser would
/// with the person's cookies, and saves it as `target/artifacts/{name}`.
async fn download(person: &Person, selector: &str, name: &str) -> std::path::PathBuf {
    use base64::Engine as _;
    let got = person
        .page
        .eval(&format!(
            "(async () => {{ const a = document.querySelector({selector:?}); \
               const r = await fetch(a.href); \
               const b = new Uint8Array(await r.arrayBuffer()); let s = ''; \
               for (let i = 0; i < b.length; i += 8192) s += String.fromCharCode.apply(null, b.subarray(i, i + 8192)); \
               return {{ status: r.status, type: r.headers.get('content-type'), body: btoa(s) }}; }})()"
        ))
        .await
        .unwrap_or_else(|e| panic!("{} downloads {selector}: {e:#}", person.who));
    assert_eq!(got["status"], 200, "{got}");
    assert_eq!(got["type"], "application/pdf", "{got}");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(got["body"].as_str().expect("the body"))
        .expect("base64");
    std::fs::create_dir_all(artifacts()).expect("the artifacts folder");
    let path = artifacts().join(name);
    std::fs::write(&path, bytes).expect("saved");
    path
}

/// The downloaded PDF carries a valid seal over the whole file (`pdfsig`), is well formed
/// (`qpdf --check`) and shows `words` (`pdftotext`).
fn assert_sealed(pdf: &std::path::Path, words: &[&str]) {
    let run = |program: &str, args: &[&str]| {
        let out = Command::new(program)
            .args(args)
            .arg(pdf)
            .args(if program == "pdftotext" {
                &["-"][..]
            } else {
                &[][..]
            })
            .output()
            .unwrap_or_else(|e| panic!("{program} runs (scripts/test installs it): {e}"));
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let (_, sig) = run("pdfsig", &[]);
    assert!(
        sig.contains("Signature is Valid.") && sig.contains("Total document signed"),
        "pdfsig on {}:\n{sig}",
        pdf.display()
    );
    let (ok, check) = run("qpdf", &["--check"]);
    assert!(ok, "qpdf --check on {}:\n{check}", pdf.display());
    let (_, text) = run("pdftotext", &[]);
    for word in words {
        assert!(text.contains(word), "{word:?} in the PDF:\n{text}");
    }
}

/// The questionnaire on the ended room page: the marks for Bild und Ton, Bedienung, Wartezeit
/// and Ergebnis, a free text, sent.
async fn give_feedback(citizen: &Person, marks: [u8; 4], text: &str) {
    for (aspect, mark) in ["bild_und_ton", "bedienung", "wartezeit", "ergebnis"]
        .iter()
        .zip(marks)
    {
        citizen
            .page
            .click(&format!("#feedback input[name={aspect}][value='{mark}']"))
            .await
            .expect("a mark");
    }
    citizen
        .page
        .fill("#kommentar", text)
        .await
        .expect("the free text");
    citizen.submit("#feedback form button[type=submit]").await;
}

#[tokio::test]
async fn a_citizen_and_a_clerk_meet_by_video_in_two_browsers() {
    if !inside_namespace("a_citizen_and_a_clerk_meet_by_video_in_two_browsers") {
        return;
    }
    std::fs::create_dir_all(screenshots()).expect("screenshot folder");
    let dir = tempfile::tempdir().expect("temp dir");
    let (_server, addr) = server(dir.path(), "", true, &[]);
    let base = format!("http://{addr}");
    let axe = super::cdp::axe_source().expect("axe-core (scripts/test installs it)");
    let browser = launch().await;

    // The pilot statistics before the visit, as the auditor sees them.
    let mut auditor = Person::new(&browser, &base, &axe, "raum-pruefung").await;
    auditor.log_in("pruefung").await;
    let counted = statistics(&auditor).await;

    // --- the citizen books, passes the pre-call check and waits ---
    let mut citizen = Person::new(&browser, &base, &axe, "raum-buerger").await;
    citizen.goto("/buchen/ettlingen").await;
    let token = citizen
        .book(
            &dir.path().join("data/outbox"),
            &["personalausweis", "meldebescheinigung"],
            "Erika Mustermann",
            "erika@example.org",
            false,
        )
        .await;
    citizen.goto(&format!("/termin/{token}/technik")).await;
    citizen.check("technik").await;
    citizen
        .page
        .click("#pruefen")
        .await
        .expect("start the check");
    until(
        &citizen,
        "document.getElementById('technik').dataset.ergebnis === 'bestanden'",
        "the pre-call check to pass",
    )
    .await;
    citizen.check("technik-bestanden").await;
    enter_waiting_room(&citizen, &token).await;
    citizen.check("warteraum").await;
    let waiting = citizen.text().await;
    assert!(waiting.contains("Sie werden gleich verbunden"), "{waiting}");
    assert!(waiting.contains("Es wird nichts aufgezeichnet") && waiting.contains("§ 201"));
    let appointment = appointment_of(&citizen, &token).await;

    // --- the clerk admits; video flows both ways ---
    let mut clerk = Person::new(&browser, &base, &axe, "raum-sachbearbeitung").await;
    clerk.log_in("a.becker").await;
    let room = format!("/sachbearbeitung/termin/{appointment}/raum");
    clerk.goto(&room).await;
    clerk.check("raum-vor-einlass").await;
    let before = clerk.text().await;
    assert!(
        before.contains("Wartet im Warteraum.") && before.contains("Technik-Check bestanden"),
        "{before}"
    );
    admit_and_see_each_other(&citizen, &clerk, &room).await;
    // Without TURN configured the media goes straight to the relay.
    until(
        &citizen,
        "window.videoamt.route === 'host'",
        "a direct path",
    )
    .await;
    citizen.check("raum").await;
    clerk.check("raum").await;
    assert!(inbound(&citizen).await > 0 && inbound(&clerk).await > 0);

    // --- the identity check, a checklist and a result, no image ---
    clerk
        .page
        .eval(
            "document.getElementById('ausweisart').value = 'Personalausweis'; \
             for (const f of ['Hologramm', 'Lichtbild', 'Polycarbonat']) \
               document.querySelector(`input[name=feature][value=${f}]`).click(); \
             document.querySelector('input[name=questions]').click();",
        )
        .await
        .expect("fill the checklist");
    clerk
        .submit(&format!("form[action='{room}/identitaet'] button"))
        .await;
    assert!(
        clerk.text().await.contains("Die Identität ist geprüft."),
        "{}",
        clerk.text().await
    );
    until(
        &clerk,
        "window.videoamt.inbound > 0",
        "media after the reload",
    )
    .await;

    // --- a form, filled in together; a concurrent edit of one field resolves in log order ---
    clerk
        .page
        .eval("document.getElementById('vorlage').value = 'antrag-personalausweis'")
        .await
        .expect("choose the template");
    clerk
        .submit(&format!("form[action='{room}/formular'] button"))
        .await;
    until(
        &citizen,
        "window.videoamt.forms === 1",
        "the form on the citizen's page",
    )
    .await;
    citizen
        .page
        .fill("#formulare [name=familienname]", "Mustermann")
        .await
        .expect("the citizen types");
    until(
        &clerk,
        "document.querySelector('#formulare [name=familienname]').value === 'Mustermann'",
        "the citizen's value on the clerk's page",
    )
    .await;
    // The citizen writes the first name; the clerk's page, still on the empty field
    // (version 0), writes it after: the stale write wins in log order and the citizen is told
    // that their value was replaced.
    citizen
        .page
        .fill("#formulare [name=vorname]", "Erica")
        .await
        .expect("the citizen types");
    until(
        &clerk,
        "document.querySelector('#formulare [name=vorname]').value === 'Erica'",
        "the citizen's first name on the clerk's page",
    )
    .await;
    write_over_socket(&clerk, "vorname", "Erika", 0).await;
    until(
        &citizen,
        "document.querySelector('#formulare [name=vorname]').value === 'Erika' && \
         document.querySelector('#formulare .feld[data-field=vorname] .field-error').textContent.includes('ersetzt')",
        "the clerk's later value and the notice",
    )
    .await;
    until(
        &clerk,
        "document.querySelector('#formulare [name=vorname]').value === 'Erika'",
        "the clerk's own value",
    )
    .await;
    // Where the other side is typing shows beside the field.
    clerk
        .page
        .eval("document.querySelector('#formulare [name=geburtsdatum]').focus()")
        .await
        .expect("focus");
    until(
        &citizen,
        "document.querySelector('#formulare .feld[data-field=geburtsdatum] .gegenseite-feld').textContent.includes('Sachbearbeitung')",
        "where the clerk types",
    )
    .await;
    citizen.check("raum-formular").await;
    clerk.check("raum-formular").await;

    // --- a Hidden-TAN signature: the code only on the citizen's screen; then nobody edits ---
    citizen
        .page
        .fill("#formulare [name=geburtsdatum]", "1964-08-12")
        .await
        .expect("the citizen types the date of birth");
    until(
        &clerk,
        "document.querySelector('#formulare [name=geburtsdatum]').value === '1964-08-12'",
        "the complete form on the clerk's page",
    )
    .await;
    request_signature(&clerk, "#formulare", "hidden_tan").await;
    until(
        &citizen,
        "document.querySelector('#formulare .tan-anfordern button') !== null",
        "the signature request on the citizen's page",
    )
    .await;
    citizen
        .page
        .click("#formulare .tan-anfordern button")
        .await
        .expect("ask for the TAN");
    until(
        &citizen,
        "document.querySelector('#formulare .tan-bild img') !== null",
        "the TAN image",
    )
    .await;
    let image = citizen
        .page
        .eval("document.querySelector('#formulare .tan-bild img').src")
        .await
        .expect("the image");
    let code = crate::room_signing::read_tan(image.as_str().expect("a data URL"));
    citizen.check("raum-tan").await;
    sign_with_tan(&citizen, &clerk, "#formulare", &code).await;
    for person in [&citizen, &clerk] {
        until(
            person,
            "document.getElementById('formulare').textContent.includes('Unterschrieben und gesperrt') && \
             document.querySelector('#formulare [name=vorname]').disabled",
            "the locked form",
        )
        .await;
    }
    // Straight over the socket, past the disabled field: refused, in German, beside the field.
    write_over_socket(&clerk, "vorname", "Erich", 9).await;
    until(
        &clerk,
        "document.querySelector('#formulare .feld[data-field=vorname] .field-error').textContent.includes('gesperrt')",
        "the refusal beside the field",
    )
    .await;
    clerk.check("raum-gesperrt").await;
    write_over_socket(&citizen, "familienname", "Musterfrau", 9).await;
    until(
        &citizen,
        "document.querySelector('#formulare .feld[data-field=familienname] .field-error').textContent.includes('gesperrt')",
        "the refusal on the citizen's side",
    )
    .await;

    // --- the citizen shares a PDF; the clerk sees it at once and downloads it, byte for byte ---
    let pdf = "%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n";
    let uploaded = citizen
        .page
        .eval(&format!(
            "(async () => {{ const form = new FormData(); \
               form.append('datei', new Blob([{pdf:?}], {{ type: 'application/pdf' }}), 'Meldeschein.pdf'); \
               const r = await fetch('/termin/{token}/raum/dokumente', \
                 {{ method: 'POST', body: form, headers: {{ Accept: 'application/json' }} }}); \
               return r.status; }})()"
        ))
        .await
        .expect("the upload runs");
    assert_eq!(
        uploaded,
        serde_json::json!(201),
        "the citizen's upload is taken"
    );
    until(
        &clerk,
        "window.videoamt.documents === 1 && document.getElementById('dokumente').textContent.includes('Meldeschein.pdf')",
        "the document in the clerk's room without a reload",
    )
    .await;
    let downloaded = clerk
        .page
        .eval(&format!(
            "(async () => {{ const list = await (await fetch('/sachbearbeitung/termin/{appointment}/raum/dokumente', \
                 {{ headers: {{ Accept: 'application/json' }} }})).json(); \
               const bytes = new Uint8Array(await (await fetch(list.documents[0].href + '?herunterladen=1')).arrayBuffer()); \
               return Array.from(bytes).map(b => String.fromCharCode(b)).join(''); }})()"
        ))
        .await
        .expect("the download runs");
    assert_eq!(downloaded.as_str(), Some(pdf), "byte for byte");
    clerk.check("raum-dokument").await;

    // --- the citizen's tab closes and opens again within the grace period ---
    drop(citizen.page);
    until(
        &clerk,
        "document.getElementById('status-text').textContent.includes('unterbrochen')",
        "the clerk to see the lost connection",
    )
    .await;
    citizen.page = citizen.context.new_page().await.expect("a new tab");
    citizen.goto(&format!("/termin/{token}/warteraum")).await;
    until(
        &citizen,
        "window.videoamt.state === 'admitted' && window.videoamt.inbound > 0",
        "media again after the reconnect, without the waiting room",
    )
    .await;
    citizen.check("raum-wieder").await;

    // --- the fees, paid through the payment sandbox in a window of its own ---
    assert!(
        clerk
            .text()
            .await
            .contains("Gebühren der Anliegen: 47,00 €")
    );
    clerk
        .submit(&format!("form[action='{room}/zahlung'] button"))
        .await;
    until(
        &citizen,
        "window.videoamt.payment === 'requested'",
        "the payment request",
    )
    .await;
    let shown = citizen.page.text("#zahlung").await.expect("the panel");
    assert!(
        shown.contains("Zu zahlen: 47,00 €") && shown.contains("Jetzt bezahlen"),
        "{shown}"
    );
    citizen.check("zahlung-angefordert").await;
    // "Jetzt bezahlen" opens the provider's page in a window of its own, so the call goes on.
    let mut paying = Person::new(&browser, &base, &axe, "raum-zahlung").await;
    paying
        .goto(&format!("/termin/{token}/raum/zahlung/zurueck"))
        .await;
    paying.submit("form button").await;
    let sandbox = paying.text().await;
    assert!(
        sandbox.contains("Zahlungs-Sandbox – keine echte Zahlung") && sandbox.contains("47,00 €"),
        "{sandbox}"
    );
    paying.check("sandbox").await;
    paying
        .page
        .click("input[name=methode][value=wero]")
        .await
        .expect("Wero");
    paying.submit("button[value=genehmigen]").await;
    let receipt = paying.text().await;
    assert!(
        receipt.contains("Quittung") && receipt.contains("Wero") && receipt.contains("47,00 €"),
        "{receipt}"
    );
    paying.check("quittung").await;
    for person in [&citizen, &clerk] {
        until(
            person,
            "window.videoamt.payment === 'captured'",
            "the capture in both rooms",
        )
        .await;
    }
    let shown = citizen.page.text("#zahlung").await.expect("the panel");
    assert!(shown.contains("Bezahlt: 47,00 € mit Wero"), "{shown}");
    assert!(inbound(&citizen).await > 0, "the call went on meanwhile");
    citizen.check("bezahlt").await;
    clerk.check("bezahlt").await;

    // --- the citizen downloads the signed form: sealed, valid for pdfsig and qpdf ---
    let signed = download(
        &citizen,
        "#formulare a[download]",
        "ettlingen-antrag-personalausweis.pdf",
    )
    .await;
    assert_sealed(&signed, &["Mustermann", "Erika", "Personalausweis"]);

    // --- the clerk ends the session as done; the citizen gives feedback ---
    clerk
        .page
        .click("input[name=outcome][value=completed]")
        .await
        .expect("choose the outcome");
    clerk
        .submit(&format!("form[action='{room}/beenden'] button"))
        .await;
    assert!(
        clerk
            .text()
            .await
            .contains("Die Sitzung ist beendet: abgeschlossen."),
        "{}",
        clerk.text().await
    );
    clerk.check("beendet").await;
    until(
        &citizen,
        "window.videoamt.state === 'ended'",
        "the end of the session",
    )
    .await;
    citizen.goto(&format!("/termin/{token}/warteraum")).await;
    let ended = citizen.text().await;
    assert!(
        ended.contains("Ihr Termin ist beendet. Vielen Dank.")
            && ended.contains("Wie war Ihr Videotermin?")
            && ended.contains("Bezahlt: 47,00 € mit Wero")
            && ended.contains("Unterschriebenes Formular (PDF) herunterladen"),
        "{ended}"
    );
    citizen.check("beendet").await;
    give_feedback(&citizen, [5, 4, 5, 5], "Sehr freundlich, danke!").await;
    let thanks = citizen.text().await;
    assert!(
        thanks.contains("Vielen Dank für Ihre Rückmeldung."),
        "{thanks}"
    );
    assert!(!thanks.contains("Rückmeldung senden"), "asked once only");
    citizen.check("feedback-danke").await;

    // --- the auditor's timeline holds every step in order; the statistics count the visit ---
    until(
        &auditor,
        &format!(
            "{STATISTICS}.then(s => s.sessions === {} && s.completed === {} && s.feedback === {})",
            counted.sessions + 1,
            counted.completed + 1,
            counted.feedback + 1
        ),
        "the visit in the pilot statistics",
    )
    .await;
    auditor.goto("/statistik").await;
    auditor.check("statistik").await;
    auditor
        .goto(&format!("/pruefung/termin/{appointment}"))
        .await;
    let timeline = auditor.text().await;
    let steps = [
        "Termin gebucht",
        "Technik-Check bestanden",
        "Datenschutzhinweis bestätigt",
        "Aus dem Warteraum eingelassen",
        "Identität geprüft (Personalausweis, mit Kontrollfragen)",
        "Formular „Antrag auf einen Personalausweis“ geöffnet",
        "Feld „Vorname“ geändert, Eingabe der Bürgerin oder des Bürgers ersetzt",
        "Unterschrift angefordert",
        "TAN angezeigt",
        "TAN bestätigt",
        "Formular unterschrieben",
        "Formular gesperrt",
        "Dokument hochgeladen",
        "Dokument geteilt",
        "Dokument heruntergeladen",
        "Verbindung unterbrochen",
        "Verbindung wiederhergestellt",
        "Zahlung angefordert: 47,00 €",
        "Zahlung in der Videositzung angefordert",
        "Zahlung beim Zahlungsdienst begonnen",
        "Zahlungsart gewählt: Wero",
        "Zahlung freigegeben",
        "Zahlung eingezogen: 47,00 €",
        "Videositzung beendet: Anliegen erledigt",
        "Feedback abgegeben",
    ];
    assert_in_order(&timeline, &steps);

    // Nothing of the call is on disk: the server's folder holds the log, its key, its logs,
    // the outbox and the one sealed document, and no file of media.
    let mut files = vec![];
    let mut folders = vec![dir.path().to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).expect("readable").flatten() {
            let path = entry.path();
            if path.is_dir() {
                folders.push(path);
            } else {
                files.push(path.strip_prefix(dir.path()).expect("inside").to_path_buf());
            }
        }
    }
    let blobs = files.iter().filter(|f| f.starts_with("data/blobs")).count();
    assert_eq!(
        blobs, 3,
        "the shared document, the signed PDF and the signature's evidence: {files:?}"
    );
    // The TAN reached no log and no outbox.
    for file in files
        .iter()
        .filter(|f| f.starts_with("data/logs") || f.starts_with("data/outbox"))
    {
        let text = std::fs::read_to_string(dir.path().join(file)).unwrap_or_default();
        assert!(!text.contains(&code), "the TAN in {file:?}");
    }
    for file in &files {
        let known = file.to_string_lossy().starts_with("events.db")
            || file.starts_with("data/blobs")
            || file.starts_with("data/logs")
            || file.starts_with("data/outbox")
            || file.starts_with("data/seal")
            || file == std::path::Path::new("data/kek");
        assert!(
            known,
            "an unexpected file after the call: {file:?} (all: {files:?})"
        );
    }

    assert_accessible(&[&citizen, &clerk, &paying, &auditor]);
    browser.close().await.expect("Chromium closes");
}

/// coturn on loopback for the TURN test, its log in `log`; killed when dropped.
struct Coturn(std::process::Child);

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn coturn(dir: &std::path::Path, secret: &str, log: &std::path::Path) -> (Coturn, u16) {
    // A free port for TCP (and UDP, which coturn also opens on it).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let child = Command::new("turnserver")
        .args(["-n", "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1"])
        .arg(format!("--listening-port={port}"))
        .args(["--min-port=49200", "--max-port=49400", "--use-auth-secret"])
        .arg(format!("--static-auth-secret={secret}"))
        .args([
            "--realm=videoamt.test",
            "--allow-loopback-peers",
            "--no-tls",
        ])
        .args(["--no-dtls", "--no-cli", "--simple-log", "--verbose"])
        .arg(format!("--userdb={}", dir.join("turndb").display()))
        .arg(format!(
            "--pidfile={}",
            dir.join("turnserver.pid").display()
        ))
        .arg(format!("--log-file={}", log.display()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("coturn's turnserver runs (scripts/test installs it)");
    let turn = Coturn(child);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "coturn did not listen"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (turn, port)
}

/// A citizen on a network that lets no UDP through reaches the relay over TCP through a TURN
/// server: the server hands both browsers credentials for it, the browsers may use nothing but
/// the TURN server (`VIDEOAMT_TURN_RELAY_ONLY`), and the media still flows both ways.
#[tokio::test]
async fn without_udp_a_call_goes_through_the_turn_server_over_tcp() {
    if !inside_namespace("without_udp_a_call_goes_through_the_turn_server_over_tcp") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let secret = "ein-geheimnis-nur-fuer-den-test";
    let log = dir.path().join("turn.log");
    let (_turn, port) = coturn(dir.path(), secret, &log);
    let url = format!("turn:127.0.0.1:{port}?transport=tcp");
    let (_server, addr) = server(
        dir.path(),
        "",
        true,
        &[
            ("VIDEOAMT_TURN_URLS", url.as_str()),
            ("VIDEOAMT_TURN_SECRET", secret),
            ("VIDEOAMT_TURN_RELAY_ONLY", "true"),
        ],
    );
    let base = format!("http://{addr}");
    let axe = super::cdp::axe_source().expect("axe-core (scripts/test installs it)");
    let browser = launch().await;

    let mut citizen = Person::new(&browser, &base, &axe, "turn-buerger").await;
    citizen.goto("/buchen/ettlingen").await;
    let token = citizen
        .book(
            &dir.path().join("data/outbox"),
            &["meldebescheinigung"],
            "Max Mustermann",
            "max@example.org",
            false,
        )
        .await;
    enter_waiting_room(&citizen, &token).await;
    let appointment = appointment_of(&citizen, &token).await;
    let mut clerk = Person::new(&browser, &base, &axe, "turn-sachbearbeitung").await;
    clerk.log_in("a.becker").await;
    let room = format!("/sachbearbeitung/termin/{appointment}/raum");
    clerk.goto(&room).await;
    admit_and_see_each_other(&citizen, &clerk, &room).await;
    for person in [&citizen, &clerk] {
        until(
            person,
            "window.videoamt.route === 'relay/tcp'",
            "the media path through the TURN server over TCP",
        )
        .await;
    }
    citizen.check("raum-turn").await;
    clerk.check("raum-turn").await;

    // coturn saw both browsers allocate with the time-limited username, which names nothing of
    // the call: neither the appointment, nor the link, nor the person.
    let log = std::fs::read_to_string(&log).expect("coturn's log");
    let allocations = log
        .lines()
        .filter(|l| l.contains("ALLOCATE") && l.contains("success") && l.contains(":videoamt"))
        .count();
    assert!(allocations >= 2, "two browsers allocated:\n{log}");
    for private in [appointment.as_str(), token.as_str(), "Mustermann"] {
        assert!(!log.contains(private), "{private:?} in coturn's log");
    }
    browser.close().await.expect("Chromium closes");
}

/// Types `values` into the fields of the form in `section`, one after the other.
async fn fill(person: &Person, section: &str, values: Vec<(&str, &str)>) {
    for (field, value) in values {
        person
            .page
            .fill(&format!("{section} [name={field}]"), value)
            .await
            .unwrap_or_else(|e| panic!("{field}: {e:#}"));
    }
}

/// Draws a signature with the mouse on the touchpad field in `section`: three strokes of
/// real pointer input (DevTools `Input.dispatchMouseEvent`), as a hand on a touchpad makes them.
async fn draw_signature(citizen: &Person, section: &str) {
    let rect = citizen
        .page
        .eval(&format!(
            "(() => {{ const c = document.querySelector({:?}); c.scrollIntoView({{ block: 'center' }}); \
               const r = c.getBoundingClientRect(); return [r.left, r.top, r.width, r.height]; }})()",
            format!("{section} .unterschrift-feld")
        ))
        .await
        .expect("the signature field");
    let [left, top, width, height] = [0, 1, 2, 3].map(|i| rect[i].as_f64().expect("a number"));
    let mouse = |kind: &'static str, x: f64, y: f64, buttons: u8| {
        serde_json::json!({
            "type": kind, "x": left + x * width, "y": top + y * height,
            "button": "left", "buttons": buttons, "clickCount": 1,
        })
    };
    for stroke in [
        [
            (0.10, 0.70),
            (0.15, 0.30),
            (0.20, 0.75),
            (0.25, 0.35),
            (0.30, 0.70),
        ],
        [
            (0.40, 0.40),
            (0.50, 0.65),
            (0.60, 0.40),
            (0.65, 0.60),
            (0.70, 0.45),
        ],
        [
            (0.75, 0.70),
            (0.80, 0.50),
            (0.85, 0.65),
            (0.88, 0.40),
            (0.90, 0.60),
        ],
    ] {
        let (x, y) = stroke[0];
        citizen
            .page
            .cmd("Input.dispatchMouseEvent", mouse("mouseMoved", x, y, 0))
            .await
            .expect("move");
        citizen
            .page
            .cmd("Input.dispatchMouseEvent", mouse("mousePressed", x, y, 1))
            .await
            .expect("press");
        for (x, y) in &stroke[1..] {
            citizen
                .page
                .cmd("Input.dispatchMouseEvent", mouse("mouseMoved", *x, *y, 1))
                .await
                .expect("draw");
        }
        let (x, y) = stroke[stroke.len() - 1];
        citizen
            .page
            .cmd("Input.dispatchMouseEvent", mouse("mouseReleased", x, y, 0))
            .await
            .expect("release");
    }
}

/// The Stuttgart weapons authority: a weapons-card entry and a hunting licence in one visit.
/// The weapons card is signed on the touchpad; for the hunting licence the touchpad does not
/// work out and the clerk asks for a Handy-TAN instead, which arrives in the SMS sandbox. Then
/// the clerk hands the signed forms over to the Nationales Waffenregister (the export folder)
/// and ends the visit; the citizen downloads both PDFs and gives feedback.
#[tokio::test]
async fn a_weapons_card_visit_in_stuttgart_is_signed_by_touchpad_and_handy_tan_and_handed_over() {
    if !inside_namespace(
        "a_weapons_card_visit_in_stuttgart_is_signed_by_touchpad_and_handy_tan_and_handed_over",
    ) {
        return;
    }
    std::fs::create_dir_all(screenshots()).expect("screenshot folder");
    let dir = tempfile::tempdir().expect("temp dir");
    let (_server, addr) = server(dir.path(), "", true, &[]);
    let base = format!("http://{addr}");
    let axe = super::cdp::axe_source().expect("axe-core (scripts/test installs it)");
    let browser = launch().await;

    let mut citizen = Person::new(&browser, &base, &axe, "waffen-buerger").await;
    citizen.goto("/buchen/stuttgart").await;
    let token = citizen
        .book_with_phone(
            &dir.path().join("data/outbox"),
            &["waffenbesitzkarte", "jagdschein"],
            "Karl Jäger",
            "karl.jaeger@example.org",
            Some("0171 2345678"),
            false,
        )
        .await;
    enter_waiting_room(&citizen, &token).await;
    let appointment = appointment_of(&citizen, &token).await;
    let mut clerk = Person::new(&browser, &base, &axe, "waffen-sachbearbeitung").await;
    clerk.log_in_at("stuttgart", "j.keller").await;
    let room = format!("/sachbearbeitung/termin/{appointment}/raum");
    clerk.goto(&room).await;
    admit_and_see_each_other(&citizen, &clerk, &room).await;
    clerk
        .page
        .eval(
            "document.getElementById('ausweisart').value = 'Personalausweis'; \
             for (const f of ['Hologramm', 'Lichtbild', 'Polycarbonat']) \
               document.querySelector(`input[name=feature][value=${f}]`).click();",
        )
        .await
        .expect("fill the checklist");
    clerk
        .submit(&format!("form[action='{room}/identitaet'] button"))
        .await;

    // --- the panel the page came with stays: the socket's first message fetches nothing ---
    // (It did once, and swapped the panel under the clerk's hands: the template just chosen
    // went back to the first one, and the wrong form was attached.)
    until(
        &clerk,
        "window.videoamt.state === 'admitted'",
        "the room after the reload",
    )
    .await;
    let fetched = clerk
        .page
        .eval("[window.videoamt.formsFetches, window.videoamt.forms]")
        .await
        .expect("the panel's record");
    assert_eq!(fetched, serde_json::json!([0, 0]), "no fetch on arrival");
    // When the panel does come again, a template chosen and not attached yet stays chosen.
    clerk
        .page
        .eval(
            "document.getElementById('vorlage').value = 'antrag-waffenbesitzkarte'; \
             document.getElementById('formulare').dataset.before = 'ja'; \
             for (const listen of window.videoamtRoom.listeners) listen({ type: 'forms' });",
        )
        .await
        .expect("choose a template, then the panel comes again");
    until(
        &clerk,
        "window.videoamt.formsFetches === 1 && !document.getElementById('formulare').dataset.before",
        "the panel read again",
    )
    .await;
    let chosen = clerk
        .page
        .eval("document.getElementById('vorlage').value")
        .await
        .expect("the choice");
    assert_eq!(
        chosen, "antrag-waffenbesitzkarte",
        "the choice survives the new panel"
    );

    // --- both forms attached; the citizen fills in the person, the clerk the weapon ---
    for (n, template) in ["antrag-waffenbesitzkarte", "antrag-jagdschein"]
        .iter()
        .enumerate()
    {
        clerk
            .page
            .eval(&format!(
                "document.getElementById('vorlage').value = '{template}'"
            ))
            .await
            .expect("choose the template");
        clerk
            .submit(&format!("form[action='{room}/formular'] button"))
            .await;
        until(
            &citizen,
            &format!("window.videoamt.forms === {}", n + 1),
            "the form on the citizen's page",
        )
        .await;
    }
    const WEAPON: &str = "#formulare .formular-eintrag[data-service=waffenbesitzkarte]";
    const HUNTING: &str = "#formulare .formular-eintrag[data-service=jagdschein]";
    let person = vec![
        ("familienname", "Jäger"),
        ("vorname", "Karl"),
        ("geburtsdatum", "1971-03-14"),
    ];
    fill(&citizen, WEAPON, person.clone()).await;
    fill(&citizen, HUNTING, person).await;
    fill(
        &clerk,
        WEAPON,
        vec![
            ("wbk_nummer", "S-2019-04711"),
            ("beduerfnis", "Jäger (§ 13 WaffG)"),
            ("waffenart", "Langwaffe"),
            ("hersteller", "Blaser R8"),
            ("kaliber", ".308 Win."),
            ("herstellungsnummer", "R8-123456"),
            ("erwerbsdatum", "2026-11-20"),
        ],
    )
    .await;
    fill(
        &citizen,
        HUNTING,
        vec![
            ("jagdschein_nummer", "JS-0815"),
            ("gueltig_bis", "2027-03-31"),
            ("dauer", "3 Jagdjahre"),
            ("versicherer", "Jagdhaftpflicht AG"),
        ],
    )
    .await;
    // Typed and not sent yet (no `change`, the pause not over) when the panel comes again: the
    // text stays, and goes out after the pause from the new panel.
    const TYPED: &str =
        "#formulare .formular-eintrag[data-service=jagdschein] [name=versicherungsschein]";
    citizen
        .page
        .eval(&format!(
            "(() => {{ const el = document.querySelector('{TYPED}'); el.focus(); \
               el.value = 'VS-4711'; el.dispatchEvent(new Event('input', {{ bubbles: true }})); \
               document.getElementById('formulare').dataset.before = 'ja'; \
               for (const listen of window.videoamtRoom.listeners) listen({{ type: 'forms' }}); }})()"
        ))
        .await
        .expect("type without leaving the field, then the panel comes again");
    until(
        &citizen,
        "!document.getElementById('formulare').dataset.before",
        "the panel read again",
    )
    .await;
    let kept = citizen
        .page
        .eval(&format!("document.querySelector('{TYPED}').value"))
        .await
        .expect("the typed field");
    assert_eq!(kept, "VS-4711", "typed text stays in the new panel");
    until(
        &clerk,
        &format!("document.querySelector('{TYPED}').value === 'VS-4711'"),
        "the typed field on the clerk's page, sent after the pause",
    )
    .await;
    until(
        &citizen,
        &format!(
            "document.querySelector('{WEAPON} [name=herstellungsnummer]').value === 'R8-123456'"
        ),
        "the clerk's values on the citizen's page",
    )
    .await;
    until(
        &clerk,
        &format!(
            "document.querySelector('{HUNTING} [name=versicherer]').value === 'Jagdhaftpflicht AG'"
        ),
        "the citizen's values on the clerk's page",
    )
    .await;
    citizen.check("formulare").await;

    // --- the weapons card on the touchpad: Hidden-TAN is not offered for weapons law ---
    let offered = clerk
        .page
        .eval(&format!(
            "Array.from(document.querySelectorAll('{WEAPON} select[name=methode] option')).map(o => o.value)"
        ))
        .await
        .expect("the methods");
    assert_eq!(offered, serde_json::json!(["touchpad", "handy_tan"]));
    request_signature(&clerk, WEAPON, "touchpad").await;
    until(
        &citizen,
        &format!("document.querySelector('{WEAPON} .unterschrift-feld') !== null"),
        "the signature field on the citizen's page",
    )
    .await;
    citizen.check("touchpad").await;
    draw_signature(&citizen, WEAPON).await;
    let strokes = citizen
        .page
        .eval(&format!(
            "document.querySelector('{WEAPON} .unterschrift-feld').strokes.map(s => s.length)"
        ))
        .await
        .expect("the strokes");
    assert_eq!(
        strokes,
        serde_json::json!([5, 5, 5]),
        "every point was taken"
    );
    // A refresh of the panel before it is sent keeps the signature, strokes and ink.
    panel_again(&citizen).await;
    let kept = citizen
        .page
        .eval(&format!(
            "(() => {{ const c = document.querySelector('{WEAPON} .unterschrift-feld'); \
              const ink = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; \
              let painted = 0; for (let i = 3; i < ink.length; i += 4) if (ink[i] > 0) painted += 1; \
              return [c.strokes.map(s => s.length), painted > 0]; }})()"
        ))
        .await
        .expect("the signature after the refresh");
    assert_eq!(
        kept,
        serde_json::json!([[5, 5, 5], true]),
        "the signature is kept"
    );
    citizen
        .page
        .click(&format!("{WEAPON} .unterschrift-senden"))
        .await
        .expect("sign");
    for person in [&citizen, &clerk] {
        until(
            person,
            &format!(
                "document.querySelector('{WEAPON}').textContent.includes('Unterschrieben und gesperrt') && \
                 document.querySelector('{WEAPON} [name=kaliber]').disabled"
            ),
            "the weapons card locked",
        )
        .await;
    }

    // --- the hunting licence: the touchpad does not work out, a Handy-TAN instead ---
    request_signature(&clerk, HUNTING, "touchpad").await;
    until(
        &citizen,
        &format!("document.querySelector('{HUNTING} .unterschrift-feld') !== null"),
        "the second signature field",
    )
    .await;
    let hint = citizen
        .page
        .text(&format!("{HUNTING} .unterschrift"))
        .await
        .expect("the signing part");
    assert!(hint.contains("Klappt es so nicht?"), "{hint}");
    let instead = clerk.page.text(HUNTING).await.expect("the clerk's form");
    assert!(
        instead.contains("Unterschrift angefordert: Unterschrift auf dem Touchpad")
            && instead.contains("Stattdessen anfordern"),
        "{instead}"
    );
    clerk.check("touchpad-angefordert").await;
    request_signature(&clerk, HUNTING, "handy_tan").await;
    until(
        &citizen,
        &format!("document.querySelector('{HUNTING} .tan-anfordern button') !== null"),
        "the Handy-TAN on the citizen's page",
    )
    .await;
    citizen
        .page
        .click(&format!("{HUNTING} .tan-anfordern button"))
        .await
        .expect("send the TAN");
    until(
        &citizen,
        &format!(
            "document.querySelector('{HUNTING} .tan-bild').textContent.includes('per SMS an')"
        ),
        "the SMS on its way",
    )
    .await;
    let sent = citizen
        .page
        .text(&format!("{HUNTING} .tan-bild"))
        .await
        .expect("the note");
    assert!(!sent.contains("2345678"), "the number is masked: {sent}");
    // Another change to the forms brings the panel again while the citizen waits for the SMS:
    // the note where it went stays, and so does a TAN half typed.
    citizen
        .page
        .fill(&format!("{HUNTING} input[name=tan]"), "12")
        .await
        .expect("start typing");
    panel_again(&citizen).await;
    let kept = citizen
        .page
        .eval(&format!(
            "[document.querySelector('{HUNTING} .tan-bild').textContent, \
              document.querySelector('{HUNTING} input[name=tan]').value]"
        ))
        .await
        .expect("the signing part after the refresh");
    assert!(
        kept[0].as_str().is_some_and(|t| t.contains("per SMS an")),
        "{kept}"
    );
    assert_eq!(kept[1], "12", "{kept}");
    citizen.check("handy-tan").await;
    // The phone: the sandbox files the SMS in the outbox, listed at /dev/outbox.
    let mut phone = Person::new(&browser, &base, &axe, "waffen-handy").await;
    phone.goto("/dev/outbox").await;
    phone.check("postausgang").await;
    phone.submit("main a[href$='.sms.txt']").await;
    let sms = phone.page.text("body").await.expect("the SMS");
    assert!(
        sms.contains("An: 0171 2345678") && sms.contains("bei der Landeshauptstadt Stuttgart"),
        "{sms}"
    );
    // The TAN is in the message, below the headers: the `Schlüssel` header is the TAN's id, a
    // UUID whose hex digits may hold six decimal digits in a row.
    let message = sms.split_once("\n\n").map_or("", |(_, message)| message);
    let code: String = message
        .split(|c: char| !c.is_ascii_digit())
        .find(|part| part.len() == 6)
        .unwrap_or_else(|| panic!("a six-digit TAN in {sms:?}"))
        .to_owned();
    sign_with_tan(&citizen, &clerk, HUNTING, &code).await;
    for person in [&citizen, &clerk] {
        until(
            person,
            &format!(
                "document.querySelector('{HUNTING}').textContent.includes('Unterschrieben und gesperrt')"
            ),
            "the hunting licence locked",
        )
        .await;
    }
    citizen.check("unterschrieben").await;

    // --- the handover to the Nationales Waffenregister, then the end ---
    clerk.goto(&room).await;
    assert!(
        clerk.text().await.contains("Übergabe an das Fachverfahren"),
        "{}",
        clerk.text().await
    );
    clerk
        .submit(&format!("form[action='{room}/uebergabe'] button"))
        .await;
    let handed = clerk.text().await;
    assert!(
        handed.contains("Übergeben an Nationales Waffenregister"),
        "{handed}"
    );
    clerk.check("uebergeben").await;
    clerk
        .submit(&format!("form[action='{room}/beenden'] button"))
        .await;
    assert!(
        clerk
            .text()
            .await
            .contains("Die Sitzung ist beendet: abgeschlossen."),
        "{}",
        clerk.text().await
    );
    until(
        &citizen,
        "window.videoamt.state === 'ended'",
        "the end of the session",
    )
    .await;

    // --- the citizen downloads both signed forms, then gives feedback ---
    citizen.goto(&format!("/termin/{token}/warteraum")).await;
    let weapon_pdf = download(
        &citizen,
        &format!("{WEAPON} a[download]"),
        "stuttgart-antrag-waffenbesitzkarte.pdf",
    )
    .await;
    assert_sealed(
        &weapon_pdf,
        &[
            "Landeshauptstadt Stuttgart",
            "R8-123456",
            "Unterschrift auf dem Touchpad",
        ],
    );
    let hunting_pdf = download(
        &citizen,
        &format!("{HUNTING} a[download]"),
        "stuttgart-antrag-jagdschein.pdf",
    )
    .await;
    assert_sealed(&hunting_pdf, &["JS-0815", "Handy-TAN"]);
    give_feedback(&citizen, [4, 5, 3, 5], "").await;
    assert!(
        citizen
            .text()
            .await
            .contains("Vielen Dank für Ihre Rückmeldung.")
    );
    citizen.check("feedback-danke").await;

    // The export folder, outside the data folder, holds the record and the very PDF the
    // citizen downloaded.
    let export = dir
        .path()
        .join("fachverfahren-export/nationales-waffenregister");
    let folders: Vec<_> = std::fs::read_dir(&export)
        .unwrap_or_else(|e| panic!("{}: {e}", export.display()))
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(folders.len(), 1, "{folders:?}");
    let record: serde_json::Value = serde_json::from_slice(
        &std::fs::read(folders[0].join("akte.json")).expect("the case record"),
    )
    .expect("JSON");
    assert!(record.to_string().contains("R8-123456"), "{record}");
    let mut exported: Vec<Vec<u8>> = std::fs::read_dir(&folders[0])
        .expect("the record's folder")
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "pdf"))
        .map(|e| std::fs::read(e.path()).expect("a PDF"))
        .collect();
    let mut downloaded = vec![
        std::fs::read(&weapon_pdf).expect("the download"),
        std::fs::read(&hunting_pdf).expect("the download"),
    ];
    exported.sort();
    downloaded.sort();
    assert!(
        exported == downloaded,
        "the case system has the very documents the citizen has"
    );

    // --- the auditor's timeline, in order ---
    let mut auditor = Person::new(&browser, &base, &axe, "waffen-pruefung").await;
    auditor.log_in_at("stuttgart", "pruefung").await;
    auditor
        .goto(&format!("/pruefung/termin/{appointment}"))
        .await;
    let timeline = auditor.text().await;
    let steps = [
        "Aus dem Warteraum eingelassen",
        "Identität geprüft (Personalausweis)",
        "Formular „Antrag auf Eintragung in die Waffenbesitzkarte“ geöffnet",
        "Formular „Antrag auf Verlängerung des Jagdscheins“ geöffnet",
        "Unterschrift angefordert",
        "Formular unterschrieben",
        "Formular gesperrt",
        "Unterschrift angefordert",
        "Unterschrift angefordert",
        "TAN per SMS gesendet",
        "TAN bestätigt",
        "Formular unterschrieben",
        "Formular gesperrt",
        "An Fachverfahren Nationales Waffenregister übergeben",
        "Videositzung beendet: Anliegen erledigt",
        "Feedback abgegeben",
    ];
    assert_in_order(&timeline, &steps);
    auditor.check("zeitleiste").await;

    assert_accessible(&[&citizen, &clerk, &phone, &auditor]);
    browser.close().await.expect("Chromium closes");
}
