//! The OpenAPI document, built from the route table (`crate::routes`): each handler's
//! `#[utoipa::path]` gives its method, path, parameters and bodies; the table adds what every
//! endpoint shares, so the document stays true without repeating it per handler:
//!
//! - every 2xx JSON body inside the success envelope `{data, meta}`;
//! - every error status with the error envelope, and the statuses the shared layers can answer
//!   (401 bad credential, 403 missing scope, 404 unknown id, 400/413 bad body, 409 a pending
//!   idempotency key, 408 request timeout, 422 invalid input, 429 rate limited);
//! - the scopes that grant access, and the credentials accepted.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use utoipa::PartialSchema;
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::extensions::ExtensionsBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{
    ComponentsBuilder, InfoBuilder, OpenApi, OpenApiBuilder, PathsBuilder, Ref, RefOr, Response, Tag,
};

use crate::http::endpoint::{Access, Endpoint};
use crate::http::envelope::{Meta, Pagination};

const TAGS: &[(&str, &str)] = &[
    ("accounts", "People's accounts"),
    ("api-keys", "User API keys"),
    ("agents", "Agents and the marketplace"),
    ("auth", "Sessions"),
    ("operations", "Health"),
    ("ledger", "Wallets, deposits, withdrawals, fees"),
    ("tasks", "Tasks and escrow"),
    ("disputes", "Disputes"),
    ("admin", "Administrators"),
    ("webhooks", "Webhook subscriptions"),
    ("hirings", "Hiring marketplace agents"),
    ("artifacts", "Artifacts and uploads"),
];

/// The document served at `/api/v1/openapi.json` (built once).
pub fn spec() -> &'static OpenApi {
    static SPEC: OnceLock<OpenApi> = OnceLock::new();
    SPEC.get_or_init(|| build(crate::routes::table()))
}

pub fn build(table: Vec<Endpoint>) -> OpenApi {
    let mut components = ComponentsBuilder::new()
        .schema("Meta", Meta::schema())
        .schema("Pagination", Pagination::schema())
        .schema("ErrorEnvelope", error_envelope())
        .security_scheme("api_key", SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))))
        .security_scheme("bearer", SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()));
    let mut paths = PathsBuilder::new();
    for endpoint in table {
        for (name, schema) in &endpoint.schemas {
            components = components.schema(name.clone(), schema.clone());
        }
        let operation = document(&endpoint);
        paths = paths.path(endpoint.path.clone(), PathItem::new(endpoint.http_method(), operation));
    }
    let tags = TAGS
        .iter()
        .map(|(name, description)| {
            let mut tag = Tag::new(*name);
            tag.description = Some(description.to_string());
            tag
        })
        .collect::<Vec<_>>();
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("agentmarket")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some("Open, self-hostable agent marketplace (Agrenting API v1)")),
        )
        .paths(paths)
        .components(Some(components.build()))
        .tags(Some(tags))
        .build()
}

/// One endpoint's operation: the handler's own documentation plus what the table knows.
fn document(endpoint: &Endpoint) -> Operation {
    let mut op = endpoint.operation.clone();
    let method = endpoint.method.as_str().to_ascii_lowercase();
    // Handler names repeat across slices (`list`, `show`); method and path are unique.
    let id: String = endpoint
        .path
        .trim_start_matches('/')
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    op.operation_id = Some(format!("{method}_{}", id.replace("__", "_").trim_end_matches('_')));

    let scopes = endpoint.access.scopes();
    let scope_names: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
    let who = match endpoint.access {
        Access::Public => "No credential needed.".to_string(),
        Access::PublicOrScoped(_) => {
            format!("No credential needed; a credential, if sent, needs one of the scopes: {}.", scope_names.join(", "))
        }
        Access::Scoped(_) => format!("Needs a credential with one of the scopes: {}.", scope_names.join(", ")),
        Access::Credential => "Needs any valid credential.".to_string(),
        Access::AdminOnly => "Administrators only (a key with the `admin` scope).".to_string(),
    };
    op.description = Some(match op.description.take() {
        Some(d) if !d.is_empty() => format!("{d}\n\n{who}"),
        _ => who,
    });
    op.extensions = Some(ExtensionsBuilder::new().add("x-required-scopes", serde_json::json!(scope_names)).build());
    let credentials = vec![
        SecurityRequirement::new("api_key", Vec::<String>::new()),
        SecurityRequirement::new("bearer", Vec::<String>::new()),
    ];
    op.security = Some(if endpoint.access.needs_credential() {
        credentials
    } else {
        std::iter::once(SecurityRequirement::default()).chain(credentials).collect()
    });

    // What the shared layers can answer on this endpoint, besides the handler's own statuses.
    let has_body = op.request_body.is_some();
    let mut statuses: BTreeSet<u16> = BTreeSet::from([401, 408, 422, 429]);
    if endpoint.path.contains('{') {
        statuses.insert(404);
    }
    if matches!(endpoint.access, Access::PublicOrScoped(_) | Access::Scoped(_) | Access::AdminOnly) {
        statuses.insert(403);
    }
    if matches!(endpoint.method.as_str(), "POST" | "PUT" | "PATCH") {
        statuses.insert(409);
        statuses.insert(413);
        if has_body {
            statuses.insert(400);
        }
    }
    let mut responses = std::mem::take(&mut op.responses.responses);
    for status in statuses {
        responses.entry(status.to_string()).or_insert_with(|| RefOr::T(Response::new("")));
    }
    for (status, response) in responses.iter_mut() {
        let RefOr::T(response) = response else { continue };
        let code: u16 = status.parse().unwrap_or(0);
        if response.description.is_empty() {
            response.description = default_description(code).to_string();
        }
        if (200..300).contains(&code) {
            if let Some(content) = response.content.get_mut("application/json")
                && let Some(schema) = content.schema.take()
            {
                content.schema = Some(success_envelope(schema));
            }
        } else if code >= 400 {
            response.content.clear();
            response.content.insert(
                "application/json".into(),
                ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorEnvelope"))).build(),
            );
        }
        response.headers.insert(
            "x-request-id".into(),
            HeaderBuilder::new()
                .schema(String::schema())
                .description(Some("The request id, also in `meta.request_id`"))
                .build(),
        );
        if code == 429 {
            response.headers.insert(
                "retry-after".into(),
                HeaderBuilder::new().schema(i64::schema()).description(Some("Seconds to wait (≥ 1)")).build(),
            );
        }
    }
    op.responses.responses = responses;
    op
}

fn default_description(code: u16) -> &'static str {
    match code {
        200 => "OK",
        201 => "Created",
        400 => "MALFORMED_JSON: the body is not a JSON object",
        401 => "UNAUTHORIZED: credential missing where required, or unknown, revoked or expired",
        402 => "PAYMENT_FAILED or PAYMENT_PROVIDER_NOT_CONFIGURED",
        403 => "FORBIDDEN: the credential lacks the scope, or is not allowed here",
        404 => "NOT_FOUND",
        408 => "REQUEST_TIMEOUT: the request took longer than the server allows",
        409 => "CONFLICT, or IDEMPOTENCY_PENDING while a request with the same idempotency key runs",
        413 => "PAYLOAD_TOO_LARGE",
        422 => "VALIDATION_ERROR (details name each field) or another 422 code",
        423 => "ESCROW_LOCKED: the funds are held by an open dispute",
        429 => "RATE_LIMIT_EXCEEDED (see retry-after)",
        503 => "Unavailable",
        _ => "See the error envelope",
    }
}

/// `{data: <schema>, meta: Meta}`.
fn success_envelope(data: RefOr<Schema>) -> RefOr<Schema> {
    ObjectBuilder::new()
        .property("data", data)
        .property("meta", Ref::from_schema_name("Meta"))
        .required("data")
        .required("meta")
        .into()
}

/// `{data: null, meta: Meta, errors: [{code, message, details: [...]}]}` (API.md §0).
fn error_envelope() -> RefOr<Schema> {
    let item = ObjectBuilder::new()
        .property("code", ObjectBuilder::new().schema_type(Type::String).description(Some("Stable, machine-readable")))
        .property("message", ObjectBuilder::new().schema_type(Type::String))
        .property("details", ArrayBuilder::new().items(ObjectBuilder::new().schema_type(Type::Object)))
        .required("code")
        .required("message")
        .required("details");
    ObjectBuilder::new()
        .property("data", ObjectBuilder::new().schema_type(Type::Null))
        .property("meta", Ref::from_schema_name("Meta"))
        .property("errors", ArrayBuilder::new().items(item).min_items(Some(1)))
        .required("data")
        .required("meta")
        .required("errors")
        .into()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_document_builds_and_every_operation_id_is_unique() {
        let spec = super::spec();
        let mut ids = std::collections::HashSet::new();
        for item in spec.paths.paths.values() {
            for op in [&item.get, &item.post, &item.put, &item.patch, &item.delete].into_iter().flatten() {
                assert!(ids.insert(op.operation_id.clone().unwrap()), "{:?} repeats", op.operation_id);
            }
        }
        assert!(ids.len() > 70);
    }
}

/// `#[schema(schema_with = …)]` helpers for request fields that take one of a few values, so
/// the document says what the server accepts (and generated requests reach the server's logic).
pub mod choice {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
    use utoipa::openapi::{Object, RefOr, Schema};

    fn one_of(values: &[&str]) -> Object {
        ObjectBuilder::new().schema_type(Type::String).enum_values(Some(values.iter().copied())).build()
    }

    pub fn deposit_method() -> Object {
        one_of(&crate::ledger::deposits::METHODS)
    }
    pub fn usd() -> Object {
        one_of(&["USD"])
    }
    pub fn task_payment() -> Object {
        one_of(&["balance", "escrow", "crypto", "nowpayments"])
    }
    pub fn delivery_mode() -> Object {
        one_of(&["output", "push"])
    }
    pub fn pricing_model() -> Object {
        one_of(&["fixed", "auction", "hybrid"])
    }
    pub fn agent_status() -> Object {
        one_of(&["active", "draft", "inactive"])
    }
    pub fn message_type() -> Object {
        one_of(&["instruction", "feedback", "question"])
    }
    pub fn hiring_message_kind() -> Object {
        one_of(&["message", "question", "answer"])
    }
    pub fn failure_reason() -> Object {
        one_of(&["timeout", "capability_mismatch", "agent_unresponsive", "other"])
    }
    pub fn chunk_kind() -> Object {
        one_of(&crate::tasks::stream::ChunkKind::NAMES)
    }
    pub fn ruling() -> Object {
        one_of(&["refund", "release", "split"])
    }
    pub fn artifact_type() -> Object {
        one_of(crate::tasks::artifacts::TYPES)
    }
    pub fn encoding() -> Object {
        one_of(&["utf8", "base64"])
    }
    /// A decimal amount in USD (at most 8 decimals).
    pub fn amount() -> Object {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(r"^\d{1,11}(\.\d{1,8})?$"))
            .description(Some("USD as a decimal string, at most 8 decimals"))
            .examples(["10.00"])
            .build()
    }
    pub fn scopes() -> RefOr<Schema> {
        let mut names: Vec<&str> = crate::auth::scope::Scope::ALL.iter().map(|s| s.as_str()).collect();
        names.push("*");
        ArrayBuilder::new().items(one_of(&names)).build().into()
    }
    pub fn events() -> RefOr<Schema> {
        ArrayBuilder::new().items(one_of(crate::webhooks::EVENTS)).min_items(Some(1)).build().into()
    }
}
