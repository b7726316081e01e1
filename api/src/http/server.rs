//! The accept loop under `serve`: hyper's HTTP/1.1 connections with a timer, so that a client
//! that does not send a request's head in time (a slow loris, or a kept-alive connection left
//! idle) is cut off; at most so many connections served at once, the others waiting in the
//! kernel's listen queue; and a graceful shutdown that finishes the requests in flight.
//! Every handler sees the TCP peer as `ConnectInfo<SocketAddr>`, as under `axum::serve`.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tower::{Service as _, ServiceExt as _};

use crate::app::Settings;

/// How connections are held, from the settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// The time a client has for a request's head, and a kept-alive connection for its next.
    pub header_read_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
}

impl ConnectionLimits {
    pub fn of(settings: &Settings) -> Self {
        Self {
            header_read_timeout: settings.header_read_timeout(),
            max_connections: settings.max_connections.max(1),
        }
    }
}

/// A served connection's place under the cap. An upgraded request (the room's WebSocket)
/// leaves hyper's connection behind: its socket keeps a clone, so that it still counts.
#[derive(Debug, Clone)]
pub(crate) struct ConnectionSlot {
    _permit: Arc<tokio::sync::OwnedSemaphorePermit>,
}

/// Serves `app` on `listener` until `shutdown` completes; then accepts no more connections,
/// lets each open one finish the request it is in, and returns when all have closed.
pub async fn serve_connections<F>(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: F,
) where
    F: Future<Output = ()> + Send + 'static,
{
    // Closed when the shutdown begins: every connection watches it.
    let (stop, stopping) = watch::channel(());
    tokio::spawn(async move {
        shutdown.await;
        drop(stopping);
    });
    // Each connection task holds a receiver; when none is left, all have finished.
    let (done, running) = watch::channel(());
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut make_service = app.into_make_service_with_connect_info::<SocketAddr>();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    loop {
        // A connection is accepted only with a permit in hand: past the cap, new ones wait in
        // the listen queue, unread, until a served one closes.
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break, // never closed
            },
            () = stop.closed() => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    pause_after(&e).await;
                    continue;
                }
            },
            () = stop.closed() => break,
        };
        let slot = ConnectionSlot {
            _permit: Arc::new(permit),
        };
        let held = slot.clone();
        let service = make_service
            .call(peer)
            .await
            .unwrap_or_else(|never: Infallible| match never {})
            .map_request(move |request: Request<Incoming>| {
                let mut request = request.map(Body::new);
                request.extensions_mut().insert(held.clone());
                request
            });
        let connection = http
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
            .with_upgrades();
        let stop = stop.clone();
        let running = running.clone();
        tokio::spawn(async move {
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                () = stop.closed() => {
                    // Finishes the request in flight, then closes; an idle one closes now.
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.as_mut().await;
                }
            }
            drop(slot);
            drop(running);
        });
    }
    drop(listener);
    drop(running);
    done.closed().await;
}

/// A failed `accept`: the peer gave up before it was accepted (nothing to do), or the process
/// is out of file descriptors or memory, when trying again at once would spin.
async fn pause_after(error: &std::io::Error) {
    use std::io::ErrorKind as K;
    if matches!(
        error.kind(),
        K::ConnectionAborted | K::ConnectionReset | K::ConnectionRefused | K::Interrupted
    ) {
        return;
    }
    tracing::warn!(error = %error, "cannot accept connections; trying again in a second");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
