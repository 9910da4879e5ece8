//! The REST endpoint each tool mirrors, and that endpoint's access rule read from the route
//! table itself (`crate::routes::table`): a tool is guarded by exactly the scopes its endpoint
//! declares, never by a copy of them.

use std::collections::HashMap;
use std::sync::OnceLock;

use axum::http::Method;

use crate::auth::Caller;
use crate::error::ApiResult;
use crate::http::endpoint::Access;

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
    pub fn access(&self) -> Access {
        static TABLE: OnceLock<HashMap<(Method, String), Access>> = OnceLock::new();
        let table = TABLE.get_or_init(|| {
            crate::routes::table().into_iter().map(|e| ((e.method.clone(), e.path.clone()), e.access)).collect()
        });
        *table
            .get(&(self.method(), self.1.to_string()))
            .unwrap_or_else(|| panic!("{} {} is not in the route table", self.method(), self.1))
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
        for rest in super::super::hirer::MIRRORED.iter().chain(&super::super::follow::MIRRORED) {
            rest.access();
        }
    }
}
