//! A local webhook receiver: records what arrives and answers with scripted statuses.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;

#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
    /// What `GET /tasks/:id` showed while the webhook was being received.
    pub task_status_seen: Option<String>,
}

#[derive(Clone, Default)]
struct Inner {
    received: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<VecDeque<u16>>>,
    /// (API base, key) used to read the task back on receipt.
    reader: Option<(String, String)>,
}

pub struct Receiver {
    pub url: String,
    inner: Inner,
}

impl Receiver {
    /// Starts on 127.0.0.1:0. `reader` lets it read the task back as a receiver would.
    pub async fn start(reader: Option<(String, String)>) -> Receiver {
        let inner = Inner { reader, ..Inner::default() };
        // HEAD answers 200, as an agent's callback answers the availability probe.
        let app = axum::Router::new()
            .route("/hook", post(receive).head(|| async { StatusCode::OK }))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { url, inner }
    }

    /// The next answers, in order (then 200).
    pub fn script(&self, statuses: &[u16]) {
        self.inner.script.lock().unwrap().extend(statuses);
    }

    pub fn received(&self) -> Vec<Received> {
        self.inner.received.lock().unwrap().clone()
    }
}

async fn receive(State(inner): State<Inner>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let mut task_status_seen = None;
    if let (Some((base, key)), Some(task)) = (&inner.reader, headers.get("x-webhook-task-id")) {
        let url = format!("{base}/api/v1/tasks/{}", task.to_str().unwrap());
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        if let Ok(res) = client.get(url).header("x-api-key", key).send().await {
            let v: serde_json::Value = res.json().await.unwrap_or_default();
            task_status_seen = v["data"]["status"].as_str().map(String::from);
        }
    }
    inner.received.lock().unwrap().push(Received { headers, body, task_status_seen });
    let status = inner.script.lock().unwrap().pop_front().unwrap_or(200);
    StatusCode::from_u16(status).unwrap()
}
