use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::TimeZone;
use credits_ledger::domain::{
    BALANCING_DEBIT, DEBITS_MUST_NOT_EXCEED_CREDITS, LINKED, MAX_AMOUNT, MAX_BATCH, PENDING,
    POST_PENDING_TRANSFER, VOID_PENDING_TRANSFER,
};
use credits_ledger::{Ledger, NewAccount, NewTransfer, TransferResult, queries};
use kernel::clock::to_micros;
use kernel::{Clock, ManualClock};
use sea_orm::ConnectionTrait;
use uuid::Uuid;

use crate::support::test_db;
use TransferResult::*;

struct Fixture {
    ledger: Ledger,
    clock: Arc<ManualClock>,
    workspace_id: Uuid,
    /// May go negative: where value enters.
    source: Uuid,
    /// No overdraft.
    wallet: Uuid,
    /// No overdraft.
    escrow: Uuid,
    _db: crate::support::TestDb,
}

async fn fixture() -> Fixture {
    let start = chrono::Utc
        .timestamp_opt(1_800_000_000, 0)
        .single()
        .expect("time");
    let clock = Arc::new(ManualClock::new(start));
    let db = test_db(clock.clone()).await;
    let ledger = Ledger::start(db.context.clone());
    let workspace_id = Uuid::new_v4();
    let (source, wallet, escrow) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let accounts = [
        (source, 0),
        (wallet, DEBITS_MUST_NOT_EXCEED_CREDITS),
        (escrow, DEBITS_MUST_NOT_EXCEED_CREDITS),
    ]
    .into_iter()
    .map(|(id, flags)| NewAccount {
        id,
        owner_id: None,
        asset: "CREDITS".to_owned(),
        code: "TEST".to_owned(),
        flags,
        metadata: BTreeMap::new(),
    })
    .collect();
    ledger
        .create_accounts(workspace_id, accounts)
        .await
        .expect("accounts");
    Fixture {
        ledger,
        clock,
        workspace_id,
        source,
        wallet,
        escrow,
        _db: db,
    }
}

fn transfer(debit: Uuid, credit: Uuid, amount: i64, flags: u32) -> NewTransfer {
    NewTransfer {
        id: Uuid::new_v4(),
        debit_account_id: debit,
        credit_account_id: credit,
        amount,
        code: "TEST".to_owned(),
        reference: "r".to_owned(),
        pending_id: None,
        timeout_seconds: 0,
        flags,
        metadata: BTreeMap::new(),
    }
}

fn resolve(pending_id: Uuid, amount: i64, flags: u32) -> NewTransfer {
    NewTransfer {
        pending_id: Some(pending_id),
        ..transfer(Uuid::nil(), Uuid::nil(), amount, flags)
    }
}

impl Fixture {
    async fn send(&self, transfers: Vec<NewTransfer>) -> Vec<TransferResult> {
        self.ledger
            .create_transfers(self.workspace_id, transfers)
            .await
            .expect("create_transfers")
    }

    async fn balances(&self, id: Uuid) -> (i64, i64, i64, i64) {
        let account =
            queries::get_account(self.ledger.context().db.connection(), self.workspace_id, id)
                .await
                .expect("query")
                .expect("account");
        (
            account.debits_posted,
            account.credits_posted,
            account.debits_pending,
            account.credits_pending,
        )
    }
}

#[tokio::test]
async fn a_pending_transfer_reserves_then_a_partial_post_moves_only_what_is_posted() {
    let f = fixture().await;
    assert_eq!(
        f.send(vec![transfer(f.source, f.wallet, 100, 0)]).await,
        [Created]
    );
    let pending = transfer(f.wallet, f.escrow, 80, PENDING);
    assert_eq!(f.send(vec![pending.clone()]).await, [Created]);
    assert_eq!(
        f.send(vec![transfer(f.wallet, f.escrow, 30, 0)]).await,
        [ExceedsCredits],
        "80 of 100 are reserved"
    );
    assert_eq!(
        f.send(vec![resolve(pending.id, 90, POST_PENDING_TRANSFER)])
            .await,
        [ExceedsPendingTransferAmount]
    );
    assert_eq!(
        f.send(vec![resolve(pending.id, 50, POST_PENDING_TRANSFER)])
            .await,
        [Created]
    );
    assert_eq!(f.balances(f.wallet).await, (50, 100, 0, 0));
    assert_eq!(f.balances(f.escrow).await, (0, 50, 0, 0));
    assert_eq!(
        f.send(vec![resolve(pending.id, 0, POST_PENDING_TRANSFER)])
            .await,
        [PendingTransferAlreadyPosted]
    );
    assert_eq!(
        f.send(vec![resolve(pending.id, 0, VOID_PENDING_TRANSFER)])
            .await,
        [PendingTransferAlreadyPosted]
    );
}

#[tokio::test]
async fn a_pending_transfer_voids_itself_after_its_timeout() {
    let f = fixture().await;
    f.send(vec![transfer(f.source, f.wallet, 100, 0)]).await;
    let before = to_micros(f.clock.now());
    let pending = NewTransfer {
        timeout_seconds: 10,
        ..transfer(f.wallet, f.escrow, 70, PENDING)
    };
    assert_eq!(f.send(vec![pending.clone()]).await, [Created]);
    let reserved_at = to_micros(f.clock.now());
    f.clock.advance(chrono::Duration::seconds(5));
    assert_eq!(
        f.ledger.expire_due().await.expect("sweep"),
        0,
        "not due yet"
    );
    f.clock.advance(chrono::Duration::seconds(6));
    assert_eq!(
        f.send(vec![resolve(pending.id, 0, POST_PENDING_TRANSFER)])
            .await,
        [PendingTransferExpired]
    );
    assert_eq!(f.ledger.expire_due().await.expect("sweep"), 1);
    assert_eq!(
        f.balances(f.wallet).await,
        (0, 100, 0, 0),
        "the reservation is released"
    );
    assert_eq!(
        f.send(vec![resolve(pending.id, 0, VOID_PENDING_TRANSFER)])
            .await,
        [PendingTransferExpired]
    );

    let connection = f.ledger.context().db.connection();
    let at = |micros| queries::balances_as_of(connection, f.workspace_id, f.wallet, Some(micros));
    assert_eq!(at(before - 1).await.expect("as of").credits_posted, 0);
    let while_reserved = at(reserved_at + 1).await.expect("as of");
    assert_eq!(
        (while_reserved.credits_posted, while_reserved.debits_pending),
        (100, 70)
    );
    let after_expiry = at(reserved_at + 10_000_001).await.expect("as of");
    assert_eq!(
        (after_expiry.credits_posted, after_expiry.debits_pending),
        (100, 0)
    );
}

#[tokio::test]
async fn a_balancing_debit_moves_whatever_is_left() {
    let f = fixture().await;
    f.send(vec![transfer(f.source, f.escrow, 35, 0)]).await;
    assert_eq!(
        f.send(vec![transfer(f.escrow, f.wallet, 1_000, BALANCING_DEBIT)])
            .await,
        [Created]
    );
    assert_eq!(f.balances(f.escrow).await, (35, 35, 0, 0));
    assert_eq!(f.balances(f.wallet).await, (0, 35, 0, 0));
    assert_eq!(
        f.send(vec![transfer(f.escrow, f.wallet, 1_000, BALANCING_DEBIT)])
            .await,
        [ExceedsCredits]
    );
}

#[tokio::test]
async fn a_linked_chain_fails_together_and_a_retry_cannot_flip_it() {
    let f = fixture().await;
    f.send(vec![transfer(f.source, f.wallet, 10, 0)]).await;
    let first = transfer(f.wallet, f.escrow, 10, LINKED);
    let second = transfer(f.wallet, f.escrow, 5, 0);
    assert_eq!(
        f.send(vec![first.clone(), second.clone()]).await,
        [LinkedEventFailed, ExceedsCredits]
    );
    assert_eq!(
        f.balances(f.wallet).await,
        (0, 10, 0, 0),
        "nothing of the chain moved"
    );
    f.send(vec![transfer(f.source, f.wallet, 100, 0)]).await;
    assert_eq!(
        f.send(vec![first.clone(), second.clone()]).await,
        [IdAlreadyFailed, LinkedEventFailed]
    );
    let unlinked = NewTransfer { flags: 0, ..first };
    assert_eq!(
        f.send(vec![unlinked]).await,
        [IdAlreadyFailed],
        "even alone, a failed id stays failed"
    );
    let open = transfer(f.wallet, f.escrow, 1, LINKED);
    assert_eq!(f.send(vec![open]).await, [LinkedEventChainOpen]);
}

#[tokio::test]
async fn retries_answer_exists_and_changed_retries_name_the_field() {
    let f = fixture().await;
    let purchase = transfer(f.source, f.wallet, 10, 0);
    assert_eq!(f.send(vec![purchase.clone()]).await, [Created]);
    assert_eq!(f.send(vec![purchase.clone()]).await, [Exists]);
    assert_eq!(
        f.send(vec![NewTransfer {
            amount: 11,
            ..purchase.clone()
        }])
        .await,
        [ExistsWithDifferentAmount]
    );
    assert_eq!(
        f.send(vec![NewTransfer {
            code: "OTHER".into(),
            ..purchase.clone()
        }])
        .await,
        [ExistsWithDifferentCode]
    );
    assert_eq!(f.balances(f.wallet).await, (0, 10, 0, 0), "credited once");
}

#[tokio::test]
async fn bad_transfers_fail_alone_and_change_nothing() {
    let f = fixture().await;
    let other_workspace_account = Uuid::new_v4();
    let results = f
        .send(vec![
            transfer(f.source, f.wallet, 0, 0),
            transfer(f.source, f.wallet, -3, 0),
            transfer(f.wallet, f.wallet, 1, 0),
            transfer(other_workspace_account, f.wallet, 1, 0),
            transfer(f.source, f.wallet, 1, PENDING | VOID_PENDING_TRANSFER),
            NewTransfer {
                code: "lower case".into(),
                ..transfer(f.source, f.wallet, 1, 0)
            },
            NewTransfer {
                timeout_seconds: 5,
                ..transfer(f.source, f.wallet, 1, 0)
            },
            resolve(Uuid::new_v4(), 0, POST_PENDING_TRANSFER),
            transfer(f.source, f.wallet, 7, 0),
        ])
        .await;
    assert_eq!(
        results,
        [
            InvalidAmount,
            InvalidAmount,
            AccountsMustBeDifferent,
            DebitAccountNotFound,
            FlagsAreMutuallyExclusive,
            InvalidCode,
            TimeoutReservedForPendingTransfer,
            PendingTransferNotFound,
            Created
        ]
    );
    assert_eq!(f.balances(f.wallet).await, (0, 7, 0, 0));
}

#[tokio::test]
async fn amounts_above_the_bound_or_that_would_overflow_are_refused() {
    let f = fixture().await;
    assert_eq!(
        f.send(vec![transfer(f.source, f.wallet, i64::MAX, 0)])
            .await,
        [InvalidAmount],
        "one transfer moves at most MAX_AMOUNT"
    );
    // i64::MAX / MAX_AMOUNT transfers of the largest amount fit an account's totals; one more
    // would overflow them.
    let fitting = (i64::MAX / MAX_AMOUNT) as usize;
    let mut sent = 0;
    while sent < fitting {
        let count = (fitting - sent).min(MAX_BATCH);
        let batch = (0..count)
            .map(|_| transfer(f.source, f.wallet, MAX_AMOUNT, 0))
            .collect();
        assert!(f.send(batch).await.iter().all(|result| *result == Created));
        sent += count;
    }
    let full = MAX_AMOUNT * fitting as i64;
    assert_eq!(f.balances(f.wallet).await, (0, full, 0, 0));
    assert_eq!(
        f.send(vec![transfer(f.source, f.wallet, MAX_AMOUNT, 0)])
            .await,
        [Overflows]
    );
    assert_eq!(f.balances(f.wallet).await, (0, full, 0, 0), "nothing moved");
}

#[tokio::test]
async fn transfers_inside_a_callers_transaction_vanish_with_its_rollback() {
    let f = fixture().await;
    let db = &f.ledger.context().db;
    let txn = db.begin_write().await.expect("begin");
    let now = to_micros(f.clock.now());
    let results = Ledger::apply_in(
        &*txn,
        f.workspace_id,
        &[transfer(f.source, f.wallet, 40, 0)],
        now,
    )
    .await
    .expect("apply");
    assert_eq!(results, [Created]);
    drop(txn);
    assert_eq!(f.balances(f.wallet).await, (0, 0, 0, 0));
}

#[tokio::test]
async fn verify_reports_a_tampered_transfer() {
    let f = fixture().await;
    f.send(vec![
        transfer(f.source, f.wallet, 10, 0),
        transfer(f.wallet, f.escrow, 4, 0),
    ])
    .await;
    let connection = f.ledger.context().db.connection();
    let clean = credits_ledger::verify::verify(connection)
        .await
        .expect("verify");
    assert!(clean.problems.is_empty(), "{:?}", clean.problems);
    assert_eq!(clean.transfers, 2);
    connection
        .execute_unprepared("UPDATE ledger_transfer SET amount = 9 WHERE amount = 4")
        .await
        .expect("tamper");
    let report = credits_ledger::verify::verify(connection)
        .await
        .expect("verify");
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains("does not match its hash")),
        "{:?}",
        report.problems
    );
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains("differ from its transfers")),
        "{:?}",
        report.problems
    );
}

/// Sets an account's pending debits behind the ledger's back (to poison or heal it).
async fn set_debits_pending(f: &Fixture, workspace_id: Uuid, id: Uuid, value: i64) {
    let connection = f.ledger.context().db.connection();
    let backend = connection.get_database_backend();
    let sql = kernel::db::placeholders_for(
        backend,
        "UPDATE ledger_account SET debits_pending = ? WHERE workspace_id = ? AND id = ?",
    );
    connection
        .execute_raw(sea_orm::Statement::from_sql_and_values(
            backend,
            sql,
            [value.into(), workspace_id.into(), id.into()],
        ))
        .await
        .expect("update");
}

#[tokio::test]
async fn a_pending_transfer_that_cannot_expire_never_holds_up_another_tenants() {
    let f = fixture().await;
    // A second tenant with the same account ids: keys are (workspace, id).
    let other = Uuid::new_v4();
    let accounts = [(f.source, 0), (f.wallet, DEBITS_MUST_NOT_EXCEED_CREDITS)]
        .into_iter()
        .map(|(id, flags)| NewAccount {
            id,
            owner_id: None,
            asset: "CREDITS".to_owned(),
            code: "TEST".to_owned(),
            flags,
            metadata: BTreeMap::new(),
        })
        .collect();
    f.ledger
        .create_accounts(other, accounts)
        .await
        .expect("accounts");
    let reserve = |debit: Uuid, credit: Uuid| NewTransfer {
        timeout_seconds: 5,
        ..transfer(debit, credit, 10, PENDING)
    };
    assert_eq!(f.send(vec![reserve(f.source, f.wallet)]).await, [Created]);
    let theirs = f
        .ledger
        .create_transfers(other, vec![reserve(f.source, f.wallet)])
        .await
        .expect("transfers");
    assert_eq!(theirs, [Created]);
    // Poison ours: releasing its reservation would take pending debits below zero, which the
    // database's CHECK refuses.
    set_debits_pending(&f, f.workspace_id, f.source, 0).await;
    f.clock.advance(chrono::Duration::seconds(10));
    assert_eq!(
        f.ledger.expire_due().await.expect("sweep"),
        1,
        "the other tenant's reservation is released"
    );
    let connection = f.ledger.context().db.connection();
    let their_source = queries::get_account(connection, other, f.source)
        .await
        .expect("query")
        .expect("account");
    assert_eq!(their_source.debits_pending, 0);
    set_debits_pending(&f, f.workspace_id, f.source, 10).await;
    assert_eq!(f.ledger.expire_due().await.expect("sweep"), 1, "healed");
    assert_eq!(f.balances(f.source).await, (0, 0, 0, 0));
}
