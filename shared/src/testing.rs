//! Fresh PostgreSQL databases for tests (feature `testing`), shared by the services' unit
//! tests and the black-box tests.
//!
//! The server is `GONGJI_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`). When it cannot be reached a test is skipped
//! with a loud warning, unless `GONGJI_TEST_POSTGRES=require` (as in CI), where it fails.
//! Every database is named `gongji_test_*`, so CI can drop what a crashed run left.

use std::{
    io::Write as _,
    sync::atomic::{AtomicU64, Ordering},
    time::{SystemTime, UNIX_EPOCH},
};

use sqlx::{Connection, PgConnection};

/// The admin database's URL.
pub fn admin_url() -> String {
    std::env::var("GONGJI_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// The URL of `database` on the admin URL's server.
pub fn database_url(admin: &str, database: &str) -> String {
    match admin.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{database}"),
        None => format!("{admin}/{database}"),
    }
}

/// A name no other test, in this process or another, uses.
fn unique_tag() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        "{}_{nanos}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Creates one fresh database per suffix and returns their names, or `None` when
/// PostgreSQL is not required and cannot be reached.
pub async fn create_databases(suffixes: &[&str]) -> Option<Vec<String>> {
    let admin = admin_url();
    let required = std::env::var("GONGJI_TEST_POSTGRES").is_ok_and(|v| v == "require");
    let mut conn = match PgConnection::connect(&admin).await {
        Ok(conn) => conn,
        Err(error) if !required => {
            let _ = writeln!(
                std::io::stderr(),
                "\n!!! SKIPPED a PostgreSQL test: cannot connect to {admin} ({error}).\n\
                 !!! Start PostgreSQL or set GONGJI_TEST_POSTGRES_URL; CI sets GONGJI_TEST_POSTGRES=require.\n"
            );
            return None;
        }
        Err(error) => panic!("GONGJI_TEST_POSTGRES=require but {admin} is unreachable: {error}"),
    };
    let tag = unique_tag();
    let mut names = Vec::with_capacity(suffixes.len());
    for suffix in suffixes {
        let name = format!("gongji_test_{tag}_{suffix}");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("create a test database");
        names.push(name);
    }
    Some(names)
}

/// Drops test databases, whoever is still connected.
pub async fn drop_databases(names: &[String]) {
    let mut conn = PgConnection::connect(&admin_url())
        .await
        .expect("admin connection");
    for name in names {
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut conn)
            .await
            .expect("drop a test database");
    }
}

/// Applies the migrations in `dir` numbered up to `up_to` to `pool`: the schema an earlier
/// version left, for tests of what start-up does to its data. The files are the same, so
/// the rest applies after them.
pub async fn earlier_schema<'a, A>(dir: &std::path::Path, up_to: i64, pool: A)
where
    A: sqlx::Acquire<'a>,
    <A::Connection as std::ops::Deref>::Target: sqlx::migrate::Migrate,
{
    let copy = std::env::temp_dir().join(format!("gongji-migrations-{}", unique_tag()));
    std::fs::create_dir_all(&copy).expect("a folder for the migrations");
    for entry in std::fs::read_dir(dir).expect("the migrations") {
        let path = entry.expect("a migration").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let number: i64 = name
            .split('_')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(i64::MAX);
        if number <= up_to {
            std::fs::copy(&path, copy.join(name)).expect("copy a migration");
        }
    }
    sqlx::migrate::Migrator::new(copy.as_path())
        .await
        .expect("the earlier migrations")
        .run(pool)
        .await
        .expect("the earlier schema");
    let _ = std::fs::remove_dir_all(&copy);
}

/// Every byte a SQLite database keeps: its file, WAL, journal and shared memory.
pub fn sqlite_bytes(path: &std::path::Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    for suffix in ["", "-wal", "-journal", "-shm"] {
        if let Ok(content) = std::fs::read(format!("{}{suffix}", path.display())) {
            bytes.extend(content);
        }
    }
    bytes
}

/// A `pg_dump` of the database at `url`.
pub fn pg_dump(url: &str) -> Vec<u8> {
    let output = std::process::Command::new("pg_dump")
        .arg("--dbname")
        .arg(url)
        .output()
        .expect("pg_dump runs (PostgreSQL's client tools are on the PATH)");
    assert!(
        output.status.success(),
        "pg_dump: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// Whether `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
