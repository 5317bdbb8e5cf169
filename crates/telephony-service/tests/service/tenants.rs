//! Tenant isolation, for every operation of `/openapi.json` (iterated, so an endpoint added
//! later is covered without editing this file): another organization's ids answer 404 and never
//! data, lists show only the caller's rows, a missing or unknown key answers 401, and a revoked
//! key stops working at once.

use serde_json::{Value, json};

use super::support::Gateway;

/// One operation of the OpenAPI document.
#[derive(Debug, Clone)]
struct Operation {
    method: String,
    /// The path template, `{...}` parameters unsubstituted.
    path: String,
    has_body: bool,
}

async fn operations(gw: &Gateway) -> Vec<Operation> {
    let (status, doc) = gw.call("GET", "/openapi.json", None, None).await;
    assert_eq!(status, 200, "{doc}");
    let mut operations = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            if !["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                continue;
            }
            operations.push(Operation {
                method: method.to_uppercase(),
                path: path.clone(),
                has_body: operation.get("requestBody").is_some(),
            });
        }
    }
    assert!(
        operations.len() >= 19,
        "the document lists {} operations",
        operations.len()
    );
    operations
}

/// What organization A owns, by the collection a path parameter names.
struct Owned {
    connection: String,
    number: String,
    agent: String,
}

impl Owned {
    /// The ids to put in `path`'s parameters: the kind its collection names, or every id when
    /// the collection is one this test does not know yet (a new endpoint).
    fn candidates(&self, path: &str) -> Vec<String> {
        let collection = path.trim_start_matches("/v1/").split('/').next();
        match collection {
            Some("carriers") => vec![self.connection.clone()],
            Some("numbers") => vec![self.number.clone()],
            Some("agents") => vec![self.agent.clone()],
            _ => vec![
                self.connection.clone(),
                self.number.clone(),
                self.agent.clone(),
            ],
        }
    }

    fn all(&self) -> [&str; 3] {
        [&self.connection, &self.number, &self.agent]
    }
}

/// `path` with every `{param}` replaced by `id`.
fn fill(path: &str, id: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find('}')
            .map_or(rest.len(), |e| start + e + 1);
        out.push_str(id);
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// A valid body for the operations this test knows.
fn known_body(op: &Operation) -> Option<Value> {
    match (op.method.as_str(), op.path.as_str()) {
        ("PUT", "/v1/agents/{id}") => {
            Some(json!({"name": "intruder", "target": "wss://intruder.example.com/media"}))
        }
        ("PATCH", "/v1/numbers/{id}") => Some(json!({"nickname": "intruder"})),
        ("POST", "/v1/calls/{id}/transfer") => Some(json!({"to": "+14155550199"})),
        ("POST", "/v1/numbers/{id}/forwarded-from") => {
            Some(json!({"business_number": "+12125550100"}))
        }
        ("POST", "/v1/carriers/{id}/credentials") => Some(json!({
            "provider": "twilio", "account_sid": super::support::TWILIO_SID,
            "auth_token": super::support::TWILIO_TOKEN,
        })),
        _ => None,
    }
}

/// A body plausible enough to get past validation to the ownership check.
fn body_for(op: &Operation, owned: &Owned) -> Option<Value> {
    op.has_body.then(|| {
        known_body(op).unwrap_or_else(|| {
            json!({
                "name": "intruder", "target": "wss://intruder.example.com/media",
                "nickname": "intruder", "agent_id": owned.agent, "connection_id": owned.connection,
                "auth_token": "intruder-token-0000000000000000", "e164": "+14155550101",
                "to": "+14155550101", "from": "+14155550101", "mode": "outbound_only",
            })
        })
    })
}

async fn setup(gw: &Gateway) -> (String, Owned, String) {
    let (_, key_a) = gw.org("tenant-a").await;
    let (_, key_b) = gw.org("tenant-b").await;
    let connection = gw.connect_twilio(&key_a).await;
    let agent = gw.agent(&key_a, "wss://agents.example.com/a").await;
    let (status, body) = gw
        .call(
            "POST",
            "/v1/numbers/import",
            Some(&key_a),
            Some(json!({"connection_id": connection, "e164": "+14155550101", "agent_id": agent})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let number = body["number"]["id"].as_str().expect("id").to_owned();
    (
        key_a,
        Owned {
            connection,
            number,
            agent,
        },
        key_b,
    )
}

#[tokio::test]
async fn another_organizations_ids_answer_404_on_every_operation_and_lists_show_nothing_of_it() {
    let gw = Gateway::start().await;
    let (key_a, owned, key_b) = setup(&gw).await;
    let operations = operations(&gw).await;
    let (mut requests, mut not_found, mut lists) = (0, 0, 0);
    let mut other_4xx = Vec::new();
    for op in &operations {
        let templated = op.path.contains('{');
        let paths: Vec<String> = if templated {
            owned
                .candidates(&op.path)
                .iter()
                .map(|id| fill(&op.path, id))
                .collect()
        } else {
            // Filters naming A's objects must not reveal them either.
            vec![format!(
                "{}?connection_id={}&number_id={}&agent_id={}",
                op.path, owned.connection, owned.number, owned.agent
            )]
        };
        for path in paths {
            requests += 1;
            let (status, body) = gw
                .call(&op.method, &path, Some(&key_b), body_for(op, &owned))
                .await;
            let text = body.to_string();
            assert!(
                !status.is_server_error(),
                "{} {path}: {status} {text}",
                op.method
            );
            for secret in owned.all().into_iter().chain(["+14155550101", "tenant-a"]) {
                // A's ids may be echoed only in B's own validation message, never as data:
                // a 2xx must not contain them at all.
                if status.is_success() {
                    assert!(
                        !text.contains(secret),
                        "{} {path} showed A's {secret}: {text}",
                        op.method
                    );
                }
            }
            if templated {
                assert!(
                    status.is_client_error(),
                    "{} {path} with another org's id: {status} {text}",
                    op.method
                );
                // Without a body, or with one known to be valid, nothing but the owner can be
                // wrong: exactly 404. A new operation's body may fail validation first (4xx).
                if !op.has_body || known_body(op).is_some() {
                    assert_eq!(status, 404, "{} {path}: {text}", op.method);
                }
                if status == 404 {
                    not_found += 1;
                } else {
                    other_4xx.push(format!("{} {} {status}", op.method, op.path));
                }
            } else if status.is_success() {
                lists += 1;
            }
        }
    }
    // The ids really are A's: A still sees all of them, unchanged by B's attempts.
    for (path, id) in [
        (
            format!("/v1/carriers/{}", owned.connection),
            &owned.connection,
        ),
        (format!("/v1/numbers/{}", owned.number), &owned.number),
        (format!("/v1/agents/{}", owned.agent), &owned.agent),
    ] {
        let (status, body) = gw.call("GET", &path, Some(&key_a), None).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert!(body.to_string().contains(id.as_str()), "{body}");
    }
    let (_, number) = gw
        .call(
            "GET",
            &format!("/v1/numbers/{}", owned.number),
            Some(&key_a),
            None,
        )
        .await;
    assert!(
        !number.to_string().contains("intruder"),
        "B changed A's number: {number}"
    );
    #[allow(clippy::print_stdout)]
    {
        println!(
            "tenants: {} operations, {requests} cross-tenant requests: {not_found} answered 404, \
             {} another 4xx ({other_4xx:?}), {lists} lists without A's data, 0 leaks",
            operations.len(),
            other_4xx.len()
        );
    }
    assert!(not_found > 0, "no operation answered 404");
}

#[tokio::test]
async fn a_missing_unknown_or_malformed_key_answers_401_on_every_operation() {
    let gw = Gateway::start().await;
    let (_, owned, _) = setup(&gw).await;
    let operations = operations(&gw).await;
    let mut requests = 0;
    for op in &operations {
        let path = fill(&op.path, &owned.number);
        for key in [
            None,
            Some("tgk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
            Some(""),
            Some("' OR 1=1 --"),
        ] {
            requests += 1;
            let (status, body) = gw.call(&op.method, &path, key, body_for(op, &owned)).await;
            assert_eq!(status, 401, "{} {path} key {key:?}: {body}", op.method);
        }
    }
    #[allow(clippy::print_stdout)]
    {
        println!("tenants: {requests} requests without a valid key, all 401");
    }
}

#[tokio::test]
async fn a_revoked_key_stops_working_on_every_operation() {
    let gw = Gateway::start().await;
    let (_, owned, _) = setup(&gw).await;
    let org = gw
        .registry
        .authenticate_api_key(&telephony_vault::SecretString::new(
            gw.org("tenant-c").await.1,
        ))
        .await
        .expect("fresh key authenticates");
    let (info, key) = gw
        .registry
        .create_api_key(&org, "doomed")
        .await
        .expect("key");
    let key = key.expose().to_owned();
    let (status, _) = gw.call("GET", "/v1/numbers", Some(&key), None).await;
    assert_eq!(status, 200, "the key works before it is revoked");
    gw.registry
        .revoke_api_key(&org, &info.id)
        .await
        .expect("revoked");
    for op in operations(&gw).await {
        let path = fill(&op.path, &owned.number);
        let (status, body) = gw
            .call(&op.method, &path, Some(&key), body_for(&op, &owned))
            .await;
        assert_eq!(
            status, 401,
            "{} {path} with a revoked key: {body}",
            op.method
        );
    }
}
