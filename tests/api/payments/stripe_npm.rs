//! Stripe's own signer against our verification: the official `stripe` npm package, installed at
//! test time into the build's scratch folder (none of its code is committed), signs an event with
//! `webhooks.generateTestHeaderString`; the server must accept it, and refuse it once tampered.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use super::{FakeProviders, STRIPE_WHSEC, TestApp, card_deposit, deposit_view, send_stripe, stripe_event};

const PACKAGE: &str = "stripe@23.1.0";

/// The folder holding `node_modules/stripe`, installed once per test run; `None` (skip) when
/// Node is missing and `CI` is unset.
fn stripe_package() -> Option<PathBuf> {
    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| {
        let have = |tool: &str| Command::new(tool).arg("--version").output().is_ok_and(|o| o.status.success());
        if !have("node") || !have("npm") {
            assert!(std::env::var_os("CI").is_none(), "node and npm are required for the Stripe signature test");
            eprintln!("skipping the Stripe package test: node or npm is missing (set CI to make this a failure)");
            return None;
        }
        // Under the build's own scratch folder: kept between runs, never in the checkout.
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("stripe-npm");
        std::fs::create_dir_all(&dir).unwrap();
        let installed = std::fs::read_to_string(dir.join("node_modules/stripe/package.json"))
            .is_ok_and(|p| p.contains(&format!("\"version\": \"{}\"", PACKAGE.trim_start_matches("stripe@"))));
        if installed {
            return Some(dir);
        }
        let out = Command::new("npm")
            .args(["install", PACKAGE, "--no-audit", "--no-fund", "--silent", "--prefix"])
            .arg(&dir)
            .current_dir(&dir)
            .output()
            .expect("npm runs");
        assert!(out.status.success(), "npm install failed: {}", String::from_utf8_lossy(&out.stderr));
        Some(dir)
    })
    .clone()
}

/// `Stripe-Signature` for `payload` at `t`, made by the stripe package.
fn signed_by_stripe(dir: &PathBuf, payload: &str, t: i64) -> String {
    let script = "const Stripe = require('stripe'); const stripe = new Stripe('sk_test_unused'); \
        process.stdout.write(stripe.webhooks.generateTestHeaderString({payload: process.env.PAYLOAD, \
        secret: process.env.SECRET, timestamp: Number(process.env.T)}));";
    let out = Command::new("node")
        .args(["-e", script])
        .current_dir(dir)
        .env("PAYLOAD", payload)
        .env("SECRET", STRIPE_WHSEC)
        .env("T", t.to_string())
        .output()
        .expect("node runs");
    assert!(out.status.success(), "node failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

async fn an_event_signed_by_the_stripe_package_is_accepted(app: TestApp, _fake: FakeProviders) {
    let Some(dir) = stripe_package() else { return };
    let user = app.signup("stripe-npm@example.com").await;
    let id = card_deposit(&app, &user, "19.99").await;
    let session =
        deposit_view(&app, &user, &id).await["payment_url"].as_str().unwrap().rsplit('/').next().unwrap().to_string();
    let event = stripe_event("evt_npm_1", "checkout.session.completed", &session, &id, 1999, true);
    let header = signed_by_stripe(&dir, &event, app.clock_secs());
    assert!(header.starts_with("t=") && header.contains(",v1="), "{header}");
    // Tampered after signing: refused, nothing credited.
    let tampered = event.replace("1999", "1998");
    send_stripe(&app, &tampered, Some(&header)).await.expect_error(401, "INVALID_SIGNATURE");
    assert_eq!(app.available(&user.key).await, "0.00");
    let r = send_stripe(&app, &event, Some(&header)).await.expect(200);
    assert_eq!(r.data()["outcome"], "credited");
    assert_eq!(app.available(&user.key).await, "19.99");
    app.audit_ok().await;
}
crate::with_providers!(an_event_signed_by_the_stripe_package_is_accepted);
