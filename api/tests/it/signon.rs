//! Staff sign-on through a municipality's OpenID provider (ADR 0022), against a real one on
//! loopback: panva's certified `oidc-provider` (`scripts/oidc-provider`, installed by
//! `scripts/test`), started per test. The router runs in-process with its clock; the test plays
//! the browser between the two, with a cookie jar for the provider's side. One provider runs
//! over https, with a certificate of a test CA that stands for a town hall's own PKI.

use std::collections::HashMap;
use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

use axum::http::{StatusCode, header};
use http_body_util::{BodyExt as _, Full};
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio_rustls::rustls::pki_types::ServerName;
use videoamt_core::tenant::Tenant;

use crate::router::Api;
use crate::staff::browse;

const MUSTERSTADT: &str = include_str!("fixtures/musterstadt.toml");
/// The public URL of the in-process server (`Api`).
const PUBLIC: &str = "http://amt.test";
pub(crate) const CLIENT_SECRET: &str = "geheim-der-gemeinde-musterstadt";
pub(crate) const PASSWORD: &str = "verzeichnis-passwort";

/// The provider, stopped when dropped (closing its stdin stops it too, should the test die).
pub(crate) struct Provider {
    pub(crate) issuer: String,
    child: Child,
    _stdin: ChildStdin,
    _dir: tempfile::TempDir,
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A user of the directory: login and groups (the password is [`PASSWORD`]).
pub(crate) fn user(login: &str, groups: &[&str]) -> Value {
    json!({"login": login, "password": PASSWORD, "name": "Maria Müller",
           "email": format!("{login}@musterstadt.example"), "groups": groups})
}

impl Provider {
    /// Starts the provider with one client, `client_id`, that returns to `public` (the app's
    /// public URL), issuing ID tokens valid for `ttl_seconds`. `issuer_host` names the
    /// provider (`127.0.0.1` or `localhost`) and `port` is where it listens (0: any).
    pub(crate) fn start(
        client_id: &str,
        public: &str,
        users: Vec<Value>,
        ttl_seconds: u64,
        issuer_host: &str,
        port: u16,
    ) -> Self {
        Self::launch(config(
            client_id,
            public,
            users,
            ttl_seconds,
            issuer_host,
            port,
        ))
    }

    /// [`Provider::start`] on any port over https as `localhost`, with the certificate
    /// `cert` (for `localhost`) and its key.
    pub(crate) fn start_over_tls(
        client_id: &str,
        public: &str,
        users: Vec<Value>,
        (cert, key): (&Path, &Path),
    ) -> Self {
        let mut config = config(client_id, public, users, 3600, "localhost", 0);
        config["tls"] = json!({"cert": cert, "key": key});
        Self::launch(config)
    }

    fn launch(config: Value) -> Self {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/oidc-provider");
        assert!(
            root.join("node_modules/oidc-provider").is_dir(),
            "the test OpenID provider is needed (scripts/test installs it: npm ci --prefix scripts/oidc-provider)"
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("provider.json");
        std::fs::write(&file, config.to_string()).expect("config written");
        let mut child = Command::new("node")
            .arg(root.join("provider.mjs"))
            .arg(&file)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("node runs the provider");
        let stdin = child.stdin.take().expect("stdin");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the provider's first line");
        let issuer = serde_json::from_str::<Value>(&line)
            .ok()
            .and_then(|v| v["issuer"].as_str().map(str::to_owned))
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        Self {
            issuer,
            child,
            _stdin: stdin,
            _dir: dir,
        }
    }
}

/// Musterstadt's provider on 127.0.0.1 for the in-process server, with `users`, issuing ID
/// tokens valid for `ttl_seconds`.
fn idp(users: Vec<Value>, ttl_seconds: u64) -> Provider {
    Provider::start(
        "videoamt-musterstadt",
        PUBLIC,
        users,
        ttl_seconds,
        "127.0.0.1",
        0,
    )
}

/// The provider's config: one client, `client_id`, that returns to `public`, and `users`.
fn config(
    client_id: &str,
    public: &str,
    users: Vec<Value>,
    ttl_seconds: u64,
    issuer_host: &str,
    port: u16,
) -> Value {
    json!({
        "port": port,
        "issuer_host": issuer_host,
        "id_token_ttl_seconds": ttl_seconds,
        "clients": [{
            "client_id": client_id,
            "client_secret": CLIENT_SECRET,
            "redirect_uris": [format!("{public}/anmelden/verzeichnis/rueckkehr")],
            "post_logout_redirect_uris": [format!("{public}/anmelden")],
        }],
        "users": users,
    })
}

/// Musterstadt (`fixtures/musterstadt.toml`) signing its staff in through `issuer`: the group
/// `va-rathaus` makes a clerk of the Bürgeramt, `va-admin` an admin.
pub(crate) fn musterstadt(issuer: &str) -> Tenant {
    Tenant::from_toml("musterstadt.toml", &musterstadt_text(issuer)).expect("a valid tenant file")
}

/// The tenant file of [`musterstadt`].
fn musterstadt_text(issuer: &str) -> String {
    format!(
        "{MUSTERSTADT}\n[oidc]\nissuer = \"{issuer}\"\nclient_id = \"videoamt-musterstadt\"\n\
         client_secret = \"{CLIENT_SECRET}\"\nlabel = \"Mit dem Rathaus-Konto anmelden\"\n\
         grants = [\n  {{ group = \"va-admin\", role = \"admin\" }},\n  \
         {{ group = \"va-rathaus\", role = \"clerk\", departments = [\"rathaus\"] }},\n]\n"
    )
}

/// [`musterstadt`] trusting its own CA, `ca_file` (the `[oidc]` table is the file's last).
fn musterstadt_trusting(issuer: &str, ca_file: &Path) -> Tenant {
    let text = format!(
        "{}ca_file = \"{}\"\n",
        musterstadt_text(issuer),
        ca_file.display()
    );
    Tenant::from_toml("musterstadt.toml", &text).expect("a valid tenant file")
}

/// The server of Musterstadt and the examples, its clock at the real time (the provider's
/// tokens carry the real time).
async fn api(issuer: &str) -> Api {
    api_of(musterstadt(issuer)).await
}

/// [`api`] with this Musterstadt.
async fn api_of(musterstadt: Tenant) -> Api {
    let mut tenants = videoamt_core::tenant::example_tenants().expect("examples");
    tenants.push(musterstadt);
    let api = Api::with_tenants(tenants).await;
    api.now.store(
        time::OffsetDateTime::now_utc().unix_timestamp(),
        std::sync::atomic::Ordering::SeqCst,
    );
    api
}

/// An answer of the provider.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) location: Option<String>,
    pub(crate) body: String,
}

/// The browser's side at the provider: HTTP with a cookie jar (names only: the provider is
/// one host, and its cookies' paths do not overlap in a way that matters here), over TLS to an
/// `https://` provider when it trusts a CA.
pub(crate) struct Agent {
    /// The provider's scheme, host and port.
    base: String,
    cookies: HashMap<String, String>,
    tls: Option<tokio_rustls::TlsConnector>,
}

impl Agent {
    pub(crate) fn new(issuer: &str) -> Self {
        Self {
            base: issuer.trim_end_matches('/').to_owned(),
            cookies: HashMap::new(),
            tls: None,
        }
    }

    /// A browser that trusts only the CA certificate `ca` (PEM).
    pub(crate) fn trusting(issuer: &str, ca: &Path) -> Self {
        use tokio_rustls::rustls;
        use tokio_rustls::rustls::pki_types::CertificateDer;
        use tokio_rustls::rustls::pki_types::pem::PemObject as _;

        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_file(ca).expect("the CA"))
            .expect("a root");
        let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocols")
        .with_root_certificates(roots)
        .with_no_client_auth();
        Self {
            tls: Some(tokio_rustls::TlsConnector::from(std::sync::Arc::new(
                config,
            ))),
            ..Self::new(issuer)
        }
    }

    pub(crate) async fn request(&mut self, method: &str, url: &str, form: Option<&str>) -> Answer {
        let uri: hyper::Uri = url.parse().expect("a URL");
        let authority = uri.authority().expect("a host").as_str().to_owned();
        let scheme = uri.scheme_str().expect("a scheme").to_owned();
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(uri.path_and_query().map_or("/", |p| p.as_str()))
            .header(header::HOST, &authority)
            .header(header::ACCEPT, "text/html");
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            request = request.header(header::COOKIE, jar.join("; "));
        }
        if form.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        }
        let request = request
            .body(Full::new(Bytes::from(form.unwrap_or_default().to_owned())))
            .expect("a request");
        // The provider listens on 127.0.0.1, whatever name the issuer gives it.
        let port = uri
            .port_u16()
            .unwrap_or(if scheme == "https" { 443 } else { 80 });
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap_or_else(|e| panic!("connecting to {authority}: {e}"));
        let response = if scheme == "https" {
            let tls = self.tls.as_ref().expect("a CA to trust over https");
            let name = ServerName::try_from(uri.host().expect("a host").to_owned())
                .expect("a server name");
            let stream = tls
                .connect(name, stream)
                .await
                .unwrap_or_else(|e| panic!("TLS to {authority}: {e}"));
            exchange(stream, request).await
        } else {
            exchange(stream, request).await
        };
        for value in response.headers().get_all(header::SET_COOKIE) {
            let value = value.to_str().expect("ascii");
            let pair = value.split(';').next().expect("a pair");
            let (name, v) = pair.split_once('=').expect("name=value");
            if v.is_empty() || value.contains("Max-Age=0") || value.contains("1970") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), v.to_owned());
            }
        }
        let status = response.status();
        let location = response
            .headers()
            .get(header::LOCATION)
            .map(|l| l.to_str().expect("ascii").to_owned());
        let body = response
            .into_body()
            .collect()
            .await
            .expect("a body")
            .to_bytes();
        let location = location.map(|l| {
            if l.starts_with('/') {
                format!("{scheme}://{authority}{l}")
            } else {
                l
            }
        });
        Answer {
            status,
            location,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    /// GETs `url` and follows the provider's redirects until an answer that is no redirect,
    /// or one that leaves the provider (to `leave`, the app's public URL): that URL.
    pub(crate) async fn follow(&mut self, url: &str, leave: &str) -> Result<String, Answer> {
        let mut url = url.to_owned();
        for _ in 0..10 {
            if url.starts_with(leave) {
                return Ok(url);
            }
            let answer = self.request("GET", &url, None).await;
            match answer.location.clone() {
                Some(next) if answer.status.is_redirection() => url = next,
                _ => return Err(answer),
            }
        }
        panic!("more than 10 redirects from {url}");
    }

    /// Signs in at the provider's login form (the answer `form`, at `at`), and follows on to
    /// where the provider sends the browser back.
    pub(crate) async fn log_in(&mut self, at: &Answer, login: &str, leave: &str) -> String {
        assert_eq!(at.status, StatusCode::OK, "{}", at.body);
        assert!(
            at.body.contains("name=\"password\""),
            "a login form: {}",
            at.body
        );
        let action = between(&at.body, "action=\"", "\"")
            .expect("the form's action")
            .replace("&amp;", "&");
        let base = self.base.clone();
        let answer = self
            .request(
                "POST",
                &format!("{base}{action}"),
                Some(&format!("login={login}&password={PASSWORD}")),
            )
            .await;
        let next = answer
            .location
            .unwrap_or_else(|| panic!("a redirect after the login: {}", answer.body));
        self.follow(&next, leave)
            .await
            .unwrap_or_else(|a| panic!("back to the app: {} {}", a.status, a.body))
    }
}

/// `request` on a fresh HTTP/1.1 connection over `stream`: the answer.
async fn exchange<S>(stream: S, request: hyper::Request<Full<Bytes>>) -> hyper::Response<Incoming>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("HTTP handshake");
    tokio::spawn(connection);
    sender.send_request(request).await.expect("an answer")
}

/// A sign-on the in-process server started: the browser's binding cookie and the provider's
/// authorization URL.
struct Started {
    binding: String,
    authorize: String,
}

async fn start(api: &Api, tenant: &str) -> Started {
    let (status, headers, body) = browse(
        api,
        "GET",
        &format!("/anmelden/verzeichnis/{tenant}"),
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    Started {
        binding: set_cookie(&headers, "videoamt_anmeldung").expect("the binding cookie"),
        authorize: headers[header::LOCATION]
            .to_str()
            .expect("ascii")
            .to_owned(),
    }
}

/// The `name=value` of the `Set-Cookie` for `name`, unless it clears the cookie.
fn set_cookie(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().expect("ascii"))
        .filter(|v| !v.contains("Max-Age=0"))
        .find_map(|v| {
            let pair = v.split(';').next()?;
            pair.starts_with(&format!("{name}="))
                .then(|| pair.to_owned())
        })
}

/// The browser comes back to the server at `url` with `binding`.
async fn back(api: &Api, binding: &str, url: &str) -> (StatusCode, axum::http::HeaderMap, String) {
    let path = url.strip_prefix(PUBLIC).expect("back at the server");
    browse(api, "GET", path, Some(binding), None).await
}

/// `login` signs on at `tenant` all the way: the server's answer on the way back.
async fn sign_on(
    api: &Api,
    agent: &mut Agent,
    tenant: &str,
    login: &str,
) -> (StatusCode, axum::http::HeaderMap, String) {
    let started = start(api, tenant).await;
    let returned = match agent.follow(&started.authorize, PUBLIC).await {
        Ok(url) => url,
        Err(form) => agent.log_in(&form, login, PUBLIC).await,
    };
    back(api, &started.binding, &returned).await
}

/// `login` of `tenant` signed on through `idp` from a fresh browser: the session cookie.
pub(crate) async fn signed_on(api: &Api, idp: &Provider, tenant: &str, login: &str) -> String {
    let mut agent = Agent::new(&idp.issuer);
    let (status, headers, page) = sign_on(api, &mut agent, tenant, login).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    set_cookie(&headers, "videoamt_sitzung").expect("a session")
}

/// The account events of the log, as (type, payload).
async fn events(api: &Api) -> Vec<(String, String)> {
    api.state
        .store
        .read_all(0, 100_000)
        .await
        .expect("the log")
        .into_iter()
        .map(|e| {
            (
                e.event_type.as_str().to_owned(),
                e.payload.as_str().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_clerk_signs_on_through_the_directory_with_the_role_the_mapping_grants() {
    let idp = idp(
        vec![user("m.mueller", &["Domain Users", "va-rathaus"])],
        3600,
    );
    let api = api(&idp.issuer).await;
    // The login page offers the directory beside the password form.
    let (_, _, page) = browse(&api, "GET", "/anmelden", None, None).await;
    assert!(
        page.contains("href=\"/anmelden/verzeichnis/musterstadt\"")
            && page.contains("Mit dem Rathaus-Konto anmelden – Gemeinde Musterstadt")
            && page.contains("name=\"password\""),
        "{page}"
    );
    // The authorization request is the code flow with PKCE S256, a state and a nonce.
    let started = start(&api, "musterstadt").await;
    for part in [
        "response_type=code",
        "client_id=videoamt-musterstadt",
        "code_challenge_method=S256",
        "code_challenge=",
        "state=",
        "nonce=",
        "redirect_uri=http%3A%2F%2Famt.test%2Fanmelden%2Fverzeichnis%2Frueckkehr",
    ] {
        assert!(
            started.authorize.contains(part),
            "{part}: {}",
            started.authorize
        );
    }
    assert!(
        started
            .authorize
            .starts_with(&format!("{}/auth?", idp.issuer))
    );

    let mut agent = Agent::new(&idp.issuer);
    let before = api.last_position().await;
    let (status, headers, page) = sign_on(&api, &mut agent, "musterstadt", "m.mueller").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("Sie sind angemeldet als"), "{page}");
    assert_eq!(headers["refresh"], "0; url=/sachbearbeitung");
    let session = set_cookie(&headers, "videoamt_sitzung").expect("a session");
    // The session is a clerk's of the Bürgeramt, as the group grants.
    let (status, _, me) = api
        .call("GET", "/api/v1/me", None, &[("cookie", &session)])
        .await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(
        (
            me["login"].as_str(),
            me["role"].as_str(),
            &me["departments"]
        ),
        (Some("m.mueller"), Some("clerk"), &json!(["rathaus"])),
        "{me}"
    );
    assert_eq!(me["directory"], json!(true), "{me}");
    let (status, _, day) = browse(&api, "GET", "/sachbearbeitung", Some(&session), None).await;
    assert_eq!(status, StatusCode::OK, "{day}");
    assert!(
        !day.contains("/konto/passwort"),
        "no password to change here"
    );
    // The first sign-in created the directory account, and nothing else was written: no
    // token, no name, no mail address.
    let written: Vec<(String, String)> = events(&api).await.split_off(before as usize);
    assert_eq!(written.len(), 1, "{written:?}");
    assert_eq!(written[0].0, "AccountCreated");
    let created: Value = serde_json::from_str(&written[0].1).expect("JSON");
    assert_eq!(
        created,
        json!({"login": "m.mueller", "role": "clerk", "departments": ["rathaus"],
               "password_hash": null, "directory": true})
    );
    // The provider's session carries the next sign-on without a form; it records nothing.
    let before = api.last_position().await;
    let (status, headers, _) = sign_on(&api, &mut agent, "musterstadt", "m.mueller").await;
    assert_eq!(status, StatusCode::OK);
    assert!(set_cookie(&headers, "videoamt_sitzung").is_some());
    assert_eq!(api.last_position().await, before);
    // A password does not open a directory account.
    let (status, _, page) = browse(
        &api,
        "POST",
        "/anmelden",
        None,
        Some("tenant=musterstadt&login=m.mueller&password=verzeichnis-passwort"),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{page}");
}

/// The title of a page.
fn title(page: &str) -> &str {
    between(page, "<h1>", "</h1>").unwrap_or("")
}

/// What stands in `text` between the first `after` and the next `until`.
fn between<'t>(text: &'t str, after: &str, until: &str) -> Option<&'t str> {
    text.split_once(after)?.1.split(until).next()
}

#[tokio::test]
async fn somebody_without_a_mapped_group_is_refused_in_german_and_the_refusal_is_recorded() {
    let idp = idp(vec![user("k.schmidt", &["Domain Users", "va-kita"])], 3600);
    let api = api(&idp.issuer).await;
    let mut agent = Agent::new(&idp.issuer);
    let before = api.last_position().await;
    let (status, headers, page) = sign_on(&api, &mut agent, "musterstadt", "k.schmidt").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{page}");
    assert_eq!(title(&page), "Keine Berechtigung für die Videoberatung");
    assert!(
        page.contains("zu keiner Gruppe, die für die Videoberatung freigegeben ist"),
        "{page}"
    );
    assert_eq!(set_cookie(&headers, "videoamt_sitzung"), None);
    // Only the refusal is recorded, on the municipality's roster, with the login alone.
    let written = events(&api).await.split_off(before as usize);
    assert_eq!(
        written,
        [(
            "DirectorySignInRefused".to_owned(),
            r#"{"login":"k.schmidt","reason":"no_grant"}"#.to_owned()
        )]
    );
    let (_, _, page) = browse(&api, "GET", "/sachbearbeitung", None, None).await;
    assert!(!page.contains("k.schmidt"));
}

#[tokio::test]
async fn a_tampered_state_or_nonce_a_second_return_and_another_browser_are_refused() {
    let idp = idp(vec![user("m.mueller", &["va-rathaus"])], 3600);
    let api = api(&idp.issuer).await;
    let mut agent = Agent::new(&idp.issuer);
    let invalid = |(status, headers, page): (StatusCode, axum::http::HeaderMap, String)| {
        assert_eq!(status, StatusCode::BAD_REQUEST, "{page}");
        assert_eq!(title(&page), "Anmeldung ungültig", "{page}");
        assert_eq!(set_cookie(&headers, "videoamt_sitzung"), None);
    };
    let before = api.last_position().await;

    // The state changed on the way back.
    let started = start(&api, "musterstadt").await;
    let form = agent
        .follow(&started.authorize, PUBLIC)
        .await
        .expect_err("the login form");
    let returned = agent.log_in(&form, "m.mueller", PUBLIC).await;
    let state = between(&returned, "state=", "&")
        .expect("a state")
        .to_owned();
    let tampered = returned.replace(&format!("state={state}"), "state=AAAAAAAAAAAAAAAAAAAAAA");
    invalid(back(&api, &started.binding, &tampered).await);
    // A tampered state also spends nothing: the real one still works, once.
    let (status, headers, page) = back(&api, &started.binding, &returned).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let session = set_cookie(&headers, "videoamt_sitzung").expect("a session");
    invalid(back(&api, &started.binding, &returned).await);
    // The state of another browser's sign-on, without that browser's binding cookie.
    let other = start(&api, "musterstadt").await;
    let returned = agent.follow(&other.authorize, PUBLIC).await.expect("back");
    invalid(back(&api, &started.binding, &returned).await);

    // The nonce changed on the way to the provider: the ID token carries it, and it is not the
    // one this sign-on was started with.
    let started = start(&api, "musterstadt").await;
    let nonce = between(&started.authorize, "nonce=", "&")
        .expect("a nonce")
        .to_owned();
    let changed = started
        .authorize
        .replace(&format!("nonce={nonce}"), "nonce=untergeschoben");
    let returned = agent.follow(&changed, PUBLIC).await.expect("back");
    let (status, headers, page) = back(&api, &started.binding, &returned).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{page}");
    assert_eq!(title(&page), "Anmeldung nicht bestätigt", "{page}");
    assert_eq!(set_cookie(&headers, "videoamt_sitzung"), None);

    // The first sign-in's account is all that was written; the session of the good return
    // is the only one.
    let written = events(&api).await.split_off(before as usize);
    assert_eq!(written.len(), 1, "{written:?}");
    let (status, _, _) = api
        .call("GET", "/api/v1/me", None, &[("cookie", &session)])
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn an_expired_id_token_is_refused() {
    // ID tokens valid for a minute; the server's clock is five minutes on when the browser
    // comes back (the sign-on itself waits ten).
    let idp = idp(vec![user("m.mueller", &["va-rathaus"])], 60);
    let api = api(&idp.issuer).await;
    let mut agent = Agent::new(&idp.issuer);
    let started = start(&api, "musterstadt").await;
    let form = agent
        .follow(&started.authorize, PUBLIC)
        .await
        .expect_err("the login form");
    let returned = agent.log_in(&form, "m.mueller", PUBLIC).await;
    api.now.fetch_add(300, std::sync::atomic::Ordering::SeqCst);
    let before = api.last_position().await;
    let (status, headers, page) = back(&api, &started.binding, &returned).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{page}");
    assert_eq!(title(&page), "Anmeldung nicht bestätigt", "{page}");
    assert!(page.contains("abgelaufen oder verändert"), "{page}");
    assert_eq!(set_cookie(&headers, "videoamt_sitzung"), None);
    assert_eq!(api.last_position().await, before, "nothing written");
    // Past the ten minutes the sign-on itself is gone.
    let started = start(&api, "musterstadt").await;
    let returned = agent
        .follow(&started.authorize, PUBLIC)
        .await
        .expect("back");
    api.now.fetch_add(601, std::sync::atomic::Ordering::SeqCst);
    let (status, _, page) = back(&api, &started.binding, &returned).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{page}");
}

#[tokio::test]
async fn with_the_provider_down_the_page_says_so_and_passwords_still_work() {
    // Nobody listens at the issuer's port.
    let port = crate::mail::free_port();
    let api = api(&format!("http://127.0.0.1:{port}")).await;
    crate::staff::musterstadt_admin(&api).await;
    let (status, _, page) =
        browse(&api, "GET", "/anmelden/verzeichnis/musterstadt", None, None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{page}");
    assert_eq!(title(&page), "Anmeldedienst nicht erreichbar");
    assert!(page.contains("mit Anmeldename und Passwort an"), "{page}");
    // The login page still offers both, and the local password works.
    let (status, _, page) = browse(&api, "GET", "/anmelden", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("/anmelden/verzeichnis/musterstadt"), "{page}");
    let (status, headers, page) = browse(
        &api,
        "POST",
        "/anmelden",
        None,
        Some("tenant=musterstadt&login=notfall&password=ein-gutes-passwort"),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
    assert_eq!(headers[header::LOCATION], "/verwaltung/konten");
    // A municipality without [oidc] has no such sign-on.
    let (status, _, page) =
        browse(&api, "GET", "/anmelden/verzeichnis/ettlingen", None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{page}");
    assert_eq!(title(&page), "Keine Anmeldung über den Verzeichnisdienst");
}

#[tokio::test]
async fn logging_out_ends_the_local_session_and_the_providers() {
    let idp = idp(vec![user("m.mueller", &["va-rathaus"])], 3600);
    let api = api(&idp.issuer).await;
    let mut agent = Agent::new(&idp.issuer);
    let (_, headers, _) = sign_on(&api, &mut agent, "musterstadt", "m.mueller").await;
    let session = set_cookie(&headers, "videoamt_sitzung").expect("a session");
    let (status, headers, page) = browse(&api, "POST", "/abmelden", Some(&session), None).await;
    // A page that moves on by itself: a form's redirect to another site is not allowed.
    assert_eq!(status, StatusCode::OK, "{page}");
    let end = headers["refresh"]
        .to_str()
        .expect("ascii")
        .strip_prefix("0; url=")
        .expect("on to the provider")
        .to_owned();
    assert!(
        end.starts_with(&format!("{}/session/end?", idp.issuer))
            && end.contains("client_id=videoamt-musterstadt")
            && end.contains("post_logout_redirect_uri=http%3A%2F%2Famt.test%2Fanmelden"),
        "{end}"
    );
    assert!(
        page.contains(&end.replace('&', "&amp;")),
        "a link too: {page}"
    );
    let (status, _, _) = api
        .call("GET", "/api/v1/me", None, &[("cookie", &session)])
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the local session is over"
    );
    // The provider asks, the person confirms, and is sent back to the login page.
    let confirm = agent
        .follow(&end, PUBLIC)
        .await
        .expect_err("the logout page");
    assert!(confirm.body.contains("id=\"abmelden\""), "{}", confirm.body);
    let action = between(&confirm.body, "action=\"", "\"")
        .expect("the form's action")
        .to_owned();
    let xsrf = between(&confirm.body, "name=\"xsrf\" value=\"", "\"")
        .expect("the form's xsrf")
        .to_owned();
    let action = if action.starts_with('/') {
        format!("{}{action}", idp.issuer)
    } else {
        action
    };
    let answer = agent
        .request("POST", &action, Some(&format!("xsrf={xsrf}&logout=yes")))
        .await;
    let back_at = agent
        .follow(&answer.location.expect("a redirect"), PUBLIC)
        .await
        .expect("back");
    assert_eq!(back_at, format!("{PUBLIC}/anmelden"));
    // The provider's session is over too: the next sign-on asks for the password again.
    let started = start(&api, "musterstadt").await;
    let form = agent.follow(&started.authorize, PUBLIC).await;
    assert!(
        form.as_ref()
            .is_err_and(|f| f.body.contains("name=\"password\"")),
        "the login form again"
    );
}

#[tokio::test]
async fn a_deactivated_directory_account_loses_its_session_and_stays_out() {
    let idp = idp(vec![user("m.mueller", &["va-rathaus"])], 3600);
    let api = api(&idp.issuer).await;
    let mut agent = Agent::new(&idp.issuer);
    let (_, headers, _) = sign_on(&api, &mut agent, "musterstadt", "m.mueller").await;
    let session = set_cookie(&headers, "videoamt_sitzung").expect("a session");
    let admin = crate::staff::musterstadt_admin(&api).await;
    api.fold().await;
    // The admin's page shows the account as the directory's, without a password reset.
    let (status, _, page) = browse(
        &api,
        "GET",
        "/verwaltung/konten/m.mueller",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("Verzeichnisdienst"), "{page}");
    assert!(
        !page.contains("/verwaltung/konten/m.mueller/zuruecksetzen"),
        "{page}"
    );
    let (status, _, page) = browse(
        &api,
        "POST",
        "/verwaltung/konten/m.mueller/deaktivieren",
        Some(&admin),
        Some(""),
    )
    .await;
    assert!(status.is_redirection(), "{status} {page}");
    let (status, _, _) = api
        .call("GET", "/api/v1/me", None, &[("cookie", &session)])
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the open session ended at once"
    );
    // The directory still vouches for the person, but the municipality said no.
    let (status, headers, page) = sign_on(&api, &mut agent, "musterstadt", "m.mueller").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{page}");
    assert_eq!(title(&page), "Konto deaktiviert");
    assert_eq!(set_cookie(&headers, "videoamt_sitzung"), None);
}

/// A town hall's own PKI, made with the `openssl` command line in `dir`: its CA (`ca.pem`) and
/// a certificate for `localhost` that the CA signed, with its key.
fn town_hall_pki(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let openssl = |args: &str| {
        let out = Command::new("openssl")
            .current_dir(dir)
            .args(args.split_whitespace())
            .output()
            .expect("the openssl command line");
        assert!(
            out.status.success(),
            "openssl {args}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    openssl(
        "req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem \
         -days 2 -subj /CN=Test-CA-Gemeinde-Musterstadt -addext basicConstraints=critical,CA:TRUE \
         -addext keyUsage=critical,keyCertSign,cRLSign",
    );
    std::fs::write(
        dir.join("localhost.ext"),
        "subjectAltName=DNS:localhost\nbasicConstraints=critical,CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .expect("written");
    openssl(
        "req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout localhost.key \
         -out localhost.csr -subj /CN=localhost",
    );
    openssl(
        "x509 -req -in localhost.csr -CA ca.pem -CAkey ca.key -set_serial 2 -days 2 \
         -extfile localhost.ext -out localhost.pem",
    );
    (
        dir.join("ca.pem"),
        dir.join("localhost.pem"),
        dir.join("localhost.key"),
    )
}

#[tokio::test]
async fn a_provider_behind_the_town_halls_own_ca_is_reached_over_https() {
    let pki = tempfile::tempdir().expect("temp dir");
    let (ca, cert, key) = town_hall_pki(pki.path());
    let idp = Provider::start_over_tls(
        "videoamt-musterstadt",
        PUBLIC,
        vec![user("m.mueller", &["va-rathaus"])],
        (&cert, &key),
    );
    assert!(
        idp.issuer.starts_with("https://localhost:"),
        "{}",
        idp.issuer
    );

    // Without its CA, the server does not trust the provider's certificate: the sign-on page
    // says the service cannot be reached, as for a provider that is down.
    let untrusting = api(&idp.issuer).await;
    let (status, _, page) = browse(
        &untrusting,
        "GET",
        "/anmelden/verzeichnis/musterstadt",
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{page}");
    assert_eq!(title(&page), "Anmeldedienst nicht erreichbar");

    // With `ca_file`, all the way: discovery, the browser at the provider, the code redeemed.
    let api = api_of(musterstadt_trusting(&idp.issuer, &ca)).await;
    let mut agent = Agent::trusting(&idp.issuer, &ca);
    let (status, headers, page) = sign_on(&api, &mut agent, "musterstadt", "m.mueller").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("Sie sind angemeldet als"), "{page}");
    let session = set_cookie(&headers, "videoamt_sitzung").expect("a session");
    let (status, _, me) = api
        .call("GET", "/api/v1/me", None, &[("cookie", &session)])
        .await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(
        (me["login"].as_str(), me["role"].as_str()),
        (Some("m.mueller"), Some("clerk")),
        "{me}"
    );
}

#[test]
fn a_ca_file_without_a_certificate_stops_serve_and_tenants_check_with_its_path() {
    use crate::municipality::{folder, run};

    let root = tempfile::tempdir().expect("temp dir");
    let (ca, _, key) = town_hall_pki(root.path());
    let tenant = |ca_file: &Path| {
        format!(
            "{MUSTERSTADT}\n[oidc]\nissuer = \"https://login.musterstadt.example/realms/rathaus\"\n\
             client_id = \"videoamt-musterstadt\"\nclient_secret = \"{CLIENT_SECRET}\"\n\
             ca_file = \"{}\"\n\
             grants = [{{ group = \"va-admin\", role = \"admin\" }}]\n",
            ca_file.display()
        )
    };
    let missing = root.path().join("gibt-es-nicht.pem");
    for (file, why) in [(&missing, "cannot be read"), (&key, "holds no certificate")] {
        let tenants = folder(root.path(), Some(&tenant(file)));
        let expected = format!(
            "musterstadt: the CA file {} of the [oidc] sign-on {why}",
            file.display()
        );
        let (ok, out, err) = run(
            root.path(),
            &tenants,
            &["tenants", "check", &tenants.to_string_lossy()],
        );
        assert!(!ok, "refused: {out}");
        assert!(err.contains(&expected), "{err}");
        let (ok, _, err) = run(root.path(), &tenants, &["serve", "--listen", "127.0.0.1:0"]);
        assert!(!ok, "serve does not start");
        assert!(err.contains(&expected), "{err}");
    }
    let tenants = folder(root.path(), Some(&tenant(&ca)));
    let (ok, out, err) = run(
        root.path(),
        &tenants,
        &["tenants", "check", &tenants.to_string_lossy()],
    );
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!(
            "trusting only the CA file {} (1 certificates)",
            ca.display()
        )),
        "{out}"
    );
}
