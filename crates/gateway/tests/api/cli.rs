//! The real `promo` binary, as ops would run it.

use std::process::Command;

use gateway::token::TokenVerifier;

use crate::helpers::TEST_SECRET;

fn promo(data_dir: &std::path::Path, database_url: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_promo"))
        .args(args)
        .env("PROMO_DATA_DIR", data_dir)
        .env("PROMO_DATABASE_URL", database_url)
        .env("PROMO_JWT_SECRET", TEST_SECRET)
        .output()
        .expect("run promo")
}

#[tokio::test]
async fn migrate_token_and_rollback_work_from_the_command_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = crate::helpers::fresh_database_url(dir.path()).await;
    let version = promo(dir.path(), &url, &["version"]);
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("promo "));

    let migrated = promo(dir.path(), &url, &["migrate"]);
    assert!(
        migrated.status.success(),
        "{}",
        String::from_utf8_lossy(&migrated.stderr)
    );

    let token = promo(
        dir.path(),
        &url,
        &[
            "token",
            "--workspace",
            "default",
            "--role",
            "factory",
            "--role",
            "admin",
            "--ttl",
            "10m",
        ],
    );
    assert!(
        token.status.success(),
        "{}",
        String::from_utf8_lossy(&token.stderr)
    );
    let token = String::from_utf8(token.stdout).expect("utf8");
    let principal = TokenVerifier::new(TEST_SECRET.as_bytes(), None, 3600)
        .expect("verifier")
        .verify(token.trim())
        .expect("valid token");
    assert_eq!(
        principal.roles,
        [kernel::Role::Factory, kernel::Role::Admin]
    );

    let bad_role = promo(dir.path(), &url, &["token", "--role", "wizard"]);
    assert!(!bad_role.status.success());
    assert!(String::from_utf8_lossy(&bad_role.stderr).contains("unknown role"));

    let down = promo(dir.path(), &url, &["migrate", "--down", "99"]);
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    let up_again = promo(dir.path(), &url, &["migrate"]);
    assert!(
        up_again.status.success(),
        "{}",
        String::from_utf8_lossy(&up_again.stderr)
    );
}

#[test]
fn bad_configuration_fails_at_start_up_with_the_setting_named() {
    let output = Command::new(env!("CARGO_BIN_EXE_promo"))
        .args(["migrate"])
        .env("PROMO_LISTEN", "not-an-address")
        .output()
        .expect("run promo");
    assert_eq!(output.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("listen:"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
