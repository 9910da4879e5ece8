//! A fresh PostgreSQL database per test, dropped afterwards.

use sqlx::{Connection, PgConnection};

pub struct TempDatabase {
    pub url: String,
    admin_url: String,
    name: String,
}

fn admin_url() -> String {
    std::env::var("AGENTMARKET_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

impl TempDatabase {
    /// `None` when PostgreSQL is unreachable and `CI` is unset (the test is skipped with a
    /// note); with `CI` set an unreachable PostgreSQL fails the test.
    pub async fn create() -> Option<TempDatabase> {
        let admin_url = admin_url();
        let mut conn = match PgConnection::connect(&admin_url).await {
            Ok(c) => c,
            Err(e) if std::env::var_os("CI").is_none() => {
                eprintln!("skipping the PostgreSQL run: {e} (set CI to make this a failure)");
                return None;
            }
            Err(e) => panic!("PostgreSQL is unreachable at {admin_url} and CI is set: {e}"),
        };
        let name = format!("agentmarket_test_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("create database");
        let _ = conn.close().await;
        let base = admin_url.rsplit_once('/').map(|(b, _)| b.to_string()).unwrap_or(admin_url.clone());
        Some(TempDatabase { url: format!("{base}/{name}"), admin_url, name })
    }
}

impl Drop for TempDatabase {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        // Drop runs outside async; a short-lived runtime on its own thread does the cleanup.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                if let Ok(mut conn) = PgConnection::connect(&admin_url).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join();
    }
}
