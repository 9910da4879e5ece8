//! A fake NOWPayments and Stripe API on loopback: records every request it receives and answers
//! as the real ones do (`POST /invoice`, `POST /payment`, `POST /checkout/sessions`), or with
//! scripted error statuses.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub body: String,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }
    /// The form fields of a form-encoded body, in order.
    pub fn form(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(self.body.as_bytes()).into_owned().collect()
    }
}

#[derive(Clone, Default)]
struct Inner {
    received: Arc<Mutex<Vec<Recorded>>>,
    script: Arc<Mutex<VecDeque<u16>>>,
    /// Answers to GETs, by path and query.
    canned: Arc<Mutex<std::collections::HashMap<String, Value>>>,
}

pub struct FakeProviders {
    /// Base URL: NOWPayments' and Stripe's paths both live under it.
    pub base: String,
    inner: Inner,
}

impl FakeProviders {
    pub async fn start() -> FakeProviders {
        let inner = Inner::default();
        let app = axum::Router::new().fallback(answer).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeProviders { base, inner }
    }

    /// The next answers' statuses, in order (then the normal answers).
    pub fn script(&self, statuses: &[u16]) {
        self.inner.script.lock().unwrap().extend(statuses);
    }

    /// What a GET of `path_and_query` answers (a payment's or a session's current state).
    pub fn answer_get(&self, path_and_query: &str, body: Value) {
        self.inner.canned.lock().unwrap().insert(path_and_query.to_string(), body);
    }

    pub fn received(&self) -> Vec<Recorded> {
        self.inner.received.lock().unwrap().clone()
    }

    pub fn last(&self) -> Recorded {
        self.received().pop().expect("the provider was called")
    }
}

async fn answer(State(inner): State<Inner>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let recorded =
        Recorded { method, path: uri.path().to_string(), headers, body: String::from_utf8_lossy(&body).into() };
    let n = {
        let mut received = inner.received.lock().unwrap();
        received.push(recorded.clone());
        received.len()
    };
    let canned = uri.path_and_query().and_then(|pq| inner.canned.lock().unwrap().get(pq.as_str()).cloned());
    if recorded.method == Method::GET
        && let Some(body) = canned
    {
        return axum::Json(body).into_response();
    }
    if let Some(status) = inner.script.lock().unwrap().pop_front() {
        let status = StatusCode::from_u16(status).unwrap();
        return (status, axum::Json(json!({"statusCode": status.as_u16(), "message": "scripted failure"})))
            .into_response();
    }
    match recorded.path.as_str() {
        "/invoice" => {
            let req = recorded.json();
            let id = format!("45226258{n:02}");
            (
                StatusCode::CREATED,
                axum::Json(json!({
                    "id": id, "token_id": "tok", "order_id": req["order_id"], "price_amount": req["price_amount"].to_string(),
                    "price_currency": "usd", "pay_currency": null, "ipn_callback_url": req["ipn_callback_url"],
                    "invoice_url": format!("https://nowpayments.example/payment/?iid={id}"),
                    "success_url": req["success_url"], "cancel_url": req["cancel_url"],
                })),
            )
                .into_response()
        }
        "/payment" => {
            let req = recorded.json();
            (
                StatusCode::CREATED,
                axum::Json(json!({
                    "payment_id": 5_077_125_000u64 + n as u64, "payment_status": "waiting", "pay_address": "bc1qfakeaddress",
                    "price_amount": req["price_amount"], "price_currency": "usd", "pay_amount": 0.00012345,
                    "pay_currency": req["pay_currency"], "order_id": req["order_id"],
                })),
            )
                .into_response()
        }
        "/checkout/sessions" => {
            let id = format!("cs_test_{n}");
            axum::Json(json!({
                "id": id, "object": "checkout.session", "url": format!("https://checkout.stripe.example/c/pay/{id}"),
                "status": "open", "payment_status": "unpaid",
            }))
            .into_response()
        }
        "/currencies" => axum::Json(json!({"currencies": ["btc", "eth", "usdttrc20"]})).into_response(),
        _ => (StatusCode::NOT_FOUND, "no such fake route").into_response(),
    }
}
