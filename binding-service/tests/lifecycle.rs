//! The binary's lifecycle: it starts NOT_SERVING, turns SERVING once migrated, and on
//! SIGTERM stops taking traffic and exits 0; started again on its database with keys that
//! are not the ones its data was written with, it refuses to start.

use std::{
    net::TcpListener,
    process::{Command, Stdio},
    time::Duration,
};

use gongji_shared::vault::KeyMaterial;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

async fn status(url: &str) -> Option<i32> {
    let channel = tonic::transport::Endpoint::from_shared(url.to_owned())
        .ok()?
        .connect()
        .await
        .ok()?;
    let response = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .ok()?;
    Some(response.get_ref().status)
}

#[tokio::test]
async fn sigterm_drains_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    // A free port: bind, read, release.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_binding-service"))
        .arg("--listen-addr")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--database-url")
        .arg(format!(
            "sqlite://{}",
            dir.path().join("binding.db").display()
        ))
        // Health is open whatever the authentication; the lifecycle is what is tested.
        .arg("--insecure-no-auth")
        .env("GONGJI_DATA_KEYS_ENV", "GONGJI_TEST_KEYS")
        .env("GONGJI_TEST_KEYS", KeyMaterial::generate().to_toml())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    let mut serving = false;
    for _ in 0..200 {
        if status(&url).await == Some(ServingStatus::Serving as i32) {
            serving = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(serving, "the binary never became SERVING");

    let killed = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(killed.success());
    let mut exit = None;
    for _ in 0..200 {
        if let Some(code) = child.try_wait().unwrap() {
            exit = Some(code);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let exit = exit.unwrap_or_else(|| {
        let _ = child.kill();
        panic!("the binary did not exit after SIGTERM")
    });
    assert_eq!(
        exit.code(),
        Some(0),
        "a graceful stop exits 0, not by the signal"
    );
    assert_eq!(status(&url).await, None, "nothing listens any more");

    // The same database, other keys: refused before it serves anything.
    let output = Command::new(env!("CARGO_BIN_EXE_binding-service"))
        .args(["--listen-addr", "127.0.0.1:0", "--insecure-no-auth"])
        .arg("--database-url")
        .arg(format!(
            "sqlite://{}",
            dir.path().join("binding.db").display()
        ))
        .env("GONGJI_DATA_KEYS_ENV", "GONGJI_TEST_KEYS")
        .env("GONGJI_TEST_KEYS", KeyMaterial::generate().to_toml())
        .output()
        .unwrap();
    assert!(!output.status.success(), "a wrong key must stop start-up");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("the index key is not the one this database was written with"),
        "{stderr}"
    );
}

#[test]
fn a_bad_policy_file_stops_start_up_naming_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    let text = gongji_shared::policy::ANHUI_DEFAULT_TOML.replacen(
        "amount = \"400.00\"",
        "amount = \"-400.00\"",
        1,
    );
    let line = text.lines().position(|l| l.contains("-400.00")).unwrap() + 1;
    std::fs::write(&policy, text).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_binding-service"))
        .arg("--listen-addr")
        .arg("127.0.0.1:0")
        .arg("--database-url")
        .arg(format!(
            "sqlite://{}",
            dir.path().join("binding.db").display()
        ))
        .arg("--policy")
        .arg(&policy)
        .output()
        .unwrap();
    assert!(!output.status.success(), "start-up must fail");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&format!("policy.toml:{line}:")), "{stderr}");
    assert!(stderr.contains("must not be negative"), "{stderr}");
}
