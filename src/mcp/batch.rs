//! JSON-RPC batches, which protocol 2025-03-26 allows on Streamable HTTP (later versions dropped
//! them) and the SDK's transport does not take: a batch POST is answered by sending each of its
//! messages through the surface on its own (the surface is stateless, so nothing else changes)
//! and returning the responses as one JSON array (202 when it held only notifications).

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// Middleware on the MCP routes (inside authentication: every message runs as the same caller).
pub async fn split_batches(req: Request, next: Next) -> Response {
    let legacy = req.headers().get("mcp-protocol-version").is_none_or(|v| v.as_bytes() == b"2025-03-26");
    if req.method() != Method::POST || !legacy {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    // The body was read whole already (`http::read_whole_body`); this only takes it back.
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let items = match bytes.trim_ascii_start().first() {
        Some(b'[') => serde_json::from_slice::<Vec<Value>>(&bytes).ok().filter(|items| !items.is_empty()),
        _ => None,
    };
    let Some(items) = items else {
        return next.run(Request::from_parts(parts, Body::from(bytes))).await;
    };
    let mut answers = Vec::new();
    for item in items {
        let one = Request::from_parts(parts.clone(), Body::from(serde_json::to_vec(&item).unwrap_or_default()));
        let response = next.clone().run(one).await;
        match response.status() {
            StatusCode::ACCEPTED => {}
            StatusCode::OK => {
                let Ok(body) = axum::body::to_bytes(response.into_body(), usize::MAX).await else {
                    return StatusCode::INTERNAL_SERVER_ERROR.into_response();
                };
                match answer_of(&body) {
                    Some(answer) => answers.push(answer),
                    None => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
                }
            }
            // A transport-level refusal (400, 406, 415…) refuses the whole batch, as it would one message.
            _ => return response,
        }
    }
    if answers.is_empty() {
        return StatusCode::ACCEPTED.into_response();
    }
    let body = serde_json::to_vec(&Value::Array(answers)).unwrap_or_default();
    ([(header::CONTENT_TYPE, "application/json")], Bytes::from(body)).into_response()
}

/// The JSON-RPC response in one answer: a JSON body, or the `data:` event that carries the
/// response in an SSE body (the surface answers JSON unless a tool sends notifications first).
fn answer_of(body: &[u8]) -> Option<Value> {
    if let Ok(value) = serde_json::from_slice::<Value>(body) {
        return Some(value);
    }
    let text = std::str::from_utf8(body).ok()?;
    text.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .find(|v| v.get("id").is_some() && (v.get("result").is_some() || v.get("error").is_some()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_response_is_found_in_json_or_sse() {
        let json = br#"{"jsonrpc":"2.0","id":1,"result":{}}"#;
        assert_eq!(answer_of(json).unwrap()["id"], 1);
        let sse = b"id: 0\ndata: \n\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\ndata: {\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{}}\n\n";
        assert_eq!(answer_of(sse).unwrap()["id"], 2);
    }
}
