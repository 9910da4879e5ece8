//! The one place that knows which engine is underneath. Everything else writes portable SQL
//! (`$1…$n`, `RETURNING`, `ON CONFLICT`) against `sqlx::Any`.

use std::fmt::Write;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyPool, ConnectOptions, Executor, Row, Transaction};

pub type Tx = Transaction<'static, Any>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// How often the server checkpoints SQLite's WAL (`Db::checkpoint`).
pub const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
    /// Where writes go. On SQLite, one connection: the file has one writer at a time, and
    /// writers queued here wait their turn in order instead of polling the file lock with
    /// `busy_timeout`'s back-off. On PostgreSQL, the same pool as reads.
    writer: AnyPool,
    /// For the search walks (`agents::search`). On PostgreSQL a few connections that plan each
    /// prepared statement once (`plan_cache_mode = force_generic_plan`): left to itself,
    /// PostgreSQL re-plans them at every execution, and at 1M agents the planning cost as
    /// much as the walk (a `q` page: 470 req/s re-planned, 1,000 generic). Not for every
    /// read: a capability page's best plan depends on the capability (generic: 2.3× slower).
    /// On SQLite, the read pool.
    search: AnyPool,
    engine: Engine,
    /// Bumped after every committed change that can make a credential unusable or change
    /// what it may do (revoke, roll, rotate, log-out, agent deleted or claimed): this
    /// process's verified-key cache drops everything older at once. Other servers learn of
    /// the change when their cache entries expire.
    credentials_epoch: Arc<AtomicU64>,
}

/// SQLite's read connections: twice the cores, at least 4. Each SQLite connection works on its
/// own thread and a read of cached pages never waits on I/O, so connections beyond the cores
/// only take turns on them: at 32 concurrent discovery requests on 2 cores, 36 connections
/// answered 1,490 req/s with p99 76 ms, 4 connections 2,060 req/s with p99 22 ms.
fn sqlite_readers() -> u32 {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get()) as u32;
    (cores * 2).max(4)
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

impl Db {
    /// Connects to `url` (`sqlite:` or `postgres:`). SQLite files are created on first start.
    pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<Db> {
        sqlx::any::install_default_drivers();
        let engine = if url.starts_with("sqlite:") {
            Engine::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Engine::Postgres
        } else {
            anyhow::bail!("unsupported database URL (expected sqlite:… or postgres://…)");
        };
        let options = AnyConnectOptions::from_str(url)
            .context("invalid database URL")?
            .log_statements(tracing::log::LevelFilter::Trace)
            .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_millis(500));
        let pool_options = |max: u32| {
            // No ping before each use (sqlx's default), which cost every request and every
            // engine batch one more round trip (on SQLite, to the connection's thread, while
            // the one writer waited). sqlx still tests a connection when it comes back, so a
            // broken one fails at most one statement before it is dropped.
            let pool = AnyPoolOptions::new()
                .max_connections(max)
                .acquire_timeout(Duration::from_secs(30))
                .test_before_acquire(false);
            if engine != Engine::Sqlite {
                return pool;
            }
            pool.after_connect(|conn, _meta| {
                Box::pin(async move {
                    // WAL lets readers run beside the one writer; busy_timeout covers other
                    // processes on the same file; foreign keys are off by default in SQLite.
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute("PRAGMA busy_timeout = 30000").await?;
                    conn.execute("PRAGMA foreign_keys = ON").await?;
                    conn.execute("PRAGMA synchronous = NORMAL").await?;
                    Ok(())
                })
            })
        };
        let readers = match engine {
            Engine::Sqlite => max_connections.min(sqlite_readers()),
            Engine::Postgres => max_connections,
        };
        let pool =
            pool_options(readers).connect_with(options.clone()).await.context("cannot connect to the database")?;
        let search = match engine {
            Engine::Sqlite => pool.clone(),
            Engine::Postgres => AnyPoolOptions::new()
                .max_connections((max_connections / 4).max(2))
                .test_before_acquire(false)
                .acquire_timeout(Duration::from_secs(30))
                .after_connect(|conn, _meta| {
                    Box::pin(async move {
                        // Every search statement walks an index by its key (as the task
                        // engine's do): no generic plan may read a table whole because it was
                        // made while the table was small.
                        conn.execute("SET plan_cache_mode = force_generic_plan").await?;
                        conn.execute("SET enable_seqscan = off").await?;
                        Ok(())
                    })
                })
                .connect_lazy_with(options.clone()),
        };
        let writer = match engine {
            Engine::Sqlite => pool_options(1).connect_with(options).await.context("cannot connect to the database")?,
            Engine::Postgres => pool.clone(),
        };
        Ok(Db { pool, writer, search, engine, credentials_epoch: Arc::default() })
    }

    /// SQLite: copies what the WAL holds into the database file as far as no reader still needs
    /// it (a passive checkpoint: it waits for no one and no one waits for it). Run every
    /// `CHECKPOINT_EVERY` by the server on a reader connection, so that the checkpoint SQLite
    /// runs inside the commit that fills the WAL (1,000 pages), while the one writer waits,
    /// finds little left to copy; that one still starts the WAL over, which a checkpoint beside
    /// a busy writer never can (without it the WAL grew to 2 GB in a 15 s bench). Escrow bench,
    /// 16 clients: 1,719 → 2,087 money-moving requests/s, p99 17.8 → 14.1 ms. PostgreSQL: nothing.
    pub async fn checkpoint(&self) -> sqlx::Result<()> {
        if self.engine == Engine::Sqlite {
            sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&self.pool).await?;
        }
        Ok(())
    }

    /// Call after committing a change to a credential (see `credentials_epoch`).
    pub fn credentials_changed(&self) {
        self.credentials_epoch.fetch_add(1, Ordering::SeqCst);
    }

    pub fn credentials_epoch(&self) -> u64 {
        self.credentials_epoch.load(Ordering::SeqCst)
    }

    pub async fn migrate(&self) -> anyhow::Result<()> {
        MIGRATOR.run(&self.writer).await.context("migrations failed")?;
        Ok(())
    }

    /// True when every migration this binary knows has been applied.
    pub async fn migrations_applied(&self) -> anyhow::Result<bool> {
        let applied: Vec<(i64,)> = match sqlx::query_as("SELECT version FROM _sqlx_migrations WHERE success = TRUE")
            .fetch_all(&self.pool)
            .await
        {
            Ok(rows) => rows,
            // No migrations table yet: nothing applied.
            Err(sqlx::Error::Database(_)) => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        Ok(MIGRATOR.iter().all(|m| applied.iter().any(|(v,)| *v == m.version)))
    }

    /// For reads (and, on PostgreSQL, writes too).
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// For the search walks (see the field).
    pub fn search(&self) -> &AnyPool {
        &self.search
    }

    /// For a write outside `begin()` (one statement in its own transaction).
    pub fn writer(&self) -> &AnyPool {
        &self.writer
    }

    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// Opens a write transaction. On SQLite it takes the write lock up front (`BEGIN IMMEDIATE`)
    /// so a read-then-write transaction cannot fail with "database is locked" half-way. Inside a
    /// request with an idempotency key, the first write transaction records the key, so the key
    /// commits (or rolls back) with the work it guards (`http::idempotency`).
    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        let mut tx = match self.engine {
            Engine::Sqlite => self.writer.begin_with("BEGIN IMMEDIATE").await?,
            Engine::Postgres => self.writer.begin().await?,
        };
        crate::http::idempotency::record_in(&mut tx).await?;
        Ok(tx)
    }

    /// Opens a write transaction for statements that are the same text whatever their data
    /// and find their rows by key (the task engine's batches). On PostgreSQL they then run on
    /// their cached generic plans: left to itself, PostgreSQL plans a statement whose
    /// parameters are arrays again at every execution, which costs more than running it. A
    /// generic plan is made once, from the statistics of that moment: made on a new database
    /// (before autovacuum's first ANALYZE) it read `tasks` whole at every batch, so sequential
    /// scans are off in these transactions and every statement finds its rows by key.
    pub async fn begin_keyed(&self) -> Result<Tx, sqlx::Error> {
        let mut tx = match self.engine {
            Engine::Sqlite => self.writer.begin_with("BEGIN IMMEDIATE").await?,
            Engine::Postgres => self.writer.begin_with(PG_BEGIN_KEYED).await?,
        };
        crate::http::idempotency::record_in(&mut tx).await?;
        Ok(tx)
    }

    /// Row lock for a `SELECT` inside a write transaction: needed on PostgreSQL, implied on
    /// SQLite by `BEGIN IMMEDIATE`.
    pub fn for_update(&self) -> &'static str {
        for_update_on(self.engine)
    }

    /// Makes the database refuse any value of `table.column` outside `values` (a state enum's
    /// names, so the list has one source: the Rust type). PostgreSQL gets a CHECK constraint,
    /// SQLite (which cannot add one to an existing table) a pair of triggers. Each is named
    /// after a hash of the list and replaced only when the list changes; several servers
    /// starting at once take turns on an advisory lock.
    pub async fn ensure_one_of(&self, table: &str, column: &str, values: &[&str]) -> anyhow::Result<()> {
        use sha2::Digest;
        let safe = |s: &str| s.chars().all(|c| c.is_ascii_lowercase() || c == '_');
        anyhow::ensure!(safe(table) && safe(column) && values.iter().all(|v| safe(v)), "unexpected identifier");
        let list = values.iter().map(|v| format!("'{v}'")).collect::<Vec<_>>().join(", ");
        let digest = sha2::Sha256::digest(list.as_bytes());
        let prefix = format!("{table}_{column}_one_of_");
        let name = format!("{prefix}{:02x}{:02x}{:02x}{:02x}", digest[0], digest[1], digest[2], digest[3]);
        let mut tx = self.writer.begin().await?;
        let existing: Vec<(String,)> = match self.engine {
            Engine::Postgres => {
                sqlx::query("SELECT pg_advisory_xact_lock(7232091)").execute(&mut *tx).await?;
                sqlx::query_as(
                    "SELECT conname::text FROM pg_constraint WHERE conrelid = $1::regclass AND conname::text LIKE $2",
                )
                .bind(table)
                .bind(format!("{prefix}%"))
                .fetch_all(&mut *tx)
                .await?
            }
            Engine::Sqlite => {
                sqlx::query_as(
                    "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = $1 AND name LIKE $2",
                )
                .bind(table)
                .bind(format!("{prefix}%"))
                .fetch_all(&mut *tx)
                .await?
            }
        };
        if existing.iter().any(|(n,)| n.starts_with(&name)) {
            return Ok(());
        }
        for (old,) in &existing {
            let drop = match self.engine {
                Engine::Postgres => format!("ALTER TABLE {table} DROP CONSTRAINT {old}"),
                Engine::Sqlite => format!("DROP TRIGGER {old}"),
            };
            sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&mut *tx).await?;
        }
        let message = format!("{table}.{column} must be one of {}", values.join(", "));
        let statements = match self.engine {
            Engine::Postgres => vec![format!("ALTER TABLE {table} ADD CONSTRAINT {name} CHECK ({column} IN ({list}))")],
            Engine::Sqlite => vec![
                format!(
                    "CREATE TRIGGER {name}_insert BEFORE INSERT ON {table} WHEN NEW.{column} NOT IN ({list}) \
                     BEGIN SELECT RAISE(ABORT, '{message}'); END"
                ),
                format!(
                    "CREATE TRIGGER {name}_update BEFORE UPDATE OF {column} ON {table} WHEN NEW.{column} NOT IN ({list}) \
                     BEGIN SELECT RAISE(ABORT, '{message}'); END"
                ),
            ],
        };
        for statement in statements {
            sqlx::query(sqlx::AssertSqlSafe(statement)).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    pub async fn close(&self) {
        self.writer.close().await;
        self.pool.close().await;
    }
}

/// `FOR UPDATE` for a `SELECT` inside `tx` on PostgreSQL; on SQLite a write transaction holds
/// the database's write lock already (`BEGIN IMMEDIATE`).
pub fn for_update_in(tx: &Tx) -> &'static str {
    for_update_on(engine_of(tx))
}

/// `for_update_in` for a statement built before it runs.
pub fn for_update_on(engine: Engine) -> &'static str {
    match engine {
        Engine::Sqlite => "",
        Engine::Postgres => " FOR UPDATE",
    }
}

/// A sum of an integer money expression that overflows on neither engine: two columns,
/// `SUM(x / 10⁸)` and `SUM(x % 10⁸)` (integer division and remainder truncate toward zero alike
/// on SQLite and PostgreSQL), combined exactly by `exact_total`. With every amount bounded
/// (`money::Amount::CEILING`, `ledger::MAX_BALANCE`), each column stays far inside an `i64` for
/// any row count this server can store, where a plain `SUM` overflows after a few rows at the
/// bound (SQLite: an error; PostgreSQL: NUMERIC that no longer casts back to BIGINT).
pub fn exact_sum(expr: &str) -> String {
    format!(
        "CAST(COALESCE(SUM(({expr}) / 100000000), 0) AS BIGINT), CAST(COALESCE(SUM(({expr}) % 100000000), 0) AS BIGINT)"
    )
}

/// The value of an `exact_sum` pair.
pub fn exact_total(high: i64, low: i64) -> i128 {
    i128::from(high) * 100_000_000 + i128::from(low)
}

/// A value bound to a dynamically built query.
#[derive(Debug, Clone)]
pub enum Arg {
    Text(String),
    Int(i64),
    Float(f64),
    /// A NULL typed as text or as an integer (PostgreSQL checks the type of a NULL parameter).
    NullText,
    NullInt,
}

/// Runs `statements` in order, in `tx`, and returns how many rows each one wrote. On
/// PostgreSQL they travel as one statement (`WITH w0 AS (… RETURNING 1), w1 AS (…) SELECT
/// (SELECT count(*) FROM w0), …`: every data-modifying CTE runs to completion, in order, and
/// foreign keys are checked at the end of the statement), one round trip instead of one each;
/// so they must not change the same row twice, and none may have a `RETURNING` of its own. On
/// SQLite as one text of several statements, run one after another by the connection's thread
/// in one call (each call to that thread is a hand-over between threads), each statement
/// reading its `$n` from the shared arguments.
pub async fn execute_all(tx: &mut Tx, statements: Vec<SqlBuilder>) -> sqlx::Result<Vec<u64>> {
    if statements.len() <= 1 {
        let mut counts = Vec::with_capacity(statements.len());
        for statement in &statements {
            counts.push(statement.query().execute(&mut **tx).await?.rows_affected());
        }
        return Ok(counts);
    }
    let n = statements.len();
    if engine_of(tx) == Engine::Sqlite {
        let mut combined = SqlBuilder::default();
        for (i, statement) in statements.into_iter().enumerate() {
            let offset = combined.args.len();
            combined.sql.push_str(if i == 0 { "" } else { ";\n" });
            combined.sql.push_str(&renumber(&statement.sql, offset));
            combined.args.extend(statement.args);
        }
        let results = sqlx::Executor::execute_many(&mut **tx, combined.query());
        let counts: Vec<u64> = futures_util::TryStreamExt::try_collect::<Vec<_>>(results)
            .await?
            .iter()
            .map(|r| r.rows_affected())
            .collect();
        if counts.len() != n {
            return Err(sqlx::Error::Protocol(format!("{n} statements gave {} results", counts.len())));
        }
        return Ok(counts);
    }
    let mut combined = SqlBuilder::new("WITH ");
    for (i, statement) in statements.into_iter().enumerate() {
        let offset = combined.args.len();
        combined.sql.push_str(&format!("{}w{i} AS (", if i == 0 { "" } else { ", " }));
        combined.sql.push_str(&renumber(&statement.sql, offset));
        combined.sql.push_str(" RETURNING 1)");
        combined.args.extend(statement.args);
    }
    let counts: Vec<String> = (0..n).map(|i| format!("(SELECT count(*) FROM w{i})")).collect();
    combined.sql.push_str(&format!(" SELECT {}", counts.join(", ")));
    let row = combined.query().fetch_one(&mut **tx).await?;
    (0..n).map(|i| row.try_get::<i64, _>(i).map(|c| c as u64)).collect()
}

/// `Db::begin_keyed`'s `BEGIN` on PostgreSQL, and the same after a `COMMIT` (`commit_and_begin`).
macro_rules! pg_begin_keyed {
    () => {
        "BEGIN; SET LOCAL plan_cache_mode = force_generic_plan; SET LOCAL enable_seqscan = off"
    };
}
const PG_BEGIN_KEYED: &str = pg_begin_keyed!();
const PG_COMMIT_BEGIN_KEYED: &str = concat!("COMMIT; ", pg_begin_keyed!());

/// Commits `tx`; on PostgreSQL the same round trip begins the next transaction as
/// `Db::begin_keyed` does, on the same connection, and returns it (a task-engine committer's
/// batches follow one another: each saves the round trip of its `BEGIN`). An error means the
/// commit failed; once the `COMMIT` answered, the work is durable whatever follows, and a
/// failed `BEGIN` only means no transaction comes back.
pub async fn commit_and_begin(mut tx: Tx) -> Result<Option<Tx>, sqlx::Error> {
    use futures_util::StreamExt;
    if engine_of(&tx) == Engine::Sqlite {
        tx.commit().await?;
        return Ok(None);
    }
    let mut results = sqlx::Executor::execute_many(&mut *tx, sqlx::raw_sql(PG_COMMIT_BEGIN_KEYED));
    match results.next().await {
        Some(Ok(_)) => {}
        Some(Err(e)) => return Err(e),
        None => return Err(sqlx::Error::Protocol("COMMIT gave no answer".into())),
    }
    let mut begun = 0;
    while let Some(result) = results.next().await {
        match result {
            Ok(_) => begun += 1,
            Err(_) => break,
        }
    }
    drop(results);
    // Dropped without a transaction, `tx` asks for a ROLLBACK that changes nothing.
    Ok((begun == PG_BEGIN_KEYED.split(';').count()).then_some(tx))
}

/// Which engine `tx` runs on.
pub fn engine_of(tx: &Tx) -> Engine {
    if tx.backend_name() == "PostgreSQL" { Engine::Postgres } else { Engine::Sqlite }
}

/// An SQL expression for a new random id (a version 4 UUID as text), evaluated per row.
pub fn new_id_sql(engine: Engine) -> &'static str {
    match engine {
        Engine::Postgres => "gen_random_uuid()::text",
        Engine::Sqlite => {
            "lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || substr(hex(randomblob(2)), 2) || '-' \
             || substr('89ab', 1 + (abs(random()) % 4), 1) || substr(hex(randomblob(2)), 2) || '-' || hex(randomblob(6)))"
        }
    }
}

/// The type of a column of `Rows`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Col {
    Text,
    Int,
}

/// Rows handed to a statement as data (`SqlBuilder::push_rows`). On PostgreSQL every column
/// travels as one array parameter and the rows are `unnest($1::text[], $2::bigint[], …)`, so
/// the statement's text is the same for one row or sixty: it is parsed and planned once per
/// connection (a cached prepared statement) instead of once per batch. SQLite, where a
/// statement costs no round trip and is cheap to prepare, gets inline `VALUES`.
#[derive(Debug, Clone)]
pub struct Rows {
    columns: &'static [(&'static str, Col)],
    /// Row after row.
    cells: Vec<Arg>,
}

impl Rows {
    pub fn new(columns: &'static [(&'static str, Col)]) -> Rows {
        Rows { columns, cells: Vec::new() }
    }

    /// Appends a row: one value per column, in the columns' order.
    pub fn push(&mut self, row: impl IntoIterator<Item = Arg>) {
        let before = self.cells.len();
        self.cells.extend(row);
        assert_eq!(self.cells.len() - before, self.columns.len(), "one value per column");
    }

    pub fn len(&self) -> usize {
        self.cells.len() / self.columns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }

    /// Column `c` as a PostgreSQL array literal (`{"a","b",NULL}`, `{1,2,NULL}`).
    fn array_literal(&self, c: usize) -> String {
        let mut out = String::from("{");
        for (i, cell) in self.cells.iter().skip(c).step_by(self.columns.len()).enumerate() {
            if i > 0 {
                out.push(',');
            }
            match cell {
                Arg::Text(s) => push_array_element(&mut out, s),
                Arg::Int(n) => out.push_str(&n.to_string()),
                Arg::Float(f) => out.push_str(&f.to_string()),
                Arg::NullText | Arg::NullInt => out.push_str("NULL"),
            }
        }
        out.push('}');
        out
    }
}

/// `values` as one PostgreSQL `text[]` literal (`{"a","b"}`), for a parameter cast `::text[]`.
pub fn text_array<'a>(values: impl IntoIterator<Item = &'a str>) -> Arg {
    let mut out = String::from("{");
    for (i, value) in values.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_array_element(&mut out, value);
    }
    out.push('}');
    Arg::Text(out)
}

/// Appends `s` quoted as an array element: `"` and `\` escaped, the runs between them copied
/// whole (a webhook payload is mostly quotes-free runs; copying it char by char showed in
/// profiles).
fn push_array_element(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    let mut rest = s;
    while let Some(i) = rest.find(['"', '\\']) {
        out.push_str(&rest[..i]);
        out.push('\\');
        out.push_str(&rest[i..i + 1]);
        rest = &rest[i + 1..];
    }
    out.push_str(rest);
    out.push('"');
}

/// `sql` with every placeholder `$n` moved to `$(n + offset)`.
fn renumber(sql: &str, offset: usize) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '$' || !chars.peek().is_some_and(char::is_ascii_digit) {
            out.push(c);
            continue;
        }
        let mut n = 0usize;
        while let Some(d) = chars.peek().and_then(|d| d.to_digit(10)) {
            n = n * 10 + d as usize;
            chars.next();
        }
        out.push_str(&format!("${}", n + offset));
    }
    out
}

/// Values per `push_in` list where their number follows the load (SQLite binds one parameter per
/// value, and limits how many a statement takes).
pub const IN_CHUNK: usize = 500;

/// Builds `$n` placeholders for a query assembled from optional filters.
#[derive(Default)]
pub struct SqlBuilder {
    pub sql: String,
    pub args: Vec<Arg>,
}

impl SqlBuilder {
    pub fn new(sql: &str) -> Self {
        SqlBuilder { sql: sql.to_string(), args: Vec::new() }
    }
    /// Appends `fragment`, replacing each `?` with the next placeholder bound to `args`.
    pub fn push(&mut self, fragment: &str, args: impl IntoIterator<Item = Arg>) -> &mut Self {
        let mut args = args.into_iter();
        for ch in fragment.chars() {
            if ch == '?' {
                self.args.push(args.next().expect("one argument per placeholder"));
                let _ = write!(self.sql, "${}", self.args.len());
            } else {
                self.sql.push(ch);
            }
        }
        self
    }

    /// `INSERT INTO table (columns) SELECT columns FROM rows`, one statement text for any
    /// number of rows on PostgreSQL. (`WHERE 1 = 1`: SQLite would read a following
    /// `ON CONFLICT` as part of the `FROM`.)
    pub fn insert_rows(engine: Engine, table: &str, rows: &Rows) -> SqlBuilder {
        let names: Vec<&str> = rows.columns.iter().map(|(c, _)| *c).collect();
        let names = names.join(", ");
        let mut q = SqlBuilder::new(&format!("INSERT INTO {table} ({names}) SELECT {names} FROM "));
        q.push_rows(engine, rows, "r");
        q.push(" WHERE 1 = 1", []);
        q
    }

    /// Appends `rows` as a table `alias(column, …)` to read from (`FROM …`, `USING …`).
    /// `rows` must not be empty (SQLite has no empty `VALUES`).
    pub fn push_rows(&mut self, engine: Engine, rows: &Rows, alias: &str) -> &mut Self {
        assert!(!rows.is_empty(), "an empty row set");
        let names: Vec<&str> = rows.columns.iter().map(|(name, _)| *name).collect();
        match engine {
            Engine::Postgres => {
                self.sql.push_str("unnest(");
                for (c, (_, col)) in rows.columns.iter().enumerate() {
                    self.args.push(Arg::Text(rows.array_literal(c)));
                    let cast = match col {
                        Col::Text => "text[]",
                        Col::Int => "bigint[]",
                    };
                    self.sql.push_str(&format!("{}${}::{cast}", if c == 0 { "" } else { ", " }, self.args.len()));
                }
                self.sql.push_str(&format!(") AS {alias}({})", names.join(", ")));
            }
            Engine::Sqlite => {
                // Inline rows: SQLite prepares in process, and reading the rows from one JSON
                // parameter instead (the same text for any number of rows) cost more than that.
                let mut select = String::new();
                for (c, name) in names.iter().enumerate() {
                    let _ = write!(select, "{}column{} AS {name}", if c == 0 { "" } else { ", " }, c + 1);
                }
                let _ = write!(self.sql, "(SELECT {select} FROM (VALUES ");
                for (r, row) in rows.cells.chunks(names.len()).enumerate() {
                    self.sql.push_str(if r == 0 { "(" } else { ", (" });
                    for (c, cell) in row.iter().enumerate() {
                        self.args.push(cell.clone());
                        let _ = write!(self.sql, "{}${}", if c == 0 { "" } else { ", " }, self.args.len());
                    }
                    self.sql.push(')');
                }
                let _ = write!(self.sql, ")) AS {alias}");
            }
        }
        self
    }

    /// Appends `column IN (values)` (PostgreSQL: `column = ANY(…$n::text[])`, one parameter
    /// whatever the count, so the statement's text stays the same). `values` must not be empty.
    pub fn push_in(&mut self, engine: Engine, column: &str, values: &[String]) -> &mut Self {
        assert!(!values.is_empty(), "an empty IN list");
        match engine {
            Engine::Postgres => {
                let mut rows = Rows::new(&[("v", Col::Text)]);
                for v in values {
                    rows.push([Arg::Text(v.clone())]);
                }
                // The array is read once per execution (`ARRAY(SELECT …)` is an init plan):
                // a plain `$n::text[]` is parsed again for every row a scan filters.
                self.args.push(Arg::Text(rows.array_literal(0)));
                self.sql.push_str(&format!("{column} = ANY(ARRAY(SELECT unnest(${}::text[])))", self.args.len()));
            }
            Engine::Sqlite => {
                self.sql.push_str(&format!("{column} IN ("));
                for (i, v) in values.iter().enumerate() {
                    self.push(if i == 0 { "?" } else { ", ?" }, [Arg::Text(v.clone())]);
                }
                self.sql.push(')');
            }
        }
        self
    }

    pub fn query(&self) -> sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments> {
        let mut q = sqlx::query(sqlx::AssertSqlSafe(self.sql.clone()));
        for arg in &self.args {
            q = match arg {
                Arg::Text(s) => q.bind(s.clone()),
                Arg::Int(i) => q.bind(*i),
                Arg::Float(f) => q.bind(*f),
                Arg::NullText => q.bind(None::<String>),
                Arg::NullInt => q.bind(None::<i64>),
            };
        }
        q
    }

    pub fn query_as<'q, T>(&'q self) -> sqlx::query::QueryAs<'q, sqlx::Any, T, sqlx::any::AnyArguments>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow>,
    {
        let mut q = sqlx::query_as(sqlx::AssertSqlSafe(self.sql.clone()));
        for arg in &self.args {
            q = match arg {
                Arg::Text(s) => q.bind(s.clone()),
                Arg::Int(i) => q.bind(*i),
                Arg::Float(f) => q.bind(*f),
                Arg::NullText => q.bind(None::<String>),
                Arg::NullInt => q.bind(None::<i64>),
            };
        }
        q
    }
}

#[cfg(test)]
mod tests {
    use super::{Arg, Col, Rows, renumber};

    #[test]
    fn array_literals_quote_every_text_and_escape_quotes_and_backslashes() {
        let mut rows = Rows::new(&[("t", Col::Text), ("n", Col::Int)]);
        rows.push([Arg::Text("NULL".into()), Arg::Int(-5)]);
        rows.push([Arg::Text("a\"b\\c,{d}".into()), Arg::NullInt]);
        rows.push([Arg::NullText, Arg::Int(i64::MAX)]);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows.array_literal(0), r#"{"NULL","a\"b\\c,{d}",NULL}"#);
        assert_eq!(rows.array_literal(1), "{-5,NULL,9223372036854775807}");
        let Arg::Text(payloads) = super::text_array([r#"{"a":"\\"}"#, "", "\"\""]) else { panic!("a text argument") };
        assert_eq!(payloads, r#"{"{\"a\":\"\\\\\"}","","\"\""}"#);
    }

    #[test]
    fn placeholders_move_by_the_offset_and_nothing_else_changes() {
        assert_eq!(
            renumber("UPDATE t SET a = $1 WHERE id IN ($2, $10)", 5),
            "UPDATE t SET a = $6 WHERE id IN ($7, $15)"
        );
        assert_eq!(renumber("SELECT '$' || x, $ , $1", 1), "SELECT '$' || x, $ , $2");
    }
}
