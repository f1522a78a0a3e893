//! The thin I/O layer over the destination database: connect, describe the table, write one
//! run of rows in one transaction, and say whether a failure is worth retrying.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use adbsink_crd::{DatabaseTlsMode, DestinationSpec, InstanceType, WriteMode};
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions, MySqlSslMode};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgSslMode};
use sqlx::{ConnectOptions, Executor, Row as _};

use crate::change::Change;
use crate::coalesce::{Plan, plan};
use crate::decode::Row;
use crate::dialect::{Dialect, MYSQL_MAX_STATEMENT_BYTES, Statement};
use crate::fresh::Fresh;
use crate::secret::Secret;
use crate::table::{Column, Equality, Table};

/// Why a write failed, sorted by what the sink must do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteError {
    /// The database or the network is unavailable, or the failure concerns the table rather
    /// than any row (missing table, no privilege): retry the same rows, skip nothing.
    Transient(String),
    /// The table lost a column the rows use: describe it again and decode again.
    SchemaChanged(String),
    /// The statement was larger than the server accepts (MySQL `max_allowed_packet`): write
    /// smaller statements; a single row this large is rejected.
    TooLarge(String),
    /// The database refused the data (type conversion, NOT NULL, too long, constraint).
    Rejected {
        message: String,
        sql_state: Option<String>,
    },
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Transient(m) | Self::SchemaChanged(m) | Self::TooLarge(m) => f.write_str(m),
            Self::Rejected { message, .. } => f.write_str(message),
        }
    }
}

/// How to reach the database, with the password resolved.
#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    pub destination: DestinationSpec,
    pub username: String,
    pub password: Secret,
    /// PEM file of the CA that signs the server certificate (TLS VerifyCa/VerifyFull).
    pub ca_file: Option<String>,
}

#[derive(Debug, Clone)]
enum Pool {
    MySql(MySqlPool),
    Postgres(PgPool),
}

/// A connection pool to the destination plus what it needs to write rows.
#[derive(Debug, Clone)]
pub struct Database {
    pool: Pool,
    pub dialect: Dialect,
    schema: String,
    table: String,
    /// Largest MySQL statement to send: 16 MiB until the server refuses one as larger than its
    /// `max_allowed_packet`, then half of what it refused, for the life of the process.
    max_statement_bytes: Arc<AtomicUsize>,
    /// Whether Upsert batches are worth trying as plain inserts (`fresh.rs`).
    fresh: Arc<Fresh>,
}

const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

impl Database {
    /// A lazily connecting pool: the sink starts even when the database is down, and reports
    /// RETRYING until it comes up.
    pub fn connect(settings: &DatabaseSettings, max_connections: u32) -> Self {
        let dest = &settings.destination;
        let port = dest.port_or_default();
        let pool = match dest.instance_type {
            InstanceType::AnalyticDBForMySQL => {
                let mut options = MySqlConnectOptions::new()
                    .host(&dest.host)
                    .port(port)
                    .database(&dest.database)
                    .username(&settings.username)
                    .password(settings.password.expose())
                    .ssl_mode(match dest.tls.as_ref().map(|t| t.mode) {
                        None => MySqlSslMode::Preferred,
                        Some(DatabaseTlsMode::Require) => MySqlSslMode::Required,
                        Some(DatabaseTlsMode::VerifyCa) => MySqlSslMode::VerifyCa,
                        Some(DatabaseTlsMode::VerifyFull) => MySqlSslMode::VerifyIdentity,
                    });
                if let Some(ca) = &settings.ca_file {
                    options = options.ssl_ca(ca);
                }
                // Statements are multi-row and megabytes long: logging them is noise. Slow
                // writes show in the write_seconds histogram instead.
                let options = options.disable_statement_logging();
                Pool::MySql(
                    MySqlPoolOptions::new()
                        .max_connections(max_connections)
                        .acquire_timeout(ACQUIRE_TIMEOUT)
                        // Strict mode makes MySQL refuse bad values instead of truncating or
                        // zeroing them, so a bad record is isolated rather than silently damaged.
                        .after_connect(|conn, _| {
                            Box::pin(async move {
                                conn.execute(
                                    "SET SESSION sql_mode = CONCAT(@@sql_mode, ',STRICT_ALL_TABLES')",
                                )
                                .await?;
                                Ok(())
                            })
                        })
                        .connect_lazy_with(options),
                )
            }
            InstanceType::AnalyticDBForPostgreSQL => {
                let mut options = PgConnectOptions::new()
                    .host(&dest.host)
                    .port(port)
                    .database(&dest.database)
                    .username(&settings.username)
                    .password(settings.password.expose())
                    .application_name("adbsink")
                    .ssl_mode(match dest.tls.as_ref().map(|t| t.mode) {
                        None => PgSslMode::Prefer,
                        Some(DatabaseTlsMode::Require) => PgSslMode::Require,
                        Some(DatabaseTlsMode::VerifyCa) => PgSslMode::VerifyCa,
                        Some(DatabaseTlsMode::VerifyFull) => PgSslMode::VerifyFull,
                    });
                if let Some(ca) = &settings.ca_file {
                    options = options.ssl_root_cert(ca);
                }
                let options = options.disable_statement_logging();
                Pool::Postgres(
                    PgPoolOptions::new()
                        .max_connections(max_connections)
                        .acquire_timeout(ACQUIRE_TIMEOUT)
                        .connect_lazy_with(options),
                )
            }
        };
        Self {
            pool,
            dialect: dest.instance_type.into(),
            schema: dest
                .schema_or_default()
                .unwrap_or(&dest.database)
                .to_string(),
            table: dest.table.clone(),
            max_statement_bytes: Arc::new(AtomicUsize::new(MYSQL_MAX_STATEMENT_BYTES)),
            fresh: Arc::default(),
        }
    }

    /// Reads the table's columns from information_schema.
    pub async fn describe(&self) -> Result<Table, WriteError> {
        let columns = match &self.pool {
            Pool::Postgres(pool) => sqlx::query(
                "SELECT column_name::text, quote_ident(udt_schema::text) || '.' || quote_ident(udt_name::text), \
                 CASE WHEN udt_schema <> 'pg_catalog' THEN 'other' \
                 WHEN udt_name IN ('int2', 'int4', 'int8') THEN 'integer' \
                 WHEN udt_name = 'uuid' THEN 'uuid' \
                 WHEN udt_name NOT IN ('text', 'varchar', 'bpchar') OR NOT coalesce(( \
                     SELECT bool_and(collisdeterministic) FROM pg_collation \
                     WHERE collname = collation_name), true) THEN 'other' \
                 WHEN udt_name = 'text' OR (udt_name = 'varchar' AND character_maximum_length IS NULL) \
                 THEN 'text' ELSE 'trimmed' END, \
                 column_default IS NULL AND is_identity = 'NO' AND is_generated = 'NEVER' \
                 AND domain_name IS NULL, \
                 is_identity = 'YES' OR coalesce(column_default LIKE 'nextval(%', false) \
                 FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2 \
                 ORDER BY ordinal_position",
            )
            .bind(&self.schema)
            .bind(&self.table)
            .fetch_all(pool)
            .await
            .map_err(|e| classify(&e))?
            .iter()
            .map(|r| {
                Ok(Column {
                    name: r.try_get(0)?,
                    cast: Some(r.try_get(1)?),
                    equality: match r.try_get::<&str, _>(2)? {
                        "integer" => Equality::Integer,
                        "text" => Equality::Text,
                        "uuid" => Equality::Uuid,
                        "trimmed" => Equality::Trimmed,
                        _ => Equality::Other,
                    },
                    defaults_to_null: r.try_get(3)?,
                    sequence: r.try_get(4)?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>(),
            Pool::MySql(pool) => {
                self.read_max_allowed_packet(pool).await;
                // A nullable column without a default stores NULL when left out. MySQL shows
                // its default as NULL; MariaDB as the text `NULL`, where MySQL would mean a
                // string default of that text (MariaDB quotes string defaults). Generated,
                // auto-increment and expression-default columns carry a note in `extra`.
                sqlx::query(
                "SELECT CAST(column_name AS CHAR), \
                 CAST(CASE WHEN data_type IN ('tinyint', 'smallint', 'mediumint', 'int', 'bigint') \
                 THEN 'integer' WHEN data_type IN ('char', 'varchar', 'tinytext', 'text', \
                 'mediumtext', 'longtext') THEN CONCAT('text:', IFNULL(collation_name, '')) \
                 ELSE 'other' END AS CHAR), \
                 is_nullable = 'YES' AND extra = '' AND (column_default IS NULL \
                 OR (column_default = 'NULL' AND @@version LIKE '%MariaDB%')), \
                 extra LIKE '%auto_increment%' \
                 FROM information_schema.columns \
                 WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
            )
            .bind(&self.schema)
            .bind(&self.table)
            .fetch_all(pool)
            .await
            .map_err(|e| classify(&e))?
            .iter()
            .map(|r| {
                Ok(Column {
                    name: r.try_get(0)?,
                    cast: None,
                    equality: match r.try_get::<String, _>(1)?.as_str() {
                        "integer" => Equality::Integer,
                        kind => crate::table::mysql_text_equality(kind.strip_prefix("text:")),
                    },
                    defaults_to_null: r.try_get::<Option<i64>, _>(2)?.unwrap_or(0) != 0,
                    sequence: r.try_get::<Option<i64>, _>(3)?.unwrap_or(0) != 0,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()
            }
        }
        .map_err(|e| WriteError::Transient(format!("reading the table's columns: {e}")))?;
        if columns.is_empty() {
            return Err(WriteError::Transient(format!(
                "table {}.{} does not exist or has no columns visible to this user",
                self.schema, self.table
            )));
        }
        let table = Table::new(&self.schema, &self.table, columns);
        let constraints = self.constraints(&table).await.unwrap_or_else(|e| {
            // Not knowing them only costs the overlap of two batches.
            tracing::warn!(
                "reading the table's unique keys failed ({e}); writing one batch at a time"
            );
            Constraints {
                unique: Vec::new(),
                entangled: true,
            }
        });
        Ok(table.with_constraints(constraints.unique, constraints.entangled))
    }

    /// The column sets no two rows of `table` may share, and whether its rows constrain one
    /// another in other ways ([`Table::entangled`]).
    async fn constraints(&self, table: &Table) -> Result<Constraints, sqlx::Error> {
        // Column names come from the database's own catalog; one it does not name (an
        // expression) leaves the index's meaning unknown here.
        let columns = |names: &[Option<String>]| -> Option<Vec<usize>> {
            names
                .iter()
                .map(|n| n.as_deref().and_then(|n| table.column_index(n)))
                .collect()
        };
        let mut found = Constraints::default();
        match &self.pool {
            Pool::Postgres(pool) => {
                let relation = Dialect::Postgres.table_name(table);
                let indexes: Vec<(Vec<Option<String>>, bool)> = sqlx::query_as(
                    // An index's INCLUDE columns follow its key columns in `indkey`.
                    "SELECT ARRAY(SELECT a.attname::text FROM unnest(i.indkey) WITH ORDINALITY k(n, o) \
                     LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n \
                     WHERE k.o <= i.indnkeyatts ORDER BY k.o), i.indexprs IS NOT NULL \
                     FROM pg_index i WHERE i.indrelid = $1::regclass AND i.indisunique \
                     ORDER BY i.indexrelid",
                )
                .bind(&relation)
                .fetch_all(pool)
                .await?;
                for (names, expressions) in indexes {
                    match columns(&names) {
                        Some(set) if !expressions => found.unique.push(set),
                        _ => found.entangled = true,
                    }
                }
                let related: bool = sqlx::query_scalar(
                    "SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = $1::regclass \
                     AND (contype = 'x' OR (contype = 'f' AND confrelid = conrelid)))",
                )
                .bind(&relation)
                .fetch_one(pool)
                .await?;
                found.entangled |= related;
            }
            Pool::MySql(pool) => {
                // A prefix index (`sub_part`) holds unique only the start of a value: its
                // column counts as unknown.
                let indexed: Vec<(String, Option<String>)> = sqlx::query_as(
                    "SELECT CAST(index_name AS CHAR), \
                     CAST(IF(sub_part IS NULL, column_name, NULL) AS CHAR) \
                     FROM information_schema.statistics \
                     WHERE table_schema = ? AND table_name = ? AND non_unique = 0 \
                     ORDER BY index_name, seq_in_index",
                )
                .bind(&self.schema)
                .bind(&self.table)
                .fetch_all(pool)
                .await?;
                for index in indexed.chunk_by(|a, b| a.0 == b.0) {
                    let names: Vec<Option<String>> = index.iter().map(|(_, c)| c.clone()).collect();
                    match columns(&names) {
                        Some(set) => found.unique.push(set),
                        None => found.entangled = true,
                    }
                }
                let related: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM information_schema.referential_constraints \
                     WHERE constraint_schema = ? AND table_name = ? \
                     AND unique_constraint_schema = constraint_schema \
                     AND referenced_table_name = table_name",
                )
                .bind(&self.schema)
                .bind(&self.table)
                .fetch_one(pool)
                .await?;
                found.entangled |= related > 0;
            }
        }
        Ok(found)
    }

    /// Sizes statements for the server's `max_allowed_packet` (whatever it is, at most the
    /// protocol's 16 MiB), read with the table's columns.
    async fn read_max_allowed_packet(&self, pool: &MySqlPool) {
        // Room for the packet header and a statement's fixed part.
        const MARGIN: u64 = 8 << 10;
        let packet: Result<u64, sqlx::Error> = sqlx::query_scalar("SELECT @@max_allowed_packet")
            .fetch_one(pool)
            .await;
        if let Ok(packet) = packet {
            let limit = usize::try_from(packet.saturating_sub(MARGIN)).unwrap_or(usize::MAX);
            // Never above a limit learned from a refusal: the description is read again.
            self.max_statement_bytes.fetch_min(limit, Ordering::Relaxed);
        }
    }

    /// Writes changes in one transaction: all of them or none. Upsert changes of one key are
    /// folded in order first ([`plan`]): its delete, if any, then the row it comes to.
    pub async fn write(
        &self,
        table: &Table,
        changes: &[&Change<'_>],
        mode: WriteMode,
        primary_key: &[usize],
    ) -> Result<(), WriteError> {
        let plans = fold(changes, mode, primary_key, table);
        let rows: Vec<Vec<&Row<'_>>> = plans
            .iter()
            .map(|plan| plan.rows.iter().map(AsRef::as_ref).collect())
            .collect();
        let result = match &self.pool {
            Pool::Postgres(pool) => match mode {
                WriteMode::Insert => {
                    copy_in_transaction(pool, table, rows.concat().as_slice()).await
                }
                WriteMode::Upsert => {
                    upsert(pool, table, &plans, &rows, primary_key, &self.fresh).await
                }
            },
            Pool::MySql(pool) => {
                let max_bytes = self.max_statement_bytes.load(Ordering::Relaxed);
                // A server refuses a packet over its max_allowed_packet by closing the
                // connection, which looks like an outage: a row that cannot fit is found here.
                if let Some(row) = rows
                    .iter()
                    .flatten()
                    .find(|r| crate::dialect::statement_bytes(r, table.len()) > max_bytes)
                {
                    let message = format!(
                        "a row of {} bytes is larger than the server's max_allowed_packet allows \
                         ({max_bytes} bytes per statement)",
                        crate::dialect::statement_bytes(row, table.len())
                    );
                    return Err(if changes.len() == 1 {
                        WriteError::Rejected {
                            message,
                            sql_state: None,
                        }
                    } else {
                        WriteError::TooLarge(message)
                    });
                }
                let statements = |mode| {
                    plans
                        .iter()
                        .zip(&rows)
                        .flat_map(|(plan, rows)| {
                            self.dialect.applying(
                                table,
                                &plan.deletes,
                                rows,
                                mode,
                                primary_key,
                                max_bytes,
                            )
                        })
                        .collect()
                };
                match mysql_in_transaction(pool, statements, mode, &self.fresh).await {
                    Err((e, bytes)) if is_too_large(&e) => {
                        // Learn the server's limit instead of failing every batch again.
                        let lower = (bytes / 2).max(64 << 10);
                        self.max_statement_bytes.fetch_min(lower, Ordering::Relaxed);
                        Err(e)
                    }
                    other => other.map_err(|(e, _)| e),
                }
            }
        };
        result.map_err(|e| classify(&e))
    }

    pub async fn close(&self) {
        match &self.pool {
            Pool::MySql(pool) => pool.close().await,
            Pool::Postgres(pool) => pool.close().await,
        }
    }
}

/// One plan of a batch on a connection already in a transaction: Insert's `COPY`, or
/// Upsert's deletes and statements.
async fn apply_plan(
    conn: &mut sqlx::PgConnection,
    table: &Table,
    plan: &Plan<'_>,
    mode: WriteMode,
    primary_key: &[usize],
) -> Result<(), sqlx::Error> {
    let rows: Vec<&Row<'_>> = plan.rows.iter().map(AsRef::as_ref).collect();
    if mode == WriteMode::Insert {
        return copy_rows(&mut *conn, table, &rows).await;
    }
    let statements =
        Dialect::Postgres.applying(table, &plan.deletes, &rows, mode, primary_key, usize::MAX);
    for st in statements {
        let mut query = sqlx::query(&st.sql);
        for param in st.params {
            query = query.bind(param);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// What the database enforces between the rows of a table.
#[derive(Debug, Default)]
struct Constraints {
    unique: Vec<Vec<usize>>,
    entangled: bool,
}

/// A batch folded per key for `mode`, as plans to apply in order: Insert keeps every row as
/// it came, in one plan.
fn fold<'a>(
    changes: &[&'a Change<'a>],
    mode: WriteMode,
    primary_key: &[usize],
    table: &Table,
) -> Vec<Plan<'a>> {
    match mode {
        WriteMode::Upsert => plan(changes, primary_key, table),
        WriteMode::Insert => plan(changes, &[], table),
    }
}

/// Name of the table holding, per sink and source partition, the next offset to consume, in
/// the same database and schema as the destination table (`write.exactlyOnce`).
pub const OFFSETS_TABLE: &str = "adbsink_offsets";

/// One batch written exactly once: a PostgreSQL transaction holding the batch's rows and its
/// offsets. Each run of rows is tried under a savepoint, so a rejected run is undone without
/// losing the rest; the offsets and the rows commit together or not at all.
pub struct Session {
    tx: tokio::sync::Mutex<sqlx::Transaction<'static, sqlx::Postgres>>,
    offsets: String,
    sink: String,
}

impl Database {
    /// Creates the offsets table if it does not exist.
    pub async fn ensure_offsets_table(&self) -> Result<(), WriteError> {
        let Pool::Postgres(pool) = &self.pool else {
            return Err(WriteError::Transient("exactlyOnce needs PostgreSQL".into()));
        };
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS {} (sink text NOT NULL, topic text NOT NULL, \
             partition integer NOT NULL, next_offset bigint NOT NULL, PRIMARY KEY (sink, topic, partition))",
            self.offsets_table()
        );
        sqlx::query(&sql)
            .execute(pool)
            .await
            .map(|_| ())
            .map_err(|e| classify(&e))
    }

    fn offsets_table(&self) -> String {
        format!(
            "{}.{}",
            self.dialect.quote(&self.schema),
            self.dialect.quote(OFFSETS_TABLE)
        )
    }

    /// Begins a session and returns the stored next offset of each given partition, locked
    /// until the session ends so no other task writes the same partitions meanwhile.
    pub async fn begin_session(
        &self,
        sink: &str,
        topic: &str,
        partitions: &[i32],
    ) -> Result<(Session, BTreeMap<i32, i64>), WriteError> {
        let Pool::Postgres(pool) = &self.pool else {
            return Err(WriteError::Transient("exactlyOnce needs PostgreSQL".into()));
        };
        let mut tx = pool.begin().await.map_err(|e| classify(&e))?;
        // FOR UPDATE locks nothing while a partition has no row: seed one first (in partition
        // order, so two sessions never wait on each other crosswise). A second session for the
        // same partition waits here until the first commits, then reads what it stored.
        let seed = format!(
            "INSERT INTO {} (sink, topic, partition, next_offset) \
             SELECT $1, $2, p, 0 FROM unnest($3::integer[]) AS p ORDER BY p \
             ON CONFLICT (sink, topic, partition) DO NOTHING",
            self.offsets_table()
        );
        let mut sorted = partitions.to_vec();
        sorted.sort_unstable();
        sqlx::query(&seed)
            .bind(sink)
            .bind(topic)
            .bind(&sorted)
            .execute(&mut *tx)
            .await
            .map_err(|e| classify(&e))?;
        let sql = format!(
            "SELECT partition, next_offset FROM {} WHERE sink = $1 AND topic = $2 AND partition = ANY($3) FOR UPDATE",
            self.offsets_table()
        );
        let stored: Vec<(i32, i64)> = sqlx::query_as(&sql)
            .bind(sink)
            .bind(topic)
            .bind(partitions)
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| classify(&e))?;
        let session = Session {
            tx: tokio::sync::Mutex::new(tx),
            offsets: self.offsets_table(),
            sink: sink.to_string(),
        };
        Ok((session, stored.into_iter().collect()))
    }
}

impl Session {
    /// Writes one run under a savepoint. A lost connection aborts the whole session, which the
    /// caller starts again; it is reported as a schema change so the batch is redone.
    pub async fn write(
        &self,
        table: &Table,
        changes: &[&Change<'_>],
        mode: WriteMode,
        primary_key: &[usize],
    ) -> Result<(), WriteError> {
        let plans = fold(changes, mode, primary_key, table);
        let mut tx = self.tx.lock().await;
        let conn: &mut sqlx::PgConnection = &mut tx;
        let restart = |e: &sqlx::Error| match classify(e) {
            WriteError::Transient(m) => WriteError::SchemaChanged(format!("transaction lost: {m}")),
            other => other,
        };
        sqlx::query("SAVEPOINT adbsink_run")
            .execute(&mut *conn)
            .await
            .map_err(|e| restart(&e))?;
        let mut result = Ok(());
        for plan in &plans {
            result = apply_plan(&mut *conn, table, plan, mode, primary_key).await;
            if result.is_err() {
                break;
            }
        }
        match result {
            Ok(()) => {
                sqlx::query("RELEASE SAVEPOINT adbsink_run")
                    .execute(&mut *conn)
                    .await
                    .map_err(|e| restart(&e))?;
                Ok(())
            }
            Err(e) => {
                sqlx::query("ROLLBACK TO SAVEPOINT adbsink_run")
                    .execute(&mut *conn)
                    .await
                    .map_err(|e| restart(&e))?;
                Err(restart(&e))
            }
        }
    }

    /// Stores the next offsets and commits rows and offsets together.
    pub async fn commit(
        self,
        topic_offsets: &BTreeMap<(String, i32), i64>,
    ) -> Result<(), WriteError> {
        let mut tx = self.tx.into_inner();
        let sql = format!(
            "INSERT INTO {} (sink, topic, partition, next_offset) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (sink, topic, partition) DO UPDATE SET next_offset = GREATEST({}.next_offset, EXCLUDED.next_offset)",
            self.offsets, self.offsets
        );
        for ((topic, partition), next) in topic_offsets {
            sqlx::query(&sql)
                .bind(&self.sink)
                .bind(topic)
                .bind(partition)
                .bind(next)
                .execute(&mut *tx)
                .await
                .map_err(|e| classify(&e))?;
        }
        tx.commit().await.map_err(|e| classify(&e))
    }
}

/// PostgreSQL's bulk path: the batch's COPYs ([`crate::dialect::copy_groups`]) in one
/// transaction. COPY parses values with the columns' input functions, like the INSERT casts.
async fn copy_in_transaction(
    pool: &PgPool,
    table: &Table,
    rows: &[&Row<'_>],
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    copy_rows(&mut tx, table, rows).await?;
    tx.commit().await
}

async fn copy_rows(
    conn: &mut sqlx::PgConnection,
    table: &Table,
    rows: &[&Row<'_>],
) -> Result<(), sqlx::Error> {
    for group in crate::dialect::copy_groups(table, rows) {
        copy_in(conn, &group.sql, &group.columns, &group.rows).await?;
    }
    Ok(())
}

/// Streams rows to one `COPY … FROM STDIN`.
async fn copy_in(
    conn: &mut sqlx::PgConnection,
    sql: &str,
    columns: &[usize],
    rows: &[&Row<'_>],
) -> Result<(), sqlx::Error> {
    // sqlx copies each chunk into the connection's buffer: a small one is cheap to allocate
    // and keeps the batch from being held twice.
    const CHUNK: usize = 64 << 10;
    let mut buffer = Vec::with_capacity(CHUNK + 4096);
    let mut copy = conn.copy_in_raw(sql).await?;
    for row in rows {
        crate::dialect::copy_line(row, columns, &mut buffer);
        if buffer.len() >= CHUNK {
            copy.send(buffer.as_slice()).await?;
            buffer.clear();
        }
    }
    if !buffer.is_empty() {
        copy.send(buffer.as_slice()).await?;
    }
    copy.finish().await?;
    Ok(())
}

/// PostgreSQL Upsert in one transaction: the deletes, then the rows copied straight into the
/// table when `fresh` says their keys are likely new, else (or when that copy fails) copied
/// into a temporary stage and merged into the table.
async fn upsert(
    pool: &PgPool,
    table: &Table,
    plans: &[Plan<'_>],
    rows: &[Vec<&Row<'_>>],
    primary_key: &[usize],
    fresh: &Fresh,
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    let mut stage = Stage::Absent;
    for (plan, rows) in plans.iter().zip(rows) {
        let deletes = &plan.deletes;
        apply_upsert(
            &mut tx,
            table,
            deletes,
            rows,
            primary_key,
            fresh,
            &mut stage,
        )
        .await?;
    }
    tx.commit().await
}

/// One plan of an Upsert batch: its deletes, then its rows.
async fn apply_upsert(
    tx: &mut sqlx::PgConnection,
    table: &Table,
    deletes: &[&Row<'_>],
    rows: &[&Row<'_>],
    primary_key: &[usize],
    fresh: &Fresh,
    stage: &mut Stage,
) -> Result<(), sqlx::Error> {
    for statement in Dialect::Postgres.deletes(table, deletes, primary_key, usize::MAX) {
        let mut query = sqlx::query(&statement.sql).persistent(false);
        for param in statement.params {
            query = query.bind(param);
        }
        query.execute(&mut *tx).await?;
    }
    if rows.is_empty() {
        return Ok(());
    }
    if fresh.worth_trying() {
        (&mut *tx).execute("SAVEPOINT adbsink_fresh").await?;
        let copied = match copy_rows(&mut *tx, table, rows).await {
            Ok(()) => copy_stands_for_merge(&mut *tx, table, primary_key).await?,
            Err(_) => false,
        };
        fresh.observe(copied);
        if copied {
            return Ok(());
        }
        // Whatever failed the copy (a stored key, a bad value, no unique index on the key) is
        // for the merge to settle or report, as it would have without the try.
        (&mut *tx)
            .execute("ROLLBACK TO SAVEPOINT adbsink_fresh")
            .await?;
    }
    merge_staged(&mut *tx, table, rows, primary_key, stage).await
}

/// Whether the copy just made is what the merge would have done. Only if a valid unique index
/// on exactly the key's columns, checked at once (not deferred), would have failed the copy
/// on any stored key; and only if no rule (which `COPY` ignores) rewrites the table's inserts.
/// The copy's lock on the table keeps such an index from being created or dropped until the
/// transaction ends, so one found now was there for the whole copy.
async fn copy_stands_for_merge(
    conn: &mut sqlx::PgConnection,
    table: &Table,
    primary_key: &[usize],
) -> Result<bool, sqlx::Error> {
    let key: Vec<&str> = primary_key
        .iter()
        .filter_map(|&i| table.columns.get(i).map(|c| c.name.as_str()))
        .collect();
    if key.is_empty() {
        return Ok(false);
    }
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_index i \
         CROSS JOIN LATERAL (SELECT ARRAY(SELECT a.attname::text FROM pg_attribute a \
             WHERE a.attrelid = i.indrelid \
             AND a.attnum = ANY ((i.indkey::int2[])[0:i.indnkeyatts - 1])) AS columns) c \
         WHERE i.indrelid = $1::regclass AND i.indisunique AND i.indimmediate AND i.indisvalid \
         AND i.indpred IS NULL AND i.indexprs IS NULL \
         AND c.columns @> $2::text[] AND c.columns <@ $2::text[]) \
         AND NOT (SELECT relhasrules FROM pg_class WHERE oid = $1::regclass)",
    )
    .bind(Dialect::Postgres.table_name(table))
    .bind(key)
    .fetch_one(conn)
    .await
}

/// The temporary stage of a PostgreSQL Upsert transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Absent,
    Empty,
    Holding,
}

/// Copies rows into a temporary stage and merges them into the table. The stage statements
/// are not cached as prepared statements: the stage is a new table in every transaction, made
/// by its first merge.
async fn merge_staged(
    tx: &mut sqlx::PgConnection,
    table: &Table,
    rows: &[&Row<'_>],
    primary_key: &[usize],
    stage: &mut Stage,
) -> Result<(), sqlx::Error> {
    for group in crate::dialect::staged_upserts(table, rows, primary_key) {
        let prepare = match stage {
            Stage::Absent => Some(crate::dialect::create_stage(table)),
            Stage::Empty => None,
            Stage::Holding => Some(format!("TRUNCATE pg_temp.{}", crate::dialect::STAGE_TABLE)),
        };
        if let Some(sql) = prepare {
            sqlx::query(&sql)
                .persistent(false)
                .execute(&mut *tx)
                .await?;
            *stage = Stage::Empty;
        }
        copy_in(&mut *tx, &group.copy, &group.columns, &group.rows).await?;
        *stage = Stage::Holding;
        sqlx::query(&group.merge)
            .persistent(false)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

/// MySQL's multi-row statements for `mode`, in one transaction. An Upsert batch is first tried
/// as plain INSERTs when `fresh` says its keys are likely new: a batch of new keys ends as
/// `ON DUPLICATE KEY UPDATE` would leave it, and the INSERTs fill left-out columns that
/// default to NULL, so rows that carry different columns share one statement text instead of
/// a text per set of columns. A stored key fails the try on MySQL (1062 on any unique index);
/// AnalyticDB for MySQL skips its row instead, as `INSERT IGNORE` does, so a try also fails
/// when an INSERT adds fewer rows than it carries. A failed try is undone to its savepoint and
/// the batch is upserted as before, which settles or reports whatever failed it; were the undo
/// a no-op on a server, the upsert would still leave every row as it must. A failure comes
/// with the size of the statement that failed.
async fn mysql_in_transaction<'a>(
    pool: &sqlx::MySqlPool,
    statements: impl Fn(WriteMode) -> Vec<Statement<'a>>,
    mode: WriteMode,
    fresh: &Fresh,
) -> Result<(), (sqlx::Error, usize)> {
    let mut tx = pool.begin().await.map_err(|e| (e, 0))?;
    if mode == WriteMode::Upsert && fresh.worth_trying() {
        // A server without savepoints refuses this and keeps the transaction: upsert then.
        if (&mut *tx).execute("SAVEPOINT adbsink_fresh").await.is_err() {
            fresh.observe(false);
        } else {
            let tried = mysql_execute(&mut tx, statements(WriteMode::Insert)).await;
            let inserted = matches!(tried, Ok(true));
            fresh.observe(inserted);
            if inserted {
                return tx.commit().await.map_err(|e| (e, 0));
            }
            let undone = (&mut *tx)
                .execute("ROLLBACK TO SAVEPOINT adbsink_fresh")
                .await;
            // A deadlock rolls the whole transaction back and a packet too large closes the
            // connection: then the savepoint is gone, and the try's error is the one to handle.
            // A try that only skipped rows needs no undo: the upsert rewrites every row.
            if let (Err(error), Err(_)) = (tried, undone) {
                return Err(error);
            }
        }
    }
    mysql_execute(&mut tx, statements(mode)).await?;
    tx.commit().await.map_err(|e| (e, 0))
}

/// Runs `statements` in order; whether every one added all the rows it carries.
async fn mysql_execute(
    conn: &mut sqlx::MySqlConnection,
    statements: Vec<Statement<'_>>,
) -> Result<bool, (sqlx::Error, usize)> {
    let mut all_added = true;
    for statement in statements {
        let bytes = statement.sql.len()
            + statement
                .params
                .iter()
                .map(|p| p.map_or(0, str::len))
                .sum::<usize>();
        let mut query = sqlx::query(&statement.sql);
        for param in statement.params {
            query = query.bind(param);
        }
        let done = query.execute(&mut *conn).await.map_err(|e| (e, bytes))?;
        all_added &= done.rows_affected() >= statement.inserts as u64;
    }
    Ok(all_added)
}

/// MySQL's "packet bigger than max_allowed_packet" (1153) and "larger than
/// max_allowed_packet" (1301).
fn is_too_large(error: &sqlx::Error) -> bool {
    matches!(classify(error), WriteError::TooLarge(_))
}

/// Sorts a database error into retry, re-describe, or reject-the-rows.
pub fn classify(error: &sqlx::Error) -> WriteError {
    let sqlx::Error::Database(db) = error else {
        // I/O, TLS, pool timeouts, protocol breaks: the connection, not the data.
        return WriteError::Transient(error.to_string());
    };
    let message = db.message().to_string();
    let mysql_number = db
        .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
        .map(|e| e.number());
    let state = db.code().map(Cow::into_owned);
    match mysql_number {
        Some(number) => classify_mysql(number, message, state),
        None => classify_postgres(state.as_deref().unwrap_or(""), message, state.clone()),
    }
}

/// Only errors about a row's data reject rows; anything about the table, the statement, the
/// connection or the server is retried with its reason in the task status, so a setup mistake
/// never drains a stream into the error topic.
fn classify_postgres(state: &str, message: String, sql_state: Option<String>) -> WriteError {
    let class = state.get(..2).unwrap_or("");
    match (class, state) {
        (_, "42703") => WriteError::SchemaChanged(message),
        // Data exceptions (bad value, too long, out of range, bad encoding) and integrity
        // constraints (NOT NULL, unique, foreign key, check); one statement touching a row
        // twice (two rows of one key); a value too big for an index; an exception a trigger
        // raised about the row.
        ("22" | "23", _) | (_, "21000" | "54000" | "P0001") => {
            WriteError::Rejected { message, sql_state }
        }
        _ => WriteError::Transient(message),
    }
}

fn classify_mysql(number: u16, message: String, sql_state: Option<String>) -> WriteError {
    match number {
        1054 => WriteError::SchemaChanged(message),
        1153 | 1301 => WriteError::TooLarge(message),
        // The value, not the table: NULL into NOT NULL (1048, 1263), no default (1364),
        // duplicate key (1062, 1586, 1859), out of range (1264, 1690), truncated or incorrect
        // value (1265, 1292, 1366, 1367, 1411), bad character (1300), too long (1406),
        // a row whose values overflow InnoDB's page (1118: COMPACT or REDUNDANT tables made
        // without strict mode refuse it at insert, row by row), geometry (1416), foreign key
        // (1451, 1452), invalid JSON (3140), check constraint (3819, 4025); an exception a
        // trigger signalled about the row (1644, as PostgreSQL's P0001); a value for a
        // generated column (MariaDB 1906, MySQL 3105).
        1048 | 1062 | 1118 | 1263 | 1264 | 1265 | 1292 | 1300 | 1364 | 1366 | 1367 | 1406
        | 1411 | 1416 | 1451 | 1452 | 1586 | 1644 | 1690 | 1859 | 1906 | 3105 | 3140 | 3819
        | 4025 => WriteError::Rejected { message, sql_state },
        _ => WriteError::Transient(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_data_errors_reject_rows_and_outages_retry() {
        let reject = |s: &str| {
            matches!(
                classify_postgres(s, "m".into(), Some(s.into())),
                WriteError::Rejected { .. }
            )
        };
        for state in ["22P02", "23502", "22001", "23505", "22003"] {
            assert!(reject(state), "{state}");
        }
        for state in [
            "08006", "40P01", "40001", "53300", "57P01", "42P01", "42501",
            // No unique index matches ON CONFLICT, unsupported feature, statement timeout,
            // internal error: the table or the server, not a row.
            "42P10", "0A000", "57014", "XX000", "42601",
        ] {
            assert!(!reject(state), "{state}");
        }
        assert!(matches!(
            classify_postgres("42703", "m".into(), None),
            WriteError::SchemaChanged(_)
        ));
    }

    #[test]
    fn mysql_data_errors_reject_rows_and_outages_retry() {
        let reject = |n| {
            matches!(
                classify_mysql(n, "m".into(), None),
                WriteError::Rejected { .. }
            )
        };
        for n in [1366, 1048, 1406, 1264, 1062, 1292, 1644, 1906, 3105, 1118] {
            assert!(reject(n), "{n}");
        }
        // Table full, max_user_connections, interrupted, statement timeout, out of memory.
        for n in [
            1040, 1205, 1213, 2013, 1146, 1114, 1203, 1317, 1969, 1037, 1041, 1105,
        ] {
            assert!(!reject(n), "{n}");
        }
        assert!(matches!(
            classify_mysql(1153, "m".into(), None),
            WriteError::TooLarge(_)
        ));
        assert!(matches!(
            classify_mysql(1054, "m".into(), None),
            WriteError::SchemaChanged(_)
        ));
    }
}
