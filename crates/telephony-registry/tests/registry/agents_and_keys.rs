//! Organizations, API keys and agents.

use sea_orm::{FromQueryResult, Statement};
use telephony_registry::{AgentTarget, NewAgent, RegistryError};
use telephony_vault::SecretString;

use crate::db_test;

fn agent(target: AgentTarget) -> NewAgent {
    NewAgent {
        name: "support".to_owned(),
        target,
        fallback_number: None,
        max_concurrent_calls: Some(2),
    }
}

#[derive(Debug, FromQueryResult)]
struct KeyColumns {
    key_hash: String,
    prefix: String,
}

db_test!(
    an_api_key_authenticates_its_organization_until_revoked,
    |env| {
        let registry = &env.registry;
        let org = registry.create_organization("Acme").await.expect("org");
        let (info, key) = registry.create_api_key(&org.id, "ci").await.expect("key");
        assert!(key.expose().starts_with("tgk_"));
        assert_eq!(
            registry.authenticate_api_key(&key).await.expect("auth"),
            org.id
        );

        // Only a hash is stored: the key is in no column.
        let rows = KeyColumns::find_by_statement(Statement::from_string(
            env.db.get_database_backend(),
            "SELECT key_hash, prefix FROM api_keys",
        ))
        .all(&env.db)
        .await
        .expect("rows");
        assert_eq!(rows.len(), 1);
        assert_ne!(rows[0].key_hash, key.expose());
        assert!(!rows[0].key_hash.contains(key.expose()));
        assert!(key.expose().starts_with(&rows[0].prefix));
        assert!(rows[0].prefix.len() < key.expose().len() / 2);

        registry
            .revoke_api_key(&org.id, &info.id)
            .await
            .expect("revoke");
        let error = registry.authenticate_api_key(&key).await.unwrap_err();
        assert_eq!(error.code(), "unauthorized");
        assert!(
            registry.list_api_keys(&org.id).await.expect("list")[0]
                .revoked_at
                .is_some()
        );
    }
);

db_test!(an_unknown_key_or_another_orgs_key_id_is_refused, |env| {
    let registry = &env.registry;
    let acme = registry.create_organization("Acme").await.expect("org");
    let other = registry.create_organization("Other").await.expect("org");
    let (info, _) = registry.create_api_key(&acme.id, "ci").await.expect("key");
    let error = registry
        .authenticate_api_key(&SecretString::new("tgk_not-a-key"))
        .await
        .unwrap_err();
    assert_eq!(error.code(), "unauthorized");
    let error = registry
        .revoke_api_key(&other.id, &info.id)
        .await
        .unwrap_err();
    assert_eq!(error.code(), "not_found");
    let error = registry.create_organization("  ").await.unwrap_err();
    assert_eq!(error.code(), "invalid_request");
});

db_test!(
    agents_take_a_stream_url_or_a_sip_uri_and_stay_in_their_org,
    |env| {
        let registry = &env.registry;
        let acme = registry.create_organization("Acme").await.expect("org");
        let other = registry.create_organization("Other").await.expect("org");
        let stream = registry
            .create_agent(
                &acme.id,
                agent(AgentTarget::MediaStream("wss://agents.example/s".into())),
            )
            .await
            .expect("stream agent");
        assert_eq!(stream.max_concurrent_calls, Some(2));
        registry
            .create_agent(
                &acme.id,
                agent(AgentTarget::Sip("sip:bot@agents.example".into())),
            )
            .await
            .expect("sip agent");
        assert_eq!(registry.list_agents(&acme.id).await.expect("list").len(), 2);
        assert!(
            registry
                .list_agents(&other.id)
                .await
                .expect("list")
                .is_empty()
        );

        let bad = registry
            .create_agent(&acme.id, agent(AgentTarget::MediaStream("http://x".into())))
            .await
            .unwrap_err();
        assert_eq!(bad.code(), "invalid_request");
        let bad = registry
            .create_agent(
                &acme.id,
                NewAgent {
                    fallback_number: Some("555-1234".into()),
                    ..agent(AgentTarget::Sip("sip:bot@agents.example".into()))
                },
            )
            .await
            .unwrap_err();
        assert!(matches!(bad, RegistryError::InvalidPhoneNumber));
        let hidden = registry.agent(&other.id, &stream.id).await.unwrap_err();
        assert_eq!(hidden.code(), "not_found");

        registry
            .delete_agent(&acme.id, &stream.id)
            .await
            .expect("delete");
        assert_eq!(registry.list_agents(&acme.id).await.expect("list").len(), 1);
    }
);
