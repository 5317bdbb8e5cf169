//! End-to-end test calls of a number: the gateway places a short call from the number to
//! itself through the carrier account that owns it (the organization's own connection for an
//! imported number, the platform's subaccount for a managed one; never another), and the
//! inbound leg, arriving at the number's voice webhook, is recognised and recorded here.
//!
//! Everything is in the `test_calls` table, so the instance that placed the call and the one
//! the carrier's webhook reaches need not be the same: the placing request polls the row.

use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, EntityTrait, QueryFilter,
    QueryOrder, sea_query::Expr,
};
use serde::Serialize;
use telephony_carrier::{CallTarget, E164, OutboundCall, Provider};

use crate::error::{RegistryError, Result};
use crate::registry::{Registry, Scope, new_id, now, provider_of};

pub(crate) mod test_call {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "test_calls")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub org_id: String,
        pub number_id: String,
        pub e164: String,
        pub provider: String,
        pub carrier_call_id: Option<String>,
        pub state: String,
        pub error: Option<String>,
        pub agent_id: Option<String>,
        pub route: Option<String>,
        pub checks_ms: Option<i64>,
        pub place_ms: Option<i64>,
        pub reach_ms: Option<i64>,
        pub route_ms: Option<i64>,
        pub created_at: DateTimeUtc,
        pub placed_at: Option<DateTimeUtc>,
        pub reached_at: Option<DateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}
    impl ActiveModelBehavior for ActiveModel {}
}

/// How long after it was started a test call's inbound leg is still recognised.
const PENDING_FOR: chrono::Duration = chrono::Duration::seconds(120);

/// How long after a test call's leg reached the gateway a webhook for it is still taken as the
/// carrier's retry of that leg (carriers retry within their webhook timeout, 15 s at Twilio):
/// after it, a call From = To on the number is an ordinary call again.
const RETRIES_FOR: chrono::Duration = chrono::Duration::seconds(30);

/// Where a test call is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TestCallState {
    /// The configuration checks failed: no call was placed.
    NotReady,
    /// The call is being placed.
    Placing,
    /// The carrier accepted the call; its inbound leg has not reached the gateway (yet).
    Placed,
    /// The inbound leg reached the gateway's webhook and was routed.
    Reached,
    /// The carrier refused or failed to place the call.
    Failed,
}

impl TestCallState {
    /// The stored and JSON spelling.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotReady => "not_ready",
            Self::Placing => "placing",
            Self::Placed => "placed",
            Self::Reached => "reached",
            Self::Failed => "failed",
        }
    }

    fn parse(text: &str) -> Result<Self> {
        Ok(match text {
            "not_ready" => Self::NotReady,
            "placing" => Self::Placing,
            "placed" => Self::Placed,
            "reached" => Self::Reached,
            "failed" => Self::Failed,
            other => {
                return Err(RegistryError::Corrupt(format!(
                    "unknown test call state {other:?}"
                )));
            }
        })
    }
}

/// A test call of a number and what it found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TestCall {
    /// Its id.
    pub id: String,
    /// The organization.
    pub org_id: String,
    /// The number tested.
    pub number_id: String,
    /// The number, E.164.
    pub e164: String,
    /// The carrier it was placed through.
    pub provider: Provider,
    /// The carrier's id of the placed call.
    pub carrier_call_id: Option<String>,
    /// Where it is.
    pub state: TestCallState,
    /// The stable error code when it failed (`carrier_unavailable`, ...) or was not ready.
    pub error: Option<String>,
    /// The agent the inbound leg was routed to (none when the number has no agent).
    pub agent_id: Option<String>,
    /// What routing decided: `agent` or `no_agent`.
    pub route: Option<String>,
    /// How long the configuration checks took, in milliseconds.
    pub checks_ms: Option<u64>,
    /// How long the carrier took to accept the call, in milliseconds.
    pub place_ms: Option<u64>,
    /// From the carrier's acceptance to the webhook reaching the gateway, in milliseconds.
    pub reach_ms: Option<u64>,
    /// How long the gateway took to route the inbound leg, in milliseconds.
    pub route_ms: Option<u64>,
    /// When it was started.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// When the inbound leg reached the gateway.
    pub reached_at: Option<chrono::DateTime<chrono::Utc>>,
}

fn ms(value: Option<i64>) -> Option<u64> {
    value.and_then(|v| u64::try_from(v).ok())
}

fn stored_ms(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

fn from_row(row: test_call::Model) -> Result<TestCall> {
    let provider = match row.provider.as_str() {
        "twilio" => Provider::Twilio,
        "telnyx" => Provider::Telnyx,
        other => {
            return Err(RegistryError::Corrupt(format!(
                "unknown provider {other:?}"
            )));
        }
    };
    Ok(TestCall {
        id: row.id,
        org_id: row.org_id,
        number_id: row.number_id,
        e164: row.e164,
        provider,
        carrier_call_id: row.carrier_call_id,
        state: TestCallState::parse(&row.state)?,
        error: row.error,
        agent_id: row.agent_id,
        route: row.route,
        checks_ms: ms(row.checks_ms),
        place_ms: ms(row.place_ms),
        reach_ms: ms(row.reach_ms),
        route_ms: ms(row.route_ms),
        created_at: row.created_at,
        reached_at: row.reached_at,
    })
}

impl Registry {
    /// Starts a test call of the organization's number: records it with the time its
    /// configuration checks took. When `ready` is false (a check failed), the test ends there,
    /// `not_ready`, and nothing is placed.
    ///
    /// # Errors
    /// [`RegistryError::NotFound`]; [`RegistryError::Database`].
    pub async fn start_test_call(
        &self,
        org_id: &str,
        number_id: &str,
        ready: bool,
        checks: std::time::Duration,
    ) -> Result<TestCall> {
        let number = self.number_row(org_id, number_id).await?;
        let conn = self.connection_row(org_id, &number.connection_id).await?;
        let provider = provider_of(&conn)?;
        // One test at a time per number: a second one's leg could not be told from the first's.
        let since = now().checked_sub_signed(PENDING_FOR).unwrap_or_default();
        let running = test_call::Entity::find()
            .filter(test_call::Column::NumberId.eq(number.id.as_str()))
            .filter(test_call::Column::CreatedAt.gte(since))
            .filter(test_call::Column::State.is_in([
                TestCallState::Placing.as_str(),
                TestCallState::Placed.as_str(),
            ]))
            .one(&self.db)
            .await?;
        if ready && running.is_some() {
            return Err(RegistryError::Conflict(
                "a test call of this number is in progress".into(),
            ));
        }
        let row = test_call::ActiveModel {
            id: Set(new_id()),
            org_id: Set(org_id.to_owned()),
            number_id: Set(number.id.clone()),
            e164: Set(number.e164.clone()),
            provider: Set(provider.as_str().to_owned()),
            carrier_call_id: Set(None),
            state: Set(if ready {
                TestCallState::Placing
            } else {
                TestCallState::NotReady
            }
            .as_str()
            .to_owned()),
            error: Set((!ready).then(|| "number_not_ready".to_owned())),
            agent_id: Set(None),
            route: Set(None),
            checks_ms: Set(Some(stored_ms(checks))),
            place_ms: Set(None),
            reach_ms: Set(None),
            route_ms: Set(None),
            created_at: Set(now()),
            placed_at: Set(None),
            reached_at: Set(None),
        }
        .insert(&self.db)
        .await?;
        from_row(row)
    }

    /// Places a started test call through the carrier account that owns the number (audited):
    /// from the number to itself, the callee's instructions fetched from `answer_url` (a short
    /// message, then hang up). A carrier failure marks the test `failed` with the error's code
    /// and is returned; no other account is tried.
    ///
    /// # Errors
    /// [`RegistryError::NotFound`]; [`RegistryError::Conflict`] when the test is not being
    /// placed; a carrier error.
    pub async fn place_test_call(
        &self,
        org_id: &str,
        test_id: &str,
        answer_url: &str,
    ) -> Result<TestCall> {
        let row = self.test_call_row(org_id, test_id).await?;
        if row.state != TestCallState::Placing.as_str() {
            return Err(RegistryError::Conflict(
                "the test call is not being placed".into(),
            ));
        }
        let number = self.number_row(org_id, &row.number_id).await?;
        let conn = self.connection_row(org_id, &number.connection_id).await?;
        let carrier = self.carrier_of(&conn)?;
        let e164 = E164::parse(&number.e164)
            .map_err(|_| RegistryError::Corrupt("a stored number is not E.164".into()))?;
        let call = OutboundCall {
            from: e164.clone(),
            to: e164,
            instructions: CallTarget::Url {
                url: answer_url.to_owned(),
            },
            status_callback: None,
        };
        let scope = Scope {
            org_id,
            connection_id: &conn.id,
            number: Some(&number.e164),
            live: true,
        };
        let started = std::time::Instant::now();
        let placed = self
            .audited(&scope, "place_test_call", true, carrier.place_call(&call))
            .await;
        let took = stored_ms(started.elapsed());
        let mut active: test_call::ActiveModel = row.into();
        active.place_ms = Set(Some(took));
        match placed {
            Ok(info) => {
                active.state = Set(TestCallState::Placed.as_str().to_owned());
                active.carrier_call_id = Set(Some(info.call_id));
                active.placed_at = Set(Some(now()));
                // The webhook may have recorded the inbound leg already: only a test still
                // being placed moves to `placed`.
                let updated = test_call::Entity::update_many()
                    .set(active)
                    .filter(test_call::Column::Id.eq(test_id))
                    .filter(test_call::Column::State.eq(TestCallState::Placing.as_str()))
                    .exec(&self.db)
                    .await?;
                if updated.rows_affected == 0 {
                    // Reached first: keep what the webhook wrote, add the carrier's part.
                    let row = self.test_call_row(org_id, test_id).await?;
                    let mut active: test_call::ActiveModel = row.into();
                    active.place_ms = Set(Some(took));
                    active.update(&self.db).await?;
                }
                self.test_call(org_id, test_id).await
            }
            Err(error) => {
                let error = RegistryError::from_carrier(&error);
                active.state = Set(TestCallState::Failed.as_str().to_owned());
                active.error = Set(Some(error.code().to_owned()));
                active.update(&self.db).await?;
                Err(error)
            }
        }
    }

    /// The test call of `e164` started in the last two minutes and placed (or being placed, or
    /// reached in the last 30 seconds: a carrier's retry of the webhook is the same leg), if
    /// any: the voice webhooks ask only when a call's `From` equals its `To`.
    ///
    /// # Errors
    /// [`RegistryError::Database`].
    pub async fn pending_test_call(&self, e164: &str) -> Result<Option<TestCall>> {
        let since = now().checked_sub_signed(PENDING_FOR).unwrap_or_default();
        let retried_since = now().checked_sub_signed(RETRIES_FOR).unwrap_or_default();
        test_call::Entity::find()
            .filter(test_call::Column::E164.eq(e164))
            .filter(test_call::Column::CreatedAt.gte(since))
            .filter(
                Condition::any()
                    .add(test_call::Column::State.is_in([
                        TestCallState::Placing.as_str(),
                        TestCallState::Placed.as_str(),
                    ]))
                    .add(
                        Condition::all()
                            .add(test_call::Column::State.eq(TestCallState::Reached.as_str()))
                            .add(test_call::Column::ReachedAt.gte(retried_since)),
                    ),
            )
            .order_by_desc(test_call::Column::CreatedAt)
            .one(&self.db)
            .await?
            .map(from_row)
            .transpose()
    }

    /// Records that a test call's inbound leg reached the gateway and where routing sent it
    /// (`route` is `agent` or `no_agent`), with the time routing took. Only the first webhook
    /// of a test counts (a carrier retry changes nothing). Returns whether this one counted.
    ///
    /// # Errors
    /// [`RegistryError::Database`].
    pub async fn record_test_call_reached(
        &self,
        test_id: &str,
        agent_id: Option<&str>,
        route: &str,
        routing: std::time::Duration,
    ) -> Result<bool> {
        let Some(row) = test_call::Entity::find_by_id(test_id.to_owned())
            .one(&self.db)
            .await?
        else {
            return Ok(false);
        };
        let at = now();
        let since = row.placed_at.unwrap_or(row.created_at);
        let reach = (at - since).num_milliseconds().max(0);
        let updated = test_call::Entity::update_many()
            .col_expr(
                test_call::Column::State,
                Expr::value(TestCallState::Reached.as_str()),
            )
            .col_expr(test_call::Column::AgentId, Expr::value(agent_id))
            .col_expr(test_call::Column::Route, Expr::value(route))
            .col_expr(test_call::Column::ReachMs, Expr::value(Some(reach)))
            .col_expr(
                test_call::Column::RouteMs,
                Expr::value(Some(stored_ms(routing))),
            )
            .col_expr(test_call::Column::ReachedAt, Expr::value(Some(at)))
            .filter(test_call::Column::Id.eq(test_id))
            .filter(test_call::Column::State.is_in([
                TestCallState::Placing.as_str(),
                TestCallState::Placed.as_str(),
            ]))
            .exec(&self.db)
            .await?;
        Ok(updated.rows_affected == 1)
    }

    /// One test call of the organization.
    ///
    /// # Errors
    /// [`RegistryError::NotFound`]; [`RegistryError::Database`].
    pub async fn test_call(&self, org_id: &str, test_id: &str) -> Result<TestCall> {
        from_row(self.test_call_row(org_id, test_id).await?)
    }

    async fn test_call_row(&self, org_id: &str, test_id: &str) -> Result<test_call::Model> {
        test_call::Entity::find_by_id(test_id.to_owned())
            .filter(test_call::Column::OrgId.eq(org_id))
            .one(&self.db)
            .await?
            .ok_or(RegistryError::NotFound("test call"))
    }
}
