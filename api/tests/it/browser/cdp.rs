//! A small Chrome DevTools Protocol (CDP) client for the browser integration tests, plus
//! axe-core accessibility checks. It drives headless Chromium over its browser websocket
//! (`tokio-tungstenite`), nothing else: no chromedriver, no Node at test time.
//!
//! API (all `pub(crate)`):
//! - [`Browser::launch`] / [`Browser::launch_with_args`]: start headless Chromium (path from
//!   `VIDEOAMT_CHROMIUM`, else `/usr/bin/chromium`, else `chromium` on `PATH`) with a fresh
//!   profile directory, connect to its browser websocket. [`FAKE_MEDIA_ARGS`] adds a fake
//!   camera/microphone. Dropping the `Browser` kills Chromium and removes the profile;
//!   [`Browser::close`] does the same gracefully.
//! - [`Browser::new_page`] (default browser context: cookies shared between pages) and
//!   [`Browser::new_context`]: a [`Context`] of its own, like a fresh incognito window, whose
//!   pages share cookies and storage with no other context, so that two people (a citizen and
//!   a clerk) can act at the same time; [`Context::cookie_names`] shows what it holds.
//!   [`Browser::new_isolated_page`] is a page in a context of its own.
//! - [`Page::goto`]: navigate and wait until the *new* document has loaded.
//! - [`Page::eval`]: `Runtime.evaluate` (awaits promises, returns the value as JSON); a
//!   JavaScript exception is an error carrying the exception text.
//! - [`Page::wait_for`]: poll a JavaScript expression until it is truthy, with a timeout.
//! - [`Page::click`], [`Page::fill`], [`Page::text`], [`Page::url`].
//! - [`Page::click_and_wait_load`] / [`Page::submit_and_wait_load`]: click a link or submit
//!   button (or submit a form) and wait for the next document to load.
//! - [`Page::screenshot`]: full-page PNG written to a path (parent folders are created).
//! - [`Page::errors`]: uncaught exceptions, `console.error` calls and browser error log
//!   entries (CSP violations, failed loads) seen so far on the page.
//! - [`axe_source`] + [`Page::axe`]: inject axe-core (via the DevTools protocol, so the page's
//!   Content-Security-Policy does not block it) and return its violations;
//!   [`serious_violations`] keeps those of impact `serious` or `critical`, [`report`] formats
//!   them for an assertion message.
//!
//! axe-core is not vendored: `npm install --prefix target/axe-core axe-core@4` in the
//! workspace root (`scripts/test` does), or point `VIDEOAMT_AXE_JS` at an `axe.min.js`.
//!
//! Network: Chromium listens for DevTools on 127.0.0.1 only, background networking is off and
//! every host name but `localhost` resolves to nothing, so the tests only reach loopback.

// A helper library: not every test uses every helper.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use base64::Engine as _;
use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

/// How long one DevTools command may take before it is an error.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// How long Chromium may take to print its DevTools address.
// Generous: on the 2-core machine, with other tests and another browser starting beside it,
// Chromium has taken over 30 s to print its DevTools address (CI of 2026-12-02).
const LAUNCH_TIMEOUT: Duration = Duration::from_secs(90);
/// How long a navigation may take until the new document's `load` event.
pub(crate) const LOAD_TIMEOUT: Duration = Duration::from_secs(15);
/// Interval of the polling loops (`wait_for`).
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Screenshots are cut at this height (px) so a runaway page cannot exhaust memory.
const MAX_SCREENSHOT_HEIGHT: f64 = 16_384.0;

/// Extra Chromium flags for pages that use camera or microphone: a fake device, permission
/// prompts accepted. Pass to [`Browser::launch_with_args`].
pub(crate) const FAKE_MEDIA_ARGS: &[&str] = &[
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
];

/// The flags every browser is started with (the profile directory and start URL follow).
const CHROMIUM_ARGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--remote-debugging-port=0",
    "--window-size=1280,900",
    "--hide-scrollbars",
    // Only loopback: any other host name fails to resolve.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
];

// ---------------------------------------------------------------------------------------------
// The websocket connection: one writer task, one reader task routing replies by id and events
// by session id.

type Reply = Result<Value, String>;

#[derive(Debug, Default)]
struct Routes {
    /// Commands waiting for their reply, by id.
    pending: HashMap<u64, oneshot::Sender<Reply>>,
    /// Event queues of the attached pages, by session id.
    sessions: HashMap<String, mpsc::UnboundedSender<Value>>,
    /// Why the connection is gone, once it is.
    closed: Option<String>,
}

#[derive(Debug)]
struct Connection {
    out: mpsc::UnboundedSender<Message>,
    next_id: AtomicU64,
    routes: Mutex<Routes>,
}

impl Connection {
    /// Connects to `ws_url`; returns the connection and its reader and writer tasks.
    async fn connect(ws_url: &str) -> anyhow::Result<(Arc<Self>, [JoinHandle<()>; 2])> {
        let (socket, _) = tokio_tungstenite::connect_async(ws_url)
            .await
            .with_context(|| format!("connecting to the DevTools websocket {ws_url}"))?;
        let (mut sink, mut stream) = socket.split();
        let (out, mut out_rx) = mpsc::unbounded_channel::<Message>();
        let conn = Arc::new(Connection {
            out,
            next_id: AtomicU64::new(1),
            routes: Mutex::new(Routes::default()),
        });
        let writer = tokio::spawn(async move {
            while let Some(message) = out_rx.recv().await {
                if sink.send(message).await.is_err() {
                    break;
                }
            }
            // The socket may already be gone; nothing to report to anyone then.
            let _ = sink.close().await;
        });
        let reader = tokio::spawn({
            let conn = Arc::clone(&conn);
            async move {
                let reason = loop {
                    match stream.next().await {
                        Some(Ok(Message::Text(text))) => conn.dispatch(text.as_str()),
                        Some(Ok(Message::Close(_))) | None => {
                            break "the browser closed the DevTools websocket".to_owned();
                        }
                        Some(Ok(_)) => {}
                        Some(Err(e)) => break format!("DevTools websocket error: {e}"),
                    }
                };
                conn.shut(reason);
            }
        });
        Ok((conn, [reader, writer]))
    }

    fn routes(&self) -> MutexGuard<'_, Routes> {
        self.routes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Routes one message from the browser: a reply to its waiting command, an event to the
    /// queue of its session (events of the browser target itself are not needed).
    fn dispatch(&self, text: &str) {
        let Ok(mut message) = serde_json::from_str::<Value>(text) else {
            return;
        };
        let mut routes = self.routes();
        if let Some(id) = message.get("id").and_then(Value::as_u64) {
            if let Some(reply) = routes.pending.remove(&id) {
                let result = match message.get("error") {
                    Some(error) => Err(error.to_string()),
                    None => Ok(message["result"].take()),
                };
                // The caller may have timed out and gone; then nobody wants the reply.
                let _ = reply.send(result);
            }
        } else if let Some(queue) = message
            .get("sessionId")
            .and_then(Value::as_str)
            .and_then(|s| routes.sessions.get(s))
        {
            // A dropped page no longer listens; its events are not needed.
            let _ = queue.send(message);
        }
    }

    /// Fails every waiting command and ends every event queue.
    fn shut(&self, reason: String) {
        let mut routes = self.routes();
        for (_, reply) in routes.pending.drain() {
            let _ = reply.send(Err(reason.clone()));
        }
        routes.sessions.clear();
        routes.closed = Some(reason);
    }

    fn message(id: u64, session: Option<&str>, method: &str, params: Value) -> Message {
        let mut message = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = session {
            message["sessionId"] = Value::from(session);
        }
        Message::Text(message.to_string().into())
    }

    /// Sends a command and waits for its reply (`result`), at most [`COMMAND_TIMEOUT`].
    async fn call(
        &self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> anyhow::Result<Value> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (reply_tx, reply_rx) = oneshot::channel();
        {
            let mut routes = self.routes();
            if let Some(reason) = &routes.closed {
                bail!("CDP {method}: no connection to the browser ({reason})");
            }
            routes.pending.insert(id, reply_tx);
        }
        if self
            .out
            .send(Self::message(id, session, method, params))
            .is_err()
        {
            self.routes().pending.remove(&id);
            bail!("CDP {method}: no connection to the browser (its writer task has ended)");
        }
        match tokio::time::timeout(COMMAND_TIMEOUT, reply_rx).await {
            Err(_) => {
                self.routes().pending.remove(&id);
                bail!("CDP {method}: no reply within {COMMAND_TIMEOUT:?}")
            }
            Ok(Err(_)) => bail!("CDP {method}: the connection to the browser ended"),
            Ok(Ok(Err(error))) => bail!("CDP {method} failed: {error}"),
            Ok(Ok(Ok(result))) => Ok(result),
        }
    }

    /// Sends a command without waiting for its reply (for `Drop`).
    fn send_nowait(&self, session: Option<&str>, method: &str, params: Value) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        // Best effort: if the browser is gone, so is what the command was meant to close.
        let _ = self.out.send(Self::message(id, session, method, params));
    }
}

fn str_field<'a>(value: &'a Value, key: &str) -> anyhow::Result<&'a str> {
    value
        .get(key)
        .and_then(Value::as_str)
        .with_context(|| format!("DevTools reply without string field `{key}`: {value}"))
}

// ---------------------------------------------------------------------------------------------
// The browser process.

/// A fresh Chromium profile directory, removed on drop.
#[derive(Debug)]
struct ProfileDir(PathBuf);

impl ProfileDir {
    fn create() -> anyhow::Result<Self> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let path = std::env::temp_dir().join(format!(
            "videoamt-chromium-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir(&path).with_context(|| {
            format!("creating the Chromium profile directory {}", path.display())
        })?;
        Ok(ProfileDir(path))
    }
}

impl Drop for ProfileDir {
    fn drop(&mut self) {
        // Best effort: a leftover directory in the temp folder harms no test.
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The last lines Chromium wrote to stderr, for error messages.
type StderrTail = Arc<Mutex<VecDeque<String>>>;

fn tail_text(tail: &StderrTail) -> String {
    let lines = tail.lock().unwrap_or_else(PoisonError::into_inner);
    lines
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join("\n")
}

fn chromium_path() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("VIDEOAMT_CHROMIUM") {
        return Ok(PathBuf::from(path));
    }
    let debian = Path::new("/usr/bin/chromium");
    if debian.is_file() {
        return Ok(debian.to_owned());
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("chromium"))
        .find(|candidate| candidate.is_file())
        .context("Chromium not found: `apt-get install chromium`, or set VIDEOAMT_CHROMIUM")
}

/// A headless Chromium and the DevTools connection to it.
#[derive(Debug)]
pub(crate) struct Browser {
    child: Child,
    conn: Arc<Connection>,
    tasks: Vec<JoinHandle<()>>,
    stderr_tail: StderrTail,
    ws_url: String,
    // Last: removed after `Drop::drop` has killed the browser.
    profile: ProfileDir,
}

impl Browser {
    /// Starts headless Chromium and connects to it.
    pub(crate) async fn launch() -> anyhow::Result<Browser> {
        Self::launch_with_args(&[]).await
    }

    /// Starts headless Chromium with extra flags (e.g. [`FAKE_MEDIA_ARGS`]).
    pub(crate) async fn launch_with_args(extra_args: &[&str]) -> anyhow::Result<Browser> {
        let exe = chromium_path()?;
        let profile = ProfileDir::create()?;
        let mut command = Command::new(&exe);
        command
            .args(CHROMIUM_ARGS)
            .arg(format!("--user-data-dir={}", profile.0.display()))
            .args(extra_args)
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            // Its own process group, so that `Drop` can kill the renderers and helpers too.
            .process_group(0);
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {}", exe.display()))?;
        let stderr = child
            .stderr
            .take()
            .context("Chromium's stderr was not captured")?;

        // Read stderr to the end (a full pipe would stall Chromium); hand over the DevTools URL.
        let stderr_tail: StderrTail = Arc::default();
        let (url_tx, url_rx) = oneshot::channel::<String>();
        let stderr_task = tokio::spawn({
            let tail = Arc::clone(&stderr_tail);
            async move {
                let mut url_tx = Some(url_tx);
                let mut reader = BufReader::new(stderr);
                let mut buf = Vec::new();
                while matches!(reader.read_until(b'\n', &mut buf).await, Ok(n) if n > 0) {
                    let line = String::from_utf8_lossy(&buf).trim_end().to_owned();
                    buf.clear();
                    let found = line.strip_prefix("DevTools listening on ");
                    if let Some((url, tx)) = found.and_then(|url| Some((url, url_tx.take()?))) {
                        let _ = tx.send(url.trim().to_owned());
                    }
                    let mut tail = tail.lock().unwrap_or_else(PoisonError::into_inner);
                    if tail.len() == 100 {
                        tail.pop_front();
                    }
                    tail.push_back(line);
                }
            }
        });

        let ws_url = match tokio::time::timeout(LAUNCH_TIMEOUT, url_rx).await {
            Ok(Ok(url)) => url,
            Ok(Err(_)) => {
                let status = child
                    .wait()
                    .await
                    .map(|s| s.to_string())
                    .unwrap_or_default();
                bail!(
                    "Chromium ({}) exited ({status}) without a DevTools address; its stderr:\n{}",
                    exe.display(),
                    tail_text(&stderr_tail)
                )
            }
            Err(_) => bail!(
                "Chromium ({}) printed no DevTools address within {LAUNCH_TIMEOUT:?}; its stderr:\n{}",
                exe.display(),
                tail_text(&stderr_tail)
            ),
        };
        let (conn, [reader, writer]) = Connection::connect(&ws_url).await?;
        Ok(Browser {
            child,
            conn,
            tasks: vec![stderr_task, reader, writer],
            stderr_tail,
            ws_url,
            profile,
        })
    }

    /// The browser's DevTools websocket URL (`ws://127.0.0.1:PORT/devtools/browser/ID`).
    pub(crate) fn ws_url(&self) -> &str {
        &self.ws_url
    }

    /// The last lines Chromium wrote to stderr (for diagnosing a failed test).
    pub(crate) fn stderr_tail(&self) -> String {
        tail_text(&self.stderr_tail)
    }

    /// A new tab in the default browser context (shares cookies with the other such pages).
    pub(crate) async fn new_page(&self) -> anyhow::Result<Page> {
        open_page(&self.conn, None).await
    }

    /// A new tab in a browser context of its own: no cookies or storage shared with any
    /// other page (a second user, say).
    pub(crate) async fn new_isolated_page(&self) -> anyhow::Result<Page> {
        self.new_context().await?.new_page().await
    }

    /// A browser context of its own: cookies, storage and cache shared with no other. It
    /// lasts as long as the browser.
    pub(crate) async fn new_context(&self) -> anyhow::Result<Context> {
        let context = self
            .conn
            .call(
                None,
                "Target.createBrowserContext",
                json!({ "disposeOnDetach": true }),
            )
            .await?;
        Ok(Context {
            conn: Arc::clone(&self.conn),
            id: str_field(&context, "browserContextId")?.to_owned(),
        })
    }

    /// Closes the browser gracefully (`Browser.close`), waits for it to exit, removes the
    /// profile. Dropping the `Browser` kills it instead.
    pub(crate) async fn close(mut self) -> anyhow::Result<()> {
        // If the reply does not come, the process is killed in `Drop` all the same.
        let _ = self.conn.call(None, "Browser.close", json!({})).await;
        tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .context("Chromium did not exit within 10 s of Browser.close")?
            .context("waiting for Chromium to exit")?;
        Ok(())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        if let Some(pid) = self.child.id() {
            // The whole process group (renderers, zygotes, crashpad handler); `kill` is in
            // procps. Best effort: the process itself is killed below in any case.
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.child.start_kill();
        // Wait (bounded) for the exit so nobody writes into the profile while it is removed.
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Ok(Some(_)) | Err(_) => break,
            }
        }
    }
}

/// Opens a tab (in the given browser context, else the default one) and attaches to it.
async fn open_page(
    conn: &Arc<Connection>,
    browser_context_id: Option<String>,
) -> anyhow::Result<Page> {
    let mut params = json!({ "url": "about:blank" });
    if let Some(id) = &browser_context_id {
        params["browserContextId"] = Value::from(id.as_str());
    }
    let target = conn.call(None, "Target.createTarget", params).await?;
    let target_id = str_field(&target, "targetId")?.to_owned();
    let attached = conn
        .call(
            None,
            "Target.attachToTarget",
            json!({ "targetId": target_id, "flatten": true }),
        )
        .await?;
    let session_id = str_field(&attached, "sessionId")?.to_owned();
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    conn.routes().sessions.insert(session_id.clone(), events_tx);
    let mut page = Page {
        conn: Arc::clone(conn),
        session_id,
        target_id,
        main_frame_id: String::new(),
        events: tokio::sync::Mutex::new(Events {
            rx: events_rx,
            errors: Vec::new(),
        }),
    };
    for method in ["Page.enable", "Runtime.enable", "Log.enable"] {
        page.cmd(method, json!({})).await?;
    }
    page.cmd("Page.setLifecycleEventsEnabled", json!({ "enabled": true }))
        .await?;
    let tree = page.cmd("Page.getFrameTree", json!({})).await?;
    page.main_frame_id = str_field(&tree["frameTree"]["frame"], "id")?.to_owned();
    Ok(page)
}

/// One browser context: one person's cookies and storage.
#[derive(Debug)]
pub(crate) struct Context {
    conn: Arc<Connection>,
    id: String,
}

impl Context {
    /// A new tab in this context.
    pub(crate) async fn new_page(&self) -> anyhow::Result<Page> {
        open_page(&self.conn, Some(self.id.clone())).await
    }

    /// The names of every cookie this context holds (HttpOnly ones included).
    pub(crate) async fn cookie_names(&self) -> anyhow::Result<Vec<String>> {
        let reply = self
            .conn
            .call(
                None,
                "Storage.getCookies",
                json!({ "browserContextId": self.id }),
            )
            .await?;
        Ok(reply["cookies"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter_map(|c| c["name"].as_str().map(str::to_owned))
            .collect())
    }
}

// ---------------------------------------------------------------------------------------------
// Pages.

#[derive(Debug)]
struct Events {
    rx: mpsc::UnboundedReceiver<Value>,
    /// Exceptions, `console.error`s and error log entries seen so far.
    errors: Vec<String>,
}

impl Events {
    /// Keeps the errors among the events; returns the event.
    fn note(&mut self, event: Value) -> Value {
        let params = &event["params"];
        let error = match event["method"].as_str() {
            Some("Runtime.exceptionThrown") => Some(exception_text(&params["exceptionDetails"])),
            Some("Runtime.consoleAPICalled")
                if matches!(params["type"].as_str(), Some("error" | "assert")) =>
            {
                let args = params["args"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                let texts: Vec<String> = args.iter().map(remote_object_text).collect();
                Some(format!(
                    "console.{}: {}",
                    params["type"].as_str().unwrap_or("error"),
                    texts.join(" ")
                ))
            }
            Some("Log.entryAdded") if params["entry"]["level"] == "error" => {
                let entry = &params["entry"];
                let url = entry["url"]
                    .as_str()
                    .map(|u| format!(" ({u})"))
                    .unwrap_or_default();
                Some(format!(
                    "{}: {}{url}",
                    entry["source"].as_str().unwrap_or("log"),
                    entry["text"].as_str().unwrap_or("")
                ))
            }
            _ => None,
        };
        self.errors.extend(error);
        event
    }

    /// Notes the errors of the events already queued and drops the events.
    fn drain(&mut self) {
        while let Ok(event) = self.rx.try_recv() {
            self.note(event);
        }
    }
}

fn remote_object_text(object: &Value) -> String {
    match (&object["value"], object["description"].as_str()) {
        (Value::String(s), _) => s.clone(),
        (Value::Null, Some(description)) => description.to_owned(),
        (value, _) => value.to_string(),
    }
}

fn exception_text(details: &Value) -> String {
    let message = details["exception"]["description"]
        .as_str()
        .or_else(|| details["text"].as_str())
        .unwrap_or("unknown exception");
    match (
        details["lineNumber"].as_u64(),
        details["columnNumber"].as_u64(),
    ) {
        (Some(line), Some(column)) => format!("{message} (at {}:{})", line + 1, column + 1),
        _ => message.to_owned(),
    }
}

/// A string as a JavaScript string literal.
fn js_string(s: &str) -> String {
    Value::from(s).to_string()
}

/// Shortens long JavaScript for error messages.
fn abbreviate(js: &str) -> String {
    const MAX: usize = 200;
    match js.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &js[..cut]),
        None => js.to_owned(),
    }
}

/// One tab, attached with its own DevTools session. Dropping it closes the tab.
#[derive(Debug)]
pub(crate) struct Page {
    conn: Arc<Connection>,
    session_id: String,
    target_id: String,
    main_frame_id: String,
    events: tokio::sync::Mutex<Events>,
}

impl Page {
    /// Sends a DevTools command to this page's session, returns its `result`.
    pub(crate) async fn cmd(&self, method: &str, params: Value) -> anyhow::Result<Value> {
        self.conn.call(Some(&self.session_id), method, params).await
    }

    /// Navigates to `url` and waits (at most [`LOAD_TIMEOUT`]) for the `load` event of the
    /// document the navigation created, so the old document cannot be mistaken for it. A
    /// network failure (refused connection, ...) is an error; an HTTP error status is not.
    pub(crate) async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.events.lock().await.drain();
        let navigation = self.cmd("Page.navigate", json!({ "url": url })).await?;
        if let Some(error) = navigation["errorText"].as_str().filter(|e| !e.is_empty()) {
            bail!("navigating to {url} failed: {error}");
        }
        match navigation["loaderId"].as_str() {
            Some(loader) => {
                self.wait_load(|l| l == loader, &format!("navigating to {url}"))
                    .await
            }
            // A same-document navigation (only the fragment changed): nothing loads.
            None => Ok(()),
        }
    }

    /// Waits for the main frame's `load` lifecycle event of a loader accepted by `is_new`,
    /// then for `document.readyState == "complete"` in the new document.
    async fn wait_load(&self, is_new: impl Fn(&str) -> bool, what: &str) -> anyhow::Result<()> {
        let start = Instant::now();
        let deadline = start + LOAD_TIMEOUT;
        {
            let mut events = self.events.lock().await;
            loop {
                let event = match tokio::time::timeout_at(deadline.into(), events.rx.recv()).await {
                    Ok(Some(event)) => events.note(event),
                    Ok(None) => {
                        bail!("{what}: the connection to the browser ended before the page loaded")
                    }
                    Err(_) => bail!("{what}: the page did not load within {LOAD_TIMEOUT:?}"),
                };
                let params = &event["params"];
                if event["method"] == "Page.lifecycleEvent"
                    && params["name"] == "load"
                    && params["frameId"] == self.main_frame_id.as_str()
                    && params["loaderId"].as_str().is_some_and(&is_new)
                {
                    break;
                }
            }
        }
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_secs(1));
        self.wait_for("document.readyState === 'complete'", left)
            .await
            .with_context(|| format!("{what}: after the load event"))
    }

    /// The loader id of the main frame's current document.
    async fn current_loader(&self) -> anyhow::Result<String> {
        let tree = self.cmd("Page.getFrameTree", json!({})).await?;
        Ok(str_field(&tree["frameTree"]["frame"], "loaderId")?.to_owned())
    }

    /// Evaluates a JavaScript expression in the page (promises are awaited) and returns its
    /// value as JSON (`null` for `undefined`; DOM nodes come back as `{}`). An exception
    /// thrown by it is an error with the exception's text.
    pub(crate) async fn eval(&self, js: &str) -> anyhow::Result<Value> {
        self.evaluate(js, true).await
    }

    async fn evaluate(&self, js: &str, return_value: bool) -> anyhow::Result<Value> {
        let mut reply = self
            .cmd(
                "Runtime.evaluate",
                json!({
                    "expression": js,
                    "returnByValue": return_value,
                    "awaitPromise": true,
                    "userGesture": true,
                }),
            )
            .await
            .with_context(|| format!("evaluating `{}`", abbreviate(js)))?;
        if let Some(details) = reply.get("exceptionDetails") {
            bail!(
                "JavaScript exception: {}\n  evaluating `{}`",
                exception_text(details),
                abbreviate(js)
            );
        }
        let result = &mut reply["result"];
        Ok(match result["unserializableValue"].as_str() {
            // NaN, Infinity, -0, bigints.
            Some(value) => Value::from(value),
            None => result["value"].take(),
        })
    }

    /// Polls the JavaScript expression `condition` (promises awaited) until it is truthy.
    /// Exceptions while polling (e.g. during a navigation) are retried; on timeout the error
    /// names the condition and the last exception.
    pub(crate) async fn wait_for(&self, condition: &str, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        let js = format!("(async () => Boolean(await (\n{condition}\n)))()");
        let mut last_error = None;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left.max(POLL_INTERVAL), self.eval(&js)).await {
                Ok(Ok(Value::Bool(true))) => return Ok(()),
                Ok(Ok(_)) => {}
                Ok(Err(error)) => last_error = Some(error),
                Err(_) => {}
            }
            if Instant::now() >= deadline {
                let last = last_error
                    .map(|e| format!(" (last error: {e:#})"))
                    .unwrap_or_default();
                bail!("timed out after {timeout:?} waiting for `{condition}`{last}");
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Clicks the first element matching the CSS `selector` (`element.click()`); an error if
    /// none matches or it is disabled.
    pub(crate) async fn click(&self, selector: &str) -> anyhow::Result<()> {
        let js = format!(
            "(() => {{ const el = document.querySelector({sel}); if (!el) return 'missing'; \
             if (el.disabled) return 'disabled'; el.click(); return 'ok'; }})()",
            sel = js_string(selector)
        );
        match self.eval(&js).await?.as_str() {
            Some("ok") => Ok(()),
            Some("disabled") => bail!("click: `{selector}` is disabled"),
            _ => bail!("click: no element matches `{selector}`"),
        }
    }

    /// Sets the value of the input, textarea or select matching `selector` and dispatches
    /// `input` and `change` events (bubbling), as typing would.
    pub(crate) async fn fill(&self, selector: &str, value: &str) -> anyhow::Result<()> {
        let js = format!(
            "(() => {{ const el = document.querySelector({sel}); if (!el) return 'missing'; \
             if (!('value' in el)) return 'novalue'; el.focus(); el.value = {val}; \
             if (el.value !== {val}) return 'rejected'; \
             el.dispatchEvent(new Event('input', {{ bubbles: true }})); \
             el.dispatchEvent(new Event('change', {{ bubbles: true }})); return 'ok'; }})()",
            sel = js_string(selector),
            val = js_string(value)
        );
        match self.eval(&js).await?.as_str() {
            Some("ok") => Ok(()),
            Some("novalue") => bail!("fill: `{selector}` has no value to set"),
            Some("rejected") => bail!("fill: `{selector}` did not take the value {value:?}"),
            _ => bail!("fill: no element matches `{selector}`"),
        }
    }

    /// Clicks `selector` (a link, a submit button) and waits for the next document to load
    /// (redirects followed), at most [`LOAD_TIMEOUT`].
    pub(crate) async fn click_and_wait_load(&self, selector: &str) -> anyhow::Result<()> {
        let old = self.current_loader().await?;
        self.events.lock().await.drain();
        self.click(selector).await?;
        self.wait_load(
            |loader| loader != old,
            &format!("after clicking `{selector}`"),
        )
        .await
    }

    /// Submits the form matching `form_selector` as its submit button would
    /// (`requestSubmit()`: validation and `submit` event included), waits for the next
    /// document to load.
    pub(crate) async fn submit_and_wait_load(&self, form_selector: &str) -> anyhow::Result<()> {
        let old = self.current_loader().await?;
        self.events.lock().await.drain();
        let js = format!(
            "(() => {{ const f = document.querySelector({sel}); \
             if (!(f instanceof HTMLFormElement)) return false; f.requestSubmit(); return true; }})()",
            sel = js_string(form_selector)
        );
        if self.eval(&js).await? != Value::Bool(true) {
            bail!("submit: no form matches `{form_selector}`");
        }
        self.wait_load(
            |loader| loader != old,
            &format!("after submitting `{form_selector}`"),
        )
        .await
    }

    /// The `textContent` of the first element matching `selector`, trimmed.
    pub(crate) async fn text(&self, selector: &str) -> anyhow::Result<String> {
        let js = format!(
            "(() => {{ const el = document.querySelector({sel}); return el ? el.textContent.trim() : null; }})()",
            sel = js_string(selector)
        );
        match self.eval(&js).await? {
            Value::String(text) => Ok(text),
            _ => bail!("text: no element matches `{selector}`"),
        }
    }

    /// The current document's URL.
    pub(crate) async fn url(&self) -> anyhow::Result<String> {
        match self.eval("location.href").await? {
            Value::String(url) => Ok(url),
            other => bail!("location.href is not a string: {other}"),
        }
    }

    /// A PNG of the whole page (not just the viewport), as bytes.
    pub(crate) async fn screenshot_png(&self) -> anyhow::Result<Vec<u8>> {
        let metrics = self.cmd("Page.getLayoutMetrics", json!({})).await?;
        let size = metrics
            .get("cssContentSize")
            .unwrap_or(&metrics["contentSize"]);
        let width = size["width"].as_f64().unwrap_or(1280.0).ceil().max(1.0);
        let height = size["height"]
            .as_f64()
            .unwrap_or(900.0)
            .ceil()
            .clamp(1.0, MAX_SCREENSHOT_HEIGHT);
        let shot = self
            .cmd(
                "Page.captureScreenshot",
                json!({
                    "format": "png",
                    "captureBeyondViewport": true,
                    "clip": { "x": 0, "y": 0, "width": width, "height": height, "scale": 1 },
                }),
            )
            .await?;
        base64::engine::general_purpose::STANDARD
            .decode(str_field(&shot, "data")?)
            .context("decoding the screenshot's base64")
    }

    /// Writes a full-page PNG screenshot to `path`, creating its parent folders.
    pub(crate) async fn screenshot(&self, path: impl AsRef<Path>) -> anyhow::Result<()> {
        let path = path.as_ref();
        let png = self.screenshot_png().await?;
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(path, png).with_context(|| format!("writing {}", path.display()))
    }

    /// Uncaught exceptions, `console.error`/`console.assert` messages and error log entries
    /// (CSP violations, failed resource loads such as a 404) seen on this page so far,
    /// across navigations.
    pub(crate) async fn errors(&self) -> Vec<String> {
        let mut events = self.events.lock().await;
        events.drain();
        events.errors.clone()
    }

    /// Runs axe-core on the current document and returns its violations. `axe_source` is the
    /// text of `axe.min.js` (see [`axe_source`]); it is injected through the DevTools
    /// protocol, which the page's Content-Security-Policy does not apply to, once per
    /// document.
    pub(crate) async fn axe(&self, axe_source: &str) -> anyhow::Result<Vec<Violation>> {
        let loaded = self
            .eval("typeof window.axe === 'object' && typeof window.axe.run === 'function'")
            .await?;
        if loaded != Value::Bool(true) {
            // The newline ends a trailing `//` comment (source map) of the script.
            self.evaluate(&format!("{axe_source}\n;undefined"), false)
                .await
                .context("injecting axe-core")?;
        }
        let found = self.eval(AXE_RUN).await.context("running axe-core")?;
        let violations = found
            .as_array()
            .with_context(|| format!("axe-core returned {found}"))?;
        Ok(violations.iter().map(Violation::from_json).collect())
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        self.conn.routes().sessions.remove(&self.session_id);
        self.conn.send_nowait(
            None,
            "Target.closeTarget",
            json!({ "targetId": self.target_id }),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// axe-core.

/// Runs axe on the document; returns only what the tests need of the violations.
const AXE_RUN: &str = r"axe.run(document, { resultTypes: ['violations'] }).then(r => r.violations.map(v => ({
  id: v.id,
  impact: v.impact ?? null,
  help: v.help,
  helpUrl: v.helpUrl,
  nodes: v.nodes.map(n => ({
    target: n.target.map(t => Array.isArray(t) ? t.join(' >>> ') : String(t)),
    html: n.html,
  })),
})))";

/// The text of `axe.min.js`: from `VIDEOAMT_AXE_JS` if set, else from
/// `<workspace>/target/axe-core/node_modules/axe-core/axe.min.js`.
pub(crate) fn axe_source() -> anyhow::Result<String> {
    let path = match std::env::var_os("VIDEOAMT_AXE_JS") {
        Some(path) => PathBuf::from(path),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("target/axe-core/node_modules/axe-core/axe.min.js"),
    };
    std::fs::read_to_string(&path).with_context(|| {
        format!(
            "reading axe-core from {}: install it in the workspace root with \
             `npm install --prefix target/axe-core axe-core@4`, or set VIDEOAMT_AXE_JS to an axe.min.js",
            path.display()
        )
    })
}

/// One axe rule a page breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Violation {
    /// The rule, e.g. `image-alt`.
    pub(crate) id: String,
    /// `minor`, `moderate`, `serious` or `critical` (axe leaves it out for some rules).
    pub(crate) impact: Option<String>,
    pub(crate) help: String,
    pub(crate) help_url: String,
    pub(crate) nodes: Vec<ViolationNode>,
}

/// An element breaking the rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ViolationNode {
    /// CSS selectors, one per frame level (shadow roots joined with ` >>> `).
    pub(crate) target: Vec<String>,
    /// The element's opening tag.
    pub(crate) html: String,
}

impl Violation {
    fn from_json(v: &Value) -> Violation {
        let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        Violation {
            id: text(&v["id"]),
            impact: v["impact"].as_str().map(str::to_owned),
            help: text(&v["help"]),
            help_url: text(&v["helpUrl"]),
            nodes: v["nodes"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .map(|n| ViolationNode {
                    target: n["target"]
                        .as_array()
                        .map(Vec::as_slice)
                        .unwrap_or_default()
                        .iter()
                        .map(text)
                        .collect(),
                    html: text(&n["html"]),
                })
                .collect(),
        }
    }

    /// Impact `serious` or `critical`.
    pub(crate) fn is_serious(&self) -> bool {
        matches!(self.impact.as_deref(), Some("serious" | "critical"))
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let impact = self.impact.as_deref().unwrap_or("no impact given");
        write!(
            f,
            "{} ({impact}): {} <{}>",
            self.id, self.help, self.help_url
        )?;
        for node in &self.nodes {
            write!(f, "\n    {}  {}", node.target.join(" "), node.html)?;
        }
        Ok(())
    }
}

/// The violations of impact `serious` or `critical`.
pub(crate) fn serious_violations(violations: &[Violation]) -> Vec<&Violation> {
    violations.iter().filter(|v| v.is_serious()).collect()
}

/// The violations one per paragraph, for an assertion message.
pub(crate) fn report<'a>(violations: impl IntoIterator<Item = &'a Violation>) -> String {
    violations
        .into_iter()
        .map(Violation::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}
