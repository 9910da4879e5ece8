//! Keys made without reading the docs: scopes as grouped checkboxes or presets ("AI assistant
//! hiring" is exactly what the MCP hirer tools need), expiry presets, and the MCP set-up for the
//! new key shown once with it.

use super::{Browser, shown_key};
use crate::both_engines;
use crate::support::TestApp;

/// The key named `name`, as the API lists it.
async fn listed(app: &TestApp, key: &str, name: &str) -> serde_json::Value {
    let keys = app.get("/api/v1/api-keys", Some(key)).await.expect(200);
    keys.data().as_array().unwrap().iter().find(|k| k["name"] == name).unwrap().clone()
}

fn scopes(k: &serde_json::Value) -> Vec<String> {
    let mut s: Vec<String> = k["scopes"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect();
    s.sort();
    s
}

both_engines!(keys_are_made_from_presets_and_boxes_with_the_mcp_setup_shown_once);
async fn keys_are_made_from_presets_and_boxes_with_the_mcp_setup_shown_once(app: TestApp) {
    let b = Browser::new(&app);
    let token = b.sign_up("keys@example.com").await;
    let (_, page) = b.get("/dashboard/api-keys").await;
    for shown in [
        "AI assistant hiring",
        "Read only",
        "Full access",
        ">Hiring<",
        ">Money<",
        "name=\"scope.hire:create\"",
        "In 30 days",
    ] {
        assert!(page.contains(shown), "{shown} in the form");
    }
    assert!(!page.contains("name=\"scope.admin\""), "the admin scope is for administrators");
    let (_, made) = b.post("/dashboard/api-keys", &[("csrf", &token), ("name", "full")]).await;
    let full = shown_key(&made, "ap_");
    assert_eq!(scopes(&listed(&app, &full, "full").await), ["*"]);

    // The assistant preset: exactly the hirer tools' scopes, 30 days, and the snippets once.
    let r = b
        .http
        .post(format!("{}/dashboard/api-keys", b.base))
        .form(&[("csrf", token.as_str()), ("name", "claude"), ("preset", "assistant"), ("expiry", "30")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["cache-control"], "no-store", "a page with a secret is never cached");
    let page = r.text().await.unwrap();
    let key = shown_key(&page, "ap_");
    let claude = format!(
        "claude mcp add --transport http agentmarket http://127.0.0.1:8080/mcp/hirer --header &#34;Authorization: Bearer {key}&#34;"
    );
    assert!(page.contains(&claude), "{page}");
    for shown in [
        "&#34;url&#34;: &#34;http://127.0.0.1:8080/mcp/hirer&#34;",
        "&#34;bearer_token_env_var&#34;: &#34;AGRENTING_API_KEY&#34;",
        "&#34;default_tools_approval_mode&#34;: &#34;writes&#34;",
        "&#34;type&#34;: &#34;http&#34;",
    ] {
        assert!(page.contains(shown), "{shown} in {page}");
    }
    assert!(page.contains(&format!("export AGRENTING_API_KEY={key}")));
    let k = listed(&app, &full, "claude").await;
    assert_eq!(
        scopes(&k),
        [
            "account:read",
            "account:write",
            "agents:discover",
            "balance:read",
            "deposits:create",
            "hire:create",
            "hirings:cancel",
            "hirings:read"
        ]
    );
    let expires = k["expires_at"].as_str().unwrap().to_string();
    let in_30_days = app.clock_secs() + 30 * 86_400;
    let at = time_secs(&expires);
    assert!((at - in_30_days).abs() < 120, "{expires}");
    app.get("/api/v1/ledger/balance", Some(&key)).await.expect(200);
    app.get("/api/v1/agents/discover", Some(&key)).await.expect(200);
    app.post("/api/v1/api-keys", Some(&key), serde_json::json!({"name": "x"})).await.expect_error(403, "FORBIDDEN");
    let (_, later) = b.get("/dashboard/api-keys").await;
    assert!(
        !later.contains(&key) && !later.contains("mcp-claude") && !later.contains("AGRENTING_API_KEY"),
        "shown once"
    );

    // Read only, and hand-picked boxes.
    b.post("/dashboard/api-keys", &[("csrf", &token), ("name", "reader"), ("preset", "read"), ("expiry", "90")]).await;
    let reader = listed(&app, &full, "reader").await;
    assert!(scopes(&reader).iter().all(|s| s.ends_with(":read") || s == "agents:discover"), "{reader}");
    assert!(scopes(&reader).contains(&"hirings:read".to_string()));
    b.post(
        "/dashboard/api-keys",
        &[
            ("csrf", &token),
            ("name", "picked"),
            ("preset", "custom"),
            ("scope.tasks:read", "on"),
            ("scope.webhooks:write", "on"),
        ],
    )
    .await;
    assert_eq!(scopes(&listed(&app, &full, "picked").await), ["tasks:read", "webhooks:write"]);
    // A bad choice is refused with the form kept, and nothing is made.
    let (status, page) = b
        .post(
            "/dashboard/api-keys",
            &[
                ("csrf", &token),
                ("name", "bad"),
                ("preset", "custom"),
                ("scope.tasks:read", "on"),
                ("scope.root", "on"),
            ],
        )
        .await;
    assert_eq!(status, 422, "{page}");
    assert!(page.contains("name=\"scope.tasks:read\" checked") && page.contains("value=\"bad\""), "{page}");
    let (status, page) = b
        .post(
            "/dashboard/api-keys",
            &[("csrf", &token), ("name", "old"), ("expiry", "date"), ("expires_at", "2001-01-01T00:00")],
        )
        .await;
    assert_eq!(status, 422);
    assert!(page.contains("must be in the future"));
    let all = app.get("/api/v1/api-keys", Some(&full)).await.expect(200);
    let names: Vec<&str> = all.data().as_array().unwrap().iter().map(|k| k["name"].as_str().unwrap()).collect();
    assert!(!names.contains(&"bad") && !names.contains(&"old"), "{names:?}");
}

fn time_secs(rfc3339: &str) -> i64 {
    let t = time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339).unwrap();
    t.unix_timestamp()
}
