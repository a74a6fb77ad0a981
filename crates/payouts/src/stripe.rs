//! The Stripe Connect payout provider: a payout is a transfer from the platform's balance to the
//! promoter's connected account (`POST /v1/transfers`) and a payout from that account to its bank
//! (`POST /v1/payouts` with `Stripe-Account`), each with an `Idempotency-Key` derived from the
//! payout's id, so a resend never moves money twice. The payout's outcome arrives later as a
//! `payout.paid` or `payout.failed` event (`webhooks`). Plain HTTPS and form bodies; no SDK.

use async_trait::async_trait;
use serde::Deserialize;

use crate::provider::{PayoutProvider, ProviderOutcome, ProviderPayout};

/// Stripe's API, as configured: where it is and the platform's secret key.
pub struct StripeProvider {
    client: reqwest::Client,
    api_base: String,
    api_key: String,
}

#[derive(Deserialize)]
struct Created {
    id: String,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    message: String,
    #[serde(default)]
    code: String,
}

/// What one call to Stripe came to.
enum Call {
    Created(String),
    /// Stripe refused the request for good (a 4xx other than 429): the reason.
    Refused(String),
    /// Worth trying again later (network, 429, 5xx): the reason.
    Retry(String),
}

impl StripeProvider {
    /// `api_base` is `https://api.stripe.com` in production (tests point it at a local receiver).
    pub fn new(api_base: &str, api_key: &str) -> StripeProvider {
        StripeProvider {
            client: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(30))
                .build()
                .unwrap_or_default(),
            api_base: api_base.trim_end_matches('/').to_owned(),
            api_key: api_key.to_owned(),
        }
    }

    async fn post(
        &self,
        path: &str,
        idempotency_key: String,
        account: Option<&str>,
        form: &[(&str, String)],
    ) -> Call {
        let mut request = self
            .client
            .post(format!("{}{path}", self.api_base))
            .bearer_auth(&self.api_key)
            .header("Idempotency-Key", idempotency_key)
            .form(form);
        if let Some(account) = account {
            request = request.header("Stripe-Account", account);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => return Call::Retry(format!("stripe unreachable: {error}")),
        };
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        if status.is_success() {
            return match serde_json::from_str::<Created>(&body) {
                Ok(created) => Call::Created(created.id),
                Err(_) => Call::Retry("stripe answered without an id".to_owned()),
            };
        }
        let reason = serde_json::from_str::<ErrorBody>(&body)
            .map(|body| {
                if body.error.code.is_empty() {
                    body.error.message
                } else {
                    format!("{}: {}", body.error.code, body.error.message)
                }
            })
            .unwrap_or_else(|_| format!("stripe answered {status}"));
        if status.as_u16() == 429 || status.is_server_error() {
            Call::Retry(reason)
        } else {
            Call::Refused(reason)
        }
    }
}

#[async_trait]
impl PayoutProvider for StripeProvider {
    fn name(&self) -> &'static str {
        "stripe"
    }

    /// A connected account is paid only once Stripe says its payouts are enabled
    /// (`account.updated`).
    fn enables_on_connect(&self) -> bool {
        false
    }

    async fn send(&self, payout: &ProviderPayout) -> ProviderOutcome {
        let currency = payout.currency.to_ascii_lowercase();
        let metadata = |form: &mut Vec<(&str, String)>| {
            form.push(("metadata[payout_id]", payout.payout_id.clone()));
            form.push(("metadata[workspace_id]", payout.workspace_id.clone()));
        };
        let mut transfer = vec![
            ("amount", payout.amount.to_string()),
            ("currency", currency.clone()),
            ("destination", payout.provider_account_id.clone()),
            ("transfer_group", payout.payout_id.clone()),
        ];
        metadata(&mut transfer);
        let transfer_id = match self
            .post(
                "/v1/transfers",
                format!("{}-transfer", payout.payout_id),
                None,
                &transfer,
            )
            .await
        {
            Call::Created(id) => id,
            Call::Refused(reason) => return ProviderOutcome::Failed { reason },
            Call::Retry(reason) => return ProviderOutcome::Retry { reason },
        };
        let mut bank_payout = vec![
            ("amount", payout.amount.to_string()),
            ("currency", currency),
        ];
        metadata(&mut bank_payout);
        match self
            .post(
                "/v1/payouts",
                format!("{}-payout", payout.payout_id),
                Some(&payout.provider_account_id),
                &bank_payout,
            )
            .await
        {
            Call::Created(id) => ProviderOutcome::Processing { reference: id },
            Call::Retry(reason) => ProviderOutcome::Retry { reason },
            // The money reached the connected account but cannot leave it: take it back before
            // the payout is failed and the wallet credited again.
            Call::Refused(reason) => match self
                .post(
                    &format!("/v1/transfers/{transfer_id}/reversals"),
                    format!("{}-reversal", payout.payout_id),
                    None,
                    &[],
                )
                .await
            {
                Call::Created(_) => ProviderOutcome::Failed { reason },
                Call::Refused(why) | Call::Retry(why) => ProviderOutcome::Retry {
                    reason: format!("{reason}; reversing the transfer failed: {why}"),
                },
            },
        }
    }
}
