//! Request metrics and the request log. Both name the route template (`/termin/{token}`),
//! never the path itself: paths carry capability tokens, and logs carry no personal data.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::http::AppState;
use crate::http::error::LoggedCause;

/// (method, route template, status).
type Key = (String, String, u16);

#[derive(Debug, Default)]
pub struct HttpMetrics {
    /// Requests and seconds spent per key.
    seen: Mutex<BTreeMap<Key, (u64, f64)>>,
}

impl HttpMetrics {
    fn record(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let entry = seen
            .entry((method.to_owned(), route.to_owned(), status))
            .or_default();
        entry.0 += 1;
        entry.1 += seconds;
    }

    /// The Prometheus text of these counters.
    pub fn render(&self) -> String {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let mut total = String::from(
            "# HELP videoamt_http_requests_total Requests answered, by route template and status.\n\
             # TYPE videoamt_http_requests_total counter\n",
        );
        let mut seconds = String::from(
            "# HELP videoamt_http_request_seconds_total Time spent answering, by route template and status.\n\
             # TYPE videoamt_http_request_seconds_total counter\n",
        );
        for ((method, route, status), (count, sum)) in seen.iter() {
            let labels = format!("method=\"{method}\",route=\"{route}\",status=\"{status}\"");
            total.push_str(&format!(
                "videoamt_http_requests_total{{{labels}}} {count}\n"
            ));
            seconds.push_str(&format!(
                "videoamt_http_request_seconds_total{{{labels}}} {sum:.6}\n"
            ));
        }
        total + &seconds
    }
}

/// Counts and logs every routed request.
pub(crate) async fn observe(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let mut response = next.run(request).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    // The one place internal failures are logged: with the route template, never the path
    // (it may carry a capability token) and never request data.
    if let Some(LoggedCause(cause)) = response.extensions_mut().remove::<LoggedCause>() {
        tracing::error!(method, route, status, cause, "request failed");
    }
    state
        .http_metrics
        .record(&method, &route, status, elapsed.as_secs_f64());
    tracing::info!(
        method,
        route,
        status,
        ms = elapsed.as_secs_f64() * 1000.0,
        "request"
    );
    response
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::Router;
    use axum::body::Body;
    use axum::http::Request as HttpRequest;
    use axum::routing::get;
    use tower::ServiceExt as _;

    use super::*;
    use crate::http::error::Error;

    /// Log lines written during the test, to read back.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("not poisoned").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn an_internal_error_is_logged_once_with_the_route_template() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = videoamt_adapters::store::sqlite::SqliteStore::open(dir.path().join("e.db"))
            .await
            .expect("store");
        let system = crate::app::System::new(
            Arc::new(store),
            videoamt_adapters::keys::Kek::ephemeral().expect("randomness"),
            dir.path(),
            vec![],
        );
        let state = AppState::new(system);
        let app = Router::new()
            .route(
                "/termin/{token}",
                get(|| async { Error::internal("disk on fire") }),
            )
            .route_layer(axum::middleware::from_fn_with_state(state.clone(), observe))
            .with_state(state);

        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_writer(move || writer.clone())
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let response = app
            .oneshot(
                HttpRequest::get("/termin/geheimes-token")
                    .body(Body::empty())
                    .expect("request"),
            )
            .await
            .expect("infallible");
        assert_eq!(response.status(), 500);
        assert!(response.extensions().get::<LoggedCause>().is_none());
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .expect("body");
        assert!(!String::from_utf8_lossy(&body).contains("disk on fire"));

        let log =
            String::from_utf8(captured.0.lock().expect("not poisoned").clone()).expect("utf-8 log");
        let failures: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("request failed"))
            .collect();
        assert_eq!(failures.len(), 1, "{log}");
        assert!(failures[0].contains("disk on fire"), "{log}");
        assert!(failures[0].contains("/termin/{token}"), "{log}");
        assert!(
            !log.contains("geheimes-token"),
            "the path reached the log: {log}"
        );
    }
}
