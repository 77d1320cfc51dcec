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
