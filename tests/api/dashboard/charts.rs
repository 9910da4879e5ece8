//! The charts: the wallet's balance over time, each owned agent's earnings per day, the admin's
//! fee income and volume per day — drawn as SVG with their numbers in a table.

use serde_json::json;

use super::{Browser, shown_key};
use crate::both_engines;
use crate::support::TestApp;

/// The rows of a chart's data table (`<table … id="<id>-data">`), cells as text.
fn rows(page: &str, id: &str) -> Vec<Vec<String>> {
    let start = page.find(&format!("id=\"{id}-data\"")).unwrap_or_else(|| panic!("no {id} table in {page}"));
    let table = &page[start..page[start..].find("</table>").unwrap() + start];
    let body = &table[table.find("<tbody>").unwrap()..];
    body.split("<tr>")
        .skip(1)
        .map(|r| r.split("<td>").skip(1).map(|c| c.split("</td>").next().unwrap().to_string()).collect())
        .collect()
}

both_engines!(the_wallet_and_admin_pages_draw_money_over_time);
async fn the_wallet_and_admin_pages_draw_money_over_time(app: TestApp) {
    let b = Browser::new(&app);
    let token = b.sign_up("charts@example.com").await;
    let (_, page) = b.post("/dashboard/api-keys", &[("csrf", &token), ("name", "k")]).await;
    let key = shown_key(&page, "ap_");
    let (_, page) = b
        .post(
            "/dashboard/agents",
            &[
                ("csrf", &token),
                ("name", "Mine"),
                ("did", "did:t:mine"),
                ("capabilities", "code-review"),
                ("base_price", "10.00"),
            ],
        )
        .await;
    let mine = shown_key(&page, "agk_");
    app.clock.advance_secs(60);
    app.fund(&key, "50.00").await;
    app.clock.advance_secs(60);
    let other = app.signup("buyer@example.com").await;
    app.fund(&other.key, "10.00").await;
    let task = app
        .post("/api/v1/tasks", Some(&other.key), json!({"provider_agent_id": "did:t:mine", "capability": "code-review", "input": "x", "payment_type": "balance"}))
        .await
        .expect(201);
    let id = task.data()["id"].as_str().unwrap();
    app.post(&format!("/api/v1/tasks/{id}/complete"), Some(&mine), json!({"output": "ok"})).await.expect(200);
    app.post(&format!("/api/v1/tasks/{id}/accept"), Some(&other.key), json!({"rating": 5})).await.expect(200);
    app.clock.advance_secs(60);

    let (_, wallet) = b.get("/dashboard/wallet").await;
    assert!(wallet.contains("<svg class=\"chart\"") && wallet.contains("role=\"img\""), "{wallet}");
    let balance = rows(&wallet, "balance-chart");
    let available: Vec<&str> = balance.iter().map(|r| r[1].as_str()).collect();
    assert_eq!(available.first(), Some(&"0.00 USD"), "{balance:?}");
    assert!(available.contains(&"50.00 USD"), "the deposit shows: {balance:?}");
    let earned = rows(&wallet, "earnings-0");
    assert_eq!(earned.len(), 30);
    // Today's (or, across midnight, yesterday's) row holds the earning; the others are zero.
    let nonzero: Vec<&str> = earned.iter().map(|r| r[1].as_str()).filter(|v| *v != "0.00 USD").collect();
    assert_eq!(nonzero, ["9.50 USD"], "the agent's earning: {earned:?}");
    assert!(wallet.contains("Mine: earnings per day"));
    assert!(wallet.contains("<time datetime="), "times are relative with the exact time on hover");
    assert!(wallet.contains("50.00 USD"), "amounts carry their currency");

    app.admin("root@example.com").await;
    let admin = Browser::new(&app);
    let (_, login) = admin.get("/login").await;
    admin
        .post(
            "/login",
            &[("csrf", &super::csrf(&login)), ("email", "root@example.com"), ("password", "administrator password")],
        )
        .await;
    let (status, page) = admin.get("/dashboard/admin").await;
    assert_eq!(status, 200);
    let day_values = |id: &str| -> Vec<String> {
        rows(&page, id).into_iter().map(|r| r[1].clone()).filter(|v| v != "0.00 USD").collect()
    };
    assert_eq!(day_values("fees-chart"), ["0.50 USD"], "{page}");
    assert_eq!(day_values("volume-chart"), ["10.00 USD"]);
    assert_eq!(rows(&page, "fees-chart").len(), 30);
}
