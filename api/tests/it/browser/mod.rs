//! The web product in a real headless Chromium (Debian `chromium`, installed by
//! `scripts/test`), driven over the DevTools protocol against a real `videoamt serve` on port 0
//! with the demo data, sending its mail to aiosmtpd on loopback. Each person has a browser
//! context of their own, so citizen and clerk act at the same time with separate cookies.
//! Every page visited is checked with axe-core (from `target/axe-core`, installed by
//! `scripts/test`; no serious or critical violation may remain) and saved as a screenshot under
//! `target/screenshots/`.

mod cdp;
mod room;
mod signon;

use std::path::{Path, PathBuf};
use std::time::Duration;

use cdp::{Browser, Context, Page};
use mail_parser::MimeHeaders as _;

use crate::mail::{mails, server, smtp_server, wait_until};

/// Chooses the third free start offered (or the last, when fewer): the very first one may be
/// about to begin and would be in the past by the time the form is sent.
const PICK_A_LATER_START: &str = "(() => { const s = document.querySelectorAll('input[name=start]'); \
     if (!s.length) throw new Error('no free start'); s[Math.min(2, s.length - 1)].click(); })()";

fn screenshots() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots")
}

/// One person's tab, in a browser context of its own, checking every page it shows.
struct Person {
    context: Context,
    page: Page,
    base: String,
    axe: String,
    who: &'static str,
    /// Serious or critical accessibility violations, per page.
    violations: Vec<String>,
}

impl Person {
    async fn new(browser: &Browser, base: &str, axe: &str, who: &'static str) -> Self {
        let context = browser.new_context().await.expect("a browser context");
        Self {
            page: context.new_page().await.expect("a page"),
            context,
            base: base.to_owned(),
            axe: axe.to_owned(),
            who,
            violations: vec![],
        }
    }

    /// Screenshot and accessibility check of the page now shown, saved as `{who}-{name}.png`.
    async fn check(&mut self, name: &str) {
        let file = screenshots().join(format!("{}-{name}.png", self.who));
        self.page.screenshot(&file).await.expect("screenshot");
        let found = self.page.axe(&self.axe).await.expect("axe runs");
        let serious = cdp::serious_violations(&found);
        if !serious.is_empty() {
            self.violations.push(format!(
                "{} {name} ({}):\n{}",
                self.who,
                self.page.url().await.unwrap_or_default(),
                cdp::report(serious)
            ));
        }
    }

    async fn goto(&self, path: &str) {
        self.page
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap_or_else(|e| panic!("{path}: {e:#}"));
    }

    async fn submit(&self, selector: &str) {
        self.page
            .click_and_wait_load(selector)
            .await
            .unwrap_or_else(|e| panic!("{selector}: {e:#}"));
    }

    async fn text(&self) -> String {
        self.page.text("main").await.expect("the page has a main")
    }

    /// Books `services` of Ettlingen from the concerns page on, checking every page when
    /// `check`; returns the appointment's token from the page the booking leads to.
    async fn book(
        &mut self,
        mail: &Path,
        services: &[&str],
        name: &str,
        email: &str,
        check: bool,
    ) -> String {
        self.book_with_phone(mail, services, name, email, None, check)
            .await
    }

    /// [`Person::book`], giving a phone number too (for the Handy-TAN).
    async fn book_with_phone(
        &mut self,
        mail: &Path,
        services: &[&str],
        name: &str,
        email: &str,
        phone: Option<&str>,
        check: bool,
    ) -> String {
        for service in services {
            self.page
                .click(&format!("input[name=anliegen][value={service}]"))
                .await
                .expect("choose a concern");
        }
        self.submit("main form button[type=submit]").await;
        if check {
            self.check("zeit").await;
        }
        let summary = self.text().await;
        if services.contains(&"personalausweis") {
            assert!(summary.contains("Personalausweis beantragen"), "{summary}");
        }
        self.page
            .eval(PICK_A_LATER_START)
            .await
            .expect("a free slot is offered");
        self.submit("main form button[type=submit]").await;
        if check {
            self.check("kontakt").await;
        }
        self.page.fill("#name", name).await.expect("name");
        self.page.fill("#email", email).await.expect("mail");
        if let Some(phone) = phone {
            self.page.fill("#phone", phone).await.expect("phone");
        }
        self.page.click("#privacy").await.expect("privacy");
        let before = crate::mail::tokens_to(mail, email);
        self.submit("main form button[type=submit]").await;
        if check {
            self.check("gebucht").await;
        }
        let booked = self.text().await;
        assert!(booked.contains("Ihr Termin ist gebucht."), "{booked}");
        assert!(
            !self.page.url().await.expect("url").contains("/termin/"),
            "the link goes by mail only"
        );
        // The link, as the citizen finds it: in the new mail to their address.
        wait_until("the mail with the link", Duration::from_secs(30), || {
            crate::mail::tokens_to(mail, email)
                .into_iter()
                .find(|token| !before.contains(token))
        })
    }

    async fn log_in(&mut self, login: &str) {
        self.log_in_at("ettlingen", login).await;
    }

    async fn log_in_at(&mut self, tenant: &str, login: &str) {
        self.goto("/anmelden").await;
        self.check("anmeldung").await;
        self.page
            .eval(&format!(
                "document.getElementById('tenant').value = '{tenant}'"
            ))
            .await
            .expect("choose the municipality");
        self.page.fill("#login", login).await.expect("login");
        self.page
            .fill("#password", "videoamt-demo")
            .await
            .expect("password");
        self.submit("main form button[type=submit]").await;
    }
}

/// The text of a parsed mail and the appointment link in it.
fn read_mail(path: &Path) -> (String, String) {
    let raw = std::fs::read(path).expect("mail");
    let message = mail_parser::MessageParser::default()
        .parse(&raw)
        .expect("a mail");
    let text = message.body_text(0).expect("a text part").into_owned();
    let path = text.find("/termin/").expect("a link to the appointment");
    let start = text[..path].rfind("http").expect("an absolute link");
    let link: String = text[start..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect();
    assert!(
        message.attachments().any(|a| a
            .content_type()
            .is_some_and(|c| c.c_subtype.as_deref() == Some("calendar"))),
        "the mail carries the .ics"
    );
    (text, link)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn citizens_clerks_auditors_and_dpos_use_the_pages_in_a_real_browser() {
    let dir = tempfile::tempdir().expect("temp dir");
    let maildir = dir.path().join("maildir");
    let (_smtp, port) = smtp_server(&maildir);
    let (_server, addr) = server(
        dir.path(),
        &format!("smtp://127.0.0.1:{port}"),
        true,
        &[("VIDEOAMT_MAIL_RETRY_MS", "200")],
    );
    let base = format!("http://{addr}");
    let axe = cdp::axe_source().expect("axe-core is needed (scripts/test installs it)");
    let browser = Browser::launch()
        .await
        .expect("headless Chromium is needed (scripts/test installs it)");

    // --- a citizen books two concerns and receives the mail ---
    let mut citizen = Person::new(&browser, &base, &axe, "buerger").await;
    citizen.goto("/").await;
    citizen.check("start").await;
    citizen.submit("a[href='/buchen/ettlingen']").await;
    citizen.check("anliegen").await;
    let token = citizen
        .book(
            &maildir,
            &["personalausweis", "meldebescheinigung"],
            "Erika Mustermann",
            "erika@example.org",
            true,
        )
        .await;
    let mail = wait_until("the confirmation mail", Duration::from_secs(30), || {
        mails(&maildir).into_iter().next()
    });
    let (text, link) = read_mail(&mail);
    assert!(
        text.contains("Personalausweis beantragen") && text.contains("Meldebescheinigung"),
        "{text}"
    );
    assert_eq!(
        link,
        format!("{base}/termin/{token}"),
        "the mail links to the booked appointment"
    );

    // --- the citizen moves the appointment through the link, then cancels it ---
    citizen
        .page
        .goto(&link)
        .await
        .expect("the mail's link opens");
    citizen.check("termin").await;
    citizen.submit("a[href$='/verlegen']").await;
    citizen.check("verlegen").await;
    citizen
        .page
        .eval("document.querySelectorAll('input[name=start]')[1].click()")
        .await
        .expect("another free slot");
    citizen.submit("main form button[type=submit]").await;
    assert!(citizen.page.url().await.expect("url").ends_with(&token));
    citizen.submit("a[href$='/absagen']").await;
    citizen.check("absagen").await;
    citizen.submit("main form button[type=submit]").await;
    let cancelled = citizen.text().await;
    assert!(cancelled.contains("abgesagt"), "{cancelled}");
    wait_until("the cancellation mail", Duration::from_secs(30), || {
        (mails(&maildir).len() >= 2).then_some(())
    });

    // --- a clerk sees a new booking arrive in the plan and the waiting room without reload ---
    let mut clerk = Person::new(&browser, &base, &axe, "sachbearbeitung").await;
    clerk.log_in("a.becker").await;
    clerk.goto("/sachbearbeitung?woche=1").await;
    clerk.check("woche").await;
    citizen.goto("/buchen/ettlingen").await;
    let has_session = |cookies: Vec<String>| cookies.iter().any(|c| c == "videoamt_sitzung");
    assert!(has_session(
        clerk.context.cookie_names().await.expect("cookies")
    ));
    assert!(
        !has_session(citizen.context.cookie_names().await.expect("cookies")),
        "the clerk's session stays in the clerk's browser context"
    );
    let second = citizen
        .book(
            &maildir,
            &["personalausweis"],
            "Max Mustermann",
            "max@example.org",
            false,
        )
        .await;
    let appointment = citizen
        .page
        .eval(&format!(
            "fetch('/api/v1/appointments/by-token/{second}').then(r => r.json()).then(a => a.id)"
        ))
        .await
        .expect("the appointment's id");
    let appointment = appointment.as_str().expect("an id").to_owned();
    clerk
        .page
        .wait_for(
            &format!("document.getElementById('plan').innerHTML.includes('{appointment}')"),
            Duration::from_secs(20),
        )
        .await
        .expect("the booking appears in the plan without a reload");
    // The citizen follows the link in the mail.
    citizen.goto(&format!("/termin/{second}")).await;
    citizen
        .page
        .click("#datenschutz")
        .await
        .expect("privacy notice");
    citizen.submit("form[action$='/warteraum'] button").await;
    citizen.check("warteraum").await;
    assert!(citizen.text().await.contains("Sie sind im Warteraum."));
    clerk
        .page
        .wait_for(
            &format!("document.getElementById('warteraum').innerHTML.includes('{appointment}')"),
            Duration::from_secs(20),
        )
        .await
        .expect("the citizen appears in the waiting room without a reload");
    let reloads = clerk
        .page
        .eval("performance.getEntriesByType('navigation').length")
        .await
        .expect("navigation entries");
    assert_eq!(reloads, 1, "one document load: no reload happened");
    clerk.check("woche-live").await;
    clerk
        .submit(&format!("a[href='/sachbearbeitung/termin/{appointment}']"))
        .await;
    clerk.check("termin").await;
    assert!(clerk.text().await.contains("Max Mustermann"));
    clerk.goto("/sachbearbeitung/einladen").await;
    clerk.check("einladen").await;
    clerk.goto("/statistik").await;
    clerk.check("statistik").await;
    assert!(second.len() >= 22, "a capability token of 128 bits or more");

    // --- an auditor opens the timeline and travels back ---
    let mut auditor = Person::new(&browser, &base, &axe, "pruefung").await;
    auditor.log_in("pruefung").await;
    auditor.check("suche").await;
    auditor
        .page
        .fill("#termin", &appointment)
        .await
        .expect("id");
    auditor.submit("main form button[type=submit]").await;
    auditor
        .submit(&format!("a[href='/pruefung/termin/{appointment}']"))
        .await;
    auditor.check("pruefakte").await;
    assert_eq!(
        auditor.page.text("h1").await.expect("a heading"),
        "Prüfakte"
    );
    let now = auditor.text().await;
    assert!(
        now.contains("Termin gebucht") && now.contains("Datenschutzhinweis bestätigt"),
        "{now}"
    );
    // Back to just before the citizen accepted the privacy notice.
    let before_privacy = auditor
        .page
        .eval(
            "String(Number([...document.querySelectorAll('tbody tr')]\
             .find(r => r.cells[3].textContent === 'Datenschutzhinweis bestätigt').cells[0].textContent) - 1)",
        )
        .await
        .expect("the timeline lists the acceptance");
    let before_privacy = before_privacy.as_str().expect("a position").to_owned();
    auditor
        .page
        .eval(&format!(
            "const s = document.getElementById('stand'); s.value = {before_privacy}; \
             s.dispatchEvent(new Event('change'))"
        ))
        .await
        .expect("move the slider");
    auditor
        .page
        .wait_for(
            &format!("location.search.includes('stand={before_privacy}')"),
            Duration::from_secs(15),
        )
        .await
        .expect("the slider loads the state at its position");
    auditor
        .page
        .wait_for(
            "document.readyState === 'complete'",
            Duration::from_secs(15),
        )
        .await
        .expect("loaded");
    auditor.check("zeitreise").await;
    assert_eq!(
        auditor.page.text("h1").await.expect("a heading"),
        "Prüfakte"
    );
    let past = auditor.text().await;
    assert!(past.contains("Termin gebucht"), "{past}");
    assert!(
        !past.contains("Datenschutzhinweis bestätigt"),
        "the past has no later events: {past}"
    );

    // --- a DPO exports the report ---
    let mut dpo = Person::new(&browser, &base, &axe, "datenschutz").await;
    dpo.log_in("datenschutz").await;
    dpo.check("bericht").await;
    let csv = dpo
        .page
        .eval("fetch(document.querySelector('a[download]').href).then(r => r.text())")
        .await
        .expect("the export downloads");
    let csv = csv.as_str().expect("text");
    assert!(csv.starts_with("\"subject\",\"tenant\",\"state\""), "{csv}");
    assert!(csv.lines().count() > 2, "the demo's subjects are in it");
    for secret in ["Erika", "Mustermann", "example.org"] {
        assert!(
            !csv.contains(secret),
            "no personal data in the export: {secret}"
        );
    }
    let first_subject = dpo
        .page
        .eval("document.querySelector('a[href^=\"/datenschutz/subjekt/\"]').getAttribute('href')")
        .await
        .expect("a subject link");
    dpo.goto(first_subject.as_str().expect("href")).await;
    dpo.check("nachweis").await;
    dpo.goto("/statistik").await;
    dpo.check("statistik").await;
    assert!(
        dpo.page
            .eval("document.querySelectorAll('svg[role=img]').length")
            .await
            .expect("charts")
            .as_u64()
            .is_some_and(|n| n > 0),
        "the statistics page draws charts for the demo data"
    );

    // --- the admin makes an account whose holder sets the password through the link ---
    let mut admin = Person::new(&browser, &base, &axe, "verwaltung").await;
    admin.log_in("verwaltung").await;
    assert!(
        admin
            .page
            .url()
            .await
            .expect("url")
            .ends_with("/verwaltung/konten")
    );
    admin.check("konten").await;
    admin.page.fill("#login", "j.neumann").await.expect("login");
    admin
        .page
        .eval("document.querySelector('input[name=departments][value=buergerbuero]').click()")
        .await
        .expect("the Bürgerbüro");
    admin
        .submit("form[action='/verwaltung/konten'] button[type=submit]")
        .await;
    admin.check("konto-angelegt").await;
    let link = admin
        .page
        .text("main code")
        .await
        .expect("the one-time link is shown once");
    assert!(
        link.starts_with(&format!("{base}/konto/passwort/")),
        "{link}"
    );
    admin.goto("/verwaltung/konten/j.neumann").await;
    admin.check("konto").await;
    admin
        .page
        .eval("document.getElementById('role').value = 'auditor'; \
               document.querySelectorAll('input[name=departments]').forEach(b => b.checked = false)")
        .await
        .expect("another role");
    admin
        .submit("form[action$='/rolle'] button[type=submit]")
        .await;
    assert!(
        admin
            .text()
            .await
            .contains("Rolle und Bereiche sind geändert")
    );
    admin.check("rolle-geaendert").await;

    let mut holder = Person::new(&browser, &base, &axe, "kontoinhaber").await;
    holder.page.goto(&link).await.expect("the link opens");
    holder.check("passwort-setzen").await;
    holder
        .page
        .fill("#new_password", "ein-eigenes-passwort")
        .await
        .expect("password");
    holder
        .page
        .fill("#new_password_repeat", "ein-eigenes-passwort")
        .await
        .expect("again");
    holder.submit("main form button[type=submit]").await;
    holder.check("passwort-gesetzt").await;
    holder.goto("/anmelden").await;
    holder
        .page
        .eval("document.getElementById('tenant').value = 'ettlingen'")
        .await
        .expect("the municipality");
    holder
        .page
        .fill("#login", "j.neumann")
        .await
        .expect("login");
    holder
        .page
        .fill("#password", "ein-eigenes-passwort")
        .await
        .expect("password");
    holder.submit("main form button[type=submit]").await;
    assert!(holder.page.url().await.expect("url").ends_with("/pruefung"));
    holder.goto("/konto/passwort").await;
    holder.check("passwort-aendern").await;
    holder
        .page
        .fill("#old_password", "ein-eigenes-passwort")
        .await
        .expect("old");
    holder
        .page
        .fill("#new_password", "ein-zweites-passwort")
        .await
        .expect("new");
    holder
        .page
        .fill("#new_password_repeat", "ein-zweites-passwort")
        .await
        .expect("again");
    holder.submit("main form button[type=submit]").await;
    assert!(holder.text().await.contains("Ihr Passwort ist geändert"));
    // The new auditor reads the account's own history, every step in it.
    holder.goto("/pruefung/konten").await;
    holder.check("konten-pruefen").await;
    holder.submit("a[href='/pruefung/konten/j.neumann']").await;
    holder.check("kontoverlauf").await;
    let history = holder.text().await;
    for step in [
        "Konto angelegt (Sachbearbeitung)",
        "Rolle geändert: Prüfung",
        "Passwort über den Einmal-Link gesetzt",
        "Passwort geändert",
        "Kontoverlauf von j.neumann eingesehen",
    ] {
        assert!(history.contains(step), "{step}: {history}");
    }
    // The admin deactivates it; the holder's open session ends with the next page.
    admin
        .submit("form[action$='/deaktivieren'] button[type=submit]")
        .await;
    admin.check("deaktiviert").await;
    holder.goto("/pruefung").await;
    assert!(holder.page.url().await.expect("url").ends_with("/anmelden"));

    let violations: Vec<String> = [citizen, clerk, auditor, dpo, admin, holder]
        .into_iter()
        .flat_map(|p| p.violations)
        .collect();
    browser.close().await.expect("the browser closes");
    assert!(
        violations.is_empty(),
        "axe-core found serious or critical violations:\n{}",
        violations.join("\n")
    );
}
