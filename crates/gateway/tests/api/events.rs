//! Domain events: promotion-core appends them in the transaction that completes a promotion, and
//! consumers read them in order, at least once, one lease holder at a time.

use std::sync::Arc;
use std::time::Duration;

use kernel::events::{self, NewEvent};
use kernel::{Context, ManualClock, Role};
use proto::promotion::v1 as pb;
use proto::promotion::v1::promotion_service_client::PromotionServiceClient;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{TestApp, authed, request_id, spawn_app, spawn_app_with_clock};
use crate::promotion_support::*;

/// Sequences what has committed and reads everything after position 0 as a fresh consumer.
async fn all_events(app: &TestApp) -> Vec<events::Event> {
    let context = app.promotions.context();
    events::sequence(context, 10_000).await.expect("sequence");
    events::read_after(context.db.connection(), 0, 10_000)
        .await
        .expect("read")
}

fn of_subject<'a>(all: &'a [events::Event], subject: &str) -> Vec<&'a events::Event> {
    all.iter()
        .filter(|event| event.subject == subject)
        .collect()
}

#[tokio::test]
async fn completing_and_exhausting_promotions_append_their_events_once() {
    let app = spawn_app().await;
    let factory = factory_with_credits(&app, 100).await;
    platform_materials(&app, "glass", 2).await;
    let pane = material(&app, &factory, "Float glass", "glass").await;

    // Completed by its factory with 30 credits left: completed, then refunded.
    let kept = promote(&app, &factory, &pane, 30).await.expect("promotion");
    let complete = pb::UpdatePromotionStatusRequest {
        request_id: request_id(),
        promotion_id: kept.id.clone(),
        status: pb::PromotionStatus::Completed as i32,
    };
    for _ in 0..2 {
        // A retry of the same request replays the response and appends nothing.
        PromotionServiceClient::new(app.channel.clone())
            .update_promotion_status(authed(complete.clone(), &factory.token))
            .await
            .expect("complete");
    }
    let all = all_events(&app).await;
    let kept_events = of_subject(&all, &format!("promotions/{}", kept.id));
    let types: Vec<&str> = kept_events
        .iter()
        .map(|event| event.event_type.as_str())
        .collect();
    assert_eq!(types, ["promotion.completed", "promotion.refunded"]);
    assert_eq!(kept_events[0].payload["reason"], "COMPLETED");
    assert_eq!(kept_events[0].workspace_id, app.default_workspace);
    assert_eq!(kept_events[1].payload["credits_refunded"], 30);
    assert_eq!(kept_events[1].payload["factory_id"], json!(factory.id));
    assert!(kept_events[0].position < kept_events[1].position);

    // Exhausted by uses: exhausted, then completed; nothing left to refund.
    let spent = promote(&app, &factory, &pane, 2).await.expect("promotion");
    set_selection_probability(&app, 1, 1).await;
    app.refresh_selection().await;
    let generator = app.token(&[Role::Generator]);
    let mut decisions = Vec::new();
    for _ in 0..2 {
        let picks = select(&app, &generator, "glass").await;
        assert!(picks[0].promoted);
        decisions.push(picks[0].decision_id.clone());
    }
    assert_eq!(report(&app, &generator, decisions).await.accepted, 2);
    let all = all_events(&app).await;
    let spent_events = of_subject(&all, &format!("promotions/{}", spent.id));
    let types: Vec<&str> = spent_events
        .iter()
        .map(|event| event.event_type.as_str())
        .collect();
    assert_eq!(types, ["promotion.exhausted", "promotion.completed"]);
    assert_eq!(spent_events[1].payload["reason"], "BUDGET_EXHAUSTED");
    assert_eq!(spent_events[1].payload["credits_spent"], 2);
    // Positions are one total order without gaps.
    let positions: Vec<i64> = all.iter().map(|event| event.position).collect();
    assert_eq!(positions, (1..=all.len() as i64).collect::<Vec<_>>());
}

fn event(workspace_id: Uuid, n: i64) -> NewEvent {
    NewEvent {
        workspace_id,
        event_type: "test.happened",
        subject: format!("things/{n}"),
        payload: json!({ "n": n }),
    }
}

async fn append(context: &Context, workspace_id: Uuid, range: std::ops::Range<i64>) {
    let range = &range;
    context
        .write(|txn| async move {
            for n in range.clone() {
                events::append(&*txn, event(workspace_id, n), context.clock.now()).await?;
            }
            Ok((txn, ()))
        })
        .await
        .expect("append");
}

fn numbers(batch: &[events::Event]) -> Vec<i64> {
    batch
        .iter()
        .map(|event| event.payload["n"].as_i64().expect("n"))
        .collect()
}

#[tokio::test]
async fn a_consumer_gets_every_event_at_least_once_from_one_lease_holder_at_a_time() {
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let app = spawn_app_with_clock(|_| {}, clock.clone()).await;
    let context = app.promotions.context();
    let other = app.other_workspace("outbox").await;
    append(context, app.default_workspace, 0..3).await;
    append(context, other, 3..5).await;
    // A transaction that rolls back leaves no event.
    let failed = context
        .write(|txn| async move {
            events::append(&*txn, event(other, 99), context.clock.now()).await?;
            Err::<(kernel::WriteTxn, ()), _>(kernel::ServiceError::internal("rolled back"))
        })
        .await;
    assert!(failed.is_err());
    events::sequence(context, 10_000).await.expect("sequence");

    let (replica_a, replica_b) = (Uuid::new_v4(), Uuid::new_v4());
    let lease = Duration::from_secs(30);
    let first = events::claim(context, "test-mailer", replica_a, lease, 3)
        .await
        .expect("claim")
        .expect("a free lease");
    assert_eq!(numbers(&first), [0, 1, 2]);
    assert!(
        events::claim(context, "test-mailer", replica_b, lease, 3)
            .await
            .expect("claim")
            .is_none(),
        "one holder at a time"
    );
    // Another consumer has its own cursor.
    let audit = events::claim(context, "test-audit", replica_b, lease, 100)
        .await
        .expect("claim")
        .expect("its own lease");
    assert_eq!(numbers(&audit), [0, 1, 2, 3, 4]);
    assert!(
        events::acknowledge(context, "test-audit", replica_b, audit[4].position)
            .await
            .expect("ack")
    );

    // A handles two, acknowledges them, and dies holding the third.
    assert!(
        events::acknowledge(context, "test-mailer", replica_a, first[1].position)
            .await
            .expect("ack")
    );
    clock.advance(chrono::Duration::seconds(31));
    let taken_over = events::claim(context, "test-mailer", replica_b, lease, 100)
        .await
        .expect("claim")
        .expect("the lease expired");
    assert_eq!(
        numbers(&taken_over),
        [2, 3, 4],
        "the unacknowledged one again"
    );
    assert!(
        !events::acknowledge(context, "test-mailer", replica_a, first[2].position)
            .await
            .expect("ack"),
        "a replica that lost its lease cannot move the cursor"
    );
    assert!(
        events::acknowledge(context, "test-mailer", replica_b, taken_over[2].position)
            .await
            .expect("ack")
    );
    assert!(
        events::claim(context, "test-mailer", replica_b, lease, 100)
            .await
            .expect("claim")
            .expect("still held")
            .is_empty()
    );
    // Acknowledging an older position never moves a cursor back.
    assert!(
        events::acknowledge(context, "test-mailer", replica_b, first[0].position)
            .await
            .expect("ack")
    );
    let status = events::status(context).await.expect("status");
    assert_eq!(status.unsequenced, 0);
    assert!(
        status.consumers.contains(&(
            "test-mailer".to_owned(),
            taken_over[2].position,
            Some(replica_b)
        )),
        "{status:?}"
    );

    // Retention deletes only what every consumer has and what is old enough.
    append(context, other, 5..6).await;
    events::sequence(context, 10_000).await.expect("sequence");
    assert_eq!(
        events::prune(context, Duration::from_secs(3600))
            .await
            .expect("prune"),
        0,
        "too young"
    );
    clock.advance(chrono::Duration::hours(2));
    assert_eq!(
        events::prune(context, Duration::from_secs(3600))
            .await
            .expect("prune"),
        5,
        "all but the one no consumer has yet"
    );
    events::release(context, "test-mailer", replica_b)
        .await
        .expect("release");
    let rest = events::claim(context, "test-mailer", replica_a, lease, 100)
        .await
        .expect("claim")
        .expect("released");
    assert_eq!(numbers(&rest), [5]);
}

/// Two replicas sequence while producers commit concurrently and a consumer keeps reading: every
/// event is delivered exactly once to a consumer that acknowledges, in position order, none
/// skipped because a slower transaction committed it after a later one was read.
#[tokio::test]
async fn concurrent_producers_and_sequencers_never_make_a_consumer_skip_an_event() {
    let app = spawn_app().await;
    let first = app.promotions.context().clone();
    let second_db = kernel::Db::connect(&app.database_url, &kernel::DbOptions::default())
        .await
        .expect("second replica");
    let second = Context::new(second_db, first.clock.clone());
    const PRODUCERS: i64 = 4;
    const PER_PRODUCER: i64 = 25;

    let mut producers = Vec::new();
    for producer in 0..PRODUCERS {
        let context = if producer % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        let workspace = app.default_workspace;
        producers.push(tokio::spawn(async move {
            for k in 0..PER_PRODUCER {
                let n = producer * PER_PRODUCER + k;
                append(&context, workspace, n..n + 1).await;
            }
        }));
    }
    let sequencers: Vec<_> = [first.clone(), second.clone()]
        .into_iter()
        .map(|context| {
            tokio::spawn(async move {
                loop {
                    events::sequence(&context, 7).await.expect("sequence");
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();

    let owner = Uuid::new_v4();
    let lease = Duration::from_secs(60);
    let mut delivered: Vec<i64> = Vec::new();
    let mut last_position = 0;
    let total = (PRODUCERS * PER_PRODUCER) as usize;
    let mut producers_done = false;
    loop {
        let batch = events::claim(&second, "test-ordered", owner, lease, 10)
            .await
            .expect("claim")
            .expect("sole consumer");
        for event in &batch {
            assert!(event.position > last_position, "positions only grow");
            last_position = event.position;
        }
        delivered.extend(numbers(&batch));
        if let Some(last) = batch.last() {
            assert!(
                events::acknowledge(&second, "test-ordered", owner, last.position)
                    .await
                    .expect("ack")
            );
        }
        if delivered.len() >= total {
            break;
        }
        if !producers_done && producers.iter().all(|producer| producer.is_finished()) {
            producers_done = true;
        }
        if producers_done && batch.is_empty() {
            // Everything is committed: one more sequencing pass leaves nothing unsequenced.
            events::sequence(&first, 10_000).await.expect("sequence");
        }
        tokio::task::yield_now().await;
    }
    for sequencer in sequencers {
        sequencer.abort();
    }
    for producer in producers {
        producer.await.expect("producer");
    }
    let mut sorted = delivered.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        (0..PRODUCERS * PER_PRODUCER).collect::<Vec<_>>(),
        "each exactly once"
    );
}
