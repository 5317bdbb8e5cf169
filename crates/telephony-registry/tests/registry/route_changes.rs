//! The change log of inbound routes: every change to a number, a connection or an agent that a
//! route is made of is listed once, in order, whichever method made it; the inbound path's own
//! writes are not changes; a holder that asks for more than it may, or for pruned changes, is
//! told to start over.

use std::collections::BTreeSet;
use std::time::Duration;

use telephony_carrier::Provider;
use telephony_registry::{
    AgentTarget, InboundCall, NewAgent, Registry, RouteChangeKind, RouteChanges, WebhookMode,
};

use crate::harness::{TWILIO_SID, TWILIO_TOKEN};
use crate::{db_test, done, import, twilio_connection, twilio_org};

/// The (kind, id) of every change after `after`, checking that versions follow one another.
async fn changes_since(registry: &Registry, after: i64) -> BTreeSet<(RouteChangeKind, String)> {
    match registry
        .route_changes_since(after, 1_000)
        .await
        .expect("changes")
    {
        RouteChanges::Listed { version, changes } => {
            let versions: Vec<i64> = changes.iter().map(|c| c.version).collect();
            let expected: Vec<i64> = (after + 1..=version).collect();
            assert_eq!(versions, expected, "one version per change, none missing");
            changes.into_iter().map(|c| (c.kind, c.id)).collect()
        }
        RouteChanges::Lost { .. } => panic!("changes after {after} lost"),
    }
}

fn bot() -> NewAgent {
    NewAgent {
        name: "bot".into(),
        target: AgentTarget::MediaStream("wss://agents.example/s".into()),
        fallback_number: None,
        max_concurrent_calls: None,
    }
}

db_test!(every_route_change_is_listed_once_in_order, |env| {
    let registry = &env.registry;
    let (org, conn) = twilio_org(registry, "Acme").await;
    let agent = registry.create_agent(&org, bot()).await.expect("agent");
    let first = done(
        registry
            .import_number(
                &org,
                import(&conn, "+14155550101", WebhookMode::OutboundOnly),
            )
            .await
            .expect("import"),
    );
    let second = done(
        registry
            .import_number(
                &org,
                import(&conn, "+14155550100", WebhookMode::OutboundOnly),
            )
            .await
            .expect("import"),
    );
    let number = |id: &str| (RouteChangeKind::Number, id.to_owned());

    // Calls on a number (its last-call time) change no route.
    let start = registry.route_version().await.expect("version");
    for call_id in ["CA1", "CA2"] {
        registry
            .answer_inbound_call(
                &InboundCall {
                    provider: Provider::Twilio,
                    carrier_call_id: call_id,
                    number: &first,
                    agent: None,
                    status: "ringing",
                    forwarded: None,
                    idempotency_key: call_id,
                },
                |_| "<Response/>".to_owned(),
            )
            .await
            .expect("answer");
    }
    registry.settle_inbound_calls().await;
    let recorded = registry
        .number(&org, &first.id)
        .await
        .expect("number")
        .last_call_at;
    assert!(recorded.is_some(), "the calls were written");
    assert!(changes_since(registry, start).await.is_empty());

    // A number renamed, an agent assigned: one change each, for that number only.
    let at = registry.route_version().await.expect("version");
    registry
        .rename_number(&org, &first.id, Some("lobby"))
        .await
        .expect("rename");
    registry
        .assign_agent(&org, &second.id, Some(&agent.id))
        .await
        .expect("assign");
    assert_eq!(
        changes_since(registry, at).await,
        BTreeSet::from([number(&first.id), number(&second.id)])
    );

    // The agent changed, the connection's credentials rotated.
    let at = registry.route_version().await.expect("version");
    let mut renamed = bot();
    renamed.name = "bot 2".into();
    registry
        .update_agent(&org, &agent.id, renamed)
        .await
        .expect("update agent");
    registry
        .rotate_credentials(
            &org,
            &conn.id,
            twilio_connection("main twilio", TWILIO_SID, TWILIO_TOKEN).credentials,
        )
        .await
        .expect("rotate");
    assert_eq!(
        changes_since(registry, at).await,
        BTreeSet::from([
            (RouteChangeKind::Agent, agent.id.clone()),
            (RouteChangeKind::Connection, conn.id.clone()),
        ])
    );

    // A number removed, an agent deleted (which unassigns it from its number).
    let at = registry.route_version().await.expect("version");
    registry
        .remove_number(&org, &first.id)
        .await
        .expect("remove");
    registry
        .delete_agent(&org, &agent.id)
        .await
        .expect("delete agent");
    let removed = changes_since(registry, at).await;
    assert!(removed.contains(&number(&first.id)), "{removed:?}");
    assert!(
        removed.contains(&(RouteChangeKind::Agent, agent.id.clone())),
        "{removed:?}"
    );
    assert!(
        removed
            .iter()
            .all(|(_, id)| [&first.id, &second.id, &agent.id].contains(&id)),
        "{removed:?}"
    );

    // Another instance on the same database reads the same log.
    let other = env.reopen().await;
    assert_eq!(changes_since(&other, at).await, removed);
    assert_eq!(
        other.route_version().await.expect("version"),
        registry.route_version().await.expect("version")
    );

    // More changes than asked for, or changes pruned: start over at the current version.
    let now = registry.route_version().await.expect("version");
    assert_eq!(
        registry.route_changes_since(start, 1).await.expect("read"),
        RouteChanges::Lost { version: now }
    );
    assert_eq!(
        registry
            .prune_route_changes(Duration::from_secs(3_600))
            .await
            .expect("prune"),
        0,
        "nothing is an hour old"
    );
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert!(
        registry
            .prune_route_changes(Duration::ZERO)
            .await
            .expect("prune")
            > 0
    );
    assert_eq!(
        registry
            .route_changes_since(start, 1_000)
            .await
            .expect("read"),
        RouteChanges::Lost { version: now }
    );
    assert_eq!(
        registry
            .route_changes_since(now, 1_000)
            .await
            .expect("read"),
        RouteChanges::Listed {
            version: now,
            changes: Vec::new()
        }
    );
});
