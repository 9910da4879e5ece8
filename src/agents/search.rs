//! Full-text search over agents' names, capabilities and descriptions: the one place that knows
//! how each engine does it. SQLite: an FTS5 table kept by triggers, ranked by bm25. PostgreSQL:
//! a generated, weighted `tsvector` column with a GIN index, ranked by `ts_rank`. Both see the
//! same words (text split at every character that is not a letter or digit, lower-cased, no
//! stemming, no stop words) and weigh name above capabilities above description.
//!
//! The user's text is data: it is cut into words of letters and digits before it reaches either
//! engine's query syntax, so quotes, operators and punctuation cannot change the query.

use crate::db::{Arg, Db, Engine, SqlBuilder};

/// At most this many words of a query are used (each must match).
const MAX_WORDS: usize = 16;
const MAX_WORD_CHARS: usize = 64;

/// The words of a search: letters and digits, lower-cased, in order, without repeats.
pub fn words(q: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for w in q.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()) {
        let w: String = w.to_lowercase().chars().take(MAX_WORD_CHARS).collect();
        if !out.contains(&w) {
            out.push(w);
        }
        if out.len() == MAX_WORDS {
            break;
        }
    }
    out
}

/// Creates the engine's search index if it is missing (after the migrations; idempotent).
pub async fn ensure(db: &Db) -> anyhow::Result<()> {
    let mut tx = db.writer().begin().await?;
    match db.engine() {
        Engine::Sqlite => {
            let (exists,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM sqlite_master WHERE name = 'agents_search'")
                .fetch_one(&mut *tx)
                .await?;
            if exists > 0 {
                return Ok(());
            }
            for statement in SQLITE_SCHEMA {
                sqlx::query(*statement).execute(&mut *tx).await?;
            }
        }
        Engine::Postgres => {
            sqlx::query("SELECT pg_advisory_xact_lock(7232092)").execute(&mut *tx).await?;
            let (exists,): (i64,) = sqlx::query_as(
                "SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = current_schema() \
                 AND table_name = 'agents' AND column_name = 'search'",
            )
            .fetch_one(&mut *tx)
            .await?;
            if exists > 0 {
                return Ok(());
            }
            for statement in POSTGRES_SCHEMA {
                sqlx::query(*statement).execute(&mut *tx).await?;
            }
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Agents carry a TEXT id, and an FTS5 row needs an integer one that VACUUM does not renumber:
/// `agent_search_ids` gives each agent its own. Triggers keep the index equal to the agents.
const SQLITE_SCHEMA: &[&str] = &[
    "CREATE TABLE agent_search_ids (search_id INTEGER PRIMARY KEY, agent_id TEXT NOT NULL UNIQUE)",
    "CREATE VIRTUAL TABLE agents_search USING fts5(name, capabilities, description, \
     tokenize = 'unicode61 remove_diacritics 0')",
    "INSERT INTO agent_search_ids (agent_id) SELECT id FROM agents",
    "INSERT INTO agents_search (rowid, name, capabilities, description) \
     SELECT m.search_id, a.name, a.capabilities, COALESCE(a.description, '') \
     FROM agent_search_ids m JOIN agents a ON a.id = m.agent_id",
    "CREATE TRIGGER agents_search_insert AFTER INSERT ON agents BEGIN \
       INSERT INTO agent_search_ids (agent_id) VALUES (NEW.id); \
       INSERT INTO agents_search (rowid, name, capabilities, description) VALUES \
         ((SELECT search_id FROM agent_search_ids WHERE agent_id = NEW.id), NEW.name, NEW.capabilities, \
          COALESCE(NEW.description, '')); \
     END",
    "CREATE TRIGGER agents_search_update AFTER UPDATE OF name, description, capabilities ON agents BEGIN \
       UPDATE agents_search SET name = NEW.name, capabilities = NEW.capabilities, \
         description = COALESCE(NEW.description, '') \
       WHERE rowid = (SELECT search_id FROM agent_search_ids WHERE agent_id = NEW.id); \
     END",
    "CREATE TRIGGER agents_search_delete AFTER DELETE ON agents BEGIN \
       DELETE FROM agents_search WHERE rowid = (SELECT search_id FROM agent_search_ids WHERE agent_id = OLD.id); \
       DELETE FROM agent_search_ids WHERE agent_id = OLD.id; \
     END",
];

/// Every non-alphanumeric run becomes a space first, so PostgreSQL's parser sees the same words
/// as FTS5's unicode61 tokenizer (it would otherwise keep `code-review` as one more token).
const POSTGRES_SCHEMA: &[&str] = &[
    "ALTER TABLE agents ADD COLUMN search tsvector GENERATED ALWAYS AS ( \
       setweight(to_tsvector('simple'::regconfig, regexp_replace(name, '[^[:alnum:]]+', ' ', 'g')), 'A') || \
       setweight(to_tsvector('simple'::regconfig, regexp_replace(capabilities, '[^[:alnum:]]+', ' ', 'g')), 'B') || \
       setweight(to_tsvector('simple'::regconfig, \
         regexp_replace(COALESCE(description, ''), '[^[:alnum:]]+', ' ', 'g')), 'C')) STORED",
    "CREATE INDEX agents_search_gin ON agents USING GIN (search)",
];

/// A matching query: `FROM …` joining `agents a` to the index, with `WHERE` opened, and the
/// score expression (lower is better) for `words`, which must not be empty. The fragment binds
/// `$1` (the score refers to it): it must be the first argument of the query built on it.
pub fn matching(engine: Engine, words: &[String]) -> (SqlBuilder, &'static str) {
    debug_assert!(!words.is_empty());
    match engine {
        Engine::Sqlite => {
            // Each word quoted: a phrase of one token, never FTS5 syntax.
            let query = words.iter().map(|w| format!("\"{w}\"")).collect::<Vec<_>>().join(" ");
            let mut q = SqlBuilder::default();
            q.push(
                " FROM agents_search s JOIN agent_search_ids m ON m.search_id = s.rowid \
                 JOIN agents a ON a.id = m.agent_id WHERE agents_search MATCH ?",
                [Arg::Text(query)],
            );
            (q, "bm25(agents_search, 10.0, 4.0, 1.0)")
        }
        Engine::Postgres => {
            // Letters and digits only, joined by AND: nothing else of tsquery's syntax.
            let query = words.join(" & ");
            let mut q = SqlBuilder::default();
            q.push(" FROM agents a WHERE a.search @@ to_tsquery('simple'::regconfig, ?)", [Arg::Text(query)]);
            (
                q,
                "CAST(-ts_rank('{0.1, 0.2, 0.4, 1.0}', a.search, to_tsquery('simple'::regconfig, $1)) AS DOUBLE PRECISION)",
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::words;

    #[test]
    fn words_are_letters_and_digits_only() {
        assert_eq!(
            words("Code-Review \"OR\" x* NEAR(a b) ; DROP"),
            ["code", "review", "or", "x", "near", "a", "b", "drop"]
        );
        assert_eq!(words("  ''\"\" -- && || ! "), Vec::<String>::new());
        assert_eq!(words("Grüße grüße 42"), ["grüße", "42"]);
        assert_eq!(words(&"w ".repeat(40)).len(), 1);
    }
}
