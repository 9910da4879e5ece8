//! Agent shapes and the rules for their fields: parsed at the edge into validated values.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::clock::rfc3339;
use crate::error::{ApiError, ApiResult, FieldError};
use crate::money::Amount;
use crate::text::{Line, Text};

pub const STATUSES_SETTABLE: &[&str] = &["active", "draft", "inactive"];
pub const PRICING_MODELS: &[&str] = &["fixed", "auction", "hybrid"];
const MAX_METADATA_BYTES: usize = 16 * 1024;
/// Reputation is kept in hundredths; a new agent starts neutral (3.00).
pub const INITIAL_REPUTATION_CENTI: i64 = 300;
/// An agent that polled or called within this window counts as available.
pub const ONLINE_WINDOW_MS: i64 = 60 * 60 * 1000;

/// Body of `POST /agents/register`, `POST /agents` and `PATCH /agents/:id` (wrapped in
/// `{"agent": …}` or flat). On update every field is optional.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct AgentInput {
    #[schema(min_length = 1, max_length = 100)]
    pub name: Option<Line>,
    /// `did:<namespace>:<id>`, unique.
    pub did: Option<Line>,
    #[schema(max_length = 2000)]
    pub description: Option<Text>,
    pub capabilities: Option<Vec<Line>>,
    /// `fixed`, `auction` or `hybrid`.
    #[schema(schema_with = crate::openapi::choice::pricing_model)]
    pub pricing_model: Option<Line>,
    /// Decimal string; `"0.00"` (the default) means free.
    #[schema(schema_with = crate::openapi::choice::amount)]
    pub base_price: Option<Line>,
    #[schema(max_length = 64)]
    pub category: Option<Line>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
    /// `active`, `draft` or `inactive`.
    #[schema(schema_with = crate::openapi::choice::agent_status)]
    pub status: Option<Line>,
}

/// Validated fields; `None` = not given (update) or default (create).
#[derive(Debug, Default, Clone)]
pub struct AgentFields {
    pub name: Option<String>,
    pub did: Option<String>,
    pub description: Option<Option<String>>,
    pub capabilities: Option<Vec<String>>,
    pub pricing_model: Option<String>,
    pub base_price: Option<Amount>,
    pub category: Option<Option<String>>,
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
    pub status: Option<String>,
}

impl AgentInput {
    /// `creating` makes name, did, capabilities and pricing_model required.
    pub fn validate(self, creating: bool, config: &crate::config::Config) -> ApiResult<AgentFields> {
        let allow_private_network = config.allow_private_network;
        let mut errors = Vec::new();
        let mut out = AgentFields::default();
        let required = |field: &str, present: bool, errors: &mut Vec<FieldError>| {
            if creating && !present {
                errors.push(FieldError::new(field, "is required"));
            }
        };
        required("name", self.name.is_some(), &mut errors);
        required("did", self.did.is_some(), &mut errors);
        required("capabilities", self.capabilities.is_some(), &mut errors);
        required("pricing_model", self.pricing_model.is_some(), &mut errors);

        if let Some(name) = self.name {
            let name = name.trim().to_string();
            if name.is_empty() || name.chars().count() > 100 {
                errors.push(FieldError::new("name", "must be 1–100 characters"));
            }
            out.name = Some(name);
        }
        if let Some(did) = self.did {
            let did = did.trim().to_string();
            if !valid_did(&did) {
                errors.push(FieldError::new("did", "must look like did:<namespace>:<id> (at most 255 characters)"));
            }
            out.did = Some(did);
        }
        if let Some(description) = self.description {
            if description.chars().count() > 2000 {
                errors.push(FieldError::new("description", "must be at most 2000 characters"));
            }
            out.description = Some(Some(description.into_string()).filter(|d| !d.trim().is_empty()));
        }
        if let Some(caps) = self.capabilities {
            match normalize_capabilities(caps) {
                Ok(caps) => out.capabilities = Some(caps),
                Err(message) => errors.push(FieldError::new("capabilities", message)),
            }
        }
        if let Some(model) = self.pricing_model {
            let model = model.trim().to_ascii_lowercase();
            if !PRICING_MODELS.contains(&model.as_str()) {
                errors.push(FieldError::new("pricing_model", "must be one of fixed, auction, hybrid"));
            }
            out.pricing_model = Some(model);
        }
        if let Some(price) = self.base_price {
            match Amount::parse_at_most(price.trim(), config.max_amount) {
                Ok(a) => out.base_price = Some(a),
                Err(e) => errors.push(FieldError::new("base_price", e.to_string())),
            }
        }
        if let Some(category) = self.category {
            let category = category.trim().to_string();
            if category.chars().count() > 64 {
                errors.push(FieldError::new("category", "must be at most 64 characters"));
            }
            out.category = Some(Some(category).filter(|c| !c.is_empty()));
        }
        if let Some(metadata) = self.metadata {
            match metadata {
                serde_json::Value::Object(map) => {
                    if serde_json::to_vec(&map).map(|v| v.len()).unwrap_or(usize::MAX) > MAX_METADATA_BYTES {
                        errors.push(FieldError::new("metadata", "must be at most 16 KiB of JSON"));
                    }
                    if let Some(url) = map.get("callback_url")
                        && let Err(message) = check_callback_url(url, allow_private_network)
                    {
                        errors.push(FieldError::new("metadata.callback_url", message));
                    }
                    out.metadata = Some(map);
                }
                serde_json::Value::Null => out.metadata = Some(Default::default()),
                _ => errors.push(FieldError::new("metadata", "must be a JSON object")),
            }
        }
        if let Some(status) = self.status {
            let status = status.trim().to_ascii_lowercase();
            let allowed: &[&str] = if creating { &["active", "draft"] } else { STATUSES_SETTABLE };
            if !allowed.contains(&status.as_str()) {
                errors.push(FieldError::new("status", format!("must be one of {}", allowed.join(", "))));
            }
            out.status = Some(status);
        }
        if errors.is_empty() { Ok(out) } else { Err(ApiError::validation(errors)) }
    }
}

pub fn valid_did(did: &str) -> bool {
    if did.len() > 255 {
        return false;
    }
    let mut parts = did.splitn(3, ':');
    let (Some("did"), Some(ns), Some(id)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    !ns.is_empty()
        && ns.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && !id.is_empty()
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b".-_:%".contains(&b))
}

fn normalize_capabilities(caps: Vec<Line>) -> Result<Vec<String>, String> {
    if caps.is_empty() || caps.len() > 50 {
        return Err("must list 1–50 capabilities".into());
    }
    let mut out: Vec<String> = Vec::with_capacity(caps.len());
    for cap in caps {
        let cap = cap.trim().to_ascii_lowercase();
        let ok = !cap.is_empty()
            && cap.len() <= 64
            && cap.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
        if !ok {
            return Err(format!("`{cap}` must be 1–64 characters of a-z, 0-9, '.', '_' or '-'"));
        }
        if out.contains(&cap) {
            return Err(format!("`{cap}` is listed twice"));
        }
        out.push(cap);
    }
    Ok(out)
}

/// Callbacks follow the outbound policy (`http::outbound::check_url`): https on port 443 to a
/// global host, unless the server allows private networks.
fn check_callback_url(value: &serde_json::Value, allow_private: bool) -> Result<(), String> {
    let Some(s) = value.as_str() else { return Err("must be a URL string".into()) };
    crate::http::outbound::check_url(s, allow_private).map(|_| ())
}

/// Metadata keys hidden from everyone but the owner and the agent itself.
pub fn is_private_metadata_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.starts_with('_')
        || k.starts_with("private")
        || k == "callback_url"
        || ["secret", "token", "password", "api_key", "apikey"].iter().any(|w| k.contains(w))
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Reviews {
    /// Mean rating 1–5 (null until the first review).
    pub average_rating: Option<f64>,
    pub total_reviews: i64,
}

/// An agent as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Agent {
    pub id: String,
    pub did: String,
    pub name: String,
    pub description: Option<String>,
    pub owner_id: Option<String>,
    pub capabilities: Vec<String>,
    pub pricing_model: String,
    pub base_price: Amount,
    pub category: Option<String>,
    #[schema(value_type = Object)]
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// `active`, `draft`, `inactive`, `suspended` or `deleted`.
    pub status: String,
    pub reputation_score: f64,
    pub total_tasks_completed: i64,
    /// Completed ÷ (completed + failed), 0–1; 0 before the first finished task.
    pub success_rate: f64,
    pub reviews: Reviews,
    /// `available` or `offline`.
    pub availability_status: String,
    pub verified: bool,
    pub created_at: String,
    pub updated_at: String,
}

/// The stored agent, before it is shaped for a particular reader.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AgentRow {
    pub id: String,
    pub did: String,
    pub name: String,
    pub description: Option<String>,
    pub owner_id: Option<String>,
    pub capabilities: String,
    pub pricing_model: String,
    pub base_price: i64,
    pub category: Option<String>,
    pub metadata: String,
    pub status: String,
    pub reputation_centi: i64,
    pub tasks_completed: i64,
    pub tasks_failed: i64,
    pub rating_sum: i64,
    pub rating_count: i64,
    pub has_callback: i64,
    pub last_seen_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl AgentRow {
    pub fn capabilities(&self) -> Vec<String> {
        serde_json::from_str(&self.capabilities).unwrap_or_default()
    }

    pub fn availability(&self, now: i64) -> &'static str {
        let recently_seen = self.last_seen_at.is_some_and(|t| now - t <= ONLINE_WINDOW_MS);
        if self.status == "active" && (self.has_callback != 0 || recently_seen) { "available" } else { "offline" }
    }

    pub fn reputation(&self) -> f64 {
        self.reputation_centi as f64 / 100.0
    }

    pub fn success_rate(&self) -> f64 {
        let finished = self.tasks_completed + self.tasks_failed;
        if finished == 0 { 0.0 } else { ((self.tasks_completed as f64 / finished as f64) * 1000.0).round() / 1000.0 }
    }

    /// `full` = the owner or the agent itself: private metadata keys included.
    pub fn to_agent(&self, now: i64, full: bool) -> Agent {
        let mut metadata: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&self.metadata).unwrap_or_default();
        if !full {
            metadata.retain(|k, _| !is_private_metadata_key(k));
        }
        Agent {
            id: self.id.clone(),
            did: self.did.clone(),
            name: self.name.clone(),
            description: self.description.clone(),
            owner_id: self.owner_id.clone(),
            capabilities: self.capabilities(),
            pricing_model: self.pricing_model.clone(),
            base_price: Amount::from_units(self.base_price).unwrap_or_default(),
            category: self.category.clone(),
            metadata,
            status: self.status.clone(),
            reputation_score: self.reputation(),
            total_tasks_completed: self.tasks_completed,
            success_rate: self.success_rate(),
            reviews: Reviews {
                average_rating: (self.rating_count > 0)
                    .then(|| ((self.rating_sum as f64 / self.rating_count as f64) * 100.0).round() / 100.0),
                total_reviews: self.rating_count,
            },
            availability_status: self.availability(now).to_string(),
            verified: false,
            created_at: rfc3339(self.created_at),
            updated_at: rfc3339(self.updated_at),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dids_follow_the_documented_shape() {
        for ok in ["did:agrenting:x", "did:key:z6Mk.a_b-c:d%20", "did:a1:B"] {
            assert!(valid_did(ok), "{ok}");
        }
        for bad in ["did:Agr:x", "did::x", "did:agr:", "dd:agr:x", "did:agr:x y", "did:agr:x/y", "did"] {
            assert!(!valid_did(bad), "{bad}");
        }
        assert!(!valid_did(&format!("did:a:{}", "x".repeat(250))));
    }

    #[test]
    fn capabilities_are_lowercased_and_must_be_unique() {
        assert_eq!(normalize_capabilities(vec!["Code-Review".into()]).unwrap(), vec!["code-review"]);
        assert!(normalize_capabilities(vec!["a".into(), "A".into()]).is_err());
        assert!(normalize_capabilities(vec![]).is_err());
        assert!(normalize_capabilities(vec!["has space".into()]).is_err());
        assert!(normalize_capabilities((0..51).map(|i| Line::parse(format!("c{i}")).unwrap()).collect()).is_err());
    }

    #[test]
    fn callback_urls_must_be_public_https_unless_allowed() {
        let v = |s: &str| serde_json::Value::String(s.into());
        assert!(check_callback_url(&v("https://agent.example.com/hook"), false).is_ok());
        assert!(check_callback_url(&v("http://agent.example.com/hook"), false).is_err());
        assert!(check_callback_url(&v("https://127.0.0.1/hook"), false).is_err());
        assert!(check_callback_url(&v("https://10.1.2.3/hook"), false).is_err());
        assert!(check_callback_url(&v("https://localhost/hook"), false).is_err());
        assert!(check_callback_url(&v("https://[::1]/hook"), false).is_err());
        assert!(check_callback_url(&v("http://127.0.0.1:9/hook"), true).is_ok());
        assert!(check_callback_url(&v("ftp://x.example.com"), true).is_err());
        let long = format!("https://agent.example.com/{}", "a".repeat(2_049 - "https://agent.example.com/".len()));
        for bad in [
            "https://localhost./x",
            "https://[::7f00:1]/x",
            "https://[64:ff9b::a9fe:a9fe]/x",
            "https://[2002:7f00:1::]/x",
            "https://[fec0::1]/x",
            "https://198.18.0.1/x",
            "https://240.0.0.1/x",
            "https://agent.example.com:8443/x",
            long.as_str(),
        ] {
            assert!(check_callback_url(&v(bad), false).is_err(), "{bad}");
        }
    }

    #[test]
    fn private_metadata_keys() {
        for k in ["callback_url", "_internal", "private_notes", "webhook_secret", "auth_token"] {
            assert!(is_private_metadata_key(k), "{k}");
        }
        for k in ["ai_model", "delivery_mode", "worker_id"] {
            assert!(!is_private_metadata_key(k), "{k}");
        }
    }
}
