//! The media relay as a child process of `videoamt bench media`, so that the benchmark's
//! server figures (CPU from `/proc/<pid>/stat`, RSS from `/proc/<pid>/status`) are the
//! relay's alone and its peers do not run inside the relay's process.
//!
//! - [`serve`] is the hidden `videoamt bench media-relay`: it starts a [`Str0mRelay`], prints
//!   one line `{"ready":"<udp address>"}` and then answers requests on stdin, one JSON object
//!   a line, in order, until stdin closes.
//! - [`RemoteRelay`] is the benchmark's side: it starts that child and implements
//!   [`MediaRelay`] over the pipe, so the code that drives calls is the same as in-process.
//!
//! The control protocol (JSON lines, `{"ready":…}` first) is
//! [`videoamt_core::media::control`]; another relay program that speaks it can be measured in
//! the same way (`videoamt bench media --relay-program`). The event feed is not carried:
//! [`RemoteRelay::events`] ends at once (the benchmark reads counters, not events).

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin};
use tokio::sync::oneshot;
use videoamt_adapters::media::{MediaConfig, Str0mRelay};
use videoamt_core::domain::SessionId;
use videoamt_core::domain::events::Party;
use videoamt_core::media::control::{
    Op, Reply, Request, WireCallStats, WireCounts, from_value, handle_line, ready_line,
};
use videoamt_core::media::{CallStats, MediaError, MediaEvents, MediaRelay, RelayCounts};

/// `videoamt bench media-relay`: the relay on `bind` for at most `max_calls` calls, driven
/// over stdin/stdout until stdin closes.
pub(crate) async fn serve(bind: SocketAddr, max_calls: usize) -> anyhow::Result<()> {
    let relay = Str0mRelay::start(MediaConfig::new(bind, max_calls))?;
    let mut out = std::io::stdout();
    writeln!(out, "{}", ready_line(relay.local_addr()))?;
    out.flush()?;
    // Blocking reads on a thread of their own; a line that is not UTF-8 still gets a reply.
    let (lines, mut incoming) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::Builder::new()
        .name("media-relay-stdin".into())
        .spawn(move || {
            let mut stdin = std::io::stdin().lock();
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match stdin.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        let line = String::from_utf8_lossy(&buf).trim().to_owned();
                        if !line.is_empty() && lines.send(line).is_err() {
                            return;
                        }
                    }
                }
            }
        })?;
    // In order, one at a time: a request is answered before the next is read, as the room's
    // calls on one task would be.
    while let Some(line) = incoming.recv().await {
        let reply = handle_line(&relay, &line).await;
        let mut out = out.lock();
        serde_json::to_writer(&mut out, &reply)?;
        out.write_all(b"\n")?;
        out.flush()?;
    }
    drop(relay);
    Ok(())
}

/// Requests waiting for their reply; `None` once the relay's stdout has closed.
type Pending = Arc<Mutex<Option<HashMap<u64, oneshot::Sender<Reply>>>>>;

/// The benchmark's handle on a `bench media-relay` child. [`RemoteRelay::stop`] closes its
/// stdin and waits for it; dropping it kills the child.
pub(crate) struct RemoteRelay {
    child: Child,
    pid: u32,
    addr: SocketAddr,
    stdin: tokio::sync::Mutex<Option<ChildStdin>>,
    pending: Pending,
    next_id: AtomicU64,
}

impl std::fmt::Debug for RemoteRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteRelay")
            .field("pid", &self.pid)
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl RemoteRelay {
    /// Starts this binary's `bench media-relay` on a loopback port, or `program` (another
    /// relay that speaks the same protocol) with `--bind 127.0.0.1:0 --max-calls N`.
    pub(crate) async fn start(
        max_calls: usize,
        program: Option<&std::path::Path>,
    ) -> anyhow::Result<Self> {
        let mut command = match program {
            Some(program) => tokio::process::Command::new(program),
            None => {
                let exe = std::env::current_exe().context("cannot find this program's binary")?;
                let mut c = tokio::process::Command::new(exe);
                c.args(["bench", "media-relay"]);
                c
            }
        };
        let name = match program {
            Some(p) => p.display().to_string(),
            None => "videoamt bench media-relay".into(),
        };
        let mut child = command
            .args(["--bind", "127.0.0.1:0", "--max-calls"])
            .arg(max_calls.to_string())
            .env("VIDEOAMT_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start `{name}`"))?;
        let pid = child.id().context("the relay exited at once")?;
        let stdin = child.stdin.take().context("no stdin of the relay")?;
        let stdout = child.stdout.take().context("no stdout of the relay")?;
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .context("the relay did not report ready within 30 s")??
            .context("the relay exited before it was ready")?;
        let ready: Value = serde_json::from_str(&first)
            .with_context(|| format!("the relay's first line is not JSON: {first}"))?;
        let addr: SocketAddr = ready
            .get("ready")
            .and_then(Value::as_str)
            .with_context(|| format!("the relay's first line is not `ready`: {first}"))?
            .parse()?;
        let pending: Pending = Arc::new(Mutex::new(Some(HashMap::new())));
        let replies = pending.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let Ok(reply) = serde_json::from_str::<Reply>(&line) else {
                    eprintln!("bench media: unreadable line from the relay: {line}");
                    continue;
                };
                let waiting = reply
                    .id
                    .and_then(|id| replies.lock().ok()?.as_mut()?.remove(&id));
                match waiting {
                    Some(tx) => {
                        let _ = tx.send(reply);
                    }
                    None => eprintln!("bench media: reply to no request from the relay: {line}"),
                }
            }
            // The relay is gone: every waiting request fails with `Stopped`.
            if let Ok(mut p) = replies.lock() {
                *p = None;
            }
        });
        Ok(Self {
            child,
            pid,
            addr,
            stdin: tokio::sync::Mutex::new(Some(stdin)),
            pending,
            next_id: AtomicU64::new(1),
        })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// Closes the relay's stdin, so that it closes every leg and exits; kills it after 10 s.
    pub(crate) async fn stop(mut self) -> anyhow::Result<()> {
        drop(self.stdin.lock().await.take());
        match tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await {
            Ok(status) => {
                let status = status?;
                anyhow::ensure!(status.success(), "the relay exited with {status}");
            }
            Err(_) => {
                eprintln!("bench media: the relay did not exit 10 s after stdin closed");
                self.child.kill().await?;
            }
        }
        Ok(())
    }

    async fn ask(&self, op: Op) -> Result<Value, MediaError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .map_err(|_| MediaError::Internal("poisoned".into()))?
            .as_mut()
            .ok_or(MediaError::Stopped)?
            .insert(id, tx);
        let mut line = serde_json::to_vec(&Request { id, op })
            .map_err(|e| MediaError::Internal(e.to_string()))?;
        line.push(b'\n');
        {
            let mut stdin = self.stdin.lock().await;
            let sent = match stdin.as_mut() {
                Some(s) => s.write_all(&line).await.is_ok() && s.flush().await.is_ok(),
                None => false,
            };
            if !sent {
                if let Ok(mut p) = self.pending.lock()
                    && let Some(p) = p.as_mut()
                {
                    p.remove(&id);
                }
                return Err(MediaError::Stopped);
            }
        }
        rx.await.map_err(|_| MediaError::Stopped)?.into_result()
    }
}

#[async_trait]
impl MediaRelay for RemoteRelay {
    async fn join(
        &self,
        call: SessionId,
        party: Party,
        offer_sdp: String,
    ) -> Result<String, MediaError> {
        from_value(
            self.ask(Op::Join {
                call,
                party,
                offer: offer_sdp,
            })
            .await?,
        )
    }

    async fn set_admitted(&self, call: SessionId, admitted: bool) -> Result<(), MediaError> {
        self.ask(Op::SetAdmitted { call, admitted }).await.map(drop)
    }

    async fn leave(&self, call: SessionId, party: Party) -> Result<(), MediaError> {
        self.ask(Op::Leave { call, party }).await.map(drop)
    }

    async fn close(&self, call: SessionId) -> Result<(), MediaError> {
        self.ask(Op::Close { call }).await.map(drop)
    }

    fn events(&self) -> MediaEvents {
        Box::pin(futures::stream::empty())
    }

    async fn stats(&self, call: SessionId) -> Result<Option<CallStats>, MediaError> {
        let stats: Option<WireCallStats> = from_value(self.ask(Op::Stats { call }).await?)?;
        Ok(stats.map(Into::into))
    }

    async fn counts(&self) -> Result<RelayCounts, MediaError> {
        let c: WireCounts = from_value(self.ask(Op::Counts).await?)?;
        Ok(c.into())
    }
}
