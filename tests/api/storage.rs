//! How the server keeps its storage.

use serde_json::json;

use crate::support::{Engine, TestApp};

/// SQLite: the server checkpoints the WAL beside the writer (`Db::checkpoint`), so committed
/// pages reach the database file within moments, not only when the WAL has filled 1,000 pages
/// and the writer checkpoints inside a commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_writes_reach_the_database_file_without_filling_the_wal() {
    let app = TestApp::spawn(Engine::Sqlite, |_| {}).await.expect("SQLite is always available");
    let file = app.dir.as_ref().unwrap().path().join("test.db");
    let wal = app.dir.as_ref().unwrap().path().join("test.db-wal");
    // Let start-up's writes settle into the file first.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let before = std::fs::read(&file).unwrap();
    for i in 0..5 {
        app.register_agent(None, &format!("did:t:storage-{i}"), json!({})).await;
    }
    let pages = std::fs::metadata(&wal).unwrap().len() / 4096;
    assert!(pages < 1000, "the writes must stay below the WAL's own checkpoint ({pages} pages)");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::fs::read(&file).unwrap() == before {
        assert!(std::time::Instant::now() < deadline, "the database file did not change within 5 s of the writes");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
