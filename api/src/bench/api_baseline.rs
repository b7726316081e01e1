//! `videoamt bench api-baseline` (hidden): the baseline of `bench api`. The same HTTP server
//! (axum on hyper, this binary's runtime) on the same store, with one handler per route of the
//! mix that does one store call and answers what it read:
//!
//! - slots: the department's day document of the free-slots model (one `get`);
//! - book: one append of one event to a new stream (one transaction, as a booking's);
//! - token: the appointment stream the token names (one `read_stream`), the token's MAC not
//!   checked;
//! - schedule: the clerk's day of the schedule model (one `list`), no sign-in checked;
//! - login (setup, not timed in the mix): a cookie, no store call.
//!
//! No middleware, no domain rule, no view: what is left is what serving one query over HTTP
//! costs on this machine at that load. `bench api` drives it after the real server, with the
//! same clients, rate and mix on the store the real run left, and reports the ratio.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use serde_json::{Value, json};
use time::Date;
use uuid::Uuid;
use videoamt_adapters::store::{AdminStore, StoreLocation};
use videoamt_core::domain::AppointmentId;
use videoamt_core::event::{
    Actor, EventMetadata, EventType, NewEvent, Payload, StreamId, TenantId,
};
use videoamt_core::store::{AppendBatch, ExpectedVersion};
use videoamt_core::tenant::DepartmentId;

use super::api::{DEPARTMENT, SESSION_COOKIE, TENANT};

/// The one start every baseline slot answer offers: a booking of the baseline books nothing
/// real, so any start serves the mix.
const START: &str = "2030-01-07T09:00:00+01:00";

pub(crate) async fn serve(location: &StoreLocation, listen: SocketAddr) -> anyhow::Result<()> {
    let store = location.open().await.context("cannot open the store")?;
    let listener = crate::http::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let app = router(store);
    println!("videoamt listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(crate::http::shutdown_signal())
        .await?;
    Ok(())
}

fn router(store: Arc<dyn AdminStore>) -> Router {
    Router::new()
        .route("/api/v1/login", post(login))
        .route("/api/v1/slots", get(slots))
        .route("/api/v1/appointments", post(book))
        .route("/api/v1/appointments/by-token/{token}", get(token))
        .route("/api/v1/clerk/schedule", get(schedule))
        .with_state(store)
}

fn failed(e: impl std::fmt::Display) -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response()
}

fn day(query: &HashMap<String, String>) -> Option<Date> {
    query
        .get("from")
        .and_then(|d| crate::http::citizen::service::parse_date(d))
}

fn no_day() -> Response {
    (StatusCode::BAD_REQUEST, "from").into_response()
}

async fn login() -> Response {
    (
        [(header::SET_COOKIE, format!("{SESSION_COOKIE}=baseline"))],
        axum::Json(json!({})),
    )
        .into_response()
}

async fn slots(
    State(store): State<Arc<dyn AdminStore>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let Some(date) = day(&query) else {
        return no_day();
    };
    let department = DepartmentId::from(DEPARTMENT);
    let key = videoamt_projections::slots::key_of(TENANT, &department, date);
    match store
        .get(
            videoamt_projections::slots::NAME,
            std::slice::from_ref(&key),
        )
        .await
    {
        Ok(found) => {
            let calendar = found.into_iter().next().map(|(_, doc)| doc);
            axum::Json(json!({
                "days": [{ "date": date.to_string(), "starts": [START] }],
                "calendar": calendar,
            }))
            .into_response()
        }
        Err(e) => failed(e),
    }
}

async fn book(State(store): State<Arc<dyn AdminStore>>, body: axum::body::Bytes) -> Response {
    let appended = async {
        let meta = EventMetadata::new(
            TenantId::parse(TENANT)?,
            Uuid::now_v7(),
            Uuid::now_v7(),
            Actor::system("bench-baseline"),
            time::OffsetDateTime::now_utc(),
        );
        let payload = Payload::from_json(std::str::from_utf8(&body)?)?;
        let event = NewEvent::new(
            Uuid::now_v7(),
            EventType::parse("BaselineBooked")?,
            1,
            meta,
            payload,
        )?;
        let stream = StreamId::of("baseline", Uuid::now_v7())?;
        let batch = AppendBatch::single(stream, ExpectedVersion::NoStream, vec![event])?;
        store.append(batch).await?;
        anyhow::Ok(())
    };
    match appended.await {
        Ok(()) => (StatusCode::CREATED, axum::Json(json!({}))).into_response(),
        Err(e) => failed(e),
    }
}

async fn token(State(store): State<Arc<dyn AdminStore>>, Path(token): Path<String>) -> Response {
    // The token's first 16 bytes name the appointment (`adapters/src/access.rs`).
    let Some(id) = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&token)
        .ok()
        .and_then(|bytes| Uuid::from_slice(bytes.get(..16)?).ok())
    else {
        return (StatusCode::NOT_FOUND, "token").into_response();
    };
    match store.read_stream(&AppointmentId(id).stream(), 0).await {
        Ok(events) => {
            let events: Vec<Value> = events
                .iter()
                .map(|e| {
                    json!({
                        "type": e.event_type.as_str(),
                        "payload": serde_json::from_str::<Value>(e.payload.as_str()).ok(),
                    })
                })
                .collect();
            axum::Json(json!({ "events": events })).into_response()
        }
        Err(e) => failed(e),
    }
}

async fn schedule(
    State(store): State<Arc<dyn AdminStore>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let Some(date) = day(&query) else {
        return no_day();
    };
    let department = DepartmentId::from(DEPARTMENT);
    let prefix = format!(
        "{}/",
        videoamt_projections::schedule::day_name(TENANT, &department, date)
    );
    match store
        .list(videoamt_projections::schedule::NAME, "entry", &prefix)
        .await
    {
        Ok(entries) => {
            let entries: Vec<Value> = entries.into_iter().map(|(_, doc)| doc).collect();
            axum::Json(json!({ "days": [{ "date": date.to_string(), "appointments": entries }] }))
                .into_response()
        }
        Err(e) => failed(e),
    }
}
