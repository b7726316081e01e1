//! Staff sign-on through the municipality's directory in a real Chromium, against the test
//! OpenID provider (`scripts/oidc-provider`) and a real `videoamt serve --tenants`. The
//! provider goes by `localhost` and the server by `127.0.0.1`: two sites, as a town hall's
//! provider and the product are, so the browser withholds the SameSite=Strict session cookie
//! on the provider's redirect exactly as it would there.

use std::time::Duration;

use videoamt_core::tenant::EXAMPLE_TENANTS;

use super::Person;
use super::cdp::{self, Browser};
use crate::mail::{free_port, server};
use crate::signon::{PASSWORD, Provider, user};

const MUSTERSTADT: &str = include_str!("../fixtures/musterstadt.toml");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clerk_signs_on_through_the_town_halls_directory_in_chromium() {
    let dir = tempfile::tempdir().expect("temp dir");
    // The provider's port is chosen first: the tenant file names the issuer.
    let idp_port = free_port();
    let issuer = format!("http://localhost:{idp_port}");
    let tenants = dir.path().join("kommunen");
    std::fs::create_dir_all(&tenants).expect("the folder");
    for (file, text) in EXAMPLE_TENANTS {
        let name = std::path::Path::new(file).file_name().expect("a name");
        std::fs::write(tenants.join(name), text).expect("written");
    }
    std::fs::write(
        tenants.join("musterstadt.toml"),
        format!(
            "{MUSTERSTADT}\n[oidc]\nissuer = \"{issuer}\"\nclient_id = \"videoamt-musterstadt\"\n\
             client_secret_env = \"VIDEOAMT_OIDC_SECRET_MUSTERSTADT\"\n\
             label = \"Mit dem Rathaus-Konto anmelden\"\n\
             grants = [{{ group = \"va-rathaus\", role = \"clerk\", departments = [\"rathaus\"] }}]\n"
        ),
    )
    .expect("written");
    let smtp = format!("smtp://127.0.0.1:{}", free_port());
    let (_server, addr) = server(
        dir.path(),
        &smtp,
        false,
        &[
            ("VIDEOAMT_TENANTS", tenants.to_str().expect("utf-8")),
            (
                "VIDEOAMT_OIDC_SECRET_MUSTERSTADT",
                crate::signon::CLIENT_SECRET,
            ),
        ],
    );
    let base = format!("http://{addr}");
    let idp = Provider::start(
        "videoamt-musterstadt",
        &base,
        vec![
            user("m.mueller", &["Domain Users", "va-rathaus"]),
            user("k.schmidt", &["Domain Users", "va-kita"]),
        ],
        3600,
        "localhost",
        idp_port,
    );
    assert_eq!(idp.issuer, issuer);
    let axe = cdp::axe_source().expect("axe-core is needed (scripts/test installs it)");
    let browser = Browser::launch()
        .await
        .expect("headless Chromium is needed (scripts/test installs it)");

    // --- the clerk: login page, the provider's form, back with a session ---
    let mut clerk = Person::new(&browser, &base, &axe, "verzeichnis").await;
    clerk.goto("/anmelden").await;
    clerk.check("anmeldung").await;
    clerk
        .submit("a[href='/anmelden/verzeichnis/musterstadt']")
        .await;
    let at = clerk.page.url().await.expect("url");
    assert!(at.starts_with(&format!("{issuer}/interaction/")), "{at}");
    clerk.page.fill("#login", "m.mueller").await.expect("login");
    clerk
        .page
        .fill("#password", PASSWORD)
        .await
        .expect("password");
    clerk.page.click("#anmelden").await.expect("sign in");
    clerk
        .page
        .wait_for(
            "location.pathname === '/sachbearbeitung'",
            Duration::from_secs(20),
        )
        .await
        .expect("on the clerk's day, with the session the Strict cookie carries");
    clerk.check("tag").await;
    let nav = clerk.page.text("nav").await.expect("the navigation");
    assert!(nav.contains("m.mueller (Sachbearbeitung)"), "{nav}");
    assert!(!nav.contains("Passwort ändern"), "{nav}");
    let cookies = clerk.context.cookie_names().await.expect("cookies");
    assert!(
        cookies.iter().any(|c| c == "videoamt_sitzung"),
        "{cookies:?}"
    );

    // --- logging out goes through the provider's confirmation back to the login page ---
    clerk.submit("nav form button[type=submit]").await;
    clerk
        .page
        .wait_for(
            &format!("document.getElementById('abmelden') && location.href.startsWith('{issuer}/session/end')"),
            Duration::from_secs(20),
        )
        .await
        .expect("the provider asks to confirm");
    clerk.page.click("#abmelden").await.expect("confirm");
    clerk
        .page
        .wait_for("location.pathname === '/anmelden'", Duration::from_secs(20))
        .await
        .expect("back at the login page");
    let cookies = clerk.context.cookie_names().await.expect("cookies");
    assert!(
        !cookies.iter().any(|c| c == "videoamt_sitzung"),
        "{cookies:?}"
    );
    // The provider's session is over: signing on again asks for the password.
    clerk
        .submit("a[href='/anmelden/verzeichnis/musterstadt']")
        .await;
    let at = clerk.page.url().await.expect("url");
    assert!(at.starts_with(&format!("{issuer}/interaction/")), "{at}");

    // --- somebody without a mapped group gets the German refusal ---
    let mut other = Person::new(&browser, &base, &axe, "verzeichnis-ohne-gruppe").await;
    other.goto("/anmelden").await;
    other
        .submit("a[href='/anmelden/verzeichnis/musterstadt']")
        .await;
    other.page.fill("#login", "k.schmidt").await.expect("login");
    other
        .page
        .fill("#password", PASSWORD)
        .await
        .expect("password");
    other.submit("#anmelden").await;
    other
        .page
        .wait_for(
            "document.querySelector('h1')?.textContent === 'Keine Berechtigung für die Videoberatung'",
            Duration::from_secs(20),
        )
        .await
        .expect("the refusal page");
    other.check("keine-berechtigung").await;
    let text = other.text().await;
    assert!(text.contains("Verwaltung Ihrer Kommune"), "{text}");

    let violations: Vec<String> = [&clerk, &other]
        .iter()
        .flat_map(|p| p.violations.clone())
        .collect();
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}
