//! What an endpoint declares in the route table (`crate::routes`) — who may call it and which
//! rate limit it counts against — and how the table becomes the router and the guard that runs
//! in front of every handler. The OpenAPI document is built from the same table
//! (`crate::openapi`), so an endpoint cannot be served without a declared access rule, nor
//! documented without being served.

use axum::extract::Request;
use axum::http::Method;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter};
use axum::{Extension, Router};
use utoipa::openapi::RefOr;
use utoipa::openapi::path::{HttpMethod, Operation};
use utoipa::openapi::schema::Schema;

use super::rate_limit::{self, Limit};
use crate::auth::Caller;
use crate::auth::scope::Scope;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The prefix every table path starts with; the router nests the table under it.
pub const API_PREFIX: &str = "/api/v1";

/// Who may call an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone. A presented credential is still resolved (a bad one is 401) but needs no scope.
    Public,
    /// Anyone; a presented credential must hold one of these scopes.
    PublicOrScoped(&'static [Scope]),
    /// A credential holding one of these scopes.
    Scoped(&'static [Scope]),
    /// Any valid credential, whatever its scopes: what it does (exchange a key for a session of
    /// the same rights, end sessions) grants nothing the credential does not already have.
    Credential,
    /// An administrator's credential holding the `admin` scope.
    AdminOnly,
}

impl Access {
    pub fn check(self, caller: Option<&Caller>) -> ApiResult<()> {
        let needed = || ApiError::unauthorized("an API key is required (X-API-Key or Authorization: Bearer)");
        match (self, caller) {
            (Access::Public, _) | (Access::PublicOrScoped(_), None) => Ok(()),
            (Access::PublicOrScoped(scopes) | Access::Scoped(scopes), Some(c)) => c.require_any_scope(scopes),
            (Access::Credential, Some(_)) => Ok(()),
            (Access::AdminOnly, Some(c)) => c.require_admin().map(drop),
            (Access::Scoped(_) | Access::Credential | Access::AdminOnly, None) => Err(needed()),
        }
    }

    pub fn needs_credential(self) -> bool {
        matches!(self, Access::Scoped(_) | Access::Credential | Access::AdminOnly)
    }

    /// The scopes that grant access (any one of them); empty when none is needed.
    pub fn scopes(self) -> Vec<Scope> {
        match self {
            Access::PublicOrScoped(s) | Access::Scoped(s) => s.to_vec(),
            Access::AdminOnly => vec![Scope::Admin],
            Access::Public | Access::Credential => Vec::new(),
        }
    }
}

/// An endpoint's declaration as the guard sees it.
#[derive(Debug, Clone, Copy)]
pub struct Declared {
    pub access: Access,
    pub limit: Limit,
}

/// One row of the route table.
pub struct Endpoint {
    pub method: Method,
    /// The OpenAPI path, `/api/v1/agents/{id}`.
    pub path: String,
    pub access: Access,
    pub limit: Limit,
    pub operation: Operation,
    pub schemas: Vec<(String, RefOr<Schema>)>,
    route: MethodRouter<AppState>,
}

impl Endpoint {
    /// Built by the `endpoint!` macro from a handler's `#[utoipa::path]` (its one method and path).
    pub fn new(
        methods: Vec<HttpMethod>,
        path: String,
        operation: Operation,
        schemas: Vec<(String, RefOr<Schema>)>,
        route: impl FnOnce(MethodFilter) -> MethodRouter<AppState>,
        access: Access,
        limit: Limit,
    ) -> Endpoint {
        let [method] = methods.as_slice() else { panic!("{path}: one method per table row") };
        assert!(path.starts_with(API_PREFIX), "{path}: table paths start with {API_PREFIX}");
        let (filter, method) = match method {
            HttpMethod::Get => (MethodFilter::GET, Method::GET),
            HttpMethod::Post => (MethodFilter::POST, Method::POST),
            HttpMethod::Put => (MethodFilter::PUT, Method::PUT),
            HttpMethod::Patch => (MethodFilter::PATCH, Method::PATCH),
            HttpMethod::Delete => (MethodFilter::DELETE, Method::DELETE),
            _ => panic!("{path}: this method is not served"),
        };
        Endpoint { method, path, access, limit, operation, schemas, route: route(filter) }
    }

    pub fn http_method(&self) -> HttpMethod {
        match self.method {
            Method::GET => HttpMethod::Get,
            Method::PUT => HttpMethod::Put,
            Method::PATCH => HttpMethod::Patch,
            Method::DELETE => HttpMethod::Delete,
            _ => HttpMethod::Post,
        }
    }
}

/// A table row from a handler annotated with `#[utoipa::path]`:
/// `endpoint!(accounts::routes, me, Scoped(&[AccountRead]), General)`.
#[macro_export]
macro_rules! endpoint {
    ($($module:ident)::+, $handler:ident, $access:expr, $limit:expr) => {
        pastey::paste! {{
            type Doc = $crate::$($module)::+::[<__path_ $handler>];
            let mut schemas = Vec::new();
            <Doc as utoipa::__dev::SchemaReferences>::schemas(&mut schemas);
            let mut operation = <Doc as utoipa::Path>::operation();
            let tags = <Doc as utoipa::__dev::Tags>::tags();
            if !tags.is_empty() {
                operation.tags.get_or_insert_with(Vec::new).extend(tags.iter().map(|t| t.to_string()));
            }
            $crate::http::endpoint::Endpoint::new(
                <Doc as utoipa::Path>::methods(),
                <Doc as utoipa::Path>::path(),
                operation,
                schemas,
                |filter| axum::routing::on(filter, $crate::$($module)::+::$handler),
                $access,
                $limit,
            )
        }}
    };
}

/// The `/api/v1` router: every table row behind its guard (rate limit, then access, then
/// idempotency), relative to the prefix it is nested under.
pub fn router(table: Vec<Endpoint>, state: &AppState) -> Router<AppState> {
    let mut router = Router::new();
    for endpoint in table {
        let declared = Declared { access: endpoint.access, limit: endpoint.limit };
        let route = endpoint
            .route
            .route_layer(middleware::from_fn_with_state(state.clone(), super::idempotency::idempotency))
            .route_layer(middleware::from_fn(check_access))
            .route_layer(middleware::from_fn_with_state(state.clone(), rate_limit::enforce))
            .route_layer(Extension(declared));
        let path = endpoint.path.strip_prefix(API_PREFIX).unwrap_or(&endpoint.path);
        router = router.route(path, route);
    }
    router
}

async fn check_access(Extension(declared): Extension<Declared>, req: Request, next: Next) -> Response {
    match declared.access.check(req.extensions().get::<Caller>()) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}
