//! promo.ledger.v1.LedgerService: authorization, validation and proto ↔ domain mapping.

use std::collections::BTreeMap;

use kernel::clock::{parse_timestamp, to_micros};
use kernel::ids::{parse_optional_uuid, parse_uuid};
use kernel::pagination::{PageToken, page_size};
use kernel::{IdempotencyKey, Principal, Role, ServiceError};
use proto::ledger::v1 as pb;
use proto::ledger::v1::ledger_service_server::{LedgerService, LedgerServiceServer};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::accounts::{NewAccount, SystemAccount, ensure_system_account};
pub use crate::convert::transfer_to_proto;
use crate::convert::{account_to_proto, parse_accounts, parse_transfers};
use crate::domain::{self, Account, NewTransfer, TransferResult};
use crate::queries::{self, Balances, TransferFilter};
use crate::{DOMAIN, Ledger};

/// Roles that see every account of their workspace; everyone else sees only accounts they own.
const LEDGER_WIDE_ROLES: &[Role] = &[Role::Admin, Role::Ops, Role::Billing];

/// The transfer code of credit purchases.
pub const CREDIT_PURCHASE: &str = "CREDIT_PURCHASE";

/// Most credits one purchase may buy.
pub const MAX_PURCHASE_CREDITS: i64 = 1_000_000_000_000;

pub struct LedgerGrpc {
    ledger: Ledger,
}

/// The gRPC service over a started ledger.
pub fn grpc(ledger: Ledger) -> LedgerServiceServer<LedgerGrpc> {
    LedgerServiceServer::new(LedgerGrpc { ledger })
}

fn account_not_found() -> ServiceError {
    ServiceError::not_found(DOMAIN, "ACCOUNT_NOT_FOUND", "account")
}

impl LedgerGrpc {
    fn sees_whole_workspace(principal: &Principal) -> bool {
        principal.has_any_role(LEDGER_WIDE_ROLES)
    }

    /// The account, if it is in the caller's workspace and the caller may see it.
    async fn visible_account(
        &self,
        principal: &Principal,
        field: &str,
        id: &str,
    ) -> Result<Account, ServiceError> {
        let id = parse_uuid(DOMAIN, field, id)?;
        let account = queries::get_account(
            self.ledger.context().db.connection(),
            principal.workspace_id,
            id,
        )
        .await?
        .ok_or_else(account_not_found)?;
        if Self::sees_whole_workspace(principal) || account.owner_id == Some(principal.subject) {
            Ok(account)
        } else {
            Err(account_not_found())
        }
    }
}

#[tonic::async_trait]
impl LedgerService for LedgerGrpc {
    async fn create_accounts(
        &self,
        request: Request<pb::CreateAccountsRequest>,
    ) -> Result<Response<pb::CreateAccountsResponse>, Status> {
        let principal = Principal::of(&request)?.clone();
        let parsed = parse_accounts(&request.get_ref().accounts)?;
        let accounts: Vec<NewAccount> = parsed.into_iter().map(|(account, _)| account).collect();
        let ids: Vec<Uuid> = accounts.iter().map(|account| account.id).collect();
        let results = self
            .ledger
            .create_accounts(principal.workspace_id, accounts)
            .await?;
        Ok(Response::new(pb::CreateAccountsResponse {
            results: ids
                .iter()
                .zip(results)
                .map(|(id, result)| pb::create_accounts_response::Result {
                    id: id.to_string(),
                    result: result as i32,
                })
                .collect(),
        }))
    }

    async fn create_transfers(
        &self,
        request: Request<pb::CreateTransfersRequest>,
    ) -> Result<Response<pb::CreateTransfersResponse>, Status> {
        let principal = Principal::of(&request)?.clone();
        let transfers = parse_transfers(&request.get_ref().transfers)?;
        let ids: Vec<Uuid> = transfers.iter().map(|transfer| transfer.id).collect();
        let results = self
            .ledger
            .create_transfers(principal.workspace_id, transfers)
            .await?;
        Ok(Response::new(pb::CreateTransfersResponse {
            results: ids
                .iter()
                .zip(results)
                .map(|(id, result)| pb::create_transfers_response::Result {
                    id: id.to_string(),
                    result: result as i32,
                })
                .collect(),
        }))
    }

    async fn get_account(
        &self,
        request: Request<pb::GetAccountRequest>,
    ) -> Result<Response<pb::Account>, Status> {
        let principal = Principal::of(&request)?;
        let account = self
            .visible_account(principal, "id", &request.get_ref().id)
            .await?;
        Ok(Response::new(account_to_proto(&account)))
    }

    async fn list_accounts(
        &self,
        request: Request<pb::ListAccountsRequest>,
    ) -> Result<Response<pb::ListAccountsResponse>, Status> {
        let principal = Principal::of(&request)?;
        let body = request.get_ref();
        let limit = page_size(DOMAIN, body.page_size)?;
        let mut owner_id = parse_optional_uuid(DOMAIN, "owner_id", &body.owner_id)?;
        if !Self::sees_whole_workspace(principal) {
            match owner_id {
                None => owner_id = Some(principal.subject),
                Some(owner) if owner == principal.subject => {}
                // Someone else's accounts: the same empty answer as an owner with none.
                Some(_) => return Ok(Response::new(pb::ListAccountsResponse::default())),
            }
        }
        let asset = (!body.asset.is_empty()).then_some(body.asset.as_str());
        let owner_text = owner_id.map(|owner| owner.to_string()).unwrap_or_default();
        let digest = PageToken::query_digest(&["accounts", &owner_text, &body.asset]);
        let after = kernel::pagination::decode_uuid_cursor(DOMAIN, &digest, &body.page_token)?;
        let mut accounts = queries::list_accounts(
            self.ledger.context().db.connection(),
            principal.workspace_id,
            owner_id,
            asset,
            after,
            limit + 1,
        )
        .await?;
        let next_page_token =
            kernel::pagination::finish_page(&mut accounts, limit, &digest, |row| {
                row.id.to_string()
            });
        Ok(Response::new(pb::ListAccountsResponse {
            accounts: accounts.iter().map(account_to_proto).collect(),
            next_page_token,
        }))
    }

    async fn get_account_balance(
        &self,
        request: Request<pb::GetAccountBalanceRequest>,
    ) -> Result<Response<pb::AccountBalance>, Status> {
        let principal = Principal::of(&request)?;
        let body = request.get_ref();
        let account = self
            .visible_account(principal, "account_id", &body.account_id)
            .await?;
        let (balances, as_of_time) =
            match parse_timestamp(DOMAIN, "as_of_time", body.as_of_time.as_ref())? {
                Some(micros) => {
                    let balances = queries::balances_as_of(
                        self.ledger.context().db.connection(),
                        account.workspace_id,
                        account.id,
                        Some(micros),
                    )
                    .await?;
                    (balances, body.as_of_time)
                }
                None => (Balances::of(&account), None),
            };
        Ok(Response::new(pb::AccountBalance {
            account_id: account.id.to_string(),
            debits_posted: balances.debits_posted,
            credits_posted: balances.credits_posted,
            debits_pending: balances.debits_pending,
            credits_pending: balances.credits_pending,
            balance: balances.balance(),
            as_of_time,
        }))
    }

    async fn list_transfers(
        &self,
        request: Request<pb::ListTransfersRequest>,
    ) -> Result<Response<pb::ListTransfersResponse>, Status> {
        let principal = Principal::of(&request)?;
        let body = request.get_ref();
        let limit = page_size(DOMAIN, body.page_size)?;
        let account_id = if body.account_id.is_empty() {
            if !Self::sees_whole_workspace(principal) {
                return Err(ServiceError::invalid_field(
                    DOMAIN,
                    "account_id",
                    "is required for this caller",
                )
                .into());
            }
            None
        } else {
            Some(
                self.visible_account(principal, "account_id", &body.account_id)
                    .await?
                    .id,
            )
        };
        let filter = TransferFilter {
            account_id,
            code: (!body.code.is_empty()).then(|| body.code.clone()),
            reference: (!body.reference.is_empty()).then(|| body.reference.clone()),
            start_time: parse_timestamp(DOMAIN, "start_time", body.start_time.as_ref())?,
            end_time: parse_timestamp(DOMAIN, "end_time", body.end_time.as_ref())?,
        };
        let digest = PageToken::query_digest(&[
            "transfers",
            &body.account_id,
            &body.code,
            &body.reference,
            &format!("{:?}{:?}", filter.start_time, filter.end_time),
        ]);
        let after = PageToken::decode(DOMAIN, &digest, &body.page_token)?
            .map(|cursor| cursor.parse::<i64>())
            .transpose()
            .map_err(|_| {
                ServiceError::invalid_field(
                    DOMAIN,
                    "page_token",
                    "is not a token this query issued",
                )
            })?;
        let mut transfers = queries::list_transfers(
            self.ledger.context().db.connection(),
            principal.workspace_id,
            &filter,
            after,
            limit + 1,
        )
        .await?;
        let next_page_token =
            kernel::pagination::finish_page(&mut transfers, limit, &digest, |row| {
                row.seq.to_string()
            });
        Ok(Response::new(pb::ListTransfersResponse {
            transfers: transfers.iter().map(transfer_to_proto).collect(),
            next_page_token,
        }))
    }

    async fn purchase_credits(
        &self,
        request: Request<pb::PurchaseCreditsRequest>,
    ) -> Result<Response<pb::Transfer>, Status> {
        let principal = Principal::of(&request)?.clone();
        let body = request.get_ref();
        let workspace_id = principal.workspace_id;
        let key = IdempotencyKey::new(
            DOMAIN,
            &principal,
            &body.request_id,
            "PurchaseCredits",
            body,
        )?;
        let owner_id = parse_uuid(DOMAIN, "owner_id", &body.owner_id)?;
        if !(1..=MAX_PURCHASE_CREDITS).contains(&body.amount) {
            return Err(ServiceError::invalid_field(
                DOMAIN,
                "amount",
                format!("must be a whole number of credits from 1 to {MAX_PURCHASE_CREDITS}"),
            )
            .into());
        }
        kernel::ids::check_text(
            DOMAIN,
            "payment_reference",
            &body.payment_reference,
            domain::MAX_REFERENCE_CHARS,
            false,
        )?;
        let transfer =
            purchase_transfer(workspace_id, owner_id, body.amount, &body.payment_reference);
        let context = self.ledger.context();
        let transfer = &transfer;
        let response = context
            .idempotent(&key, |txn| async move {
                let now = to_micros(context.clock.now());
                let asset = kernel::money::CREDITS;
                ensure_system_account(&*txn, workspace_id, &SystemAccount::External, asset, now)
                    .await?;
                ensure_system_account(
                    &*txn,
                    workspace_id,
                    &SystemAccount::Wallet(owner_id),
                    asset,
                    now,
                )
                .await?;
                let results =
                    Ledger::apply_in(&*txn, workspace_id, std::slice::from_ref(transfer), now)
                        .await?;
                match results.first().copied() {
                    Some(TransferResult::Created | TransferResult::Exists) => {}
                    Some(result) if result.is_exists_with_different_fields() => {
                        return Err(ServiceError::failed_precondition(
                            DOMAIN,
                            "PAYMENT_REFERENCE_ALREADY_USED",
                            format!(
                                "payment_reference:{}",
                                kernel::ids::echo(&body.payment_reference)
                            ),
                            "this payment reference already bought credits with a different owner or amount",
                        ));
                    }
                    Some(TransferResult::Overflows) => {
                        // Nothing is committed: the transaction rolls back with this error.
                        return Err(ServiceError::failed_precondition(
                            DOMAIN,
                            "AMOUNT_OVERFLOW",
                            format!("owner:{owner_id}"),
                            format!(
                                "this purchase would take the wallet's or the workspace's purchase totals past the ledger's limit of {} credits; nothing was bought",
                                i64::MAX
                            ),
                        ));
                    }
                    other => {
                        return Err(ServiceError::internal(format!(
                            "credit purchase transfer failed: {other:?}"
                        )));
                    }
                }
                let stored = queries::get_transfer(&*txn, workspace_id, transfer.id)
                    .await?
                    .ok_or_else(|| {
                        ServiceError::internal("purchase transfer missing after commit")
                    })?;
                Ok((txn, transfer_to_proto(&stored)))
            })
            .await?;
        tracing::info!(workspace_id = %workspace_id, owner_id = %owner_id, amount = body.amount, "credits purchased");
        Ok(Response::new(response))
    }
}

/// The transfer that buys credits: its id is derived from the payment reference, so one payment
/// can credit a wallet once, whatever request ids the billing system retries with.
pub fn purchase_transfer(
    workspace_id: Uuid,
    owner_id: Uuid,
    amount: i64,
    payment_reference: &str,
) -> NewTransfer {
    let asset = kernel::money::CREDITS;
    NewTransfer {
        id: kernel::ids::derived(&workspace_id, &format!("purchase:{payment_reference}")),
        debit_account_id: SystemAccount::External.id(workspace_id, asset),
        credit_account_id: SystemAccount::Wallet(owner_id).id(workspace_id, asset),
        amount,
        code: CREDIT_PURCHASE.to_owned(),
        reference: payment_reference.to_owned(),
        pending_id: None,
        timeout_seconds: 0,
        flags: 0,
        metadata: BTreeMap::new(),
    }
}
