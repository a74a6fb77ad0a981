//! promo.ledger.v1.LedgerService: authorization, validation and proto ↔ domain mapping.

use std::collections::BTreeMap;

use kernel::clock::{micros_to_timestamp, parse_timestamp, to_micros};
use kernel::ids::{parse_optional_uuid, parse_uuid};
use kernel::pagination::{PageToken, page_size};
use kernel::{IdempotencyKey, Principal, Role, ServiceError};
use proto::ledger::v1 as pb;
use proto::ledger::v1::ledger_service_server::{LedgerService, LedgerServiceServer};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::accounts::{NewAccount, SystemAccount, ensure_system_account};
use crate::domain::{self, Account, MAX_BATCH, NewTransfer, TransferResult};
use crate::queries::{self, Balances, TransferFilter};
use crate::store::StoredTransfer;
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

fn account_to_proto(account: &Account) -> pb::Account {
    pb::Account {
        id: account.id.to_string(),
        owner_id: account
            .owner_id
            .map(|owner| owner.to_string())
            .unwrap_or_default(),
        asset: account.asset.clone(),
        code: account.code.clone(),
        flags: Some(pb::AccountFlags {
            debits_must_not_exceed_credits: account.flags & domain::DEBITS_MUST_NOT_EXCEED_CREDITS
                != 0,
            credits_must_not_exceed_debits: account.flags & domain::CREDITS_MUST_NOT_EXCEED_DEBITS
                != 0,
            managed_by_domain: account.is_managed(),
        }),
        debits_posted: account.debits_posted,
        credits_posted: account.credits_posted,
        debits_pending: account.debits_pending,
        credits_pending: account.credits_pending,
        balance: account.balance(),
        metadata: account.metadata.clone(),
        create_time: Some(micros_to_timestamp(account.created_at)),
    }
}

fn transfer_flags_to_proto(flags: u32) -> pb::TransferFlags {
    pb::TransferFlags {
        linked: flags & domain::LINKED != 0,
        pending: flags & domain::PENDING != 0,
        post_pending_transfer: flags & domain::POST_PENDING_TRANSFER != 0,
        void_pending_transfer: flags & domain::VOID_PENDING_TRANSFER != 0,
        balancing_debit: flags & domain::BALANCING_DEBIT != 0,
        balancing_credit: flags & domain::BALANCING_CREDIT != 0,
    }
}

fn transfer_flags_from_proto(flags: Option<&pb::TransferFlags>) -> u32 {
    let Some(flags) = flags else {
        return 0;
    };
    [
        (flags.linked, domain::LINKED),
        (flags.pending, domain::PENDING),
        (flags.post_pending_transfer, domain::POST_PENDING_TRANSFER),
        (flags.void_pending_transfer, domain::VOID_PENDING_TRANSFER),
        (flags.balancing_debit, domain::BALANCING_DEBIT),
        (flags.balancing_credit, domain::BALANCING_CREDIT),
    ]
    .into_iter()
    .filter(|(set, _)| *set)
    .fold(0, |acc, (_, bit)| acc | bit)
}

/// The stored transfer as the API shows it.
pub fn transfer_to_proto(stored: &StoredTransfer) -> pb::Transfer {
    let transfer = &stored.transfer;
    pb::Transfer {
        id: transfer.id.to_string(),
        debit_account_id: transfer.debit_account_id.to_string(),
        credit_account_id: transfer.credit_account_id.to_string(),
        amount: transfer.amount,
        code: transfer.code.clone(),
        reference: transfer.reference.clone(),
        pending_id: transfer
            .pending_id
            .map(|id| id.to_string())
            .unwrap_or_default(),
        timeout_seconds: transfer.timeout_seconds,
        flags: Some(transfer_flags_to_proto(transfer.flags)),
        metadata: transfer.metadata.clone(),
        create_time: Some(micros_to_timestamp(transfer.created_at)),
    }
}

/// Parses every transfer, collecting a field violation for each malformed id.
fn parse_transfers(transfers: &[pb::Transfer]) -> Result<Vec<NewTransfer>, ServiceError> {
    if transfers.is_empty() {
        return Err(ServiceError::invalid_field(
            DOMAIN,
            "transfers",
            "is required",
        ));
    }
    if transfers.len() > MAX_BATCH {
        return Err(ServiceError::invalid_field(
            DOMAIN,
            "transfers",
            format!("must hold at most {MAX_BATCH} transfers"),
        ));
    }
    let mut violations: Vec<(String, &'static str)> = Vec::new();
    let mut parsed = Vec::with_capacity(transfers.len());
    let mut uuid_or_nil = |index: usize, field: &str, value: &str, required: bool| -> Uuid {
        if value.is_empty() && !required {
            return Uuid::nil();
        }
        match Uuid::try_parse(value) {
            Ok(uuid) if value.len() == 36 => uuid,
            _ => {
                violations.push((format!("transfers[{index}].{field}"), "must be a UUID"));
                Uuid::nil()
            }
        }
    };
    for (index, transfer) in transfers.iter().enumerate() {
        let flags = transfer_flags_from_proto(transfer.flags.as_ref());
        let resolution =
            flags & (domain::POST_PENDING_TRANSFER | domain::VOID_PENDING_TRANSFER) != 0;
        let id = uuid_or_nil(index, "id", &transfer.id, true);
        let debit = uuid_or_nil(
            index,
            "debit_account_id",
            &transfer.debit_account_id,
            !resolution,
        );
        let credit = uuid_or_nil(
            index,
            "credit_account_id",
            &transfer.credit_account_id,
            !resolution,
        );
        let pending_id = if transfer.pending_id.is_empty() {
            None
        } else {
            Some(uuid_or_nil(index, "pending_id", &transfer.pending_id, true))
        };
        parsed.push(NewTransfer {
            id,
            debit_account_id: debit,
            credit_account_id: credit,
            amount: transfer.amount,
            code: transfer.code.clone(),
            reference: transfer.reference.clone(),
            pending_id,
            timeout_seconds: transfer.timeout_seconds,
            flags,
            metadata: transfer.metadata.clone(),
        });
    }
    let mut violations = violations.into_iter();
    match violations.next() {
        None => Ok(parsed),
        Some((field, description)) => Err(violations.fold(
            ServiceError::invalid_field(DOMAIN, &field, description),
            |error, (field, description)| error.with_field(&field, description),
        )),
    }
}

fn parse_accounts(accounts: &[pb::Account]) -> Result<Vec<(NewAccount, bool)>, ServiceError> {
    if accounts.is_empty() {
        return Err(ServiceError::invalid_field(
            DOMAIN,
            "accounts",
            "is required",
        ));
    }
    if accounts.len() > MAX_BATCH {
        return Err(ServiceError::invalid_field(
            DOMAIN,
            "accounts",
            format!("must hold at most {MAX_BATCH} accounts"),
        ));
    }
    let mut parsed = Vec::with_capacity(accounts.len());
    for (index, account) in accounts.iter().enumerate() {
        let id = parse_uuid(DOMAIN, &format!("accounts[{index}].id"), &account.id)?;
        let owner_id = parse_optional_uuid(
            DOMAIN,
            &format!("accounts[{index}].owner_id"),
            &account.owner_id,
        )?;
        let flags = account.flags.map_or(0, |flags| {
            let mut bits = 0;
            if flags.debits_must_not_exceed_credits {
                bits |= domain::DEBITS_MUST_NOT_EXCEED_CREDITS;
            }
            if flags.credits_must_not_exceed_debits {
                bits |= domain::CREDITS_MUST_NOT_EXCEED_DEBITS;
            }
            bits
        });
        if account.flags.is_some_and(|flags| flags.managed_by_domain) {
            return Err(ServiceError::invalid_field(
                DOMAIN,
                &format!("accounts[{index}].flags.managed_by_domain"),
                "is set by the platform for the accounts its domains manage",
            ));
        }
        // Balances are the ledger's to compute; a request that presets them is refused outright.
        let presets_balances = account.debits_posted != 0
            || account.credits_posted != 0
            || account.debits_pending != 0
            || account.credits_pending != 0
            || account.balance != 0;
        parsed.push((
            NewAccount {
                id,
                owner_id,
                asset: account.asset.clone(),
                code: account.code.clone(),
                flags,
                metadata: account.metadata.clone(),
            },
            presets_balances,
        ));
    }
    if let Some(index) = parsed.iter().position(|(_, presets)| *presets) {
        return Err(ServiceError::invalid_field(
            DOMAIN,
            &format!("accounts[{index}].balance"),
            "balances are computed by the ledger and must be left empty",
        ));
    }
    Ok(parsed)
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
