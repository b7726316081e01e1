//! One server per room (ADR 0028). Several servers may serve one log behind a load balancer,
//! and each runs its own media relay and room hub: a citizen's socket on one and the clerk's on
//! another would meet neither in a relay nor in a hub. So the room's sockets are steered to one
//! server, the one that holds the room's lease (`room:<session>` in the store's leases):
//!
//! - the first socket of a room takes the lease for its server, which then runs the call;
//! - a socket that reaches another server is checked there (link, sign-in, origin) as always,
//!   and then carried, message for message, to the holder's own socket endpoint, marked with
//!   [`HEADER`] so that the holder serves it without asking again;
//! - the holder renews the lease while it has a socket of the room, and gives it up when the
//!   last one closed. A holder that died loses the lease after [`TTL`]; the browsers'
//!   reconnection then lands on a server that takes it.
//!
//! Media follows the signaling: the holder's relay answers the offers, so both browsers send
//! to that server's UDP address. What the socket carries is signaling only, never media.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures::{SinkExt as _, StreamExt as _};
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use videoamt_core::domain::SessionId;

use crate::http::AppState;

/// Marks a socket that another server carries here: serve it, do not steer it again. A browser
/// that sends it itself only gets a call no other party's socket meets; the checks of its link
/// or sign-in are the same.
pub(crate) const HEADER: &str = "x-videoamt-steered";
/// How long a room stays with its server without a renewal.
pub(crate) const TTL: Duration = Duration::from_secs(30);
/// The close code when the server that runs the room does not answer (the browser reconnects).
const UNREACHABLE: u16 = 1013;

fn lease(session: SessionId) -> String {
    format!("room:{session}")
}

/// Where a room's sockets are served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Owner {
    Here,
    /// Another server, by its node URL.
    There(String),
}

/// Checks `--node-url`: an `http://host:port` base the other servers can open sockets to.
pub(crate) fn node_url(url: &str) -> anyhow::Result<String> {
    let trimmed = url.trim_end_matches('/');
    let rest = trimmed.strip_prefix("http://").ok_or_else(|| {
        anyhow::anyhow!(
            "--node-url (VIDEOAMT_NODE_URL) {url:?} must start with http:// (the servers reach \
             each other on the internal network)"
        )
    })?;
    let valid = !rest.is_empty()
        && !rest.contains(['/', '?', '#', '@', ' '])
        && format!("ws://{rest}/").into_client_request().is_ok();
    anyhow::ensure!(
        valid,
        "--node-url (VIDEOAMT_NODE_URL) {url:?} is not a server address like http://10.0.0.5:8080"
    );
    Ok(trimmed.to_owned())
}

/// The server that serves `session`'s sockets: this one when it takes or holds the room's
/// lease, when it runs alone, or when another server sent the socket here. A store that does
/// not answer keeps the socket here: a call on one server beats no call.
pub(crate) async fn owner(state: &AppState, session: SessionId, steered: bool) -> Owner {
    let Some(node) = &state.node else {
        return Owner::Here;
    };
    if steered {
        return Owner::Here;
    }
    match state.store.claim(&lease(session), node, TTL).await {
        Ok(holder) if holder == *node => Owner::Here,
        Ok(holder) => Owner::There(holder),
        Err(e) => {
            tracing::warn!(%session, error = %e, "the room's server is unknown; served here");
            Owner::Here
        }
    }
}

/// Keeps the room with this server while it has a socket of it.
pub(crate) async fn renew(state: &AppState, session: SessionId) {
    if let Some(node) = &state.node
        && let Err(e) = state.store.acquire(&lease(session), node, TTL).await
    {
        tracing::warn!(%session, error = %e, "the room's lease was not renewed");
    }
}

/// Gives the room up once its last socket here closed.
pub(crate) async fn release(state: &AppState, session: SessionId) {
    if let Some(node) = &state.node
        && let Err(e) = state.store.release(&lease(session), node).await
    {
        tracing::warn!(%session, error = %e, "the room's lease was not given up");
    }
}

/// Carries `browser`'s socket to the same `path` on the server `node`, with the browser's
/// cookie, until either side closes; the close code goes through both ways.
pub(crate) async fn carry(
    session: SessionId,
    browser: WebSocket,
    node: &str,
    path: &str,
    cookie: Option<&str>,
    max_message: usize,
) {
    let mut browser = browser;
    let target = format!("ws://{}{path}", node.trim_start_matches("http://"));
    let upstream = async {
        let mut request = target.as_str().into_client_request()?;
        request
            .headers_mut()
            .insert(HEADER, tungstenite::http::HeaderValue::from_static("1"));
        if let Some(cookie) = cookie {
            let value = tungstenite::http::HeaderValue::from_str(cookie)
                .map_err(|e| tungstenite::Error::HttpFormat(e.into()))?;
            request.headers_mut().insert("cookie", value);
        }
        let config = tungstenite::protocol::WebSocketConfig::default()
            .max_message_size(Some(max_message))
            .max_frame_size(Some(max_message));
        tokio::time::timeout(
            Duration::from_secs(10),
            tokio_tungstenite::connect_async_with_config(request, Some(config), true),
        )
        .await
        .map_err(|_| tungstenite::Error::Io(std::io::ErrorKind::TimedOut.into()))?
    };
    let upstream = match upstream.await {
        Ok((upstream, _)) => upstream,
        Err(e) => {
            // Refused there (the link or sign-in changed meanwhile) or not reachable: the
            // browser comes back and lands where the room is then.
            tracing::warn!(%session, node, error = %e, "the room's server did not take the socket");
            let _ = browser
                .send(Message::Close(Some(CloseFrame {
                    code: UNREACHABLE,
                    reason: Utf8Bytes::from_static("Bitte erneut verbinden"),
                })))
                .await;
            return;
        }
    };
    tracing::debug!(%session, node, "room socket carried to the room's server");
    let (mut up_tx, mut up_rx) = upstream.split();
    let (mut down_tx, mut down_rx) = browser.split();
    loop {
        tokio::select! {
            from_browser = down_rx.next() => {
                let message = match from_browser {
                    Some(Ok(message)) => message,
                    // Gone without a close frame: the holder sees a lost connection, as it
                    // would with the browser's own socket.
                    _ => break,
                };
                let (message, last) = upward(message);
                if let Some(message) = message
                    && up_tx.send(message).await.is_err()
                {
                    break;
                }
                if last {
                    break;
                }
            }
            from_holder = up_rx.next() => {
                let message = match from_holder {
                    Some(Ok(message)) => message,
                    _ => break,
                };
                let (message, last) = downward(message);
                if let Some(message) = message
                    && down_tx.send(message).await.is_err()
                {
                    break;
                }
                if last {
                    break;
                }
            }
        }
    }
    let _ = up_tx.close().await;
    let _ = down_tx.close().await;
}

/// A browser's message for the holder, and whether it was the last one. Pings are answered by
/// each hop itself, so they are not carried.
fn upward(message: Message) -> (Option<tungstenite::Message>, bool) {
    match message {
        Message::Text(text) => (Some(tungstenite::Message::text(text.as_str())), false),
        Message::Binary(bytes) => (Some(tungstenite::Message::Binary(bytes)), false),
        Message::Ping(_) | Message::Pong(_) => (None, false),
        Message::Close(frame) => (
            Some(tungstenite::Message::Close(frame.map(|f| {
                tungstenite::protocol::CloseFrame {
                    code: f.code.into(),
                    reason: f.reason.as_str().into(),
                }
            }))),
            true,
        ),
    }
}

/// The holder's message for the browser, and whether it was the last one.
fn downward(message: tungstenite::Message) -> (Option<Message>, bool) {
    match message {
        tungstenite::Message::Text(text) => (Some(Message::Text(text.as_str().into())), false),
        tungstenite::Message::Binary(bytes) => (Some(Message::Binary(bytes)), false),
        tungstenite::Message::Close(frame) => (
            Some(Message::Close(frame.map(|f| CloseFrame {
                code: f.code.into(),
                reason: f.reason.as_str().into(),
            }))),
            true,
        ),
        tungstenite::Message::Ping(_)
        | tungstenite::Message::Pong(_)
        | tungstenite::Message::Frame(_) => (None, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_url_is_a_plain_http_server_address() {
        assert_eq!(
            node_url("http://10.0.0.5:8080/").expect("valid"),
            "http://10.0.0.5:8080"
        );
        assert_eq!(
            node_url("http://videoamt-2.intern:8080").expect("valid"),
            "http://videoamt-2.intern:8080"
        );
        for bad in [
            "https://10.0.0.5",
            "10.0.0.5:8080",
            "http://",
            "http://a/b",
            "http://user@host",
            "http://a b",
        ] {
            assert!(node_url(bad).is_err(), "{bad:?} taken");
        }
    }

    #[test]
    fn close_codes_and_texts_pass_both_ways_and_pings_stay_on_their_hop() {
        let (up, last) = upward(Message::Close(Some(CloseFrame {
            code: 4409,
            reason: Utf8Bytes::from_static("Anderswo geöffnet"),
        })));
        assert!(last);
        match up {
            Some(tungstenite::Message::Close(Some(f))) => {
                assert_eq!(u16::from(f.code), 4409);
                assert_eq!(f.reason.as_str(), "Anderswo geöffnet");
            }
            other => panic!("{other:?}"),
        }
        let (down, last) = downward(tungstenite::Message::text("{\"type\":\"room\"}"));
        assert!(!last);
        assert!(matches!(down, Some(Message::Text(t)) if t.as_str() == "{\"type\":\"room\"}"));
        assert!(matches!(
            upward(Message::Ping(Default::default())),
            (None, false)
        ));
        assert!(matches!(
            downward(tungstenite::Message::Pong(Default::default())),
            (None, false)
        ));
    }
}
