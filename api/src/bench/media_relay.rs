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
//! The control protocol (JSON lines):
//!
//! ```text
//! → {"id":1,"op":"join","call":"<uuid>","party":"citizen","offer":"<sdp>"}
//! ← {"id":1,"ok":"<sdp answer>"}
//! → {"id":2,"op":"set_admitted","call":"<uuid>","admitted":true}    ← {"id":2,"ok":null}
//! → {"id":3,"op":"leave","call":"<uuid>","party":"clerk"}           ← {"id":3,"ok":null}
//! → {"id":4,"op":"close","call":"<uuid>"}                           ← {"id":4,"ok":null}
//! → {"id":5,"op":"stats","call":"<uuid>"}                           ← {"id":5,"ok":{…}|null}
//! → {"id":6,"op":"counts"}                        ← {"id":6,"ok":{"calls":0,"legs":0,"routes":0}}
//! ← {"id":7,"err":{"kind":"full","max":40}}
//! ← {"id":null,"err":{"kind":"protocol","message":"…"}}   (a line that is not a request)
//! ```
//!
//! The event feed is not carried: [`RemoteRelay::events`] ends at once (the benchmark reads
//! counters, not events).

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin};
use tokio::sync::oneshot;
use videoamt_adapters::media::{MediaConfig, Str0mRelay};
use videoamt_core::domain::SessionId;
use videoamt_core::domain::events::Party;
use videoamt_core::media::{CallStats, LegStats, MediaError, MediaEvents, MediaRelay, RelayCounts};

/// One request: an id the reply repeats, and the operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Request {
    id: u64,
    #[serde(flatten)]
    op: Op,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Op {
    Join {
        call: SessionId,
        party: Party,
        offer: String,
    },
    SetAdmitted {
        call: SessionId,
        admitted: bool,
    },
    Leave {
        call: SessionId,
        party: Party,
    },
    Close {
        call: SessionId,
    },
    Stats {
        call: SessionId,
    },
    Counts,
}

/// One reply: `ok` with the result (`null` for none), or `err`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Reply {
    id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ok: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    err: Option<WireError>,
}

/// [`MediaError`] on the wire, plus `protocol` for a line that is not a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum WireError {
    Full { max: usize },
    BadOffer { message: String },
    Stopped,
    Internal { message: String },
    Protocol { message: String },
}

impl From<MediaError> for WireError {
    fn from(e: MediaError) -> Self {
        match e {
            MediaError::Full { max } => Self::Full { max },
            MediaError::BadOffer(message) => Self::BadOffer { message },
            MediaError::Stopped => Self::Stopped,
            MediaError::Internal(message) => Self::Internal { message },
        }
    }
}

impl From<WireError> for MediaError {
    fn from(e: WireError) -> Self {
        match e {
            WireError::Full { max } => Self::Full { max },
            WireError::BadOffer { message } => Self::BadOffer(message),
            WireError::Stopped => Self::Stopped,
            WireError::Internal { message } => Self::Internal(message),
            WireError::Protocol { message } => Self::Internal(format!("protocol: {message}")),
        }
    }
}

/// [`CallStats`] and [`RelayCounts`] are `Serialize` only; these read them back.
#[derive(Debug, Deserialize)]
struct WireCallStats {
    admitted: bool,
    citizen: Option<WireLegStats>,
    clerk: Option<WireLegStats>,
}

#[derive(Debug, Deserialize)]
struct WireLegStats {
    connected: bool,
    packets_received: u64,
    bytes_received: u64,
    packets_forwarded: u64,
    bytes_forwarded: u64,
    packets_dropped: u64,
}

#[derive(Debug, Deserialize)]
struct WireCounts {
    calls: usize,
    legs: usize,
    routes: usize,
}

impl From<WireLegStats> for LegStats {
    fn from(l: WireLegStats) -> Self {
        LegStats {
            connected: l.connected,
            packets_received: l.packets_received,
            bytes_received: l.bytes_received,
            packets_forwarded: l.packets_forwarded,
            bytes_forwarded: l.bytes_forwarded,
            packets_dropped: l.packets_dropped,
        }
    }
}

/// Answers one line of the control protocol. Never panics: a line that is not a request gets
/// a `protocol` error with the id, if one could be read.
async fn handle_line(relay: &dyn MediaRelay, line: &str) -> Reply {
    let request = match serde_json::from_str::<Request>(line) {
        Ok(r) => r,
        Err(e) => {
            let id = serde_json::from_str::<Value>(line)
                .ok()
                .and_then(|v| v.get("id")?.as_u64());
            return Reply {
                id,
                ok: None,
                err: Some(WireError::Protocol {
                    message: e.to_string(),
                }),
            };
        }
    };
    let result = match request.op {
        Op::Join { call, party, offer } => relay.join(call, party, offer).await.map(Value::from),
        Op::SetAdmitted { call, admitted } => relay
            .set_admitted(call, admitted)
            .await
            .map(|()| Value::Null),
        Op::Leave { call, party } => relay.leave(call, party).await.map(|()| Value::Null),
        Op::Close { call } => relay.close(call).await.map(|()| Value::Null),
        Op::Stats { call } => relay.stats(call).await.and_then(to_value),
        Op::Counts => relay.counts().await.and_then(to_value),
    };
    match result {
        Ok(v) => Reply {
            id: Some(request.id),
            ok: Some(v),
            err: None,
        },
        Err(e) => Reply {
            id: Some(request.id),
            ok: None,
            err: Some(e.into()),
        },
    }
}

fn to_value(v: impl Serialize) -> Result<Value, MediaError> {
    serde_json::to_value(v).map_err(|e| MediaError::Internal(e.to_string()))
}

/// `videoamt bench media-relay`: the relay on `bind` for at most `max_calls` calls, driven
/// over stdin/stdout until stdin closes.
pub(crate) async fn serve(bind: SocketAddr, max_calls: usize) -> anyhow::Result<()> {
    let relay = Str0mRelay::start(MediaConfig::new(bind, max_calls))?;
    let mut out = std::io::stdout();
    let ready = serde_json::json!({ "ready": relay.local_addr().to_string() });
    writeln!(out, "{ready}")?;
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
    /// Starts this binary's `bench media-relay` on a loopback port.
    pub(crate) async fn start(max_calls: usize) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("cannot find this program's binary")?;
        let mut child = tokio::process::Command::new(exe)
            .args([
                "bench",
                "media-relay",
                "--bind",
                "127.0.0.1:0",
                "--max-calls",
            ])
            .arg(max_calls.to_string())
            .env("VIDEOAMT_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("cannot start `videoamt bench media-relay`")?;
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

    /// The relay's UDP address (the host candidate of its answers).
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.addr
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
        let reply = rx.await.map_err(|_| MediaError::Stopped)?;
        match reply.err {
            Some(e) => Err(e.into()),
            None => Ok(reply.ok.unwrap_or(Value::Null)),
        }
    }
}

fn from_value<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, MediaError> {
    serde_json::from_value(v).map_err(|e| MediaError::Internal(format!("relay reply: {e}")))
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
        Ok(stats.map(|s| CallStats {
            admitted: s.admitted,
            citizen: s.citizen.map(Into::into),
            clerk: s.clerk.map(Into::into),
        }))
    }

    async fn counts(&self) -> Result<RelayCounts, MediaError> {
        let c: WireCounts = from_value(self.ask(Op::Counts).await?)?;
        Ok(RelayCounts {
            calls: c.calls,
            legs: c.legs,
            routes: c.routes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    /// Answers from fixed values and remembers what it was asked.
    #[derive(Default)]
    struct Fake {
        asked: Mutex<Vec<String>>,
    }

    #[async_trait]
    impl MediaRelay for Fake {
        async fn join(
            &self,
            _: SessionId,
            party: Party,
            offer: String,
        ) -> Result<String, MediaError> {
            self.asked.lock().unwrap().push(format!("join {party:?}"));
            if offer.is_empty() {
                return Err(MediaError::Full { max: 2 });
            }
            Ok(format!("answer to {offer}"))
        }
        async fn set_admitted(&self, _: SessionId, admitted: bool) -> Result<(), MediaError> {
            self.asked.lock().unwrap().push(format!("admit {admitted}"));
            Ok(())
        }
        async fn leave(&self, _: SessionId, _: Party) -> Result<(), MediaError> {
            Ok(())
        }
        async fn close(&self, _: SessionId) -> Result<(), MediaError> {
            Err(MediaError::Stopped)
        }
        fn events(&self) -> MediaEvents {
            Box::pin(futures::stream::empty())
        }
        async fn stats(&self, _: SessionId) -> Result<Option<CallStats>, MediaError> {
            Ok(Some(CallStats {
                admitted: true,
                citizen: Some(LegStats {
                    connected: true,
                    packets_received: 7,
                    ..LegStats::default()
                }),
                clerk: None,
            }))
        }
        async fn counts(&self) -> Result<RelayCounts, MediaError> {
            Ok(RelayCounts {
                calls: 1,
                legs: 2,
                routes: 3,
            })
        }
    }

    async fn reply(line: &str) -> Value {
        let r = handle_line(&Fake::default(), line).await;
        serde_json::to_value(r).unwrap()
    }

    #[tokio::test]
    async fn requests_read_as_in_the_module_docs() {
        let call = Uuid::now_v7();
        let r = reply(&format!(
            r#"{{"id":1,"op":"join","call":"{call}","party":"citizen","offer":"v=0"}}"#
        ))
        .await;
        assert_eq!(r, serde_json::json!({"id": 1, "ok": "answer to v=0"}));
        let r = reply(&format!(
            r#"{{"id":2,"op":"set_admitted","call":"{call}","admitted":true}}"#
        ))
        .await;
        assert_eq!(r, serde_json::json!({"id": 2, "ok": null}));
        let r = reply(&format!(r#"{{"id":3,"op":"stats","call":"{call}"}}"#)).await;
        assert_eq!(r["ok"]["citizen"]["packets_received"], 7);
        let r = reply(r#"{"id":4,"op":"counts"}"#).await;
        assert_eq!(
            r["ok"],
            serde_json::json!({"calls": 1, "legs": 2, "routes": 3})
        );
    }

    #[tokio::test]
    async fn relay_errors_keep_their_kind() {
        let call = Uuid::now_v7();
        let r = reply(&format!(
            r#"{{"id":5,"op":"join","call":"{call}","party":"clerk","offer":""}}"#
        ))
        .await;
        assert_eq!(
            r,
            serde_json::json!({"id": 5, "err": {"kind": "full", "max": 2}})
        );
        let parsed: Reply = serde_json::from_value(r).unwrap();
        assert_eq!(
            MediaError::from(parsed.err.unwrap()),
            MediaError::Full { max: 2 }
        );
        let r = reply(&format!(r#"{{"id":6,"op":"close","call":"{call}"}}"#)).await;
        assert_eq!(r["err"]["kind"], "stopped");
    }

    #[tokio::test]
    async fn malformed_lines_get_an_error_reply() {
        for (line, id) in [
            ("not json", Value::Null),
            ("{}", Value::Null),
            (r#"{"id":7}"#, Value::from(7)),
            (r#"{"id":8,"op":"explode"}"#, Value::from(8)),
            (
                r#"{"id":9,"op":"close","call":"not-a-uuid"}"#,
                Value::from(9),
            ),
            (
                r#"{"id":10,"op":"leave","call":"0190c4f5-6a3e-7cc1-9b6e-1a2b3c4d5e6f","party":"mayor"}"#,
                Value::from(10),
            ),
            (r#"{"id":-1,"op":"counts"}"#, Value::Null),
            ("[1,2,3]", Value::Null),
        ] {
            let r = reply(line).await;
            assert_eq!(r["id"], id, "{line}");
            assert_eq!(r["err"]["kind"], "protocol", "{line}");
            assert!(r.get("ok").is_none(), "{line}");
        }
    }

    #[test]
    fn requests_round_trip() {
        let request = Request {
            id: 42,
            op: Op::Leave {
                call: SessionId(Uuid::now_v7()),
                party: Party::Clerk,
            },
        };
        let json = serde_json::to_value(&request).unwrap();
        assert_eq!(json["op"], "leave");
        assert_eq!(json["party"], "clerk");
        assert_eq!(serde_json::from_value::<Request>(json).unwrap(), request);
    }
}
