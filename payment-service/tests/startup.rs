//! The binary refuses a configuration it cannot run with, at start-up, with a message that
//! names the setting and never echoes a database password.

use std::process::{Command, Output};

use gongji_shared::vault::KeyMaterial;

fn start(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_payment-service"))
        .args(["--listen-addr", "127.0.0.1:0"])
        .args(args)
        .env("GONGJI_DATA_KEYS_ENV", "GONGJI_TEST_KEYS")
        .env("GONGJI_TEST_KEYS", KeyMaterial::generate().to_toml())
        .env("RUST_BACKTRACE", "0")
        .env("RUST_LIB_BACKTRACE", "0")
        .env_remove("NO_COLOR")
        .output()
        .expect("run the binary")
}

#[track_caller]
fn refused(output: &Output, says: &str) -> String {
    assert!(!output.status.success(), "start-up must fail");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(stderr.contains(says), "{says:?} not in {stderr}");
    stderr
}

#[test]
fn a_probe_interval_of_zero_is_refused() {
    refused(
        &start(&["--peer-probe-interval-ms", "0"]),
        "--peer-probe-interval-ms",
    );
}

#[test]
fn a_pool_of_zero_connections_is_refused() {
    refused(
        &start(&["--db-max-connections", "0"]),
        "--db-max-connections",
    );
}

#[test]
fn a_database_url_of_neither_kind_is_refused_without_its_password() {
    let dir = tempfile::tempdir().expect("temp dir");
    let typo = "postgress://gongji:s3cret@127.0.0.1:5432/payment";
    let output = Command::new(env!("CARGO_BIN_EXE_payment-service"))
        .args(["--listen-addr", "127.0.0.1:0", "--database-url", typo])
        .arg("--insecure-no-auth")
        .env("GONGJI_DATA_KEYS_ENV", "GONGJI_TEST_KEYS")
        .env("GONGJI_TEST_KEYS", KeyMaterial::generate().to_toml())
        .current_dir(dir.path())
        .env("RUST_BACKTRACE", "0")
        .env("RUST_LIB_BACKTRACE", "0")
        .output()
        .expect("run the binary");
    let stderr = refused(&output, "must start with sqlite:// or postgres://");
    assert!(!stderr.contains("s3cret"), "{stderr}");
    let created: Vec<_> = std::fs::read_dir(dir.path()).expect("read dir").collect();
    assert!(created.is_empty(), "no file made of the typo: {created:?}");
}

#[test]
fn a_hold_shorter_than_a_call_to_binding_service_is_refused() {
    refused(&start(&["--hold-timeout-ms", "100"]), "--hold-timeout-ms");
}

#[test]
fn without_a_caller_file_the_service_refuses_to_start() {
    refused(&start(&[]), "no --callers file");
}

#[test]
fn without_data_keys_the_service_refuses_to_start() {
    let output = Command::new(env!("CARGO_BIN_EXE_payment-service"))
        .args(["--listen-addr", "127.0.0.1:0", "--insecure-no-auth"])
        .env_remove("GONGJI_DATA_KEYS_FILE")
        .env_remove("GONGJI_DATA_KEYS_ENV")
        .output()
        .expect("run the binary");
    refused(&output, "no data keys: pass --data-keys-file");
    let output = start(&[
        "--insecure-no-auth",
        "--data-keys-env",
        "GONGJI_NO_SUCH_VARIABLE",
    ]);
    refused(&output, "GONGJI_NO_SUCH_VARIABLE is not set");
}

#[test]
fn insecure_no_auth_is_said_out_loud_at_start() {
    // It gets past authentication (and stops at the database it cannot open).
    let output = start(&[
        "--insecure-no-auth",
        "--database-url",
        "sqlite:///proc/nope/payment.db",
    ]);
    let stderr = refused(&output, "cannot open the database");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("--insecure-no-auth") || stderr.contains("--insecure-no-auth"),
        "the warning: {stdout} {stderr}"
    );
}

#[test]
fn logs_written_to_a_pipe_carry_no_colour_codes() {
    // NO_COLOR is unset: only the pipe tells the service not to colour.
    let output = start(&[
        "--insecure-no-auth",
        "--database-url",
        "sqlite:///proc/nope/payment.db",
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("--insecure-no-auth"),
        "a warning was logged: {stdout}"
    );
    assert!(!stdout.contains('\u{1b}'), "no ANSI escape: {stdout:?}");
}

#[test]
fn a_database_url_file_is_read_in_place_of_the_url_and_never_echoed() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("url");
    std::fs::write(&file, "mysql://user:s3cret@db/x\n").expect("write");
    let output = start(&[
        "--insecure-no-auth",
        "--database-url-file",
        file.to_str().expect("utf-8 path"),
    ]);
    let stderr = refused(&output, "must start with sqlite:// or postgres://");
    assert!(!stderr.contains("s3cret"), "{stderr}");
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "").expect("write");
    let output = start(&[
        "--insecure-no-auth",
        "--database-url-file",
        empty.to_str().expect("utf-8 path"),
    ]);
    refused(&output, "is empty");
}

#[test]
fn a_caller_file_with_an_unknown_rpc_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let callers = dir.path().join("callers.toml");
    std::fs::write(
        &callers,
        "[roles.r]\nrpcs = [\"gongji.payment.v1.AccountService/Steal\"]\n",
    )
    .expect("write");
    let output = start(&["--callers", callers.to_str().expect("path")]);
    refused(&output, "no RPC of this contract");
}
