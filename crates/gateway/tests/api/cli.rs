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
    let stderr = String::from_utf8_lossy(&bad_role.stderr);
    assert!(stderr.contains("unknown role"), "{stderr}");
    assert!(
        stderr.contains("the roles are admin, factory, advertiser"),
        "names the valid roles: {stderr}"
    );

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

#[tokio::test]
async fn service_link_variables_are_ignored_with_a_warning() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = crate::helpers::fresh_database_url(dir.path()).await;
    let output = Command::new(env!("CARGO_BIN_EXE_promo"))
        .args(["migrate"])
        .env("PROMO_DATA_DIR", dir.path())
        .env("PROMO_DATABASE_URL", &url)
        .env("PROMO_JWT_SECRET", TEST_SECRET)
        // What the kubelet injects for a Service named `promo`.
        .env("PROMO_PORT", "tcp://10.0.0.1:50051")
        .env("PROMO_SERVICE_HOST", "10.0.0.1")
        .output()
        .expect("run promo");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("ignoring environment variable PROMO_PORT"),
        "{stderr}"
    );
    assert!(stderr.contains("PROMO_SERVICE_HOST"), "{stderr}");
}

#[test]
fn a_token_minted_with_a_new_secret_says_where_the_secret_is_and_who_it_acts_as() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mint = |extra: &[&str]| {
        let mut args = vec!["token", "--role", "factory"];
        args.extend_from_slice(extra);
        Command::new(env!("CARGO_BIN_EXE_promo"))
            .args(&args)
            .env("PROMO_DATA_DIR", dir.path())
            .env_remove("PROMO_JWT_SECRET")
            .env_remove("PROMO_DATABASE_URL")
            .output()
            .expect("run promo")
    };
    let first = mint(&[]);
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(first.status.success(), "{stderr}");
    let secret = std::path::absolute(dir.path().join("jwt-secret")).expect("path");
    assert!(
        stderr.contains(&format!("created at {}", secret.display())),
        "{stderr}"
    );
    assert!(stderr.contains("there was no database at"), "{stderr}");
    assert!(stderr.contains("acts as a new principal"), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&first.stdout).lines().count(),
        1,
        "stdout holds only the token"
    );
    let subject = uuid::Uuid::new_v4().to_string();
    let second = mint(&["--subject", &subject]);
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(second.status.success(), "{stderr}");
    assert!(stderr.is_empty(), "nothing to warn about: {stderr}");
}

#[tokio::test]
async fn an_operator_sees_every_setting_and_the_event_outbox_from_the_command_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = crate::helpers::fresh_database_url(dir.path()).await;
    let settings = promo(dir.path(), &url, &["settings"]);
    assert!(settings.status.success());
    let listing = String::from_utf8_lossy(&settings.stdout);
    for path in [
        "time_zone",
        "rate_limits [platform-admin]",
        "promotion.selection_probability",
        "promotion.usage_window_seconds",
    ] {
        assert!(listing.contains(path), "{path} missing from:\n{listing}");
    }

    assert!(promo(dir.path(), &url, &["migrate"]).status.success());
    let empty = promo(dir.path(), &url, &["events"]);
    let empty = String::from_utf8_lossy(&empty.stdout).to_string();
    assert!(
        empty.contains("last position 0") && empty.contains("no consumers yet"),
        "{empty}"
    );

    // An event committed by a domain and not yet sequenced (no server is running).
    use sea_orm::ConnectionTrait;
    let db = sea_orm::Database::connect(url.as_str())
        .await
        .expect("connect");
    let backend = db.get_database_backend();
    db.execute_raw(sea_orm::Statement::from_sql_and_values(
        backend,
        kernel::db::placeholders_for(
            backend,
            "INSERT INTO kernel_event (workspace_id, id, position, event_type, subject, occurred_at, payload) \
             VALUES (?, ?, NULL, 'test.happened', 'things/1', 0, '{}')",
        ),
        vec![uuid::Uuid::new_v4().into(), uuid::Uuid::now_v7().into()],
    ))
    .await
    .expect("insert");
    db.close().await.expect("close");
    let waiting = promo(dir.path(), &url, &["events"]);
    let waiting = String::from_utf8_lossy(&waiting.stdout).to_string();
    assert!(waiting.contains("waiting for a position 1"), "{waiting}");
}

/// `promo demo` loads a shop once; the cart its commands price costs what its comment says.
#[tokio::test]
async fn the_demo_shop_prices_its_cart_as_its_commands_say() {
    use proto::marketing::v1 as pb;
    let dir = tempfile::tempdir().expect("tempdir");
    let url = crate::helpers::fresh_database_url(dir.path()).await;
    let first = promo(dir.path(), &url, &["demo"]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let printed = String::from_utf8(first.stdout).expect("utf8");
    assert!(printed.contains("loaded a shop"), "{printed}");
    let code = printed
        .lines()
        .find_map(|line| line.strip_prefix("demo coupon: "))
        .expect("a coupon code")
        .to_owned();
    assert!(code.starts_with("WELCOME-"), "{code}");
    let again = promo(dir.path(), &url, &["demo"]);
    let again = String::from_utf8(again.stdout).expect("utf8");
    assert!(!again.contains("loaded a shop"), "{again}");

    let app = crate::helpers::spawn_app_with(move |config| config.database_url = url).await;
    let mut shop = crate::marketing_support::Shop::new(&app);
    let cart: serde_json::Value =
        serde_json::from_str(gateway::demo_shop::DEMO_CART).expect("cart json");
    let lines = cart["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .map(|line| {
            let number = |field: &str| {
                line[field]
                    .as_str()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0)
            };
            crate::marketing_support::line(
                line["lineId"].as_str().unwrap_or(""),
                line["productId"].as_str().unwrap_or(""),
                number("quantity"),
                number("unitPrice"),
            )
        })
        .collect();
    let priced = shop
        .evaluate(crate::marketing_support::cart("", lines), &[&code])
        .await;
    assert_eq!(priced.rejected_coupons, Vec::<pb::RejectedCoupon>::new());
    assert_eq!(
        (priced.subtotal, priced.total_discount, priced.total),
        (3599, 1580, 2019)
    );
    let per_line: Vec<i64> = priced
        .line_discounts
        .iter()
        .map(|line| line.amount)
        .collect();
    assert_eq!(per_line, [800 + 80 + 143, 200 + 357]);
}
