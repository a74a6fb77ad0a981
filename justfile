# Short names for the commands in README.md.

# Start the gateway on SQLite in ./data.
run:
    cargo run --release -p gateway

# Run every test (SQLite; set PROMO_TEST_DATABASE_URL for PostgreSQL).
test:
    cargo test --workspace

# Run every test against the local PostgreSQL.
test-pg:
    PROMO_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo test --workspace

# Formatting and lints as CI runs them.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# What CI runs.
ci:
    bash .ci/run

# Apply migrations.
migrate:
    cargo run --release -p gateway -- migrate

# Print an admin token for the default workspace.
token role="admin":
    cargo run --release -p gateway -- token --role {{role}}

# Load the demo data set.
demo:
    cargo run --release -p gateway -- demo
