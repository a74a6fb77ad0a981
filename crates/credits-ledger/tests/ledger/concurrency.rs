use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use credits_ledger::domain::{DEBITS_MUST_NOT_EXCEED_CREDITS, LINKED};
use credits_ledger::{Ledger, NewAccount, NewTransfer, TransferResult, queries};
use kernel::SystemClock;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

use crate::support::test_db;

const ACCOUNTS: usize = 10;
const TASKS: u64 = 64;
const REQUESTS_PER_TASK: usize = 12;

fn single(debit: Uuid, credit: Uuid, amount: i64) -> NewTransfer {
    NewTransfer {
        id: Uuid::new_v4(),
        debit_account_id: debit,
        credit_account_id: credit,
        amount,
        code: "HAMMER".to_owned(),
        reference: String::new(),
        pending_id: None,
        timeout_seconds: 0,
        flags: 0,
        metadata: BTreeMap::new(),
    }
}

/// 64 tasks hammer 10 accounts with random single and linked transfers, each request sent twice:
/// half through group commit, a quarter through their own transactions one after the other, and a
/// quarter as two of their own transactions racing each other. Afterwards value is
/// conserved, nothing is overdrawn, no id both succeeded and failed, and the stored balances equal
/// a replay of exactly the transfers that were created.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_transfers_and_retries_conserve_value() {
    let db = test_db(Arc::new(SystemClock)).await;
    let ledger = Ledger::start(db.context.clone());
    let workspace_id = Uuid::new_v4();
    let ids: Vec<Uuid> = (0..ACCOUNTS).map(|_| Uuid::new_v4()).collect();
    let accounts = ids
        .iter()
        .enumerate()
        .map(|(index, id)| NewAccount {
            id: *id,
            owner_id: None,
            asset: "CREDITS".to_owned(),
            code: "TEST".to_owned(),
            flags: if index == 0 {
                0
            } else {
                DEBITS_MUST_NOT_EXCEED_CREDITS
            },
            metadata: BTreeMap::new(),
        })
        .collect();
    ledger
        .create_accounts(workspace_id, accounts)
        .await
        .expect("accounts");
    let funding: Vec<NewTransfer> = ids[1..].iter().map(|id| single(ids[0], *id, 500)).collect();
    let funded = ledger
        .create_transfers(workspace_id, funding)
        .await
        .expect("funding");
    assert!(
        funded
            .iter()
            .all(|result| *result == TransferResult::Created)
    );

    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let (ledger, ids, context) = (ledger.clone(), ids.clone(), db.context.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(task);
            let mut outcomes: Vec<(NewTransfer, TransferResult)> = Vec::new();
            for _ in 0..REQUESTS_PER_TASK {
                let size = rng.random_range(1..=3);
                let mut request: Vec<NewTransfer> = (0..size)
                    .map(|_| {
                        let debit = ids[rng.random_range(1..ACCOUNTS)];
                        let mut credit = ids[rng.random_range(0..ACCOUNTS)];
                        if credit == debit {
                            credit = ids[0];
                        }
                        single(debit, credit, rng.random_range(1..=300))
                    })
                    .collect();
                if size > 1 && rng.random_bool(0.5) {
                    for transfer in &mut request[..size - 1] {
                        transfer.flags |= LINKED;
                    }
                }
                let own_transaction = |request: Vec<NewTransfer>| {
                    let db = context.db.clone();
                    async move {
                        db.with_retry(|| async {
                            let txn = db.begin_write().await?;
                            let now = kernel::clock::to_micros(chrono::Utc::now());
                            let results =
                                Ledger::apply_in(&*txn, workspace_id, &request, now).await?;
                            txn.commit().await?;
                            Ok(results)
                        })
                        .await
                        .expect("own transaction")
                    }
                };
                match task % 4 {
                    // Group commit, the request retried after its answer.
                    0 | 2 => {
                        for _attempt in 0..2 {
                            let results = ledger
                                .create_transfers(workspace_id, request.clone())
                                .await
                                .expect("group commit");
                            outcomes.extend(request.iter().cloned().zip(results));
                        }
                    }
                    // Own transactions, retried after the answer.
                    1 => {
                        for _attempt in 0..2 {
                            let results = own_transaction(request.clone()).await;
                            outcomes.extend(request.iter().cloned().zip(results));
                        }
                    }
                    // Own transactions racing each other with the same request.
                    _ => {
                        let (first, second) = tokio::join!(
                            own_transaction(request.clone()),
                            own_transaction(request.clone())
                        );
                        outcomes.extend(request.iter().cloned().zip(first));
                        outcomes.extend(request.iter().cloned().zip(second));
                    }
                }
            }
            outcomes
        }));
    }
    let mut by_id: BTreeMap<Uuid, (NewTransfer, BTreeSet<TransferResult>)> = BTreeMap::new();
    for task in tasks {
        for (transfer, result) in task.await.expect("task") {
            by_id
                .entry(transfer.id)
                .or_insert_with(|| (transfer, BTreeSet::new()))
                .1
                .insert(result);
        }
    }
    let mut created = BTreeSet::new();
    for (id, (_, results)) in &by_id {
        if results.contains(&TransferResult::Created) {
            assert!(
                results.iter().all(|result| result.is_success()),
                "transfer {id} both succeeded and failed: {results:?}"
            );
            created.insert(*id);
        }
    }
    assert!(
        created.len() > 50,
        "the workload should move value, created {}",
        created.len()
    );

    let connection = db.context.db.connection();
    let stored =
        queries::list_transfers(connection, workspace_id, &Default::default(), None, 100_000)
            .await
            .expect("list");
    let stored_ids: BTreeSet<Uuid> = stored
        .iter()
        .map(|t| t.transfer.id)
        .filter(|id| by_id.contains_key(id))
        .collect();
    assert_eq!(
        stored_ids, created,
        "exactly the created transfers are stored"
    );

    let mut replay: BTreeMap<Uuid, i64> = BTreeMap::new();
    for transfer in &stored {
        *replay
            .entry(transfer.transfer.debit_account_id)
            .or_default() -= transfer.transfer.amount;
        *replay
            .entry(transfer.transfer.credit_account_id)
            .or_default() += transfer.transfer.amount;
    }
    let mut total = 0;
    for (index, id) in ids.iter().enumerate() {
        let account = queries::get_account(connection, workspace_id, *id)
            .await
            .expect("query")
            .expect("account");
        assert_eq!(
            account.balance(),
            replay.get(id).copied().unwrap_or(0),
            "account {index}"
        );
        if index > 0 {
            assert!(
                account.balance() >= 0,
                "account {index} overdrawn: {}",
                account.balance()
            );
        }
        total += account.balance();
    }
    assert_eq!(total, 0, "value was created or destroyed");
    let report = credits_ledger::verify::verify(connection)
        .await
        .expect("verify");
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}
