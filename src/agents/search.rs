//! Full-text search over agents' names, capabilities and descriptions: the one place that knows
//! how each engine does it. SQLite: an FTS5 table of the active agents kept by triggers.
//! PostgreSQL: a generated, weighted `tsvector` column, and `agent_words`, one row per word of
//! each active agent with the best field it is in, kept by triggers: a B-tree that yields a
//! tier's matches newest first, as FTS5's rowid order does (a GIN index finds matches unordered,
//! so a page needed every match read and sorted: 10× slower at 1M agents than at 1,000). Both
//! see the same words (text split at every character that is not a letter or digit,
//! lower-cased, no stemming, no stop words) and rank the same way: by `Tier` (every word in
//! the name, then in the name or capabilities, then anywhere), newest first within a tier.
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

/// Where every word of a search was found, best first. Results are ordered by tier, then the
/// most recently registered first: an order each engine's index can produce a page of without
/// ranking every match (FTS5 walks a tier's matches in rowid order and stops after a page).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// Every word is in the name.
    Name = 0,
    /// Every word is in the name or the capabilities, not all in the name.
    Capabilities = 1,
    /// Some word only in the description.
    Description = 2,
}

const TIERS: [Tier; 3] = [Tier::Name, Tier::Capabilities, Tier::Description];

/// Creates the engine's search index if it is missing or of an older shape (after the
/// migrations; idempotent; a rebuild reads every agent once).
pub async fn ensure(db: &Db) -> anyhow::Result<()> {
    let mut tx = db.writer().begin().await?;
    match db.engine() {
        Engine::Sqlite => {
            // Current: the FTS5 table and the status-aware trigger. Anything else (nothing, the
            // first shape that indexed drafts too, a half-dropped index) is rebuilt.
            let (current,): (i64,) = sqlx::query_as(
                "SELECT COUNT(*) FROM sqlite_master WHERE name IN ('agents_search', 'agents_search_relist')",
            )
            .fetch_one(&mut *tx)
            .await?;
            if current == 2 {
                return Ok(());
            }
            for statement in SQLITE_DROP {
                sqlx::query(*statement).execute(&mut *tx).await?;
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
            if exists == 0 {
                sqlx::query(POSTGRES_COLUMN).execute(&mut *tx).await?;
            }
            // Current: the words table and its three triggers. Anything else (the GIN shapes
            // before it, a half-dropped table) is rebuilt from the agents.
            let (current,): (i64,) = sqlx::query_as(
                "SELECT (SELECT COUNT(*) FROM pg_trigger WHERE tgname LIKE 'agent_words_%' \
                   AND tgrelid = 'agents'::regclass) \
                 + (SELECT COUNT(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename = 'agent_words')",
            )
            .fetch_one(&mut *tx)
            .await?;
            if current != 4 {
                for statement in POSTGRES_WORDS {
                    sqlx::query(*statement).execute(&mut *tx).await?;
                }
            }
        }
    }
    tx.commit().await?;
    Ok(())
}

const SQLITE_DROP: &[&str] = &[
    "DROP TRIGGER IF EXISTS agents_search_insert",
    "DROP TRIGGER IF EXISTS agents_search_update",
    "DROP TRIGGER IF EXISTS agents_search_relist",
    "DROP TRIGGER IF EXISTS agents_search_delete",
    "DROP TABLE IF EXISTS agents_search",
    "DROP TABLE IF EXISTS agent_search_ids",
];

/// Agents carry a TEXT id, and an FTS5 row needs an integer one that VACUUM does not renumber:
/// `agent_search_ids` gives every agent its own, counting down from -1 in registration order
/// (so ascending rowid order, the order FTS5 reads fastest, is newest first). The FTS5 table holds active agents only, like the listing: a count
/// or a page of matches then needs nothing but the index. Triggers keep both equal to the
/// agents.
const SQLITE_SCHEMA: &[&str] = &[
    "CREATE TABLE agent_search_ids (search_id INTEGER PRIMARY KEY, agent_id TEXT NOT NULL UNIQUE)",
    "CREATE VIRTUAL TABLE agents_search USING fts5(name, capabilities, description, \
     tokenize = 'unicode61 remove_diacritics 0')",
    "INSERT INTO agent_search_ids (search_id, agent_id) \
     SELECT -ROW_NUMBER() OVER (ORDER BY created_at, id), id FROM agents",
    "INSERT INTO agents_search (rowid, name, capabilities, description) \
     SELECT m.search_id, a.name, a.capabilities, COALESCE(a.description, '') \
     FROM agent_search_ids m JOIN agents a ON a.id = m.agent_id WHERE a.status = 'active'",
    "CREATE TRIGGER agents_search_insert AFTER INSERT ON agents BEGIN \
       INSERT INTO agent_search_ids (search_id, agent_id) \
         VALUES ((SELECT COALESCE(MIN(search_id), 0) - 1 FROM agent_search_ids), NEW.id); \
       INSERT INTO agents_search (rowid, name, capabilities, description) \
         SELECT search_id, NEW.name, NEW.capabilities, COALESCE(NEW.description, '') \
         FROM agent_search_ids WHERE agent_id = NEW.id AND NEW.status = 'active'; \
     END",
    "CREATE TRIGGER agents_search_relist AFTER UPDATE OF name, description, capabilities, status ON agents BEGIN \
       DELETE FROM agents_search WHERE rowid = (SELECT search_id FROM agent_search_ids WHERE agent_id = OLD.id); \
       INSERT INTO agents_search (rowid, name, capabilities, description) \
         SELECT search_id, NEW.name, NEW.capabilities, COALESCE(NEW.description, '') \
         FROM agent_search_ids WHERE agent_id = NEW.id AND NEW.status = 'active'; \
     END",
    "CREATE TRIGGER agents_search_delete AFTER DELETE ON agents BEGIN \
       DELETE FROM agents_search WHERE rowid = (SELECT search_id FROM agent_search_ids WHERE agent_id = OLD.id); \
       DELETE FROM agent_search_ids WHERE agent_id = OLD.id; \
     END",
];

/// Every non-alphanumeric run becomes a space first, so PostgreSQL's parser sees the same words
/// as FTS5's unicode61 tokenizer (it would otherwise keep `code-review` as one more token). The
/// weights mark the field: A name, B capabilities, C description.
const POSTGRES_COLUMN: &str = "ALTER TABLE agents ADD COLUMN search tsvector GENERATED ALWAYS AS ( \
       setweight(to_tsvector('simple'::regconfig, regexp_replace(name, '[^[:alnum:]]+', ' ', 'g')), 'A') || \
       setweight(to_tsvector('simple'::regconfig, regexp_replace(capabilities, '[^[:alnum:]]+', ' ', 'g')), 'B') || \
       setweight(to_tsvector('simple'::regconfig, \
         regexp_replace(COALESCE(description, ''), '[^[:alnum:]]+', ' ', 'g')), 'C')) STORED";

/// The best field a lexeme of the `search` column is in (0 name, 1 capabilities, 2 description:
/// `Tier`'s numbers), from the weights `POSTGRES_COLUMN` gives each field.
macro_rules! postgres_field {
    () => {
        "CASE WHEN 'A' = ANY(u.weights) THEN 0 WHEN 'B' = ANY(u.weights) THEN 1 ELSE 2 END"
    };
}

/// `agent_words`: per active agent, each word once with the best field it is in, keyed so that a
/// word's matches in one field come newest first (the same order as `agents_by_recent`). The
/// triggers keep it equal to the agents (an update fires only when the words or the status
/// change, not on every reputation change); the rebuild replaces the GIN indexes of earlier
/// shapes, which nothing reads any more. The table is filled before its key is built (faster
/// than filling the index row by row), and the triggers exist before it is filled, in the same
/// transaction, so no agent registered meanwhile is missed.
const POSTGRES_WORDS: &[&str] = &[
    "DROP INDEX IF EXISTS agents_search_gin",
    "DROP INDEX IF EXISTS agents_search_active_gin",
    "DROP TABLE IF EXISTS agent_words",
    "CREATE TABLE agent_words (word TEXT NOT NULL, field SMALLINT NOT NULL, created_at BIGINT NOT NULL, \
     agent_id TEXT NOT NULL)",
    concat!(
        "CREATE OR REPLACE FUNCTION agent_words_sync() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
           IF TG_OP <> 'INSERT' AND OLD.status = 'active' THEN \
             DELETE FROM agent_words w USING unnest(OLD.search) u WHERE w.word = u.lexeme AND w.field = ",
        postgres_field!(),
        " AND w.created_at = OLD.created_at AND w.agent_id = OLD.id; \
           END IF; \
           IF TG_OP <> 'DELETE' AND NEW.status = 'active' THEN \
             INSERT INTO agent_words (word, field, created_at, agent_id) SELECT u.lexeme, ",
        postgres_field!(),
        ", NEW.created_at, NEW.id FROM unnest(NEW.search) u; \
           END IF; \
           RETURN NULL; \
         END $$"
    ),
    "DROP TRIGGER IF EXISTS agent_words_insert ON agents",
    "DROP TRIGGER IF EXISTS agent_words_update ON agents",
    "DROP TRIGGER IF EXISTS agent_words_delete ON agents",
    "CREATE TRIGGER agent_words_insert AFTER INSERT ON agents FOR EACH ROW EXECUTE FUNCTION agent_words_sync()",
    "CREATE TRIGGER agent_words_update AFTER UPDATE OF name, description, capabilities, status ON agents \
     FOR EACH ROW WHEN (OLD.search IS DISTINCT FROM NEW.search OR OLD.status IS DISTINCT FROM NEW.status) \
     EXECUTE FUNCTION agent_words_sync()",
    "CREATE TRIGGER agent_words_delete AFTER DELETE ON agents FOR EACH ROW EXECUTE FUNCTION agent_words_sync()",
    concat!(
        "INSERT INTO agent_words (word, field, created_at, agent_id) SELECT u.lexeme, ",
        postgres_field!(),
        ", a.created_at, a.id FROM agents a, unnest(a.search) u WHERE a.status = 'active'"
    ),
    "ALTER TABLE agent_words ADD PRIMARY KEY (word, field, created_at, agent_id)",
    "ANALYZE agent_words",
];

/// Every word as a quoted FTS5 phrase of one token (never FTS5 syntax), all required.
fn fts5_phrases(words: &[String]) -> String {
    words.iter().map(|w| format!("\"{w}\"")).collect::<Vec<_>>().join(" ")
}

/// The FTS5 query for the agents in `tier`; each word quoted: a phrase of one token, never
/// FTS5 syntax.
fn fts5_query(words: &[String], tier: Tier) -> String {
    let all = fts5_phrases(words);
    let name = format!("{{name}} : ({all})");
    let name_or_capabilities = format!("{{name capabilities}} : ({all})");
    match tier {
        Tier::Name => name,
        Tier::Capabilities => format!("({name_or_capabilities}) NOT ({name})"),
        Tier::Description => format!("({all}) NOT ({name_or_capabilities})"),
    }
}

/// The tsquery of every word (letters and digits only, joined by AND: nothing else of
/// tsquery's syntax), optionally restricted to weights.
fn tsquery(words: &[String], weights: &str) -> String {
    words.iter().map(|w| format!("{w}{weights}")).collect::<Vec<_>>().join(" & ")
}

/// `FROM …` joining `agents a` to the index, with `WHERE` opened, for the active agents
/// matching every word of `words` (not empty). `agents`: whether the agents' columns are needed
/// (a bare count of matches reads the index alone on SQLite).
pub fn matching(engine: Engine, words: &[String], agents: bool) -> SqlBuilder {
    debug_assert!(!words.is_empty());
    let all = fts5_phrases(words);
    let mut q = SqlBuilder::default();
    match engine {
        Engine::Sqlite if !agents => {
            q.push(" FROM agents_search WHERE agents_search MATCH ?", [Arg::Text(all)]);
        }
        Engine::Sqlite => {
            q.push(
                " FROM agents_search s CROSS JOIN agent_search_ids m ON m.search_id = s.rowid \
                 CROSS JOIN agents a ON a.id = m.agent_id WHERE agents_search MATCH ? AND a.status = 'active'",
                [Arg::Text(all)],
            );
        }
        // The first word drives (`rarest_first`); the others are checked on the agent's row.
        Engine::Postgres if !agents && words.len() == 1 => {
            q.push(" FROM agent_words w WHERE w.word = ?", [Arg::Text(words[0].clone())]);
        }
        Engine::Postgres => {
            q.push(
                &format!(" FROM agent_words w {AGENT_BY_KEY} WHERE w.word = ? AND a.status = 'active'"),
                [Arg::Text(words[0].clone())],
            );
            if words.len() > 1 {
                q.push(" AND a.search @@ to_tsquery('simple'::regconfig, ?)", [Arg::Text(tsquery(words, ""))]);
            }
        }
    }
    q
}

/// How a PostgreSQL walk of `agent_words` reaches each entry's agent: by its key, in a subquery
/// the planner cannot fold into the join. As a plain join, a generic plan made while `agents`
/// was nearly empty read it through its status index, with the id only as a join filter: every
/// active agent for each word entry, kept by the search pool's connection until statistics
/// changed (test `search::q_statements_find_agents_by_key_on_a_new_database`).
const AGENT_BY_KEY: &str = "CROSS JOIN LATERAL (SELECT * FROM agents WHERE id = w.agent_id OFFSET 0) a";

/// A word in more agents than this counts as common (`rarest_first`).
const COMMON: i64 = 256;

/// `words` with the one in the fewest agents first (PostgreSQL walks the first word's matches
/// and checks the others per agent, so a rare first word keeps that walk short); words in more
/// than `COMMON` agents keep their order after the rarer ones. SQLite's FTS5 intersects the
/// words itself: unchanged there.
pub async fn rarest_first(db: &Db, mut words: Vec<String>) -> sqlx::Result<Vec<String>> {
    if db.engine() == Engine::Sqlite || words.len() < 2 {
        return Ok(words);
    }
    let mut q = SqlBuilder::new("SELECT ");
    for (i, w) in words.iter().enumerate() {
        if i > 0 {
            q.push(", ", []);
        }
        q.push(
            "(SELECT COUNT(*) FROM (SELECT 1 FROM agent_words WHERE word = ? LIMIT ?) c)",
            [Arg::Text(w.clone()), Arg::Int(COMMON + 1)],
        );
    }
    let row = q.query().fetch_one(db.search()).await?;
    let mut counted = Vec::with_capacity(words.len());
    for (i, w) in words.drain(..).enumerate() {
        counted.push((sqlx::Row::try_get::<i64, _>(&row, i)?, w));
    }
    counted.sort_by_key(|(n, _)| *n);
    Ok(counted.into_iter().map(|(_, w)| w).collect())
}

/// The queries for one page of the active agents matching every word of `words` (not empty),
/// in tier order and newest first within a tier, each selecting `columns` (of `a`), `tier` and
/// `seq` (the row's place within its tier; larger is newer) and at most `want` rows. Run them
/// in order until `want` rows are in hand. `filters` appends ` AND …` conditions on `a`;
/// `after` is the (tier, seq, id) of the last row already seen.
///
/// SQLite: one query per tier from the cursor's on, each walking the index in rowid order and
/// stopping after `want` rows, so a later tier is read only when the earlier ones run short.
/// PostgreSQL: the same, each tier a walk of `agent_words` (`postgres_tier_query`).
pub fn page_queries(
    engine: Engine,
    words: &[String],
    columns: &str,
    filters: &dyn Fn(&mut SqlBuilder),
    after: Option<(i64, i64, &str)>,
    want: i64,
) -> Vec<SqlBuilder> {
    debug_assert!(!words.is_empty());
    match engine {
        Engine::Sqlite => TIERS
            .into_iter()
            .filter(|tier| after.is_none_or(|(t, _, _)| *tier as i64 >= t))
            .map(|tier| {
                // CROSS JOIN fixes the join order: the index first (SQLite 3.51 would otherwise
                // scan the agents by status and probe the index for each).
                let mut q = SqlBuilder::default();
                q.push(
                    &format!(
                        "SELECT {columns}, {} AS tier, -s.rowid AS seq FROM agents_search s \
                         CROSS JOIN agent_search_ids m ON m.search_id = s.rowid \
                         CROSS JOIN agents a ON a.id = m.agent_id \
                         WHERE agents_search MATCH ? AND a.status = 'active'",
                        tier as i64
                    ),
                    [Arg::Text(fts5_query(words, tier))],
                );
                filters(&mut q);
                if let Some((t, seq, _)) = after
                    && t == tier as i64
                {
                    q.push(" AND s.rowid > ?", [Arg::Int(-seq)]);
                }
                // Ascending: FTS5 reads a doclist forwards many times faster than backwards,
                // and search ids count down, so ascending is newest first.
                q.push(" ORDER BY s.rowid LIMIT ?", [Arg::Int(want)]);
                q
            })
            .collect(),
        Engine::Postgres => TIERS
            .into_iter()
            .filter(|tier| after.is_none_or(|(t, _, _)| *tier as i64 >= t))
            .map(|tier| {
                let after = after.filter(|(t, _, _)| *t == tier as i64);
                postgres_tier_query(words, tier, columns, filters, after, want)
            })
            .collect(),
    }
}

/// PostgreSQL's query for one tier's page: the first word's `agent_words` entries newest first,
/// from each field at or above the tier (one field for a one-word search: a word's best field
/// is its tier), each joined to its agent and, with more words, kept when the agent's tier is
/// exactly `tier`; stops after `want` rows.
fn postgres_tier_query(
    words: &[String],
    tier: Tier,
    columns: &str,
    filters: &dyn Fn(&mut SqlBuilder),
    after: Option<(i64, i64, &str)>,
    want: i64,
) -> SqlBuilder {
    let weights = |t: Tier| match t {
        Tier::Name => ":A",
        Tier::Capabilities => ":AB",
        Tier::Description => "",
    };
    let fields: Vec<Tier> =
        if words.len() == 1 { vec![tier] } else { TIERS.into_iter().filter(|f| *f as i64 <= tier as i64).collect() };
    let mut q = SqlBuilder::default();
    if fields.len() > 1 {
        q.push("SELECT * FROM (", []);
    }
    for (i, field) in fields.iter().enumerate() {
        if fields.len() > 1 {
            q.push(if i == 0 { "(" } else { " UNION ALL (" }, []);
        }
        q.push(
            &format!(
                "SELECT {columns}, {} AS tier, w.created_at AS seq, w.agent_id AS wid \
                 FROM agent_words w {AGENT_BY_KEY} \
                 WHERE w.word = ? AND w.field = {} AND a.status = 'active'",
                tier as i64, *field as i64
            ),
            [Arg::Text(words[0].clone())],
        );
        if words.len() > 1 {
            q.push(" AND a.search @@ to_tsquery('simple'::regconfig, ?)", [Arg::Text(tsquery(words, weights(tier)))]);
            if let Some(better) = TIERS.into_iter().rev().find(|t| (*t as i64) < tier as i64) {
                q.push(
                    " AND NOT a.search @@ to_tsquery('simple'::regconfig, ?)",
                    [Arg::Text(tsquery(words, weights(better)))],
                );
            }
        }
        filters(&mut q);
        if let Some((_, seq, id)) = after {
            q.push(" AND (w.created_at, w.agent_id) < (?, ?)", [Arg::Int(seq), Arg::Text(id.to_string())]);
        }
        q.push(" ORDER BY w.created_at DESC, w.agent_id DESC LIMIT ?", [Arg::Int(want)]);
        if fields.len() > 1 {
            q.push(")", []);
        }
    }
    if fields.len() > 1 {
        q.push(") x ORDER BY x.seq DESC, x.wid DESC LIMIT ?", [Arg::Int(want)]);
    }
    q
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
