use std::sync::Arc;

use chrono::TimeZone;
use credits_ledger::domain::{Account, Origin, PendingState, WorkingSet};
use credits_ledger::{Ledger, NewAccount, queries};
use kernel::ManualClock;
use proptest::prelude::*;
use uuid::Uuid;

use crate::model::Model;
use crate::scenario::Scenario;
use crate::support::test_db;

fn account(id: Uuid, workspace_id: Uuid, asset: &str, flags: u32) -> Account {
    Account {
        id,
        workspace_id,
        owner_id: None,
        asset: asset.to_owned(),
        code: "TEST".to_owned(),
        flags,
        debits_posted: 0,
        credits_posted: 0,
        debits_pending: 0,
        credits_pending: 0,
        metadata: Default::default(),
        created_at: 0,
    }
}

/// Voids what the sweeper would void at `now`, in the engine.
fn sweep_engine(working: &mut WorkingSet, now: i64) {
    let due: Vec<(Uuid, Uuid)> = working
        .transfers
        .values()
        .filter(|t| {
            t.pending_state == PendingState::Pending && t.expires_at.is_some_and(|at| at <= now)
        })
        .map(|t| t.key())
        .collect();
    for id in due {
        assert!(working.expire(id));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, .. ProptestConfig::default() })]

    #[test]
    fn the_engine_agrees_with_the_model_on_every_result_and_balance(seed in any::<u64>()) {
        let workspace_id = Uuid::new_v4();
        let mut scenario = Scenario::new(seed);
        let mut model = Model::default();
        let mut working = WorkingSet::default();
        for (id, asset, flags) in scenario.accounts.clone() {
            model.add_account(id, asset, flags);
            working.accounts.insert((workspace_id, id), account(id, workspace_id, asset, flags));
        }
        let mut now = 1_000_000_000_000;
        for _ in 0..60 {
            now += scenario.advance_seconds() * 1_000_000;
            model.sweep(now);
            sweep_engine(&mut working, now);
            let batch = scenario.next_batch();
            let expected = model.apply(now, &batch);
            let actual = working.apply(workspace_id, now, &batch, Origin::Client);
            prop_assert_eq!(&actual, &expected, "batch {:?}", batch);
            for (id, expected) in &model.accounts {
                let actual = &working.accounts[&(workspace_id, *id)];
                prop_assert_eq!(
                    (actual.debits_posted, actual.credits_posted, actual.debits_pending, actual.credits_pending),
                    (expected.debits_posted, expected.credits_posted, expected.debits_pending, expected.credits_pending)
                );
            }
            model.check_invariants();
        }
    }
}

/// The database-backed ledger, driven through group commit, against the model.
async fn database_agrees_with_the_model(seed: u64) {
    let start = chrono::Utc
        .timestamp_opt(1_800_000_000, 0)
        .single()
        .expect("time");
    let clock = Arc::new(ManualClock::new(start));
    let db = test_db(clock.clone()).await;
    let ledger = Ledger::start(db.context.clone());
    let workspace_id = Uuid::new_v4();
    let mut scenario = Scenario::new(seed);
    let mut model = Model::default();
    let accounts: Vec<NewAccount> = scenario
        .accounts
        .iter()
        .map(|(id, asset, flags)| NewAccount {
            id: *id,
            owner_id: None,
            asset: (*asset).to_owned(),
            code: "TEST".to_owned(),
            flags: *flags,
            metadata: Default::default(),
        })
        .collect();
    ledger
        .create_accounts(workspace_id, accounts)
        .await
        .expect("accounts");
    for (id, asset, flags) in scenario.accounts.clone() {
        model.add_account(id, asset, flags);
    }
    for round in 0..80 {
        clock.advance(chrono::Duration::seconds(scenario.advance_seconds()));
        let now = kernel::clock::to_micros(kernel::Clock::now(clock.as_ref()));
        if round % 3 == 0 {
            ledger.expire_due().await.expect("expire");
            model.sweep(now);
        }
        let batch = scenario.next_batch();
        let expected = model.apply(now, &batch);
        let actual = ledger
            .create_transfers(workspace_id, batch.clone())
            .await
            .expect("transfers");
        assert_eq!(actual, expected, "seed {seed} round {round}: {batch:?}");
    }
    let connection = db.context.db.connection();
    for (id, expected) in &model.accounts {
        let actual = queries::get_account(connection, workspace_id, *id)
            .await
            .expect("query")
            .expect("account");
        assert_eq!(
            (
                actual.debits_posted,
                actual.credits_posted,
                actual.debits_pending,
                actual.credits_pending
            ),
            (
                expected.debits_posted,
                expected.credits_posted,
                expected.debits_pending,
                expected.credits_pending
            ),
            "seed {seed} account {id}"
        );
    }
    model.check_invariants();
    let report = credits_ledger::verify::verify(connection)
        .await
        .expect("verify");
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert!(report.transfers > 0);
}

#[tokio::test]
async fn the_database_ledger_agrees_with_the_model() {
    for seed in [1, 2, 3, 42] {
        database_agrees_with_the_model(seed).await;
    }
}
