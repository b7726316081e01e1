use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use tower::ServiceExt;
use videoamt_adapters::keys::Kek;
use videoamt_adapters::store::sqlite::SqliteStore;
use videoamt_api::server::{AppState, app};
use videoamt_api::system::System;
use videoamt_core::tenant::example_tenants;

async fn state() -> (tempfile::TempDir, AppState) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(dir.path().join("events.db"))
        .await
        .expect("open");
    let state = AppState::new(System::new(
        Arc::new(store),
        Kek::ephemeral().expect("randomness"),
        dir.path(),
        example_tenants().expect("examples are valid"),
    ));
    (dir, state)
}

async fn get(state: AppState, path: &str) -> (StatusCode, String) {
    let response = app(state)
        .oneshot(Request::get(path).body(Body::empty()).expect("request"))
        .await
        .expect("infallible");
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("body");
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn health_and_readiness_answer() {
    let (_dir, state) = state().await;
    assert_eq!(
        get(state.clone(), "/healthz").await,
        (StatusCode::OK, "ok".to_owned())
    );
    assert_eq!(
        get(state, "/readyz").await,
        (StatusCode::OK, "ready".to_owned())
    );
}

#[tokio::test]
async fn unknown_paths_are_not_found() {
    let (_dir, state) = state().await;
    assert_eq!(get(state, "/nirgendwo").await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn metrics_export_each_projections_lag() {
    let (_dir, state) = state().await;
    let (status, body) = get(state.clone(), "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    for p in &state.projections {
        let line = format!(
            "videoamt_projection_lag_events{{projection=\"{}\"}} 0",
            p.name()
        );
        assert!(body.contains(&line), "{line} missing in:\n{body}");
    }
    assert!(body.contains("# TYPE videoamt_projection_lag_seconds gauge"));
}
