//! Time limits of a request once its head is in (the head's own limit is hyper's, in
//! `http::server`): an ordinary request is answered within the request timeout, and a body
//! that stalls longer than the header read timeout between two pieces ends its request, on
//! every route. The room's WebSocket, the clerk's live stream and document uploads are not
//! given the overall deadline: the first two are long-lived by design, and an upload may take
//! longer on a slow line as long as it keeps sending.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::time::{Instant, Sleep};

use crate::http::AppState;
use crate::http::error::Error;

/// Answers 408 when the request is not answered within the request timeout.
pub async fn deadline(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let limit = state.system.settings.request_timeout();
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => Error::RequestTimeout.into_response(),
    }
}

/// Wraps the request's body so that it fails when the client sends nothing for the header
/// read timeout while the handler waits for more.
pub async fn idle_bodies(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let idle = state.system.settings.header_read_timeout();
    next.run(request.map(|body| Body::new(IdleBody::new(body, idle))))
        .await
}

/// A body whose every wait for the client is bounded. The clock runs only while the handler
/// waits for a piece, so a handler that reads the body late is not charged for it.
struct IdleBody {
    inner: Body,
    idle: Duration,
    timer: Pin<Box<Sleep>>,
    waiting: bool,
}

impl IdleBody {
    fn new(inner: Body, idle: Duration) -> Self {
        Self {
            inner,
            idle,
            timer: Box::pin(tokio::time::sleep(idle)),
            waiting: false,
        }
    }
}

/// The client stopped sending its body.
#[derive(Debug, thiserror::Error)]
#[error("the request body stalled")]
struct Stalled;

impl HttpBody for IdleBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if !this.waiting {
            this.timer.as_mut().reset(Instant::now() + this.idle);
            this.waiting = true;
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.waiting = false;
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => match this.timer.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Stalled.into()))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
