//! The control protocol of a media relay in a child process: one JSON object a line, so that
//! `videoamt bench media` measures a relay in another process (its CPU and memory alone)
//! through the same [`MediaRelay`] port, whichever stack implements it (ADR 0015).
//!
//! The relay program takes `--bind ADDR --max-calls N`, prints one line
//! `{"ready":"<udp address>"}` ([`ready_line`]) and then answers requests on stdin, in order,
//! one at a time, until stdin closes ([`handle_line`]). The IO loop is the program's; this
//! module is only the pure part:
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
//! The event feed is not carried: the benchmark reads counters, not events.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{CallStats, LegStats, MediaError, MediaRelay, RelayCounts};
use crate::domain::SessionId;
use crate::domain::events::Party;

/// One request: an id the reply repeats, and the operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub id: u64,
    #[serde(flatten)]
    pub op: Op,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
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
pub struct Reply {
    pub id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ok: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub err: Option<WireError>,
}

impl Reply {
    /// The result the relay's method returned (`null` for `()`).
    pub fn into_result(self) -> Result<Value, MediaError> {
        match self.err {
            Some(e) => Err(e.into()),
            None => Ok(self.ok.unwrap_or(Value::Null)),
        }
    }
}

/// [`MediaError`] on the wire, plus `protocol` for a line that is not a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WireError {
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
pub struct WireCallStats {
    admitted: bool,
    citizen: Option<WireLegStats>,
    clerk: Option<WireLegStats>,
}

#[derive(Debug, Deserialize)]
pub struct WireLegStats {
    connected: bool,
    packets_received: u64,
    bytes_received: u64,
    packets_forwarded: u64,
    bytes_forwarded: u64,
    packets_dropped: u64,
}

#[derive(Debug, Deserialize)]
pub struct WireCounts {
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

impl From<WireCallStats> for CallStats {
    fn from(s: WireCallStats) -> Self {
        CallStats {
            admitted: s.admitted,
            citizen: s.citizen.map(Into::into),
            clerk: s.clerk.map(Into::into),
        }
    }
}

impl From<WireCounts> for RelayCounts {
    fn from(c: WireCounts) -> Self {
        RelayCounts {
            calls: c.calls,
            legs: c.legs,
            routes: c.routes,
        }
    }
}

/// Reads an `ok` value back into the type the relay's method returns.
pub fn from_value<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, MediaError> {
    serde_json::from_value(v).map_err(|e| MediaError::Internal(format!("relay reply: {e}")))
}

/// The relay program's first line: the UDP address its answers name.
pub fn ready_line(addr: impl std::fmt::Display) -> String {
    serde_json::json!({ "ready": addr.to_string() }).to_string()
}

/// Answers one line of the control protocol. Never panics: a line that is not a request gets
/// a `protocol` error with the id, if one could be read.
pub async fn handle_line(relay: &dyn MediaRelay, line: &str) -> Reply {
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

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::pin;
    use std::sync::Mutex;
    use std::task::{Context, Poll, Waker};

    use async_trait::async_trait;
    use uuid::Uuid;

    use super::*;
    use crate::media::MediaEvents;

    /// The fake relay never waits, so one poll finishes a request (core has no runtime).
    fn ready<F: Future>(f: F) -> F::Output {
        match pin!(f).poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(v) => v,
            Poll::Pending => panic!("the fake relay does not wait"),
        }
    }

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
            unimplemented!("the protocol does not carry events")
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

    fn reply(line: &str) -> Value {
        let r = ready(handle_line(&Fake::default(), line));
        serde_json::to_value(r).unwrap()
    }

    #[test]
    fn requests_read_as_in_the_module_docs() {
        let call = Uuid::now_v7();
        let r = reply(&format!(
            r#"{{"id":1,"op":"join","call":"{call}","party":"citizen","offer":"v=0"}}"#
        ));
        assert_eq!(r, serde_json::json!({"id": 1, "ok": "answer to v=0"}));
        let r = reply(&format!(
            r#"{{"id":2,"op":"set_admitted","call":"{call}","admitted":true}}"#
        ));
        assert_eq!(r, serde_json::json!({"id": 2, "ok": null}));
        let r = reply(&format!(r#"{{"id":3,"op":"stats","call":"{call}"}}"#));
        assert_eq!(r["ok"]["citizen"]["packets_received"], 7);
        let stats: Option<WireCallStats> = from_value(r["ok"].clone()).unwrap();
        let stats = CallStats::from(stats.unwrap());
        assert_eq!(stats.citizen.unwrap().packets_received, 7);
        assert!(stats.clerk.is_none());
        let r = reply(r#"{"id":4,"op":"counts"}"#);
        assert_eq!(
            r["ok"],
            serde_json::json!({"calls": 1, "legs": 2, "routes": 3})
        );
        let counts: WireCounts = from_value(r["ok"].clone()).unwrap();
        assert_eq!(RelayCounts::from(counts).routes, 3);
    }

    #[test]
    fn relay_errors_keep_their_kind() {
        let call = Uuid::now_v7();
        let r = reply(&format!(
            r#"{{"id":5,"op":"join","call":"{call}","party":"clerk","offer":""}}"#
        ));
        assert_eq!(
            r,
            serde_json::json!({"id": 5, "err": {"kind": "full", "max": 2}})
        );
        let parsed: Reply = serde_json::from_value(r).unwrap();
        assert_eq!(parsed.into_result(), Err(MediaError::Full { max: 2 }));
        let r = reply(&format!(r#"{{"id":6,"op":"close","call":"{call}"}}"#));
        assert_eq!(r["err"]["kind"], "stopped");
    }

    #[test]
    fn malformed_lines_get_an_error_reply() {
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
            let r = reply(line);
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

    #[test]
    fn the_ready_line_names_the_address() {
        let line = ready_line("127.0.0.1:4000");
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["ready"], "127.0.0.1:4000");
    }
}
