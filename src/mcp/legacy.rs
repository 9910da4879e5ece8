//! The HTTP+SSE transport of protocol 2024-11-05, for the clients that still use it: `GET
//! <surface>/sse` opens an event stream whose first event (`endpoint`) names where to POST the
//! client's messages; every answer and server message travels on that stream. The official SDK
//! dropped this server in rmcp 0.11, so this is a thin layer around `rmcp::serve_server` over
//! two channels.
//!
//! The session lives in the process holding the stream: a deployment of several servers needs
//! sticky routing for this transport (the POSTs must reach the server of the stream). The
//! session is still recorded in the database, so its subscriptions and availability pings work
//! as for Streamable HTTP.

use std::collections::HashMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::Transport;
use rmcp::{RoleServer, ServerHandler};
use tokio::sync::mpsc;

use super::Factory;
use super::hub::{OpenError, StreamGuard};
use super::resources::SESSION_HEADER;
use super::sessions::{self, Surface, Transport as Kind};
use crate::auth::Caller;
use crate::db::Db;
use crate::error::ApiError;
use crate::state::AppState;

const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Messages waiting on either side of a session.
const BUFFER: usize = 64;

/// A session's way in: the channel to its SDK service, and who may post to it.
struct Open {
    inbound: mpsc::Sender<ClientJsonRpcMessage>,
    owner: String,
}

/// The 2024-11-05 transport of one surface.
pub struct Legacy<S> {
    state: AppState,
    surface: Surface,
    /// Where the `endpoint` event sends the client (`…/messages/<session>`).
    messages_path: &'static str,
    handler: Factory<S>,
    open: Arc<Mutex<HashMap<String, Open>>>,
}

impl<S> Clone for Legacy<S> {
    fn clone(&self) -> Self {
        Legacy {
            state: self.state.clone(),
            surface: self.surface,
            messages_path: self.messages_path,
            handler: self.handler.clone(),
            open: self.open.clone(),
        }
    }
}

/// The SDK service's transport: messages from the POSTs in, messages to the stream out.
struct Channels {
    inbound: mpsc::Receiver<ClientJsonRpcMessage>,
    outbound: mpsc::Sender<ServerJsonRpcMessage>,
}

impl Transport<RoleServer> for Channels {
    type Error = mpsc::error::SendError<ServerJsonRpcMessage>;

    fn send(&mut self, item: ServerJsonRpcMessage) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        let outbound = self.outbound.clone();
        async move { outbound.send(item).await }
    }

    async fn receive(&mut self) -> Option<ClientJsonRpcMessage> {
        self.inbound.recv().await
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        self.inbound.close();
        Ok(())
    }
}

/// Ends the session when its stream ends: it can no longer answer.
struct Closing {
    open: Arc<Mutex<HashMap<String, Open>>>,
    db: Db,
    id: String,
}

impl Drop for Closing {
    fn drop(&mut self) {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.id);
        let (db, id) = (self.db.clone(), self.id.clone());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = sessions::delete(&db, &id).await;
            });
        }
    }
}

/// The event stream: the `endpoint` event, then the SDK's messages and the hub's, and a comment
/// every `KEEP_ALIVE` so proxies keep it open.
struct Events {
    endpoint: Option<Bytes>,
    outbound: mpsc::Receiver<ServerJsonRpcMessage>,
    pushed: mpsc::Receiver<ServerJsonRpcMessage>,
    keep_alive: tokio::time::Interval,
    _stream: StreamGuard,
    _session: Closing,
}

fn event(message: &ServerJsonRpcMessage) -> Bytes {
    let json = serde_json::to_string(message).unwrap_or_default();
    Bytes::from(format!("event: message\ndata: {json}\n\n"))
}

impl Stream for Events {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(endpoint) = this.endpoint.take() {
            return Poll::Ready(Some(Ok(endpoint)));
        }
        match this.outbound.poll_recv(cx) {
            Poll::Ready(Some(message)) => return Poll::Ready(Some(Ok(event(&message)))),
            // The SDK service ended (it failed to start, or the client closed it).
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => {}
        }
        match this.pushed.poll_recv(cx) {
            Poll::Ready(Some(message)) => return Poll::Ready(Some(Ok(event(&message)))),
            // The hub let go of the stream: the server is shutting down.
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => {}
        }
        if this.keep_alive.poll_tick(cx).is_ready() {
            return Poll::Ready(Some(Ok(Bytes::from_static(b": keep-alive\n\n"))));
        }
        Poll::Pending
    }
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "Not Found: Session not found").into_response()
}

/// The `Host` is one this server answers for (DNS-rebinding protection, as the SDK's service
/// does for Streamable HTTP): an allowed host with no port allows any port.
fn host_allowed(req: &Request, allowed: &[String]) -> bool {
    let Some(host) = req.headers().get(header::HOST).and_then(|h| h.to_str().ok()) else { return false };
    let Ok(authority) = host.parse::<axum::http::uri::Authority>() else { return false };
    let name = authority.host().trim_matches(['[', ']']).to_ascii_lowercase();
    allowed.iter().any(|a| match a.parse::<axum::http::uri::Authority>() {
        Ok(entry) if entry.port_u16().is_some() => {
            entry.host().eq_ignore_ascii_case(&name) && entry.port_u16() == authority.port_u16()
        }
        Ok(entry) => entry.host().trim_matches(['[', ']']).eq_ignore_ascii_case(&name),
        Err(_) => a.eq_ignore_ascii_case(&name),
    })
}

impl<S: ServerHandler + Send + 'static> Legacy<S> {
    pub fn new(state: &AppState, surface: Surface, messages_path: &'static str, handler: Factory<S>) -> Legacy<S> {
        Legacy { state: state.clone(), surface, messages_path, handler, open: Arc::default() }
    }

    /// `GET …/sse`: opens a session and its event stream.
    pub async fn connect(&self, req: Request) -> Response {
        if !host_allowed(&req, &super::allowed_hosts(&self.state.config.public_url)) {
            return (StatusCode::FORBIDDEN, "Forbidden: Host header is not allowed").into_response();
        }
        let Some(caller) = req.extensions().get::<Caller>().cloned() else { return not_found() };
        let (db, now) = (self.state.db.clone(), self.state.now());
        let id = uuid::Uuid::new_v4().to_string();
        if let Err(e) = sessions::create(&db, &id, self.surface, Kind::Sse, &caller, now).await {
            return ApiError::from(e).into_response();
        }
        let closing = Closing { open: self.open.clone(), db: db.clone(), id: id.clone() };
        let (pushed, stream_guard) = match self.state.mcp.open(&db, &id, now).await {
            Ok(opened) => opened,
            Err(OpenError::Db(e)) => return ApiError::from(e).into_response(),
            Err(OpenError::Closing) => {
                return (StatusCode::SERVICE_UNAVAILABLE, "the server is shutting down").into_response();
            }
        };
        let handler = match (self.handler)() {
            Ok(h) => h,
            Err(e) => return ApiError::Internal(e.into()).into_response(),
        };
        let (in_tx, in_rx) = mpsc::channel(BUFFER);
        let (out_tx, out_rx) = mpsc::channel(BUFFER);
        let owner = sessions::owner_of(&caller);
        self.open.lock().unwrap_or_else(|e| e.into_inner()).insert(id.clone(), Open { inbound: in_tx, owner });
        tokio::spawn(async move {
            match rmcp::serve_server(handler, Channels { inbound: in_rx, outbound: out_tx }).await {
                Ok(running) => {
                    let _ = running.waiting().await;
                }
                Err(e) => tracing::debug!(error = %e, "an SSE session ended before its handshake"),
            }
        });
        let mut keep_alive = tokio::time::interval(KEEP_ALIVE);
        keep_alive.reset();
        let endpoint = Bytes::from(format!("event: endpoint\ndata: {}/{id}\n\n", self.messages_path));
        let events = Events {
            endpoint: Some(endpoint),
            outbound: out_rx,
            pushed,
            keep_alive,
            _stream: stream_guard,
            _session: closing,
        };
        let mut response = Body::from_stream(events).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        response
    }

    /// `POST …/messages/<session>`: one client message for the session's service; its answer
    /// goes out on the stream.
    pub async fn message(&self, id: String, req: Request) -> Response {
        let Some(caller) = req.extensions().get::<Caller>().cloned() else { return not_found() };
        let inbound = {
            let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
            match open.get(&id) {
                Some(session) if session.owner == sessions::owner_of(&caller) => session.inbound.clone(),
                _ => return not_found(),
            }
        };
        let (mut parts, body) = req.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
            return StatusCode::BAD_REQUEST.into_response();
        };
        let mut message: ClientJsonRpcMessage = match serde_json::from_slice(&bytes) {
            Ok(m) => m,
            Err(e) => {
                return (StatusCode::BAD_REQUEST, format!("Bad Request: not a JSON-RPC message: {e}")).into_response();
            }
        };
        match super::presence::take_answer(&self.state.db, &id, &message, self.state.now()).await {
            Ok(true) => return (StatusCode::ACCEPTED, "Accepted").into_response(),
            Ok(false) => {}
            Err(e) => return ApiError::from(e).into_response(),
        }
        // The resources find their session as on Streamable HTTP, in this header.
        if let Ok(value) = HeaderValue::from_str(&id) {
            parts.headers.insert(SESSION_HEADER, value);
        }
        message.insert_extension(parts);
        if inbound.send(message).await.is_err() {
            return not_found();
        }
        (StatusCode::ACCEPTED, "Accepted").into_response()
    }
}
