//! The HTTP edge: state, routes, middleware, the error type, the OpenAPI document and the
//! pages, one folder per audience. Handlers stay thin: they parse, call `app` and the bus, and
//! render. `http` never imports `cli` or `bench`.

pub(crate) mod citizen;
pub(crate) mod dev;
pub mod error;
pub(crate) mod extract;
pub(crate) mod html;
pub mod middleware;
pub(crate) mod openapi;
pub(crate) mod room;
pub(crate) mod sandbox;
pub mod server;
pub mod staff;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use videoamt_adapters::store::AdminStore;
use videoamt_core::tenant::Tenant;
use videoamt_projections::Projection;
use videoamt_projections::runner::Runner;

use self::error::Error;
use self::middleware::guard::RateLimits;
use crate::app::System;

/// The server's clock; tests pass one they can move.
pub type Clock = Arc<dyn Fn() -> time::OffsetDateTime + Send + Sync>;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub system: System,
    pub store: Arc<dyn AdminStore>,
    /// The hot read models in memory over the store's copy (ADR 0029); `serve` seeds them and
    /// runs their runner, and until then every read goes to the store.
    pub reads: Arc<videoamt_projections::memory::MemoryModels>,
    pub tenants: Arc<Vec<Tenant>>,
    pub projections: Vec<Arc<dyn Projection>>,
    pub limits: Arc<RateLimits>,
    pub clock: Clock,
    /// Scheme, host and port the links in mails and pages point to, without a trailing slash.
    pub public_url: String,
    /// The outbox folder `/dev/outbox` lists; only on a local server (ADR 0026).
    pub dev_outbox: Option<std::path::PathBuf>,
    pub http_metrics: Arc<middleware::observe::HttpMetrics>,
    /// The session cookie's name and the accounts' states; the sessions are in the store.
    pub sessions: Arc<staff::session::Sessions>,
    /// Failed logins per login and client, in memory, by a keyed hash (ADR 0025).
    pub(crate) login_throttle: Arc<staff::throttle::LoginThrottle>,
    /// Online bookings per mailbox and client address and day, in memory, by a keyed hash.
    pub(crate) booking_caps: Arc<citizen::caps::BookingCaps>,
    /// The municipalities' OpenID providers and the sign-ons under way (ADR 0022).
    pub sign_ons: Arc<staff::signon::SignOns>,
    /// Tells the live views (SSE, later the room's WebSocket) when the read models moved.
    pub live: crate::workers::live::LiveFeed,
    /// The live streams each staff session holds open in this process, under their cap.
    pub(crate) live_streams: staff::streams::LiveStreams,
    /// The room sockets this process serves.
    pub(crate) hub: room::hub::RoomHub,
    /// This process as the other processes on the log reach it (`http://host:port`), the
    /// holder's name of the rooms it runs; `None`: it serves every room's sockets itself
    /// (ADR 0028).
    pub(crate) node: Option<String>,
    /// The media relay of the rooms' calls; `None` where none runs (then the room says the
    /// video service is unavailable).
    pub media: Option<Arc<dyn videoamt_core::media::MediaRelay>>,
    /// The TURN servers browsers are given with their credentials (ADR 0017); none by default.
    pub turn: Option<videoamt_adapters::turn::Turn>,
    /// The payment provider of the rooms (ADR 0019); `None` where none is set up (then the
    /// rooms say that payment is not available here).
    pub payments: Option<Payments>,
    /// The Content-Security-Policy of every answer, with the WebSocket of the public URL.
    pub(crate) csp: axum::http::HeaderValue,
}

/// The payment provider the rooms call, and the built-in sandbox when it is that provider.
#[derive(Clone)]
pub struct Payments {
    pub provider: Arc<dyn videoamt_core::payment::PaymentProvider>,
    /// Served at `/sandbox/zahlung` only when it is the provider (no payment URL set).
    pub(crate) sandbox: Option<Arc<sandbox::Sandbox>>,
    /// Where the provider posts its callbacks to: the server's own address for the sandbox,
    /// the public URL for a provider elsewhere.
    pub callback_base: String,
}

impl std::fmt::Debug for Payments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Payments")
            .field("sandbox", &self.sandbox.is_some())
            .field("callback_base", &self.callback_base)
            .finish_non_exhaustive()
    }
}

impl AppState {
    pub fn new(system: System) -> Self {
        let sign_ons = Arc::new(staff::signon::SignOns::new(directories(&system.tenants)));
        let idle = system.settings.session_idle();
        let booking_caps = Arc::new(
            citizen::caps::BookingCaps::new(system.settings.booking_caps)
                .expect("the system gives randomness"),
        );
        Self {
            store: system.store.clone(),
            reads: Arc::new(videoamt_projections::memory::MemoryModels::new(
                videoamt_projections::memory::hot(system.tenants.clone()),
                system.store.clone(),
                Arc::new(videoamt_projections::memory::today_utc),
            )),
            projections: videoamt_projections::all(system.tenants.clone()),
            tenants: system.tenants.clone(),
            limits: Arc::new(RateLimits::per_minute(system.settings.rate_limits)),
            system,
            clock: Arc::new(time::OffsetDateTime::now_utc),
            public_url: "http://127.0.0.1:8080".to_owned(),
            dev_outbox: None,
            http_metrics: Arc::default(),
            sessions: Arc::new(staff::session::Sessions::new(false, idle)),
            login_throttle: Arc::new(
                staff::throttle::LoginThrottle::new().expect("the system gives randomness"),
            ),
            booking_caps,
            sign_ons,
            live: crate::workers::live::LiveFeed::default(),
            live_streams: staff::streams::LiveStreams::default(),
            hub: room::hub::RoomHub::default(),
            node: None,
            media: None,
            turn: None,
            payments: None,
            csp: middleware::guard::content_security_policy("http://127.0.0.1:8080"),
        }
    }

    /// Sets up payment as the settings say: the provider at `VIDEOAMT_PAYMENT_URL`, or else
    /// the built-in sandbox, reached at `own_url` (the server's own plain-HTTP address, e.g.
    /// `http://127.0.0.1:8080`), with a random token and secret unless the settings give
    /// them. Call after [`AppState::with_public_url`]: the sandbox's pages are linked there.
    pub fn with_payments(
        mut self,
        own_url: &str,
    ) -> Result<Self, videoamt_adapters::payment::PaymentConfigError> {
        let own_url = own_url.trim_end_matches('/');
        let settings = &self.system.settings;
        let payments = match settings.payment_url() {
            Some(url) => {
                let (Some(token), Some(secret)) =
                    (settings.payment_token(), settings.payment_secret())
                else {
                    return Err(videoamt_adapters::payment::PaymentConfigError::NoCredentials);
                };
                let provider =
                    videoamt_adapters::payment::HttpPaymentProvider::new(url, token, secret)?;
                Payments {
                    provider: Arc::new(provider),
                    sandbox: None,
                    callback_base: self.public_url.clone(),
                }
            }
            None => {
                let random = || {
                    let mut bytes = [0u8; 32];
                    getrandom::fill(&mut bytes)
                        .map(|()| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>())
                };
                let or_random = |given: Option<&str>| match given {
                    Some(g) => Ok(g.to_owned()),
                    None => random(),
                };
                let (Ok(token), Ok(secret)) = (
                    or_random(settings.payment_token()),
                    or_random(settings.payment_secret()),
                ) else {
                    return Err(videoamt_adapters::payment::PaymentConfigError::NoCredentials);
                };
                let base = format!("{own_url}{}", sandbox::BASE);
                let provider =
                    videoamt_adapters::payment::HttpPaymentProvider::new(&base, &token, &secret)?;
                Payments {
                    provider: Arc::new(provider),
                    sandbox: Some(Arc::new(sandbox::Sandbox::new(&token, &secret))),
                    callback_base: own_url.to_owned(),
                }
            }
        };
        self.payments = Some(payments);
        Ok(self)
    }

    /// Carries the rooms' calls through `relay`.
    pub fn with_media(mut self, relay: Arc<dyn videoamt_core::media::MediaRelay>) -> Self {
        self.media = Some(relay);
        self
    }

    /// Steers each room's sockets to the process that runs its call; `url` is how the other
    /// processes on the log reach this one (ADR 0028).
    pub fn with_node(mut self, url: &str) -> Self {
        self.node = Some(url.to_owned());
        self
    }

    /// Gives browsers `turn` for their peer connections.
    pub fn with_turn(mut self, turn: Option<videoamt_adapters::turn::Turn>) -> Self {
        self.turn = turn;
        self
    }

    /// Shows the outbox folder at `/dev/outbox`: `serve` asks for it only on a local server
    /// (ADR 0026).
    pub fn with_dev_outbox(mut self) -> Self {
        self.dev_outbox = Some(self.system.outbox_dir());
        self
    }

    pub fn with_clock(mut self, clock: Clock) -> Self {
        let today = clock.clone();
        self.reads = Arc::new(videoamt_projections::memory::MemoryModels::new(
            videoamt_projections::memory::hot(self.tenants.clone()),
            self.store.clone(),
            Arc::new(move || today().date()),
        ));
        self.clock = clock;
        self
    }

    pub fn with_limits(mut self, limits: RateLimits) -> Self {
        self.limits = Arc::new(limits);
        self
    }

    /// With `caps` on online bookings instead of the settings' (counts start afresh).
    pub fn with_booking_caps(mut self, caps: crate::app::settings::BookingCapSetting) -> Self {
        self.booking_caps =
            Arc::new(citizen::caps::BookingCaps::new(caps).expect("the system gives randomness"));
        self
    }

    pub fn with_public_url(mut self, url: &str) -> Self {
        self.public_url = url.trim_end_matches('/').to_owned();
        self.csp = middleware::guard::content_security_policy(&self.public_url);
        self.sessions = Arc::new(staff::session::Sessions::new(
            self.public_url.starts_with("https://"),
            self.sessions.idle_timeout(),
        ));
        self
    }

    pub fn now(&self) -> time::OffsetDateTime {
        (self.clock)()
    }

    pub fn runner(&self) -> Runner {
        Runner::new(self.store.clone(), self.store.clone())
    }
}

/// An OpenID provider for each municipality whose `[oidc]` sign-on has its secret (`serve`
/// refuses to start without it).
fn directories(
    tenants: &[Tenant],
) -> std::collections::HashMap<
    videoamt_core::event::TenantId,
    Arc<dyn videoamt_core::directory::Directory>,
> {
    tenants
        .iter()
        .filter_map(|t| {
            let sign_on = t.oidc.as_ref()?;
            let secret = crate::app::tenants::client_secret(sign_on).ok()?;
            let directory: Arc<dyn videoamt_core::directory::Directory> =
                Arc::new(videoamt_adapters::oidc::OidcDirectory::new(
                    &sign_on.issuer,
                    &sign_on.client_id,
                    &secret,
                    &sign_on.login_claim,
                    &sign_on.groups_claim,
                    &sign_on.scopes,
                    sign_on.ca_file.as_deref().map(std::path::Path::new),
                ));
            Some((t.id.clone(), directory))
        })
        .collect()
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

/// The whole application as a router, for `serve` and for in-process tests.
pub fn app(state: AppState) -> Router {
    let (api, openapi) = openapi::api();
    let openapi = Arc::new(openapi::document(openapi, &state.tenants));
    // Ordinary requests are answered within the request timeout.
    let timed = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route(
            "/api/openapi.json",
            get(move || {
                let doc = openapi.clone();
                async move { axum::Json(doc.as_ref().clone()) }
            }),
        )
        .merge(api)
        .merge(pages())
        // Room routes, like the pages, stay out of the OpenAPI document; so does the payment
        // provider's callback, and the sandbox, which plays a provider elsewhere.
        .merge(room::forms::routes())
        .merge(room::signing::routes())
        .merge(room::feedback::routes())
        .merge(room::payment::routes())
        .merge(
            if state.payments.as_ref().is_some_and(|p| p.sandbox.is_some()) {
                sandbox::routes()
            } else {
                Router::new()
            },
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::timeouts::deadline,
        ));
    // The room's sockets and the clerk's live stream are long-lived by design; an upload may
    // take longer on a slow line, as long as it keeps sending (`idle_bodies`).
    let long_lived = Router::new()
        .merge(room::sockets())
        .route("/sachbearbeitung/live", get(staff::pages::clerk_live))
        .merge(room::documents::routes());
    timed
        .merge(long_lived)
        // A link writes only until the visit is over; it reads as long as the data is kept.
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            citizen::lifetime::writes,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::observe::observe,
        ))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::stand::read_your_writes,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::timeouts::idle_bodies,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::guard::guard,
        ))
        .with_state(state)
}

/// The largest request body accepted anywhere (uploads have their own route and cap).
pub(crate) const MAX_BODY_BYTES: usize = 64 * 1024;

/// The server-rendered pages.
fn pages() -> axum::Router<AppState> {
    use axum::routing::get;
    axum::Router::new()
        .route("/static/videoamt.css", get(html::stylesheet))
        .route("/", get(citizen::booking::start))
        .route("/buchen", axum::routing::post(citizen::booking::book))
        .route("/buchen/{tenant}", get(citizen::booking::concerns))
        .route("/buchen/{tenant}/zeit", get(citizen::booking::slots))
        .route("/buchen/{tenant}/kontakt", get(citizen::booking::contact))
        .route("/buchen/{tenant}/gebucht", get(citizen::booking::booked))
        .route("/termin/{token}", get(citizen::pages::appointment))
        .route(
            "/termin/{token}/bestaetigen",
            axum::routing::post(citizen::pages::confirm),
        )
        .route(
            "/termin/{token}/absagen",
            get(citizen::pages::cancel_form).post(citizen::pages::cancel),
        )
        .route(
            "/termin/{token}/verlegen",
            get(citizen::pages::reschedule_form).post(citizen::pages::reschedule),
        )
        .route(
            "/termin/{token}/warteraum",
            get(room::pages::citizen_room).post(citizen::pages::enter_waiting_room),
        )
        .merge(room::routes())
        .route("/static/{script}", get(staff::pages::script))
        .route(
            "/anmelden",
            get(staff::pages::login_page).post(staff::pages::login),
        )
        .route("/abmelden", axum::routing::post(staff::pages::logout))
        .route("/anmelden/verzeichnis/{tenant}", get(staff::signon::start))
        .route(staff::signon::RETURN_PATH, get(staff::signon::finish))
        .route(
            "/konto/passwort",
            get(staff::accounts::password_form).post(staff::accounts::change_password),
        )
        .route(
            "/konto/passwort/{token}",
            get(staff::accounts::link_form).post(staff::accounts::set_password),
        )
        .route(
            "/verwaltung/konten",
            get(staff::accounts::accounts).post(staff::accounts::create),
        )
        .route("/verwaltung/konten/{login}", get(staff::accounts::detail))
        .route(
            "/verwaltung/konten/{login}/deaktivieren",
            axum::routing::post(staff::accounts::deactivate),
        )
        .route(
            "/verwaltung/konten/{login}/aktivieren",
            axum::routing::post(staff::accounts::reactivate),
        )
        .route(
            "/verwaltung/konten/{login}/rolle",
            axum::routing::post(staff::accounts::change_role),
        )
        .route(
            "/verwaltung/konten/{login}/zuruecksetzen",
            axum::routing::post(staff::accounts::reset),
        )
        .route(
            "/verwaltung/konten/{login}/entsperren",
            axum::routing::post(staff::accounts::unlock),
        )
        .route("/sachbearbeitung", get(staff::pages::clerk_day))
        .route(
            "/sachbearbeitung/termin/{id}",
            get(staff::pages::clerk_detail),
        )
        .route(
            "/sachbearbeitung/termin/{id}/absagen",
            axum::routing::post(staff::pages::clerk_cancel),
        )
        .route(
            "/sachbearbeitung/einladen",
            get(staff::pages::invitation_page).post(staff::pages::invite),
        )
        .route("/pruefung", get(staff::pages::audit_search))
        .route("/pruefung/termin/{id}", get(staff::pages::audit_timeline))
        .route("/pruefung/konten", get(staff::pages::audit_accounts))
        .route("/pruefung/konten/{login}", get(staff::pages::audit_account))
        .route("/datenschutz", get(staff::pages::dpo_report))
        .route("/datenschutz/bericht.csv", get(staff::pages::dpo_csv))
        .route("/datenschutz/subjekt/{id}", get(staff::pages::dpo_subject))
        .route("/statistik", get(staff::pages::statistics))
        .route("/dev/outbox", get(dev::index))
        .route("/dev/outbox/{subject}/{file}", get(dev::mail))
}

async fn not_found() -> Error {
    Error::not_found("Diese Adresse gibt es nicht.")
}

/// Liveness: the process answers.
async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: the store answers too.
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    match state.store.last_position().await {
        Ok(_) => (StatusCode::OK, "ready").into_response(),
        Err(e) => Error::unavailable(format!("readiness check failed: {e}")).into_response(),
    }
}

/// The internal listener's router (`VIDEOAMT_METRICS_LISTEN`): `/metrics` and nothing else.
/// It is never merged into [`app`], so the public listener answers 404 there (ADR 0025).
pub fn metrics_app(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .with_state(state)
}

/// Prometheus text format: each projection's checkpoint and lag, and what the hot read models
/// hold in memory.
async fn metrics(State(state): State<AppState>) -> axum::response::Response {
    let lags = match state.runner().lag(&state.projections).await {
        Ok(lags) => lags,
        Err(e) => return Error::unavailable(format!("metrics unavailable: {e}")).into_response(),
    };
    let mut out = String::new();
    let mut family =
        |name: &str, help: &str, value: &dyn Fn(&videoamt_projections::runner::Lag) -> String| {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
            for lag in &lags {
                out.push_str(&format!(
                    "{name}{{projection=\"{}\"}} {}\n",
                    lag.projection,
                    value(lag)
                ));
            }
        };
    family(
        "videoamt_projection_checkpoint",
        "Global position the projection has applied up to.",
        &|l| l.checkpoint.to_string(),
    );
    family(
        "videoamt_projection_lag_events",
        "Events in the log the projection has not applied yet.",
        &|l| l.events_behind.to_string(),
    );
    family(
        "videoamt_projection_lag_seconds",
        "Age of the oldest event the projection has not applied yet.",
        &|l| format!("{:.3}", l.seconds_behind),
    );
    out.push_str(
        "# HELP videoamt_memory_documents Documents of a hot read model held in memory (ADR 0029).\n\
         # TYPE videoamt_memory_documents gauge\n",
    );
    let holding = state.reads.holding();
    for held in &holding {
        out.push_str(&format!(
            "videoamt_memory_documents{{projection=\"{}\"}} {}\n",
            held.projection, held.documents
        ));
    }
    // Beside the checkpoint: a memory copy behind its database copy is what a read that
    // waits for its own write waits on.
    out.push_str(
        "# HELP videoamt_memory_position Global position a hot read model's memory copy has applied up to.\n\
         # TYPE videoamt_memory_position gauge\n",
    );
    for held in &holding {
        out.push_str(&format!(
            "videoamt_memory_position{{projection=\"{}\"}} {}\n",
            held.projection, held.position
        ));
    }
    out.push_str(&state.http_metrics.render());
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response()
}

/// Serves until Ctrl-C or SIGTERM, then finishes in-flight requests and returns. As `role`
/// says, it serves the pages and the API, and runs the background work: the projections are
/// kept up to date, and the outbox and the scheduler run while this process holds their
/// duties (`workers::duty`), so that several processes can serve one log. `metrics`, the
/// internal listener, serves [`metrics_app`] in every role.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Option<tokio::net::TcpListener>,
    state: AppState,
    role: crate::app::Role,
) -> std::io::Result<()> {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut background = Vec::new();
    if role.works() {
        background = work(&state, &stopped).map_err(std::io::Error::other)?;
    }
    if role.serves_web() {
        background.push(remember(&state, &stopped).await?);
    }
    let limits = server::ConnectionLimits::of(&state.system.settings);
    let scraped = metrics_app(state.clone());
    let router = if role.serves_web() {
        app(state)
    } else {
        probes(state)
    };
    let (signal, signalled) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = signal.send(true);
    });
    let stopping = |mut signalled: tokio::sync::watch::Receiver<bool>| async move {
        // The sender is dropped only after it sent.
        let _ = signalled.wait_for(|s| *s).await;
    };
    let metrics = metrics.map(|listener| {
        tokio::spawn(server::serve_connections(
            listener,
            scraped,
            limits,
            stopping(signalled.clone()),
        ))
    });
    server::serve_connections(listener, router, limits, stopping(signalled)).await;
    if let Some(metrics) = metrics
        && let Err(e) = metrics.await
    {
        tracing::error!(error = %e, "metrics listener panicked");
    }
    let _ = stop.send(true);
    for (what, task) in background {
        if let Err(e) = task.await {
            tracing::error!(error = %e, "{what} panicked");
        }
    }
    Ok(())
}

type Background = Vec<(&'static str, tokio::task::JoinHandle<()>)>;

/// Seeds the hot read models in memory from the store's copy and starts the runner that keeps
/// them current (ADR 0029); this process's reads are served from them from now on.
async fn remember(
    state: &AppState,
    stopped: &tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<(&'static str, tokio::task::JoinHandle<()>)> {
    state.reads.seed().await.map_err(std::io::Error::other)?;
    let runner = Runner::new(state.store.clone(), state.reads.clone());
    let (projections, stop) = (state.reads.projections(), stopped.clone());
    let task = tokio::spawn(async move {
        if let Err(e) = runner.run(projections, stop).await {
            tracing::error!(error = %e, "runner of the read models in memory failed");
        }
    });
    Ok(("read models in memory", task))
}

/// Starts the background work of a worker: the projection runner, and the outbox and the
/// scheduler under their duties' leases.
fn work(
    state: &AppState,
    stopped: &tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<Background> {
    use crate::workers::duty;
    let system = state.system.clone();
    let holder = duty::holder();
    tracing::info!(holder, "background work of this process starts");
    let ttl = system.settings.lease();
    let projections = state.projections.clone();
    let every = system.settings.scheduler_interval();
    let scheduling = {
        let (system, projections) = (system.clone(), projections.clone());
        duty::hold(
            system.store.clone(),
            duty::SCHEDULER,
            holder.clone(),
            ttl,
            stopped.clone(),
            move |stop| {
                crate::workers::retention::schedule(
                    system.clone(),
                    projections.clone(),
                    every,
                    stop,
                )
            },
        )
    };
    let mailer = crate::workers::outbox::mailer(&system)?;
    let outbox = crate::workers::outbox::Outbox::new(system.clone(), mailer, &state.public_url);
    let mailing = duty::hold(
        system.store.clone(),
        duty::OUTBOX,
        holder,
        ttl,
        stopped.clone(),
        move |stop| outbox.clone().run(stop),
    );
    let runner = state.runner();
    let stop = stopped.clone();
    let projecting = async move {
        if let Err(e) = runner.run(projections, stop).await {
            tracing::error!(error = %e, "projection runner failed");
        }
    };
    Ok(vec![
        ("retention scheduler", tokio::spawn(scheduling)),
        ("outbox worker", tokio::spawn(mailing)),
        ("projection runner", tokio::spawn(projecting)),
    ])
}

/// What a worker-only process answers: whether it lives and reaches its store.
fn probes(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(not_found)
        .with_state(state)
}

pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}

/// Binds the listen address; port 0 picks a free port.
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}
