//! Live-call control: what the gateway knows about the outbound calls it places, and the
//! `Idempotency-Key`s of the REST API.

use sea_orm_migration::{prelude::*, schema::*};

/// Creates `outbound_calls` and `api_idempotency_keys`.
#[derive(Debug, DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum CallRecords {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Organizations {
    Table,
    Id,
}

/// One row per outbound call placed through the API, beside its call record: the number it is
/// placed from, the connection (carrier account) it is placed with and the agent it goes to.
#[derive(DeriveIden)]
enum OutboundCalls {
    Table,
    CallRecordId,
    OrgId,
    NumberId,
    ConnectionId,
    AgentId,
    Destination,
    CreatedAt,
}

/// The first answer to each `Idempotency-Key` of an organization. `response_status` is null
/// while the first request is still running.
#[derive(DeriveIden)]
enum ApiIdempotencyKeys {
    Table,
    OrgId,
    IdempotencyKey,
    Fingerprint,
    ResponseStatus,
    ResponseBody,
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
                    .table(OutboundCalls::Table)
                    .if_not_exists()
                    .col(string(OutboundCalls::CallRecordId).primary_key())
                    .col(string(OutboundCalls::OrgId))
                    .col(string(OutboundCalls::NumberId))
                    .col(string(OutboundCalls::ConnectionId))
                    .col(string_null(OutboundCalls::AgentId))
                    .col(string(OutboundCalls::Destination))
                    .col(timestamp_with_time_zone(OutboundCalls::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_outbound_calls_call_record")
                            .from(OutboundCalls::Table, OutboundCalls::CallRecordId)
                            .to(CallRecords::Table, CallRecords::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ApiIdempotencyKeys::Table)
                    .if_not_exists()
                    .col(string(ApiIdempotencyKeys::OrgId))
                    .col(string(ApiIdempotencyKeys::IdempotencyKey))
                    .col(string(ApiIdempotencyKeys::Fingerprint))
                    .col(integer_null(ApiIdempotencyKeys::ResponseStatus))
                    .col(text_null(ApiIdempotencyKeys::ResponseBody))
                    .col(timestamp_with_time_zone(ApiIdempotencyKeys::CreatedAt))
                    // The primary key is what makes the claim insert-if-absent: two instances
                    // racing on one key cannot both insert it.
                    .primary_key(
                        Index::create()
                            .col(ApiIdempotencyKeys::OrgId)
                            .col(ApiIdempotencyKeys::IdempotencyKey),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_api_idempotency_keys_org")
                            .from(ApiIdempotencyKeys::Table, ApiIdempotencyKeys::OrgId)
                            .to(Organizations::Table, Organizations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            ApiIdempotencyKeys::Table.into_iden(),
            OutboundCalls::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
