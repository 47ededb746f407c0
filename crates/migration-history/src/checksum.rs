//! Checksums of applied migrations, to notice a migration edited after it was applied
//! (as sqlx and Flyway do).
//!
//! When migrations are applied through [`crate::locked::up`] (`dal::Database::migrate`,
//! `migration up`), the SHA-256 of each applied migration's source is recorded in
//! [`TABLE`]. [`verify`] compares the recorded sums with the sources compiled into this
//! binary.

use sea_orm_migration::sea_orm::sea_query::{
    Alias, ColumnDef, Expr, ExprTrait, Query, Table, TableCreateStatement,
};
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};
use sha2::{Digest, Sha256};

use crate::sources;

/// The table holding `(version, checksum)` of applied migrations.
pub const TABLE: &str = "dal_migration_checksums";

/// The checksum of a migration's source text (hex SHA-256).
pub fn checksum(source: &str) -> String {
    Sha256::digest(source.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Brings [`TABLE`] in line with the applied migrations: records the current source's
/// checksum for applied migrations without one, forgets rolled-back ones.
pub async fn record<C: ConnectionTrait>(db: &C) -> Result<(), DbErr> {
    db.execute(&create_table()).await?;
    let applied = applied_versions(db).await?;
    let recorded = recorded(db).await?;
    let stale: Vec<&String> = recorded
        .iter()
        .map(|(v, _)| v)
        .filter(|v| !applied.contains(v))
        .collect();
    if !stale.is_empty() {
        db.execute(
            Query::delete()
                .from_table(Alias::new(TABLE))
                .and_where(Expr::col(Alias::new("version")).is_in(stale.into_iter().cloned())),
        )
        .await?;
    }
    for (name, source) in sources() {
        if applied.iter().any(|a| a == name) && !recorded.iter().any(|(v, _)| v == name) {
            db.execute(
                Query::insert()
                    .into_table(Alias::new(TABLE))
                    .columns([Alias::new("version"), Alias::new("checksum")])
                    .values_panic([name.into(), checksum(source).into()]),
            )
            .await?;
        }
    }
    Ok(())
}

/// `CREATE TABLE IF NOT EXISTS` [`TABLE`].
pub fn create_table() -> TableCreateStatement {
    Table::create()
        .table(Alias::new(TABLE))
        .if_not_exists()
        .col(
            ColumnDef::new(Alias::new("version"))
                .string()
                .not_null()
                .primary_key(),
        )
        .col(ColumnDef::new(Alias::new("checksum")).string().not_null())
        .to_owned()
}

async fn recorded<C: ConnectionTrait>(db: &C) -> Result<Vec<(String, String)>, DbErr> {
    let sql = format!("SELECT version, checksum FROM {TABLE}");
    let rows = db
        .query_all_raw(Statement::from_string(db.get_database_backend(), sql))
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("", "version")?, r.try_get("", "checksum")?)))
        .collect()
}

/// Problems with the applied migrations: applied here but unknown to this binary, known
/// but not applied, applied without a recorded checksum, or changed since applied.
pub async fn verify<C: ConnectionTrait>(db: &C) -> Result<Vec<String>, DbErr> {
    let mut problems = Vec::new();
    let known: Vec<(&str, &str)> = sources();
    let applied_rows = applied_versions(db).await?;
    for version in &applied_rows {
        if !known.iter().any(|(name, _)| name == version) {
            problems.push(format!(
                "migration {version} is applied but not in this migration history"
            ));
        }
    }
    for (name, _) in &known {
        if !applied_rows.iter().any(|v| v == name) {
            problems.push(format!("migration {name} is not applied"));
        }
    }
    let has_table = has_table(db, TABLE).await?;
    let recorded = if has_table {
        recorded(db).await?
    } else {
        Vec::new()
    };
    for (name, source) in &known {
        if !applied_rows.iter().any(|v| v == name) {
            continue;
        }
        match recorded.iter().find(|(v, _)| v == name) {
            None => problems.push(format!(
                "migration {name} has no recorded checksum (applied by another tool?); `migration up` records it"
            )),
            Some((_, sum)) if *sum != checksum(source) => problems.push(format!(
                "migration {name} was edited after it was applied (checksum {} recorded, {} now)",
                short(sum),
                short(&checksum(source))
            )),
            Some(_) => {}
        }
    }
    Ok(problems)
}

/// Whether `table` exists (Postgres: in the current schema).
pub async fn has_table<C: ConnectionTrait>(db: &C, table: &str) -> Result<bool, DbErr> {
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Sqlite => {
            "SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name = ?"
        }
        _ => {
            "SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = $1"
        }
    };
    let row = db
        .query_one_raw(Statement::from_sql_and_values(backend, sql, [table.into()]))
        .await?;
    Ok(row
        .map(|r| r.try_get::<i64>("", "n"))
        .transpose()?
        .unwrap_or(0)
        > 0)
}

/// The versions recorded in `seaql_migrations`, oldest first (none if it does not exist),
/// including ones this binary does not know.
pub async fn applied_versions<C: ConnectionTrait>(db: &C) -> Result<Vec<String>, DbErr> {
    if !has_table(db, "seaql_migrations").await? {
        return Ok(Vec::new());
    }
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT version FROM seaql_migrations ORDER BY version",
        ))
        .await?;
    rows.iter().map(|r| r.try_get("", "version")).collect()
}

fn short(sum: &str) -> &str {
    sum.get(..12).unwrap_or(sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The checksums databases have recorded for the released migrations, oldest first.
    /// A migration's source is hashed whole (its tests and comments too), so editing,
    /// reformatting or re-encoding one makes `migration check` report it on every database
    /// that applied it. Newer migrations may still change until released: then add their
    /// line here.
    const RELEASED: &[(&str, &str)] = &[
        (
            "m20250601_000001_initial_schema",
            "c15173c9520480721c317977b41bb2944b4908e494f0c690d1b172994b287fa0",
        ),
        (
            "m20250602_000001_row_level_security",
            "cee9239a4f428d7d758dd47b0ed323bc52cf982d10e7ce2d16d92395cd0a3a3f",
        ),
        (
            "m20250603_000001_sync",
            "e47044bf7e8bbf4ffbfad7442030aa9f8b71035e7d1880e4a93e0f2c4bff0458",
        ),
        (
            "m20261123_112756_sync_pull_order_index",
            "9fa8e6d2e9125e0db7ddaf9f451e1480ba6d90520d5388f07c53c3bdf0a4c249",
        ),
        (
            "m20261123_112940_sync_log_details",
            "0ed7c6d6fda1f6c5657add8a65d7efdc1f63ce7ae78ee2b4a66bb7ce7f30e640",
        ),
        (
            "m20261130_203628_values_every_reader_reads",
            "128e05dc13673e84f5af9cdc95f8bf1aa76abca06fa1f7c267e45d1996807f45",
        ),
        (
            "m20261130_232000_row_versions",
            "010fde60ebe3327241f9451e0540ed3cd4e47b3f03790e6fe90daae7fedd02f5",
        ),
        (
            "m20261201_023900_task_leases",
            "d094acf725a4016d1c4a59a379f8c6245319bff2b6db3333fb73e4f9126eb3c6",
        ),
        (
            "m20261202_120000_sync_removals",
            "61251f9f1d5789d4cfc0735c307ae5febd43f344715180da3c78fd24494d2731",
        ),
        (
            "m20261207_040000_sync_client_users",
            "032b48098e8409cb02d1fa82798f0dd73c2f9924b4106662127f5e9a40c58bb3",
        ),
        (
            "m20261207_041000_sync_notify",
            "d02020af262e73b50b4d17e07a77f0c3106a330c66a937f21f5900ae3d9b0956",
        ),
        (
            "m20261207_050000_link_policies",
            "bf0c529e17150b36ed6cc986f5c535e4d3e2209db84554ac26ba949cca23c888",
        ),
        (
            "m20261207_160000_value_check_fast_paths",
            "e32cab9466f0a1b093c873f6ac7146fced6fb78b90d34335dcd099e6195cce02",
        ),
        (
            "m20261207_190000_server_rows_unchecked",
            "ea896cd3be2e654b61a04d68cbfbf24cf418d34471a84405e4fb534d837000db",
        ),
        (
            "m20261207_234000_sync_notify_owners",
            "6850a785b1f615f217c835482a26127c98ee32fc39fd7f17b4737acc360cbeb8",
        ),
    ];

    #[test]
    fn released_migrations_keep_the_checksums_databases_recorded() {
        let history = sources();
        assert!(
            history.len() >= RELEASED.len(),
            "a released migration is gone"
        );
        for ((name, source), (released, sum)) in history.iter().zip(RELEASED) {
            assert_eq!(name, released, "the released history is in this order");
            assert_eq!(
                checksum(source),
                *sum,
                "{name} changed after it was released: databases that applied it will \
                 report it as edited (`migration check`); write a new migration instead"
            );
        }
    }
}
