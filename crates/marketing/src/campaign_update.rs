//! UpdateCampaign: the fields an update mask names are copied onto the stored campaign, and the
//! result is checked exactly as CreateCampaign checks a new one (the same `read_campaign`), then
//! against what the campaign has already used: a budget or total limit never drops below what is
//! held, the budget's currency changes only while nothing is, a started campaign keeps its start,
//! and a started campaign without a budget or total limit cannot gain one.

use kernel::{IdempotencyKey, Principal, ServiceError, Violations};
use proto::marketing::v1 as pb;
use sea_orm::ActiveValue::Set;
use serde_json::json;
use uuid::Uuid;

use crate::campaign_input::{check_rules, read_campaign};
use crate::campaigns::campaign_not_found;
use crate::convert::campaign_to_proto;
use crate::model::{CampaignStatus, KIND_PROMO_CODE};
use crate::state::Marketing;
use crate::store::{self, campaign};
use crate::{DOMAIN, events};

/// The fields UpdateCampaign may change, in the order "*" applies them.
const UPDATABLE: &[&str] = &[
    "title",
    "code",
    "description",
    "group_id",
    "discount_rule_ids",
    "start_time",
    "end_time",
    "budget",
    "usage_limit_total",
    "usage_limit_per_customer",
    "is_public",
    "utm",
    "promo_credits",
    "trial_days",
];

/// Fixed at creation (or computed by the server).
const FIXED: &[&str] = &[
    "id",
    "kind",
    "trigger_type",
    "auto_apply",
    "status",
    "redemption_count",
    "discount_given",
    "budget_reserved",
    "create_time",
    "update_time",
];

/// A mask path as snake_case (lowerCamelCase accepted, as the JSON mapping writes them).
fn snake(path: &str) -> String {
    let mut out = String::with_capacity(path.len() + 4);
    for character in path.chars() {
        if character.is_ascii_uppercase() {
            out.push('_');
            out.push(character.to_ascii_lowercase());
        } else {
            out.push(character);
        }
    }
    out
}

/// Copies the masked fields of `input` onto `merged`; returns the field names.
fn apply_mask(
    merged: &mut pb::Campaign,
    input: &pb::Campaign,
    paths: &[String],
) -> Result<Vec<&'static str>, ServiceError> {
    let mut violations = Violations::new(DOMAIN);
    violations.check(
        !paths.is_empty(),
        "update_mask",
        "must name the fields to change (\"*\" for all of them)",
    );
    let mut fields: Vec<&'static str> = Vec::new();
    for (index, path) in paths.iter().enumerate() {
        let name = snake(path);
        let at = format!("update_mask.paths[{index}]");
        if name == "*" {
            fields.extend(UPDATABLE);
        } else if let Some(field) = UPDATABLE.iter().find(|field| **field == name) {
            fields.push(field);
        } else if FIXED.contains(&name.as_str()) {
            violations.add(&at, format!("{name} cannot be changed after creation"));
        } else {
            violations.add(&at, format!("{name:?} is not a field of Campaign"));
        }
    }
    violations.finish()?;
    fields.sort_unstable();
    fields.dedup();
    for field in &fields {
        match *field {
            "title" => merged.title.clone_from(&input.title),
            "code" => merged.code.clone_from(&input.code),
            "description" => merged.description.clone_from(&input.description),
            "group_id" => merged.group_id.clone_from(&input.group_id),
            "discount_rule_ids" => merged
                .discount_rule_ids
                .clone_from(&input.discount_rule_ids),
            "start_time" => merged.start_time = input.start_time,
            "end_time" => merged.end_time = input.end_time,
            "budget" => merged.budget.clone_from(&input.budget),
            "usage_limit_total" => merged.usage_limit_total = input.usage_limit_total,
            "usage_limit_per_customer" => {
                merged.usage_limit_per_customer = input.usage_limit_per_customer;
            }
            "is_public" => merged.is_public = input.is_public,
            "utm" => merged.utm.clone_from(&input.utm),
            "promo_credits" => merged.promo_credits = input.promo_credits,
            "trial_days" => merged.trial_days = input.trial_days,
            _ => {}
        }
    }
    Ok(fields)
}

fn refused(id: Uuid, reason: &str, description: impl Into<String>) -> ServiceError {
    ServiceError::failed_precondition(DOMAIN, reason, format!("campaigns/{id}"), description)
}

/// UpdateCampaign (see the module's doc).
pub async fn update(
    core: &Marketing,
    principal: &Principal,
    body: &pb::UpdateCampaignRequest,
) -> Result<pb::Campaign, ServiceError> {
    let key = IdempotencyKey::new(DOMAIN, principal, &body.request_id, "UpdateCampaign", body)?;
    let input = body
        .campaign
        .as_ref()
        .ok_or_else(|| ServiceError::invalid_field(DOMAIN, "campaign", "is required"))?;
    let id = kernel::ids::parse_uuid(DOMAIN, "campaign.id", &input.id)?;
    let paths = body
        .update_mask
        .as_ref()
        .map(|mask| mask.paths.clone())
        .unwrap_or_default();
    let workspace_id = principal.workspace_id;
    let now = core.now();
    let paths = &paths;
    core.change_definitions(&key, workspace_id, |txn| async move {
        let row = store::campaigns_by_ids(&*txn, workspace_id, &[id], true)
            .await?
            .pop()
            .ok_or_else(campaign_not_found)?;
        let current = CampaignStatus::from_i32(row.status)
            .unwrap_or(CampaignStatus::Completed)
            .effective(row.start_time, row.end_time, now);
        let mut merged = campaign_to_proto(&row, now)?;
        let fields = apply_mask(&mut merged, input, paths)?;
        if current == CampaignStatus::Completed {
            return Err(refused(
                id,
                "CAMPAIGN_COMPLETED",
                "a completed campaign cannot change",
            ));
        }
        let new = read_campaign(Some(&merged), now)?;
        let started = !matches!(current, CampaignStatus::Draft | CampaignStatus::Scheduled);
        let start_time = match new.start_time {
            None if current != CampaignStatus::Draft => Some(now),
            start => start,
        };
        if started && new.start_time != row.start_time {
            return Err(refused(
                id,
                "CAMPAIGN_STARTED",
                "a campaign that has started keeps its start time",
            ));
        }
        // A started campaign without a budget or total limit let its reservations hold none of
        // it (they count at confirmation), so it cannot gain one: those could pass it.
        let gains_limit = (row.budget.is_none() && new.budget.is_some())
            || (row.usage_limit_total == 0 && new.usage_limit_total > 0);
        if started && gains_limit {
            return Err(refused(
                id,
                "LIMIT_ADDED_AFTER_LAUNCH",
                "a campaign that has started without a budget or total limit cannot gain one (its open reservations hold none); create a new campaign",
            ));
        }
        if new.budget.is_some_and(|budget| budget < row.budget_used) {
            return Err(refused(
                id,
                "BUDGET_BELOW_USED",
                format!(
                    "the budget cannot drop below the {} already reserved or given",
                    row.budget_used
                ),
            ));
        }
        if new.currency != row.currency && row.budget_used > 0 {
            return Err(refused(
                id,
                "BUDGET_CURRENCY_IN_USE",
                "the budget's currency cannot change once some of it is used",
            ));
        }
        if new.usage_limit_total > 0 && new.usage_limit_total < row.uses_held {
            return Err(refused(
                id,
                "LIMIT_BELOW_USED",
                format!(
                    "the total limit cannot drop below the {} uses already held",
                    row.uses_held
                ),
            ));
        }
        let promo_grant =
            row.kind == KIND_PROMO_CODE && (new.promo_credits > 0 || new.trial_days > 0);
        if current != CampaignStatus::Draft && new.rule_ids.is_empty() && !promo_grant {
            return Err(refused(
                id,
                "CAMPAIGN_HAS_NO_RULES",
                "a launched campaign keeps at least one discount rule",
            ));
        }
        if let Some(group_id) = new.group_id
            && store::get_group(&*txn, workspace_id, group_id)
                .await?
                .is_none()
        {
            return Err(ServiceError::not_found(
                DOMAIN,
                "CAMPAIGN_GROUP_NOT_FOUND",
                "campaign group",
            ));
        }
        let budget_currency = if new.promo_credits > 0 {
            ""
        } else {
            new.currency.as_str()
        };
        check_rules(&*txn, workspace_id, &new.rule_ids, budget_currency).await?;
        if let Some(code) = &new.code
            && new.code != row.code
            && store::campaign_by_code(&*txn, workspace_id, code)
                .await?
                .is_some()
        {
            return Err(ServiceError::new(
                kernel::ErrorCode::AlreadyExists,
                DOMAIN,
                "CAMPAIGN_CODE_TAKEN",
                "another campaign of this workspace has this code",
            ));
        }
        let changed = campaign::ActiveModel {
            workspace_id: Set(workspace_id),
            id: Set(id),
            title: Set(new.title),
            code: Set(new.code),
            description: Set(new.description),
            group_id: Set(new.group_id),
            rule_ids: Set(kernel::db::to_json_column(&new.rule_ids)?),
            start_time: Set(start_time),
            end_time: Set(new.end_time),
            currency: Set(new.currency),
            budget: Set(new.budget),
            usage_limit_total: Set(new.usage_limit_total),
            usage_limit_per_customer: Set(new.usage_limit_per_customer),
            is_public: Set(new.is_public),
            utm: Set(new.utm),
            promo_credits: Set(new.promo_credits),
            trial_days: Set(new.trial_days),
            updated_at: Set(now),
            ..Default::default()
        };
        store::update(&*txn, changed).await?;
        events::emit(
            &txn,
            workspace_id,
            events::CAMPAIGN_UPDATED,
            format!("campaigns/{id}"),
            json!({"campaign_id": id.to_string(), "fields": fields}),
            now,
        )
        .await?;
        let row = store::get_campaign(&*txn, workspace_id, id)
            .await?
            .ok_or_else(campaign_not_found)?;
        Ok((txn, campaign_to_proto(&row, now)?))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_paths_read_in_either_case_and_fixed_fields_are_refused() {
        let mut merged = pb::Campaign::default();
        let input = pb::Campaign {
            title: "New".to_owned(),
            usage_limit_per_customer: 3,
            ..pb::Campaign::default()
        };
        let fields = apply_mask(
            &mut merged,
            &input,
            &["title".to_owned(), "usageLimitPerCustomer".to_owned()],
        )
        .expect("mask");
        assert_eq!(fields, ["title", "usage_limit_per_customer"]);
        assert_eq!(
            (merged.title.as_str(), merged.usage_limit_per_customer),
            ("New", 3)
        );
        for path in ["kind", "triggerType", "nonsense"] {
            let error = apply_mask(&mut merged, &input, &[path.to_owned()]).expect_err(path);
            assert!(
                error.to_string().contains("update_mask.paths[0]")
                    || format!("{error:?}").contains("update_mask.paths[0]"),
                "{error:?}"
            );
        }
        assert!(
            apply_mask(&mut merged, &input, &[]).is_err(),
            "an empty mask"
        );
        let all = apply_mask(&mut merged, &input, &["*".to_owned()]).expect("all");
        assert_eq!(all.len(), UPDATABLE.len());
    }
}
