//! `promo ledger verify`: recompute every workspace's hash chain, the conservation invariant and
//! every account's balances from its transfers, and report each break.

use std::collections::BTreeMap;

use kernel::ServiceError;
use sea_orm::entity::prelude::*;
use sea_orm::{ConnectionTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::queries::{Balances, balances_as_of};
use crate::store::{self, GENESIS_HASH, account, chain_head, transfer};

/// What a verification found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    pub workspaces: usize,
    pub transfers: usize,
    pub accounts: usize,
    /// One line per break; empty when the ledger is intact.
    pub problems: Vec<String>,
}

pub async fn verify<C: ConnectionTrait>(connection: &C) -> Result<VerifyReport, ServiceError> {
    let mut report = VerifyReport::default();
    for head in chain_head::Entity::find()
        .order_by_asc(chain_head::Column::WorkspaceId)
        .all(connection)
        .await?
    {
        report.workspaces += 1;
        let mut previous = GENESIS_HASH.to_owned();
        let mut expected_seq = 0;
        loop {
            let page = transfer::Entity::find()
                .filter(transfer::Column::WorkspaceId.eq(head.workspace_id))
                .filter(transfer::Column::Seq.gt(expected_seq))
                .order_by_asc(transfer::Column::Seq)
                .limit(1000)
                .all(connection)
                .await?;
            if page.is_empty() {
                break;
            }
            for row in page {
                let (id, seq, hash) = (row.id, row.seq, row.hash.clone());
                expected_seq += 1;
                report.transfers += 1;
                let stored = match store::transfer_from_row(row) {
                    Ok(stored) => stored,
                    Err(_) => {
                        report.problems.push(format!(
                            "workspace {}: transfer {id} (seq {seq}) has metadata that is not JSON, so its hash cannot be checked",
                            head.workspace_id
                        ));
                        expected_seq = seq;
                        previous = hash;
                        continue;
                    }
                };
                if stored.seq != expected_seq {
                    report.problems.push(format!(
                        "workspace {}: transfer {} has seq {} where {} was expected",
                        head.workspace_id, stored.transfer.id, stored.seq, expected_seq
                    ));
                    expected_seq = stored.seq;
                }
                let recomputed = store::chain_hash(&previous, stored.seq, &stored.transfer);
                if recomputed != stored.hash {
                    report.problems.push(format!(
                        "workspace {}: transfer {} (seq {}) does not match its hash",
                        head.workspace_id, stored.transfer.id, stored.seq
                    ));
                }
                previous = stored.hash;
            }
        }
        if head.seq != expected_seq || head.hash != previous {
            report.problems.push(format!(
                "workspace {}: chain head says seq {} but the chain ends at seq {}",
                head.workspace_id, head.seq, expected_seq
            ));
        }
    }

    let mut sums: BTreeMap<(Uuid, String), (i128, i128, i128)> = BTreeMap::new();
    let mut after: Option<(Uuid, Uuid)> = None;
    loop {
        let mut query = account::Entity::find()
            .order_by_asc(account::Column::WorkspaceId)
            .order_by_asc(account::Column::Id)
            .limit(500);
        if let Some((workspace_id, id)) = after {
            query = query.filter(
                sea_orm::Condition::any()
                    .add(account::Column::WorkspaceId.gt(workspace_id))
                    .add(
                        sea_orm::Condition::all()
                            .add(account::Column::WorkspaceId.eq(workspace_id))
                            .add(account::Column::Id.gt(id)),
                    ),
            );
        }
        let page = query.all(connection).await?;
        let Some(last) = page.last() else {
            break;
        };
        after = Some((last.workspace_id, last.id));
        for row in page {
            let (workspace_id, id) = (row.workspace_id, row.id);
            report.accounts += 1;
            let Ok(account) = store::account_from_row(row) else {
                report.problems.push(format!(
                    "workspace {workspace_id}: account {id} has metadata that is not JSON"
                ));
                continue;
            };
            let stored = Balances::of(&account);
            let recomputed =
                balances_as_of(connection, account.workspace_id, account.id, None).await?;
            if stored != recomputed {
                report.problems.push(format!(
                    "account {}: stored balances {stored:?} differ from its transfers {recomputed:?}",
                    account.id
                ));
            }
            let entry = sums
                .entry((account.workspace_id, account.asset.clone()))
                .or_default();
            // Summed in i128: a broken ledger must be reported, not overflow the check.
            entry.0 += i128::from(account.credits_posted) - i128::from(account.debits_posted);
            entry.1 += i128::from(account.debits_pending);
            entry.2 += i128::from(account.credits_pending);
        }
    }
    for ((workspace_id, asset), (balance, debits_pending, credits_pending)) in sums {
        if balance != 0 || debits_pending != credits_pending {
            report.problems.push(format!(
                "workspace {workspace_id} {asset}: balances sum to {balance}, pending debits {debits_pending} vs credits {credits_pending}"
            ));
        }
    }
    Ok(report)
}
