//! CreateCampaign's input: every field read and checked at once, and the rules it names checked
//! against the workspace (they exist here, and share the budget's currency).

use kernel::clock::parse_timestamp;
use kernel::ids::check_text;
use kernel::{ServiceError, Violations};
use proto::marketing::v1 as pb;
use uuid::Uuid;

use crate::DOMAIN;
use crate::convert::Currency;
use crate::model::{KIND_PROMO_CODE, TRIGGER_AUTOMATIC, TRIGGER_LAST};
use crate::store;

/// Most rules one campaign grants.
const MAX_RULES: usize = 20;

/// Most free-trial days a promo code grants (ten years).
const MAX_TRIAL_DAYS: i32 = 3650;

/// A campaign as CreateCampaign received it, validated.
pub(crate) struct NewCampaign {
    pub(crate) title: String,
    pub(crate) code: Option<String>,
    pub(crate) description: String,
    pub(crate) group_id: Option<Uuid>,
    pub(crate) trigger_type: i32,
    pub(crate) kind: i32,
    pub(crate) rule_ids: Vec<Uuid>,
    pub(crate) start_time: Option<i64>,
    pub(crate) end_time: Option<i64>,
    pub(crate) currency: String,
    pub(crate) budget: Option<i64>,
    pub(crate) usage_limit_total: i64,
    pub(crate) usage_limit_per_customer: i64,
    pub(crate) is_public: bool,
    pub(crate) utm: String,
    pub(crate) promo_credits: i64,
    pub(crate) trial_days: i32,
}

pub(crate) fn read_campaign(
    input: Option<&pb::Campaign>,
    now: i64,
) -> Result<NewCampaign, ServiceError> {
    let mut violations = Violations::new(DOMAIN);
    let Some(input) = input else {
        violations.add("campaign", "is required");
        return Err(violations.into_error());
    };
    let text = |violations: &mut Violations, field: &str, value: &str, max, empty| {
        violations.take(field, check_text(DOMAIN, field, value, max, empty));
    };
    text(&mut violations, "campaign.title", &input.title, 200, false);
    text(
        &mut violations,
        "campaign.description",
        &input.description,
        2000,
        true,
    );
    let code = if input.code.is_empty() {
        None
    } else {
        let code = crate::codes::normalize(&input.code);
        violations.check(
            code.is_some(),
            "campaign.code",
            "must be 3 to 64 letters, digits, '-' or '_'",
        );
        code
    };
    let group_id = violations.optional_uuid("campaign.group_id", &input.group_id);
    violations.check(
        (0..=TRIGGER_LAST).contains(&input.trigger_type),
        "campaign.trigger_type",
        "must be one of the TRIGGER_TYPE_ values",
    );
    violations.check(
        !input.auto_apply || input.trigger_type == TRIGGER_AUTOMATIC,
        "campaign.auto_apply",
        "only a TRIGGER_TYPE_AUTOMATIC campaign applies without a code",
    );
    violations.check(
        pb::CampaignKind::try_from(input.kind).is_ok(),
        "campaign.kind",
        "must be one of the CAMPAIGN_KIND_ values",
    );
    violations.check(
        input.kind != KIND_PROMO_CODE || code.is_some(),
        "campaign.code",
        "a promo-code campaign needs its code",
    );
    let promo = input.kind == KIND_PROMO_CODE;
    violations.check(
        input.promo_credits >= 0,
        "campaign.promo_credits",
        "must not be negative",
    );
    violations.check(
        (0..=MAX_TRIAL_DAYS).contains(&input.trial_days),
        "campaign.trial_days",
        format!("must be 0 to {MAX_TRIAL_DAYS}"),
    );
    violations.check(
        promo || (input.promo_credits == 0 && input.trial_days == 0),
        "campaign.kind",
        "only a CAMPAIGN_KIND_PROMO_CODE campaign grants credits or trial days",
    );
    violations.check(
        !promo || input.discount_rule_ids.len() <= 1,
        "campaign.discount_rule_ids",
        "a promo-code campaign grants at most one rule",
    );
    violations.check(
        !promo || input.trigger_type != TRIGGER_AUTOMATIC,
        "campaign.trigger_type",
        "a promo-code campaign applies through its code, not automatically",
    );
    violations.check(
        input.discount_rule_ids.len() <= MAX_RULES,
        "campaign.discount_rule_ids",
        format!("must list at most {MAX_RULES} rules"),
    );
    let mut rule_ids = Vec::new();
    for (index, id) in input.discount_rule_ids.iter().enumerate() {
        if let Some(id) = violations.uuid(&format!("campaign.discount_rule_ids[{index}]"), id)
            && !rule_ids.contains(&id)
        {
            rule_ids.push(id);
        }
    }
    let start_time = violations
        .take(
            "campaign.start_time",
            parse_timestamp(DOMAIN, "campaign.start_time", input.start_time.as_ref()),
        )
        .flatten();
    let end_time = violations
        .take(
            "campaign.end_time",
            parse_timestamp(DOMAIN, "campaign.end_time", input.end_time.as_ref()),
        )
        .flatten();
    if let Some(end) = end_time {
        violations.check(
            start_time.is_none_or(|start| end > start),
            "campaign.end_time",
            "must be after start_time",
        );
        violations.check(end > now, "campaign.end_time", "must be in the future");
    }
    let mut currency = Currency::default();
    let budget = currency.money(
        &mut violations,
        "campaign.budget",
        input.budget.as_ref(),
        false,
    );
    if let Some(budget) = &input.budget
        && input.promo_credits > 0
    {
        violations.check(
            budget.currency == kernel::money::CREDITS,
            "campaign.budget.currency",
            "a campaign that grants credits counts them against a budget in CREDITS",
        );
    }
    for (field, value) in [
        ("campaign.usage_limit_total", input.usage_limit_total),
        (
            "campaign.usage_limit_per_customer",
            input.usage_limit_per_customer,
        ),
    ] {
        violations.check(value >= 0, field, "must not be negative (0 = unlimited)");
    }
    let utm = input.utm.clone().unwrap_or_default();
    let mut utm_map = std::collections::BTreeMap::new();
    for (name, value) in [
        ("source", &utm.source),
        ("medium", &utm.medium),
        ("campaign", &utm.campaign),
        ("term", &utm.term),
        ("content", &utm.content),
    ] {
        text(
            &mut violations,
            &format!("campaign.utm.{name}"),
            value,
            200,
            true,
        );
        if !value.is_empty() {
            utm_map.insert(name, value.clone());
        }
    }
    violations.finish()?;
    Ok(NewCampaign {
        title: input.title.clone(),
        code,
        description: input.description.clone(),
        group_id,
        trigger_type: input.trigger_type,
        kind: input.kind,
        rule_ids,
        start_time,
        end_time,
        // Credits granted count in CREDITS, with or without a budget.
        currency: match currency.finish()? {
            none if none.is_empty() && input.promo_credits > 0 => kernel::money::CREDITS.to_owned(),
            code => code,
        },
        budget,
        usage_limit_total: input.usage_limit_total,
        usage_limit_per_customer: input.usage_limit_per_customer,
        is_public: input.is_public,
        utm: kernel::db::to_json_column(&utm_map)?,
        promo_credits: input.promo_credits,
        trial_days: input.trial_days,
    })
}

/// Checks that every rule exists in the workspace and that their amounts and the budget share
/// one currency.
pub(crate) async fn check_rules<C: sea_orm::ConnectionTrait>(
    connection: &C,
    workspace_id: Uuid,
    rule_ids: &[Uuid],
    budget_currency: &str,
) -> Result<(), ServiceError> {
    let rules = store::rules_by_ids(connection, workspace_id, rule_ids).await?;
    for (index, id) in rule_ids.iter().enumerate() {
        let Some(rule) = rules.iter().find(|rule| rule.id == *id) else {
            return Err(ServiceError::not_found(
                DOMAIN,
                "DISCOUNT_RULE_NOT_FOUND",
                "discount rule",
            )
            .with_field(
                &format!("campaign.discount_rule_ids[{index}]"),
                "no such rule",
            ));
        };
        let mut currency = Currency::default();
        let mut violations = Violations::new(DOMAIN);
        for (field, code) in [
            ("campaign.budget", budget_currency),
            ("rule", &rule.currency),
        ] {
            if !code.is_empty() {
                currency.money(
                    &mut violations,
                    field,
                    Some(&pb::Money {
                        currency: code.to_owned(),
                        amount: 1,
                    }),
                    false,
                );
            }
        }
        currency.finish().map_err(|error| {
            error.with_field(
                &format!("campaign.discount_rule_ids[{index}]"),
                "this rule's amounts are in another currency than the campaign's budget",
            )
        })?;
    }
    Ok(())
}
