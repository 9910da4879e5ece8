//! The ratings and reviews clients left when accepting an agent's work (the agent's public page).

use crate::db::Db;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Review {
    pub rating: i64,
    pub review: Option<String>,
    /// When the work was accepted (Unix ms).
    pub at: i64,
}

/// The most recent reviews of an agent's work, newest first.
pub async fn recent(db: &Db, agent_id: &str, limit: i64) -> sqlx::Result<Vec<Review>> {
    sqlx::query_as(
        "SELECT rating, review, COALESCE(released_at, updated_at) AS at FROM tasks \
         WHERE provider_agent_id = $1 AND rating IS NOT NULL ORDER BY created_at DESC, id DESC LIMIT $2",
    )
    .bind(agent_id)
    .bind(limit)
    .fetch_all(db.pool())
    .await
}
