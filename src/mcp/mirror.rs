//! The REST endpoint each tool mirrors, and that endpoint's access rule and rate-limit category
//! read from the route table itself (`crate::routes::table`): a tool is guarded by exactly the
//! scopes and limits its endpoint declares, never by a copy of them.

use std::collections::HashMap;
use std::sync::OnceLock;

use axum::body::Bytes;
use axum::http::Method;
use axum::http::request::Parts;
use rmcp::ErrorData;
use rmcp::model::CallToolResult;
use serde_json::Value;

use super::{answer, refused};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::http::endpoint::{Access, Declared};
use crate::http::extract::{JsonObject, client_ip_of};
use crate::http::rate_limit::{self, Limit};
use crate::state::AppState;

pub(crate) type ToolResult = Result<CallToolResult, ErrorData>;

/// The caller the HTTP layer resolved (`auth::caller::resolve_caller`), from the request parts
/// the transport hands every tool call.
pub(crate) fn caller_of(parts: &Parts) -> ApiResult<Caller> {
    parts.extensions.get::<Caller>().cloned().ok_or_else(|| ApiError::unauthorized("an API key is required"))
}

/// A tool's arguments as a REST request body, through the same body rules (`JsonObject`);
/// absent arguments are left out.
pub(crate) fn body(fields: Value) -> ApiResult<JsonObject> {
    let fields = match fields {
        Value::Object(map) => Value::Object(map.into_iter().filter(|(_, v)| !v.is_null()).collect()),
        other => other,
    };
    JsonObject::from_bytes(&Bytes::from(serde_json::to_vec(&fields).map_err(|e| ApiError::Internal(e.into()))?))
}

/// Runs a tool as `rest`'s handler would run: its guard and rate limit for this caller, then
/// `call` (the function the handler calls), its answer or refusal as the tool's result.
pub(crate) async fn run<T, F, Fut>(state: &AppState, parts: &Parts, rest: Rest, call: F) -> ToolResult
where
    T: serde::Serialize,
    F: FnOnce(AppState, Caller) -> Fut,
    Fut: Future<Output = ApiResult<T>>,
{
    let caller = match caller_of(parts).and_then(|c| rest.check(&c).map(|()| c)) {
        Ok(caller) => caller,
        Err(e) => return Ok(refused(e)),
    };
    if let Err(e) = rest.admit(state, &caller, parts).await {
        return Ok(refused(e));
    }
    Ok(answer(call(state.clone(), caller).await))
}

/// `rest`'s guard's refusal of this caller, if any (a tool mirroring two endpoints checks the
/// second one with it).
pub(crate) fn refusal(parts: &Parts, rest: Rest) -> Option<CallToolResult> {
    caller_of(parts).and_then(|c| rest.check(&c)).err().map(refused)
}

/// A REST endpoint as the route table names it: `(POST, "/api/v1/hirings/{id}/cancel")`.
#[derive(Debug, Clone, Copy)]
pub struct Rest(Verb, &'static str);

#[derive(Debug, Clone, Copy)]
enum Verb {
    Get,
    Post,
}

impl Rest {
    pub const fn get(path: &'static str) -> Rest {
        Rest(Verb::Get, path)
    }
    pub const fn post(path: &'static str) -> Rest {
        Rest(Verb::Post, path)
    }

    fn method(&self) -> Method {
        match self.0 {
            Verb::Get => Method::GET,
            Verb::Post => Method::POST,
        }
    }

    /// The endpoint's declared access rule. Panics for an endpoint the table does not serve
    /// (a tool naming a wrong path fails its first test, not silently unguarded).
    pub fn declared(&self) -> Declared {
        static TABLE: OnceLock<HashMap<(Method, String), Declared>> = OnceLock::new();
        let table = TABLE.get_or_init(|| {
            crate::routes::table()
                .into_iter()
                .map(|e| ((e.method.clone(), e.path.clone()), Declared { access: e.access, limit: e.limit }))
                .collect()
        });
        *table
            .get(&(self.method(), self.1.to_string()))
            .unwrap_or_else(|| panic!("{} {} is not in the route table", self.method(), self.1))
    }

    pub fn access(&self) -> Access {
        self.declared().access
    }

    /// Counts the call against the endpoint's own rate-limit buckets beyond the general one
    /// (which the `/mcp` HTTP request already counted): a hire through MCP spends the same
    /// `financial` allowance as one through REST.
    pub async fn admit(&self, state: &AppState, caller: &Caller, parts: &Parts) -> ApiResult<()> {
        let limit = self.declared().limit;
        if matches!(limit, Limit::General) {
            return Ok(());
        }
        let ip = client_ip_of(&parts.headers, &parts.extensions, state.config.trust_forwarded_for).to_string();
        let mut rules = rate_limit::rules_for(state, limit, Some(caller), &ip);
        rules.retain(|r| !r.bucket.starts_with("general:"));
        match state.rate_leases.hit(&state.db, &rules, state.now()).await {
            Ok(d) if !d.allowed => Err(ApiError::rate_limited(d.reset_secs)),
            Ok(_) => Ok(()),
            Err(e) => {
                tracing::warn!(error = %e, "rate-limit counters unavailable; call let through");
                Ok(())
            }
        }
    }

    /// The caller passes the endpoint's guard (the same check `/api/v1` runs before the handler).
    pub fn check(&self, caller: &Caller) -> ApiResult<()> {
        self.access().check(Some(caller))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::scope::Scope;

    #[test]
    fn the_guard_is_the_route_tables() {
        match Rest::post("/api/v1/agents/{did}/hire").access() {
            Access::Scoped(scopes) => assert_eq!(scopes, &[Scope::HireCreate]),
            other => panic!("{other:?}"),
        }
        let surfaces = [
            &super::super::hirer::MIRRORED[..],
            &super::super::follow::MIRRORED,
            &super::super::agent::MIRRORED,
            &super::super::resources::MIRRORED,
        ];
        for rest in surfaces.into_iter().flatten() {
            rest.access();
        }
    }
}
