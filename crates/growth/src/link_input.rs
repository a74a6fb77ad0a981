//! What a link is made of: its UTM parameters (no control characters), an absolute http(s)
//! destination, the tracking URL (the destination with the UTM parameters form-encoded into its
//! query), and the checks and insert CreateLink (and the demo) go through.

use kernel::ids::check_text;
use kernel::{ServiceError, Violations};
use proto::growth::v1 as pb;
use sea_orm::EntityTrait;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::convert::not_found;
use crate::entity::{channel, link};
use crate::links::link_by_code;
use crate::state::Growth;
use crate::{DOMAIN, codes};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Utm {
    source: String,
    medium: String,
    campaign: String,
    term: String,
    content: String,
}

impl Utm {
    pub(crate) fn from_proto(utm: Option<&pb::Utm>) -> Utm {
        let utm = utm.cloned().unwrap_or_default();
        Utm {
            source: utm.source,
            medium: utm.medium,
            campaign: utm.campaign,
            term: utm.term,
            content: utm.content,
        }
    }

    pub(crate) fn to_proto(&self) -> pb::Utm {
        pb::Utm {
            source: self.source.clone(),
            medium: self.medium.clone(),
            campaign: self.campaign.clone(),
            term: self.term.clone(),
            content: self.content.clone(),
        }
    }

    fn pairs(&self) -> [(&'static str, &str); 5] {
        [
            ("utm_source", &self.source),
            ("utm_medium", &self.medium),
            ("utm_campaign", &self.campaign),
            ("utm_term", &self.term),
            ("utm_content", &self.content),
        ]
    }

    fn check(&self, violations: &mut Violations, prefix: &str) {
        for (name, value) in self.pairs() {
            let field = format!("{prefix}{}", name.trim_start_matches("utm_"));
            violations.check(
                value.chars().count() <= 200,
                &field,
                "must be at most 200 characters",
            );
            violations.check(
                !value.chars().any(char::is_control),
                &field,
                "must not contain control characters",
            );
        }
    }
}

/// An absolute http(s) URL with a host, at most 2048 characters.
pub fn check_url(field: &str, value: &str) -> Result<url::Url, ServiceError> {
    let invalid = |why: &str| ServiceError::invalid_field(DOMAIN, field, why);
    if value.len() > 2048 {
        return Err(invalid("must be at most 2048 characters"));
    }
    let parsed = url::Url::parse(value).map_err(|_| invalid("must be an absolute http(s) URL"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(invalid("must be an absolute http(s) URL"));
    }
    Ok(parsed)
}

/// The destination with the UTM parameters that are set added to its query (form-encoded; a
/// parameter of the same name already there is replaced).
fn tracking_url(mut destination: url::Url, utm: &Utm) -> String {
    let names: Vec<&str> = utm
        .pairs()
        .iter()
        .filter(|(_, value)| !value.is_empty())
        .map(|(name, _)| *name)
        .collect();
    let kept: Vec<(String, String)> = destination
        .query_pairs()
        .filter(|(name, _)| !names.contains(&name.as_ref()))
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect();
    {
        let mut query = destination.query_pairs_mut();
        query.clear();
        for (name, value) in &kept {
            query.append_pair(name, value);
        }
        for (name, value) in utm.pairs() {
            if !value.is_empty() {
                query.append_pair(name, value);
            }
        }
    }
    if destination.query() == Some("") {
        destination.set_query(None);
    }
    destination.to_string()
}

/// A link request checked whole: what [`insert_link`] stores.
pub struct PreparedLink {
    campaign_id: Uuid,
    channel_id: Uuid,
    affiliate_id: Option<Uuid>,
    name: String,
    destination_url: String,
    utm: Utm,
    tracking_url: String,
}

/// Checks a link's fields (ids, name, an http(s) destination, UTM values without control
/// characters) and builds its tracking URL.
pub fn prepare_link(input: Option<&pb::Link>) -> Result<PreparedLink, ServiceError> {
    let input = input.cloned().unwrap_or_default();
    let mut violations = Violations::new(DOMAIN);
    let campaign_id = violations.uuid("link.campaign_id", &input.campaign_id);
    let channel_id = violations.uuid("link.channel_id", &input.channel_id);
    let affiliate_id = violations.optional_uuid("link.affiliate_id", &input.affiliate_id);
    violations.take(
        "link.name",
        check_text(DOMAIN, "link.name", &input.name, 200, false),
    );
    let destination = violations.take(
        "link.destination_url",
        check_url("link.destination_url", &input.destination_url),
    );
    let utm = Utm::from_proto(input.utm.as_ref());
    utm.check(&mut violations, "link.utm.");
    violations.finish()?;
    let (Some(campaign_id), Some(channel_id), Some(destination)) =
        (campaign_id, channel_id, destination)
    else {
        return Err(ServiceError::internal("validated fields missing"));
    };
    Ok(PreparedLink {
        campaign_id,
        channel_id,
        affiliate_id,
        name: input.name,
        destination_url: input.destination_url,
        tracking_url: tracking_url(destination, &utm),
        utm,
    })
}

/// Stores a prepared link in the open transaction: its campaign (in marketing), channel and
/// affiliate must exist in the workspace; the short code is drawn until free in every workspace.
pub async fn insert_link(
    core: &Growth,
    txn: &kernel::WriteTxn,
    workspace_id: Uuid,
    prepared: &PreparedLink,
    now: i64,
) -> Result<link::Model, ServiceError> {
    if !core
        .marketing
        .campaign_exists(&**txn, workspace_id, prepared.campaign_id)
        .await?
    {
        return Err(not_found("CAMPAIGN_NOT_FOUND", "campaign"));
    }
    if channel::Entity::find_by_id((workspace_id, prepared.channel_id))
        .one(&**txn)
        .await?
        .is_none()
    {
        return Err(not_found("CHANNEL_NOT_FOUND", "channel"));
    }
    if let Some(affiliate_id) = prepared.affiliate_id {
        crate::affiliates::get_affiliate(&**txn, workspace_id, affiliate_id).await?;
    }
    let mut short_code = codes::short_code();
    for _ in 0..8 {
        if link_by_code(&**txn, None, &short_code).await?.is_none() {
            break;
        }
        short_code = codes::short_code();
    }
    let row = link::Model {
        workspace_id,
        id: Uuid::now_v7(),
        campaign_id: prepared.campaign_id,
        channel_id: prepared.channel_id,
        affiliate_id: prepared.affiliate_id,
        name: prepared.name.clone(),
        destination_url: prepared.destination_url.clone(),
        utm: kernel::db::to_json_column(&prepared.utm)?,
        short_code,
        tracking_url: prepared.tracking_url.clone(),
        click_count: 0,
        conversion_count: 0,
        created_at: now,
        updated_at: now,
    };
    kernel::db::insert(&**txn, link::ActiveModel::from(row.clone())).await?;
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracking_urls_encode_utm_values_and_keep_other_parameters() {
        let destination =
            check_url("d", "https://shop.example/p?id=7&utm_source=old").expect("url");
        let utm = Utm {
            source: "news letter".to_owned(),
            medium: "email".to_owned(),
            campaign: "winter&sale=50%".to_owned(),
            ..Utm::default()
        };
        assert_eq!(
            tracking_url(destination, &utm),
            "https://shop.example/p?id=7&utm_source=news+letter&utm_medium=email&utm_campaign=winter%26sale%3D50%25"
        );
        let bare = check_url("d", "https://shop.example/").expect("url");
        assert_eq!(tracking_url(bare, &Utm::default()), "https://shop.example/");
    }

    #[test]
    fn only_absolute_http_urls_are_destinations() {
        for bad in [
            "ftp://x.example/",
            "javascript:alert(1)",
            "/relative",
            "https://",
            "mailto:a@b.c",
        ] {
            assert!(check_url("d", bad).is_err(), "{bad}");
        }
        assert!(check_url("d", "http://x.example:8080/a?b=c").is_ok());
    }

    #[test]
    fn utm_values_with_control_characters_are_refused() {
        let mut violations = Violations::new(DOMAIN);
        Utm {
            term: "a\nb".to_owned(),
            ..Utm::default()
        }
        .check(&mut violations, "link.utm.");
        assert_eq!(violations.as_slice()[0].0, "link.utm.term");
    }
}
