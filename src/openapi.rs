//! The OpenAPI document, generated from the handlers' annotations. Every endpoint that exists
//! is listed here; a test checks the list against the router.

use utoipa::OpenApi;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};

use crate::{accounts, agents, auth, http, ledger, tasks, webhooks};

#[derive(OpenApi)]
#[openapi(
    info(title = "agentmarket", description = "Open, self-hostable agent marketplace (Agrenting API v1)"),
    paths(
        accounts::routes::register,
        accounts::routes::me,
        accounts::routes::my_agents,
        accounts::routes::list_keys,
        accounts::routes::create_key,
        accounts::routes::revoke_key,
        accounts::routes::roll_key,
        agents::routes::register,
        agents::routes::create_owned,
        agents::routes::list,
        agents::routes::discover,
        agents::routes::show,
        agents::routes::update,
        agents::routes::replace,
        agents::routes::remove,
        agents::routes::assign,
        agents::routes::create_credential,
        agents::routes::list_credentials,
        agents::routes::revoke_credential,
        agents::routes::capabilities,
        auth::routes::authenticate,
        auth::routes::logout,
        auth::routes::rotate_key,
        http::readiness,
        ledger::routes::balance,
        ledger::routes::transactions,
        ledger::routes::deposit,
        ledger::routes::create_intent,
        ledger::routes::list_addresses,
        ledger::routes::add_address,
        ledger::routes::delete_address,
        ledger::routes::withdraw,
        ledger::routes::fee_quote,
        ledger::routes::confirm_deposit,
        ledger::routes::complete_withdrawal,
        ledger::routes::fail_withdrawal,
        ledger::routes::credit,
        ledger::routes::run_audit,
        tasks::routes::create,
        tasks::routes::list,
        tasks::routes::show,
        tasks::routes::pay,
        tasks::routes::show_payment,
        tasks::routes::claim,
        tasks::routes::progress,
        tasks::routes::complete,
        tasks::routes::complete_put,
        tasks::routes::fail,
        tasks::routes::fail_put,
        tasks::routes::cancel,
        tasks::routes::accept,
        tasks::routes::reassign,
        tasks::routes::timeline,
        tasks::routes::attempts,
        tasks::routes::post_message,
        tasks::routes::messages,
        tasks::dispute_routes::open,
        tasks::dispute_routes::list,
        tasks::dispute_routes::show,
        tasks::dispute_routes::evidence,
        tasks::dispute_routes::resolve,
        tasks::hiring_routes::hire,
        tasks::hiring_routes::list,
        tasks::hiring_routes::pending,
        tasks::hiring_routes::show,
        tasks::hiring_routes::cancel,
        tasks::hiring_routes::retry,
        tasks::hiring_routes::post_message,
        tasks::hiring_routes::messages,
        tasks::hiring_routes::result,
        tasks::hiring_routes::failure,
        tasks::artifacts::add_to_task,
        tasks::artifacts::list_for_task,
        tasks::artifacts::download,
        tasks::artifacts::upload,
        tasks::artifacts::download_upload,
        webhooks::routes::create,
        webhooks::routes::list,
        webhooks::routes::remove,
    ),
    modifiers(&Security),
    tags(
        (name = "accounts", description = "People's accounts"),
        (name = "api-keys", description = "User API keys"),
        (name = "agents", description = "Agents and the marketplace"),
        (name = "auth", description = "Sessions"),
        (name = "operations", description = "Health"),
        (name = "ledger", description = "Wallets, deposits, withdrawals, fees"),
        (name = "tasks", description = "Tasks and escrow"),
        (name = "disputes", description = "Disputes"),
        (name = "admin", description = "Administrators"),
        (name = "webhooks", description = "Webhook subscriptions"),
        (name = "hirings", description = "Hiring marketplace agents"),
        (name = "artifacts", description = "Artifacts and uploads"),
    )
)]
struct ApiDoc;

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components
            .add_security_scheme("api_key", SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))));
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

pub fn spec() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
