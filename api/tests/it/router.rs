use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use tower::ServiceExt;
use videoamt_adapters::store::sqlite::SqliteStore;
use videoamt_api::server::{AppState, app};

async fn state() -> (tempfile::TempDir, AppState) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(dir.path().join("events.db"))
        .await
        .expect("open");
    (
        dir,
        AppState {
            store: Arc::new(store),
        },
    )
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
