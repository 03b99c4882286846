//! The sandbox's own endpoints under `/_sandbox/` (no authentication; never faulted):
//!
//! | request | what it does |
//! | --- | --- |
//! | `POST /_sandbox/inbound?type=image&mime=image/jpeg[&from=..][&merchant_phone=..][&file_name=..][&caption=..]` with the file's raw bytes | stores the media, POSTs the NXCloud inbound webhook (when a URL is configured) and answers 200 with the exact body it sent; headers `x-sandbox-media-id` and `x-sandbox-webhook` (`delivered <status>`, `not-configured` or `failed`) |
//! | `POST /_sandbox/expire?id=..` | marks inbound media as gone from WhatsApp's servers (retry-download then fails); 204, or 404 |
//! | `POST /_sandbox/clock?offset_ms=..` | sets the sandbox clock offset; 204 |
//! | `GET /_sandbox/log` | the request log as a JSON array |
//! | `GET /_sandbox/messages` | the messages mt accepted, as a JSON array, oldest first |
//!
//! `mime` defaults to the request's `Content-Type`. Refusals are 400 with a plain-text reason.
//! Query values are form-encoded, as everywhere in the sandbox: `+` is a space (`%2B` for a
//! plus, e.g. a caption's).

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::json;

use crate::inbound;
use crate::log::Route;
use crate::outbound::Delivery;
use crate::request::{MAX_UPLOAD_BODY, query_params, single};
use crate::response::{Outcome, json_response, respond, text};
use crate::state::State;
use crate::store::{NewMedia, Origin};
use crate::sync::lock;

pub(crate) async fn handle(state: &Arc<State>, req: Request<Incoming>) -> Outcome {
    let params = query_params(req.uri().query());
    match (req.method().clone(), req.uri().path()) {
        (Method::POST, "/_sandbox/inbound") => inbound_http(state, req, &params).await,
        (Method::POST, "/_sandbox/expire") => {
            let id = single(&params, "id").unwrap_or("");
            if state.store.expire(id) {
                Outcome::new(respond(StatusCode::NO_CONTENT, "text/plain", Bytes::new()))
            } else {
                Outcome::new(text(StatusCode::NOT_FOUND, "no inbound media with that id"))
            }
        }
        (Method::POST, "/_sandbox/clock") => {
            match single(&params, "offset_ms").and_then(|v| v.parse::<i64>().ok()) {
                Some(ms) => {
                    state.clock.set_offset_ms(ms);
                    Outcome::new(respond(StatusCode::NO_CONTENT, "text/plain", Bytes::new()))
                }
                None => Outcome::new(text(
                    StatusCode::BAD_REQUEST,
                    "offset_ms must be an integer",
                )),
            }
        }
        (Method::GET, "/_sandbox/messages") => {
            let sent: Vec<_> = state
                .outbox
                .messages()
                .iter()
                .map(crate::outbox::SentMessage::to_json)
                .collect();
            Outcome::new(json_response(StatusCode::OK, &json!(sent)))
        }
        (Method::GET, "/_sandbox/log") => {
            let entries: Vec<_> = state
                .log
                .entries()
                .into_iter()
                .map(|e| {
                    json!({
                        "seq": e.seq,
                        "route": e.route.name(),
                        "method": e.method,
                        "path": e.path,
                        "action": e.action,
                        "status": e.status,
                        "code": e.code,
                        "latency_ms": u64::try_from(e.latency.as_millis()).unwrap_or(u64::MAX),
                        "fault": e.fault,
                        "note": e.note,
                    })
                })
                .collect();
            Outcome::new(json_response(StatusCode::OK, &json!(entries)))
        }
        _ => Outcome::new(text(StatusCode::NOT_FOUND, "Not Found")),
    }
}

async fn inbound_http(
    state: &Arc<State>,
    req: Request<Incoming>,
    params: &[(String, String)],
) -> Outcome {
    let refuse = |why: String| Outcome::new(text(StatusCode::BAD_REQUEST, &why)).note(why);
    let msg_type = single(params, "type").unwrap_or("").to_owned();
    let mime = single(params, "mime")
        .map(str::to_owned)
        .or_else(|| {
            req.headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        })
        .unwrap_or_default();
    let from = single(params, "from")
        .unwrap_or(crate::config::DEMO_CUSTOMER_PHONE)
        .to_owned();
    let merchant = single(params, "merchant_phone").map(str::to_owned);
    let file_name = single(params, "file_name").map(str::to_owned);
    let caption = single(params, "caption").map(str::to_owned);
    let (kind, merchant) =
        match inbound::validate(state, &msg_type, &mime, 1, &from, merchant.as_deref()) {
            Ok(x) => x,
            Err(why) => return refuse(why).close(),
        };
    let mut body = req.into_body();
    let limit = kind.max_bytes.min(MAX_UPLOAD_BODY);
    let mut pending = match state.store.begin().await {
        Ok(p) => p,
        Err(_) => return refuse("the sandbox could not create a file".into()).close(),
    };
    loop {
        match body.frame().await {
            None => break,
            Some(Err(_)) => return refuse("the body could not be read".into()).close(),
            Some(Ok(frame)) => {
                let Ok(chunk) = frame.into_data() else {
                    continue;
                };
                if pending.len() + chunk.len() as u64 > limit {
                    return refuse(format!("{kind} files may be at most {limit} bytes")).close();
                }
                if pending.write(&chunk).await.is_err() {
                    return refuse("the sandbox's media storage is full".into()).close();
                }
            }
        }
    }
    if let Err(why) = crate::media_table::check_essence(&mime, pending.len()) {
        return refuse(why.to_string());
    }
    let media = pending
        .finish(NewMedia {
            msg_type: msg_type.clone(),
            mime,
            file_name: file_name.clone(),
            origin: Origin::Inbound {
                phone: merchant.clone(),
            },
        })
        .await;
    let Ok(media) = media else {
        return refuse("the sandbox's media storage is full".into());
    };
    let message = inbound::webhook(
        state,
        &media,
        &from,
        &merchant,
        caption.as_deref(),
        "Sandbox Customer",
        file_name.is_some(),
    );
    let url = lock(&state.webhook_url).clone();
    let delivery = state
        .deliver(
            Route::InboundWebhook,
            url,
            Bytes::from(message.webhook_body.clone()),
        )
        .await;
    let mut response = respond(
        StatusCode::OK,
        "application/json",
        Bytes::from(message.webhook_body),
    );
    let webhook = match delivery {
        Delivery::NotConfigured => "not-configured".to_owned(),
        Delivery::Delivered { status } => format!("delivered {status}"),
        Delivery::Failed(_) => "failed".to_owned(),
    };
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&webhook) {
        headers.insert("x-sandbox-webhook", v);
    }
    if let Ok(v) = HeaderValue::from_str(&media.id) {
        headers.insert("x-sandbox-media-id", v);
    }
    Outcome::new(response)
}
