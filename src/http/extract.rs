//! Request extractors that fail with the API's error envelope instead of axum's plain-text
//! rejections: JSON bodies (empty allowed, wrapped or flat), query strings and client IPs.

use std::net::{IpAddr, SocketAddr};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, FieldError};
use crate::state::AppState;

/// A JSON object body. An empty body counts as `{}` (clients send `Content-Type: application/json`
/// with no body on cancel and similar actions).
#[derive(Debug, Default)]
pub struct JsonObject(pub serde_json::Map<String, serde_json::Value>);

impl FromRequest<AppState> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let limit = state.config.max_body_bytes;
        let bytes = axum::body::to_bytes(req.into_body(), limit).await.map_err(|_| ApiError::payload_too_large())?;
        Self::from_bytes(&bytes)
    }
}

impl JsonObject {
    pub fn from_bytes(bytes: &Bytes) -> Result<Self, ApiError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(JsonObject::default());
        }
        match serde_json::from_slice::<serde_json::Value>(bytes) {
            Ok(serde_json::Value::Object(map)) => {
                // Every string of the body, typed field or free-form JSON, passes the text rule.
                crate::text::check_json(&serde_json::Value::Object(map.clone()), "")
                    .map_err(|e| ApiError::validation(vec![e]))?;
                Ok(JsonObject(map))
            }
            Ok(_) => Err(ApiError::malformed_json("the request body must be a JSON object")),
            Err(e) => Err(ApiError::malformed_json(format!("the request body is not valid JSON: {e}"))),
        }
    }

    /// `"agent."` when the body is wrapped as `{"agent": {…}}`, else `""`: prefixes field names
    /// in validation errors so they point where the client put the value.
    pub fn wrapper_prefix(&self, wrapper: &str) -> String {
        if self.0.len() == 1 && self.0.get(wrapper).is_some_and(|v| v.is_object()) {
            format!("{wrapper}.")
        } else {
            String::new()
        }
    }

    /// Deserializes the body, unwrapping `{"<wrapper>": {…}}` when present. Type errors name the
    /// offending field (prefixed with the wrapper when the body was wrapped).
    pub fn parse<T: DeserializeOwned>(self, wrapper: Option<&str>) -> Result<T, ApiError> {
        let mut map = self.0;
        let (value, prefix) = match wrapper {
            Some(key) if map.len() == 1 && map.get(key).is_some_and(|v| v.is_object()) => {
                (map.remove(key).unwrap_or_default(), format!("{key}."))
            }
            _ => (serde_json::Value::Object(map), String::new()),
        };
        serde_path_to_error::deserialize(value).map_err(|err| {
            let path = err.path().to_string();
            let field = if path == "." { prefix.trim_end_matches('.').to_string() } else { format!("{prefix}{path}") };
            let message = err.into_inner().to_string();
            ApiError::validation(vec![FieldError::new(if field.is_empty() { "body".into() } else { field }, message)])
        })
    }
}

/// Query string parsed into `T`; failures are `VALIDATION_ERROR` naming the parameter.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or("");
        serde_urlencoded_deserializer(query).map(ApiQuery).map_err(|e| ApiError::validation(vec![e]))
    }
}

fn serde_urlencoded_deserializer<T: DeserializeOwned>(query: &str) -> Result<T, FieldError> {
    // Falsy parameters are never sent by the clients, but an empty `?` is; empty values are
    // treated as absent so `?capability=` does not fail a typed field.
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let map: serde_json::Map<String, serde_json::Value> =
        pairs.into_iter().map(|(k, v)| (k, serde_json::Value::String(v))).collect();
    serde_path_to_error::deserialize(serde_json::Value::Object(map)).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { "query".to_string() } else { path };
        FieldError::new(field, e.into_inner().to_string())
    })
}

/// Middleware at the edge: a path segment or query parameter holding a control character (or
/// a path that is not UTF-8 once decoded) is refused with 422 before anything reads it.
pub async fn refuse_control_characters(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let uri = req.uri();
    let path_ok = match percent_encoding::percent_decode_str(uri.path()).decode_utf8() {
        Ok(path) => crate::text::check_line(&path).map_err(|m| FieldError::new("path", m)),
        Err(_) => Err(FieldError::new("path", "must be UTF-8 once percent-decoded")),
    };
    let query_ok = url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()).try_for_each(|(k, v)| {
        crate::text::check_line(&k).and(crate::text::check_line(&v)).map_err(|m| FieldError::new(k.into_owned(), m))
    });
    match path_ok.and(query_ok) {
        Ok(()) => next.run(req).await,
        Err(e) => ApiError::validation(vec![e]).into_response(),
    }
}

/// The caller's IP: the socket peer, or the first `X-Forwarded-For` hop when the server is told
/// to trust its proxy.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Ok(ClientIp(client_ip(parts, state.config.trust_forwarded_for)))
    }
}

pub fn client_ip(parts: &Parts, trust_forwarded_for: bool) -> IpAddr {
    client_ip_of(&parts.headers, &parts.extensions, trust_forwarded_for)
}

pub fn client_ip_of(
    headers: &axum::http::HeaderMap,
    extensions: &axum::http::Extensions,
    trust_forwarded_for: bool,
) -> IpAddr {
    if trust_forwarded_for
        && let Some(ip) = headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.trim().parse().ok())
    {
        return ip;
    }
    extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| addr.ip()).unwrap_or(IpAddr::from([0, 0, 0, 0]))
}
