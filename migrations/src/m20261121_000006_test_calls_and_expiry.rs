//! End-to-end test calls of a number (`POST /v1/numbers/{id}/test-call`), and indexes on the
//! creation time of idempotency records, which the expiry sweep deletes by age.

use sea_orm_migration::{prelude::*, schema::*};

/// Creates `test_calls` and the `created_at` indexes of `api_idempotency_keys` and
/// `webhook_idempotency`.
#[derive(Debug, DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Organizations {
    Table,
    Id,
}

/// One test call: placed from the number to itself through the carrier account that owns it;
/// the gateway's voice webhook recognises the inbound leg (`From` = `To` = `e164` while a test
/// is pending) and records that it was reached and which agent the call would go to. The
/// durations are milliseconds, each step's own.
#[derive(DeriveIden)]
enum TestCalls {
    Table,
    Id,
    OrgId,
    NumberId,
    E164,
    Provider,
    CarrierCallId,
    State,
    Error,
    AgentId,
    Route,
    ChecksMs,
    PlaceMs,
    ReachMs,
    RouteMs,
    CreatedAt,
    PlacedAt,
    ReachedAt,
}

#[derive(DeriveIden)]
enum ApiIdempotencyKeys {
    Table,
    CreatedAt,
}

#[derive(DeriveIden)]
enum WebhookIdempotency {
    Table,
    CreatedAt,
}

// async-trait's expansion cannot take `SchemaManager<'_>` in the signature.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(TestCalls::Table)
                    .if_not_exists()
                    .col(string(TestCalls::Id).primary_key())
                    .col(string(TestCalls::OrgId))
                    .col(string(TestCalls::NumberId))
                    .col(string(TestCalls::E164))
                    .col(string(TestCalls::Provider))
                    .col(string_null(TestCalls::CarrierCallId))
                    .col(string(TestCalls::State))
                    .col(string_null(TestCalls::Error))
                    .col(string_null(TestCalls::AgentId))
                    .col(string_null(TestCalls::Route))
                    .col(big_integer_null(TestCalls::ChecksMs))
                    .col(big_integer_null(TestCalls::PlaceMs))
                    .col(big_integer_null(TestCalls::ReachMs))
                    .col(big_integer_null(TestCalls::RouteMs))
                    .col(timestamp_with_time_zone(TestCalls::CreatedAt))
                    .col(timestamp_with_time_zone_null(TestCalls::PlacedAt))
                    .col(timestamp_with_time_zone_null(TestCalls::ReachedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_test_calls_org")
                            .from(TestCalls::Table, TestCalls::OrgId)
                            .to(Organizations::Table, Organizations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // The webhook looks up a pending test by number: one indexed probe, only when From = To.
        manager
            .create_index(
                Index::create()
                    .name("idx_test_calls_e164_created")
                    .table(TestCalls::Table)
                    .col(TestCalls::E164)
                    .col(TestCalls::CreatedAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_api_idempotency_keys_created")
                    .table(ApiIdempotencyKeys::Table)
                    .col(ApiIdempotencyKeys::CreatedAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_webhook_idempotency_created")
                    .table(WebhookIdempotency::Table)
                    .col(WebhookIdempotency::CreatedAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, table) in [
            (
                "idx_webhook_idempotency_created",
                WebhookIdempotency::Table.into_iden(),
            ),
            (
                "idx_api_idempotency_keys_created",
                ApiIdempotencyKeys::Table.into_iden(),
            ),
        ] {
            manager
                .drop_index(Index::drop().name(name).table(table).if_exists().to_owned())
                .await?;
        }
        manager
            .drop_table(Table::drop().table(TestCalls::Table).if_exists().to_owned())
            .await
    }
}
