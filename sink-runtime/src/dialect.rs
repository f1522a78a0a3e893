//! SQL text for a batch of rows, per database protocol. Identifiers come from the table's real
//! columns and are quoted; every value is a bind parameter; a key missing from a message
//! leaves the column its own default ([`fill_groups`]).

use adbsink_crd::{InstanceType, WriteMode};

use crate::decode::Row;
use crate::table::Table;

/// Both protocols cap a statement at 65,535 bind parameters.
pub const MAX_PARAMS: usize = 65_535;
/// Parameters per MySQL statement. MariaDB allocates a statement's working memory per
/// execution and faults in fresh pages for it: at the protocol's 65,535 a fifth of its CPU went
/// to zeroing pages, and statements of a few thousand parameters (a few hundred rows, one
/// transaction per batch either way) wrote 15–20% more rows per second (docs/performance.md).
const MYSQL_MAX_PARAMS: usize = 4_096;
/// Room left under MySQL's 16 MiB packet limit for the statement text and parameter headers.
pub const MYSQL_MAX_STATEMENT_BYTES: usize = 16 * 1024 * 1024 - 256 * 1024;
/// Per-parameter overhead on the wire (type and length bytes), an upper bound.
const PARAM_OVERHEAD: usize = 16;

/// What one row adds to a MySQL statement's packet when it binds `params` parameters (at most
/// the table's width), an upper bound.
pub fn statement_bytes(row: &Row<'_>, params: usize) -> usize {
    row.bytes() + params.max(1) * PARAM_OVERHEAD
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    MySql,
    Postgres,
}

impl From<InstanceType> for Dialect {
    fn from(instance: InstanceType) -> Self {
        match instance {
            InstanceType::AnalyticDBForMySQL => Self::MySql,
            InstanceType::AnalyticDBForPostgreSQL => Self::Postgres,
        }
    }
}

/// One statement: SQL text and its parameters in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement<'a> {
    pub sql: String,
    pub params: Vec<Option<&'a str>>,
    /// The rows it adds to a table that holds none of their keys (none for a DELETE).
    pub inserts: usize,
}

impl Dialect {
    pub fn quote(self, identifier: &str) -> String {
        match self {
            Self::MySql => format!("`{}`", identifier.replace('`', "``")),
            Self::Postgres => format!("\"{}\"", identifier.replace('"', "\"\"")),
        }
    }

    pub(crate) fn table_name(self, table: &Table) -> String {
        format!("{}.{}", self.quote(&table.schema), self.quote(&table.name))
    }

    fn max_params(self) -> usize {
        match self {
            Self::MySql => MYSQL_MAX_PARAMS,
            Self::Postgres => MAX_PARAMS,
        }
    }

    /// Splits rows that each bind `params_per_row` parameters into runs that each fit one
    /// statement: the parameter count, and on MySQL `max_bytes` of packet (16 MiB, or less once
    /// the server refused a statement as larger than its `max_allowed_packet`). Returns the run
    /// lengths.
    pub fn chunk_sizes(
        self,
        rows: &[&Row<'_>],
        params_per_row: usize,
        max_bytes: usize,
    ) -> Vec<usize> {
        let row_params = params_per_row.max(1);
        let mut sizes = Vec::new();
        let (mut count, mut params, mut bytes) = (0usize, 0usize, 0usize);
        for row in rows {
            let row_bytes = statement_bytes(row, row_params);
            let over_params = params + row_params > self.max_params();
            let over_bytes = self == Self::MySql && bytes + row_bytes > max_bytes;
            if count > 0 && (over_params || over_bytes) {
                sizes.push(count);
                (count, params, bytes) = (0, 0, 0);
            }
            count += 1;
            params += row_params;
            bytes += row_bytes;
        }
        if count > 0 {
            sizes.push(count);
        }
        sizes
    }

    /// The statements that write `rows`, each within the limits of [`Dialect::chunk_sizes`].
    /// Insert: multi-row INSERTs over the groups of [`fill_groups`], so a key a message lacks
    /// stores the column's default. Upsert: `rows` must be coalesced
    /// ([`crate::coalesce::coalesce`], one row per key); rows are grouped by the columns they
    /// set, so a row updates only the columns its message carried.
    ///
    /// Either way a statement's text depends only on its columns and its row count, never on
    /// which keys each row happens to carry: the server prepares a text once per connection
    /// and reuses it, where a text per statement would cost a prepare and a close each.
    pub fn statements<'a>(
        self,
        table: &Table,
        rows: &[&'a Row<'a>],
        mode: WriteMode,
        primary_key: &[usize],
        max_bytes: usize,
    ) -> Vec<Statement<'a>> {
        let groups = match mode {
            WriteMode::Insert => fill_groups(table, rows),
            WriteMode::Upsert => by_columns(rows),
        };
        let mut out = Vec::new();
        for (columns, group) in groups {
            let mut start = 0;
            for size in self.chunk_sizes(&group, columns.len(), max_bytes) {
                let run = &group[start..start + size];
                start += size;
                out.push(match mode {
                    WriteMode::Insert => self.values(table, &columns, run),
                    WriteMode::Upsert => self.upsert(table, &columns, run, primary_key),
                });
            }
        }
        out
    }

    /// A multi-row upsert of `rows`, which all set exactly `columns` and have distinct keys:
    /// `INSERT … ON DUPLICATE KEY UPDATE` on MySQL, `INSERT … ON CONFLICT DO UPDATE` on
    /// PostgreSQL, updating the non-key columns the rows carry and no other.
    pub fn upsert<'a>(
        self,
        table: &Table,
        columns: &[usize],
        rows: &[&'a Row<'a>],
        primary_key: &[usize],
    ) -> Statement<'a> {
        let mut statement = self.values(table, columns, rows);
        statement.sql.push_str(&match self {
            Self::Postgres => on_conflict(table, columns, primary_key),
            Self::MySql => on_duplicate_key(table, columns, primary_key),
        });
        statement
    }

    /// `INSERT INTO t (columns) VALUES (…), …` with every value bound; a listed column a row
    /// does not set is bound NULL, so beyond what every row sets `columns` may list only
    /// columns whose default is NULL ([`fill_groups`]).
    fn values<'a>(self, table: &Table, columns: &[usize], rows: &[&'a Row<'a>]) -> Statement<'a> {
        let mut sql = format!("INSERT INTO {} (", self.table_name(table));
        sql.push_str(
            &columns
                .iter()
                .map(|c| self.quote(&table.columns[*c].name))
                .collect::<Vec<_>>()
                .join(", "),
        );
        sql.push_str(") VALUES ");
        let mut params = Vec::with_capacity(rows.len() * columns.len());
        for (i, row) in rows.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push('(');
            // Both in column order: one walk, not a search per column.
            let mut values = row.values().peekable();
            for (j, column) in columns.iter().enumerate() {
                if j > 0 {
                    sql.push_str(", ");
                }
                while values.next_if(|(c, _)| c < column).is_some() {}
                params.push(values.next_if(|(c, _)| c == column).and_then(|(_, v)| v));
                self.placeholder(&mut sql, params.len(), table, *column);
            }
            sql.push(')');
        }
        Statement {
            sql,
            params,
            inserts: rows.len(),
        }
    }

    /// The statements applying a folded batch ([`crate::coalesce::plan`]): its deletes first,
    /// then its writes.
    pub fn applying<'a>(
        self,
        table: &Table,
        deletes: &[&'a Row<'a>],
        rows: &[&'a Row<'a>],
        mode: WriteMode,
        primary_key: &[usize],
        max_bytes: usize,
    ) -> Vec<Statement<'a>> {
        let mut statements = self.deletes(table, deletes, primary_key, max_bytes);
        statements.extend(self.statements(table, rows, mode, primary_key, max_bytes));
        statements
    }

    /// Statements deleting the rows of the keys `keys` carry (their other columns are
    /// ignored), within the parameter count and, on MySQL, `max_bytes`. MySQL: `DELETE … WHERE
    /// (k1, k2) IN ((?, ?), …)`; PostgreSQL: `DELETE … USING (VALUES …)`, a join on the key.
    pub fn deletes<'a>(
        self,
        table: &Table,
        keys: &[&'a Row<'a>],
        primary_key: &[usize],
        max_bytes: usize,
    ) -> Vec<Statement<'a>> {
        let width = primary_key.len().max(1);
        let per_statement = (self.max_params() / width).max(1);
        let mut out = Vec::new();
        let mut start = 0;
        while start < keys.len() {
            let mut end = start;
            let mut bytes = 0;
            while end < keys.len() && end - start < per_statement {
                let key_bytes: usize = primary_key
                    .iter()
                    .map(|c| keys[end].get(*c).flatten().map_or(4, str::len) + PARAM_OVERHEAD)
                    .sum();
                if end > start && self == Self::MySql && bytes + key_bytes > max_bytes {
                    break;
                }
                bytes += key_bytes;
                end += 1;
            }
            out.push(self.delete(table, &keys[start..end], primary_key));
            start = end;
        }
        out
    }

    fn delete<'a>(
        self,
        table: &Table,
        keys: &[&'a Row<'a>],
        primary_key: &[usize],
    ) -> Statement<'a> {
        let names: Vec<String> = primary_key
            .iter()
            .map(|c| self.quote(&table.columns[*c].name))
            .collect();
        let mut params = Vec::with_capacity(keys.len() * primary_key.len());
        let mut sql = match self {
            Self::MySql if names.len() == 1 => {
                format!(
                    "DELETE FROM {} WHERE {} IN (",
                    self.table_name(table),
                    names[0]
                )
            }
            Self::MySql => format!(
                "DELETE FROM {} WHERE ({}) IN (",
                self.table_name(table),
                names.join(", ")
            ),
            Self::Postgres => format!(
                "DELETE FROM {} AS adbsink_target USING (VALUES ",
                self.table_name(table)
            ),
        };
        let tuple = self == Self::Postgres || names.len() > 1;
        for (i, key) in keys.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            if tuple {
                sql.push('(');
            }
            for (j, column) in primary_key.iter().enumerate() {
                if j > 0 {
                    sql.push_str(", ");
                }
                params.push(key.get(*column).flatten());
                self.placeholder(&mut sql, params.len(), table, *column);
            }
            if tuple {
                sql.push(')');
            }
        }
        sql.push(')');
        if self == Self::Postgres {
            sql.push_str(&format!(" AS adbsink_keys ({}) WHERE ", names.join(", ")));
            sql.push_str(
                &names
                    .iter()
                    .map(|n| format!("adbsink_target.{n} = adbsink_keys.{n}"))
                    .collect::<Vec<_>>()
                    .join(" AND "),
            );
        }
        Statement {
            sql,
            params,
            inserts: 0,
        }
    }

    fn placeholder(self, sql: &mut String, n: usize, table: &Table, column: usize) {
        match self {
            Self::MySql => sql.push('?'),
            Self::Postgres => {
                sql.push('$');
                sql.push_str(&n.to_string());
                if let Some(cast) = &table.columns[column].cast {
                    sql.push_str("::");
                    sql.push_str(cast);
                }
            }
        }
    }
}

/// ` ON CONFLICT (key) DO UPDATE SET c = EXCLUDED.c, …` over the non-key `columns`.
fn on_conflict(table: &Table, columns: &[usize], primary_key: &[usize]) -> String {
    let q = |c: &usize| Dialect::Postgres.quote(&table.columns[*c].name);
    let keys: Vec<String> = primary_key.iter().map(q).collect();
    let updates: Vec<String> = columns
        .iter()
        .filter(|c| !primary_key.contains(c))
        .map(|c| format!("{0} = EXCLUDED.{0}", q(c)))
        .collect();
    if updates.is_empty() {
        format!(" ON CONFLICT ({}) DO NOTHING", keys.join(", "))
    } else {
        format!(
            " ON CONFLICT ({}) DO UPDATE SET {}",
            keys.join(", "),
            updates.join(", ")
        )
    }
}

/// ` ON DUPLICATE KEY UPDATE c = VALUES(c), …` over the non-key `columns`; a key-only row
/// changes nothing (`k = k`), as PostgreSQL's DO NOTHING. Unlike `REPLACE`, the row is
/// updated in place: columns the message does not carry, other unique keys' rows and
/// `ON DELETE CASCADE` children stay as they are.
fn on_duplicate_key(table: &Table, columns: &[usize], primary_key: &[usize]) -> String {
    let q = |c: &usize| Dialect::MySql.quote(&table.columns[*c].name);
    let updates: Vec<String> = columns
        .iter()
        .filter(|c| !primary_key.contains(c))
        .map(|c| format!("{0} = VALUES({0})", q(c)))
        .collect();
    let updates = if updates.is_empty() {
        primary_key
            .iter()
            .map(|c| format!("{0} = {0}", q(c)))
            .collect()
    } else {
        updates
    };
    format!(" ON DUPLICATE KEY UPDATE {}", updates.join(", "))
}

/// Rows grouped by the columns they set, in order within each group.
fn by_columns<'a>(rows: &[&'a Row<'a>]) -> Vec<(Vec<usize>, Vec<&'a Row<'a>>)> {
    by_columns_where(rows, |_| true)
}

/// Rows grouped by which of the columns `keyed` accepts they set, groups in key order.
fn by_columns_where<'a>(
    rows: &[&'a Row<'a>],
    keyed: impl Fn(usize) -> bool,
) -> Vec<(Vec<usize>, Vec<&'a Row<'a>>)> {
    // Few groups, usually one: a linear search starting at the last row's group, so a row
    // costs a comparison and no allocation.
    let mut groups: Vec<(Vec<usize>, Vec<&Row<'_>>)> = Vec::new();
    let mut last = 0;
    for row in rows {
        let same = |g: &(Vec<usize>, Vec<&Row<'_>>)| {
            g.0.iter().copied().eq(row.columns().filter(|&c| keyed(c)))
        };
        if !groups.get(last).is_some_and(same) {
            last = match groups.iter().position(same) {
                Some(i) => i,
                None => {
                    groups.push((row.columns().filter(|&c| keyed(c)).collect(), Vec::new()));
                    groups.len() - 1
                }
            };
        }
        groups[last].1.push(row);
    }
    groups.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    groups
}

/// The quoted PostgreSQL column list of a group.
fn column_list(table: &Table, columns: &[usize]) -> String {
    columns
        .iter()
        .map(|c| Dialect::Postgres.quote(&table.columns[*c].name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One `COPY … FROM STDIN` of a batch: the columns it lists, in table order, and its rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyGroup<'a> {
    pub sql: String,
    pub columns: Vec<usize>,
    pub rows: Vec<&'a Row<'a>>,
}

/// Insert mode's groups: the columns each lists, in table order, and its rows in batch order.
/// A column a row leaves out must take its default exactly as leaving it out of an INSERT
/// would, so rows are grouped by the columns they set, except columns whose default is NULL
/// ([`Column::defaults_to_null`](crate::table::Column)): those are listed when any row of the
/// group sets them and written as NULL for the rows that do not, which stores what leaving
/// them out stores. A topic whose messages carry different subsets of such columns is one
/// group per batch, not one per subset.
pub fn fill_groups<'a>(table: &Table, rows: &[&'a Row<'a>]) -> Vec<(Vec<usize>, Vec<&'a Row<'a>>)> {
    let fills = |c: usize| table.columns.get(c).is_some_and(|c| c.defaults_to_null);
    by_columns_where(rows, |c| !fills(c))
        .into_iter()
        .map(|(_, rows)| {
            let mut listed = vec![false; table.len()];
            for c in rows.iter().flat_map(|row| row.columns()) {
                if let Some(slot) = listed.get_mut(c) {
                    *slot = true;
                }
            }
            let columns: Vec<usize> = (0..listed.len()).filter(|&c| listed[c]).collect();
            (columns, rows)
        })
        .collect()
}

/// PostgreSQL Insert mode: each of the [`fill_groups`] one `COPY … FROM STDIN` in text
/// format, a column a row leaves out sent as `\N`. Each COPY costs PostgreSQL a statement and
/// a flush of its insert buffers.
pub fn copy_groups<'a>(table: &Table, rows: &[&'a Row<'a>]) -> Vec<CopyGroup<'a>> {
    let target = Dialect::Postgres.table_name(table);
    fill_groups(table, rows)
        .into_iter()
        .map(|(columns, rows)| CopyGroup {
            sql: format!(
                "COPY {target} ({}) FROM STDIN",
                column_list(table, &columns)
            ),
            columns,
            rows,
        })
        .collect()
}

/// The temporary table PostgreSQL Upsert copies a batch into before merging it.
pub const STAGE_TABLE: &str = "adbsink_stage";

/// Creates the stage table with the target's column types and no constraints, dropped at
/// commit, so a changed target never meets a stale stage.
pub fn create_stage(table: &Table) -> String {
    format!(
        "CREATE TEMPORARY TABLE {STAGE_TABLE} ON COMMIT DROP AS SELECT * FROM {} WITH NO DATA",
        Dialect::Postgres.table_name(table)
    )
}

/// One group of a staged PostgreSQL Upsert: COPY the rows into the stage, then merge them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedUpsert<'a> {
    pub copy: String,
    /// The columns the copy lists: exactly those its rows set.
    pub columns: Vec<usize>,
    pub merge: String,
    pub rows: Vec<&'a Row<'a>>,
}

/// PostgreSQL Upsert the bulk way: COPY is several times faster than a multi-row INSERT with
/// bound parameters. `rows` must be coalesced (one row per key); rows setting the same
/// columns are copied and merged together, and a merge updates only those columns.
pub fn staged_upserts<'a>(
    table: &Table,
    rows: &[&'a Row<'a>],
    primary_key: &[usize],
) -> Vec<StagedUpsert<'a>> {
    let target = Dialect::Postgres.table_name(table);
    let stage = format!("pg_temp.{STAGE_TABLE}");
    by_columns(rows)
        .into_iter()
        .map(|(columns, rows)| {
            let list = column_list(table, &columns);
            StagedUpsert {
                copy: format!("COPY {stage} ({list}) FROM STDIN"),
                merge: format!(
                    "INSERT INTO {target} ({list}) SELECT {list} FROM {stage}{}",
                    on_conflict(table, &columns, primary_key)
                ),
                columns,
                rows,
            }
        })
        .collect()
}

/// One row in COPY's text format for a COPY listing `columns` (which hold every column the
/// row sets): tab-separated, `\N` for NULL and for a listed column the row does not set,
/// backslash escapes.
pub fn copy_line(row: &Row<'_>, columns: &[usize], out: &mut Vec<u8>) {
    // Most rows hold no reserved byte at all: one vectorised scan of the row saves scanning
    // each value.
    let plain = row.texts().iter().all(|text| {
        let text = text.as_bytes();
        memchr::memchr3(b'\\', b'\t', b'\n', text).is_none()
            && memchr::memchr(b'\r', text).is_none()
    });
    let mut values = row.values().peekable();
    for (i, &column) in columns.iter().enumerate() {
        if i > 0 {
            out.push(b'\t');
        }
        let value = values.next_if(|(c, _)| *c == column).and_then(|(_, v)| v);
        let Some(text) = value else {
            out.extend_from_slice(b"\\N");
            continue;
        };
        if plain {
            out.extend_from_slice(text.as_bytes());
            continue;
        }
        // Runs without a reserved byte are copied whole.
        let mut rest = text.as_bytes();
        while let Some(i) = rest
            .iter()
            .position(|b| matches!(b, b'\\' | b'\t' | b'\n' | b'\r'))
        {
            out.extend_from_slice(&rest[..i]);
            out.extend_from_slice(match rest[i] {
                b'\\' => b"\\\\",
                b'\t' => b"\\t",
                b'\n' => b"\\n",
                _ => b"\\r",
            });
            rest = &rest[i + 1..];
        }
        out.extend_from_slice(rest);
    }
    debug_assert!(
        values.next().is_none(),
        "a set column the COPY does not list"
    );
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{Column, Equality};

    fn table() -> Table {
        Table::new(
            "s",
            "t",
            vec![
                Column {
                    name: "id".into(),
                    cast: Some("\"pg_catalog\".\"int4\"".into()),
                    equality: Equality::Other,
                    defaults_to_null: false,
                    sequence: false,
                },
                Column {
                    name: "na\"me`".into(),
                    cast: Some("\"pg_catalog\".\"text\"".into()),
                    equality: Equality::Other,
                    defaults_to_null: false,
                    sequence: false,
                },
                Column {
                    name: "v".into(),
                    cast: None,
                    equality: Equality::Other,
                    defaults_to_null: false,
                    sequence: false,
                },
            ],
        )
    }

    fn row(values: &[(usize, Option<&str>)]) -> Row<'static> {
        values.iter().copied().collect()
    }

    #[test]
    fn deletes_match_whole_keys_with_every_value_bound() {
        let t = table();
        let a = row(&[(0, Some("1")), (1, Some("x")), (2, Some("ignored"))]);
        let b = row(&[(0, Some("2")), (1, Some("y"))]);
        let mysql = Dialect::MySql.deletes(&t, &[&a, &b], &[0], usize::MAX);
        assert_eq!(mysql.len(), 1);
        assert_eq!(mysql[0].sql, "DELETE FROM `s`.`t` WHERE `id` IN (?, ?)");
        assert_eq!(mysql[0].params, vec![Some("1"), Some("2")]);
        let composite = Dialect::MySql.deletes(&t, &[&a, &b], &[0, 1], usize::MAX);
        assert_eq!(
            composite[0].sql,
            "DELETE FROM `s`.`t` WHERE (`id`, `na\"me```) IN ((?, ?), (?, ?))"
        );
        assert_eq!(
            composite[0].params,
            vec![Some("1"), Some("x"), Some("2"), Some("y")]
        );
        let pg = Dialect::Postgres.deletes(&t, &[&a, &b], &[0, 1], usize::MAX);
        assert_eq!(
            pg[0].sql,
            "DELETE FROM \"s\".\"t\" AS adbsink_target USING (VALUES ($1::\"pg_catalog\".\"int4\", \
             $2::\"pg_catalog\".\"text\"), ($3::\"pg_catalog\".\"int4\", $4::\"pg_catalog\".\"text\")) \
             AS adbsink_keys (\"id\", \"na\"\"me`\") WHERE adbsink_target.\"id\" = adbsink_keys.\"id\" \
             AND adbsink_target.\"na\"\"me`\" = adbsink_keys.\"na\"\"me`\""
        );
    }

    #[test]
    fn deletes_split_at_the_parameter_and_packet_limits() {
        let t = table();
        let ids: Vec<String> = (0..10_000).map(|i| i.to_string()).collect();
        let rows: Vec<Row<'_>> = ids
            .iter()
            .map(|i| row(&[(0, Some(i.as_str())), (1, Some(i.as_str()))]))
            .collect();
        let refs: Vec<&Row<'_>> = rows.iter().collect();
        let by_params = Dialect::MySql.deletes(&t, &refs, &[0, 1], usize::MAX);
        assert_eq!(
            by_params.len(),
            5,
            "2,048 two-column keys per 4,096 parameters"
        );
        assert!(by_params.iter().all(|s| s.params.len() <= MYSQL_MAX_PARAMS));
        let by_bytes = Dialect::MySql.deletes(&t, &refs, &[0], 1_000);
        assert!(by_bytes.len() > 100);
        assert_eq!(
            by_bytes.iter().map(|s| s.params.len()).sum::<usize>(),
            10_000
        );
        assert_eq!(Dialect::Postgres.deletes(&t, &refs, &[0, 1], 0).len(), 1);
    }

    #[test]
    fn insert_statements_cast_binds_and_leave_out_missing_keys() {
        let a = row(&[(0, Some("1")), (1, Some("x"))]);
        let b = row(&[(0, Some("2")), (2, None)]);
        let c = row(&[(0, Some("3")), (1, Some("y"))]);
        let s = Dialect::Postgres.statements(
            &table(),
            &[&a, &b, &c],
            WriteMode::Insert,
            &[],
            usize::MAX,
        );
        assert_eq!(
            s[0].sql,
            "INSERT INTO \"s\".\"t\" (\"id\", \"na\"\"me`\") VALUES \
             ($1::\"pg_catalog\".\"int4\", $2::\"pg_catalog\".\"text\"), \
             ($3::\"pg_catalog\".\"int4\", $4::\"pg_catalog\".\"text\")"
        );
        assert_eq!(
            s[0].params,
            vec![Some("1"), Some("x"), Some("3"), Some("y")]
        );
        assert_eq!(
            s[1].sql,
            "INSERT INTO \"s\".\"t\" (\"id\", \"v\") VALUES \
             ($1::\"pg_catalog\".\"int4\", $2)"
        );
        assert_eq!(s[1].params, vec![Some("2"), None]);
        assert!(s.iter().all(|s| !s.sql.contains("DEFAULT")), "{s:?}");
    }

    #[test]
    fn mysql_insert_binds_null_for_left_out_columns_that_default_to_null() {
        let a = row(&[(0, Some("1")), (1, Some("x"))]);
        let b = row(&[(0, Some("2")), (2, None)]);
        let c = row(&[(0, Some("3")), (3, Some("5"))]);
        let s = Dialect::MySql.statements(
            &sparse_table(),
            &[&a, &b, &c],
            WriteMode::Insert,
            &[],
            usize::MAX,
        );
        assert_eq!(s.len(), 2, "{s:?}");
        assert_eq!(
            s[0].sql,
            "INSERT INTO `s`.`t` (`id`, `a`, `b`) VALUES (?, ?, ?), (?, ?, ?)"
        );
        assert_eq!(
            s[0].params,
            vec![Some("1"), Some("x"), None, Some("2"), None, None]
        );
        assert_eq!(s[1].sql, "INSERT INTO `s`.`t` (`id`, `d`) VALUES (?, ?)");
    }

    /// Messages of one topic carry whatever subset of the nullable columns they have. Each
    /// distinct statement text costs MySQL a prepare (and sqlx's cache a close when it
    /// evicts): a batch's statements must share their texts, not have one each.
    #[test]
    fn mysql_insert_texts_do_not_depend_on_which_keys_each_row_carries() {
        let column = |c: usize| Column {
            name: format!("c{c}"),
            cast: None,
            equality: Equality::Other,
            defaults_to_null: c > 0,
            sequence: false,
        };
        let wide = Table::new("s", "t", (0..40).map(column).collect());
        let rows: Vec<Row<'static>> = (0..5_000u64)
            .map(|i| {
                let shape = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 20;
                std::iter::once((0, Some("1")))
                    .chain(
                        (1..40)
                            .filter(|c| shape >> c & 1 == 1)
                            .map(|c| (c, Some("v"))),
                    )
                    .collect()
            })
            .collect();
        let refs: Vec<&Row<'_>> = rows.iter().collect();
        let s = Dialect::MySql.statements(
            &wide,
            &refs,
            WriteMode::Insert,
            &[],
            MYSQL_MAX_STATEMENT_BYTES,
        );
        let texts: std::collections::HashSet<&str> = s.iter().map(|s| s.sql.as_str()).collect();
        assert!(s.len() > 10, "{}", s.len());
        assert_eq!(texts.len(), 2, "full statements and the remainder");
        assert_eq!(s.iter().map(|s| s.params.len()).sum::<usize>(), 5_000 * 40);
        assert!(s.iter().all(|s| s.params.len() <= MYSQL_MAX_PARAMS));
    }

    #[test]
    fn postgres_staged_upsert_merges_each_column_set_on_its_own() {
        let a = row(&[(0, Some("1")), (1, Some("new"))]);
        let b = row(&[(0, Some("2")), (2, Some("v"))]);
        let staged = staged_upserts(&table(), &[&a, &b], &[0]);
        assert_eq!(staged.len(), 2, "two column sets");
        assert_eq!(
            staged[0].copy,
            "COPY pg_temp.adbsink_stage (\"id\", \"na\"\"me`\") FROM STDIN"
        );
        assert_eq!(
            staged[0].merge,
            "INSERT INTO \"s\".\"t\" (\"id\", \"na\"\"me`\") SELECT \"id\", \"na\"\"me`\" \
             FROM pg_temp.adbsink_stage ON CONFLICT (\"id\") DO UPDATE SET \"na\"\"me`\" = EXCLUDED.\"na\"\"me`\""
        );
        assert_eq!(staged[0].rows, vec![&a]);
        assert_eq!(staged[1].rows, vec![&b]);
        let key_only = row(&[(0, Some("3"))]);
        let staged = staged_upserts(&table(), &[&key_only], &[0]);
        assert!(staged[0].merge.ends_with("ON CONFLICT (\"id\") DO NOTHING"));
        assert_eq!(
            create_stage(&table()),
            "CREATE TEMPORARY TABLE adbsink_stage ON COMMIT DROP AS SELECT * FROM \"s\".\"t\" WITH NO DATA"
        );
    }

    #[test]
    fn mysql_upsert_updates_in_place_only_the_columns_carried() {
        let a = row(&[(0, Some("1")), (1, Some("x"))]);
        let s = Dialect::MySql.statements(&table(), &[&a], WriteMode::Upsert, &[0], usize::MAX);
        assert_eq!(
            s[0].sql,
            "INSERT INTO `s`.`t` (`id`, `na\"me```) VALUES (?, ?) \
             ON DUPLICATE KEY UPDATE `na\"me``` = VALUES(`na\"me```)"
        );
        let key_only = row(&[(0, Some("1"))]);
        let s =
            Dialect::MySql.statements(&table(), &[&key_only], WriteMode::Upsert, &[0], usize::MAX);
        assert!(
            s[0].sql.ends_with("ON DUPLICATE KEY UPDATE `id` = `id`"),
            "{}",
            s[0].sql
        );
    }

    #[test]
    fn upsert_statements_never_default_a_column_the_message_left_out() {
        let a = row(&[(0, Some("1")), (1, Some("a"))]);
        let b = row(&[(0, Some("2")), (2, Some("b"))]);
        let c = row(&[(0, Some("3")), (1, Some("c"))]);
        for dialect in [Dialect::MySql, Dialect::Postgres] {
            let s =
                dialect.statements(&table(), &[&a, &b, &c], WriteMode::Upsert, &[0], usize::MAX);
            assert_eq!(s.len(), 2, "one statement per column set");
            assert!(s.iter().all(|s| !s.sql.contains("DEFAULT")), "{s:?}");
            assert_eq!(
                s[0].params,
                vec![Some("1"), Some("a"), Some("3"), Some("c")]
            );
            assert_eq!(s[1].params, vec![Some("2"), Some("b")]);
        }
    }

    #[test]
    fn key_only_upsert_does_nothing_on_conflict() {
        let a = row(&[(0, Some("1"))]);
        let s = Dialect::Postgres.statements(&table(), &[&a], WriteMode::Upsert, &[0], usize::MAX);
        assert!(
            s[0].sql.ends_with("ON CONFLICT (\"id\") DO NOTHING"),
            "{}",
            s[0].sql
        );
    }

    #[test]
    fn copy_groups_rows_by_the_columns_they_set() {
        let a = row(&[(0, Some("1")), (1, Some("x"))]);
        let b = row(&[(0, Some("2"))]);
        let c = row(&[(0, Some("3")), (1, Some("y"))]);
        let groups = copy_groups(&table(), &[&a, &b, &c]);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].sql, "COPY \"s\".\"t\" (\"id\") FROM STDIN");
        assert_eq!(groups[0].rows, vec![&b]);
        assert_eq!(
            groups[1].sql,
            "COPY \"s\".\"t\" (\"id\", \"na\"\"me`\") FROM STDIN"
        );
        assert_eq!(groups[1].rows, vec![&a, &c]);
    }

    /// Columns 1 and 2 store NULL when left out, column 3 has a default.
    fn sparse_table() -> Table {
        let column = |name: &str, defaults_to_null: bool| Column {
            name: name.into(),
            cast: None,
            equality: Equality::Other,
            defaults_to_null,
            sequence: false,
        };
        Table::new(
            "s",
            "t",
            vec![
                column("id", false),
                column("a", true),
                column("b", true),
                column("d", false),
            ],
        )
    }

    #[test]
    fn copy_groups_fill_columns_that_default_to_null() {
        let a = row(&[(0, Some("1")), (1, Some("x"))]);
        let b = row(&[(0, Some("2")), (2, None)]);
        let c = row(&[(0, Some("3"))]);
        let groups = copy_groups(&sparse_table(), &[&a, &b, &c]);
        assert_eq!(groups.len(), 1, "{groups:?}");
        assert_eq!(
            groups[0].sql,
            "COPY \"s\".\"t\" (\"id\", \"a\", \"b\") FROM STDIN"
        );
        assert_eq!(groups[0].columns, [0, 1, 2]);
        assert_eq!(groups[0].rows, vec![&a, &b, &c]);
        let mut out = Vec::new();
        for row in &groups[0].rows {
            copy_line(row, &groups[0].columns, &mut out);
        }
        assert_eq!(out, b"1\tx\t\\N\n2\t\\N\t\\N\n3\t\\N\t\\N\n");
    }

    #[test]
    fn copy_groups_keep_rows_apart_where_leaving_a_column_out_means_its_default() {
        let a = row(&[(0, Some("1")), (1, Some("x")), (3, Some("5"))]);
        let b = row(&[(0, Some("2")), (2, Some("y"))]);
        let c = row(&[(0, Some("3")), (3, Some("6"))]);
        let groups = copy_groups(&sparse_table(), &[&a, &b, &c]);
        assert_eq!(groups.len(), 2, "{groups:?}");
        assert_eq!(groups[0].columns, [0, 2], "without d");
        assert_eq!(groups[0].rows, vec![&b]);
        assert_eq!(groups[1].columns, [0, 1, 3], "with d");
        assert_eq!(groups[1].rows, vec![&a, &c]);
    }

    fn copied(values: &[(usize, Option<&str>)]) -> Vec<u8> {
        let row = row(values);
        let columns: Vec<usize> = row.columns().collect();
        let mut out = Vec::new();
        copy_line(&row, &columns, &mut out);
        out
    }

    #[test]
    fn copy_lines_escape_what_the_text_format_reserves() {
        assert_eq!(
            copied(&[(0, Some("a\tb\\c\nd\re")), (1, None), (2, Some("\\N"))]),
            b"a\\tb\\\\c\\nd\\re\t\\N\t\\\\N\n".to_vec()
        );
    }

    #[test]
    fn copy_lines_of_rows_without_reserved_bytes_are_the_values() {
        assert_eq!(
            copied(&[(0, Some("1")), (1, None), (2, Some("a b"))]),
            b"1\t\\N\ta b\n".to_vec()
        );
        // One escaped value leaves the others as they are.
        assert_eq!(
            copied(&[(0, Some("x\ry")), (1, Some("plain"))]),
            b"x\\ry\tplain\n".to_vec()
        );
    }

    #[test]
    fn chunks_respect_the_parameter_limit() {
        let wide: Row<'static> = (0..1000).map(|c| (c, Some("x"))).collect();
        let rows: Vec<&Row<'_>> = std::iter::repeat_n(&wide, 200).collect();
        let sizes = Dialect::Postgres.chunk_sizes(&rows, rows[0].len(), MYSQL_MAX_STATEMENT_BYTES);
        assert_eq!(sizes, vec![65, 65, 65, 5]);
        assert!(sizes.iter().all(|n| n * 1000 <= MAX_PARAMS));
    }

    #[test]
    fn mysql_statements_stay_small() {
        let ten: Row<'static> = (0..10).map(|c| (c, Some("x"))).collect();
        let rows: Vec<&Row<'_>> = std::iter::repeat_n(&ten, 1000).collect();
        let sizes = Dialect::MySql.chunk_sizes(&rows, rows[0].len(), MYSQL_MAX_STATEMENT_BYTES);
        assert_eq!(sizes, vec![409, 409, 182]);
        assert_eq!(
            Dialect::Postgres.chunk_sizes(&rows, rows[0].len(), MYSQL_MAX_STATEMENT_BYTES),
            vec![1000]
        );
    }

    #[test]
    fn mysql_chunks_stay_under_16_mib() {
        let text = "x".repeat(3 * 1024 * 1024);
        let big = row(&[(0, Some(&text))]);
        let rows: Vec<&Row<'_>> = std::iter::repeat_n(&big, 12).collect();
        assert_eq!(
            Dialect::MySql.chunk_sizes(&rows, rows[0].len(), MYSQL_MAX_STATEMENT_BYTES),
            vec![5, 5, 2]
        );
        assert_eq!(
            Dialect::Postgres.chunk_sizes(&rows, rows[0].len(), MYSQL_MAX_STATEMENT_BYTES),
            vec![12]
        );
    }
}
