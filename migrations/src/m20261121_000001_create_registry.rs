//! The first schema: organizations, API keys, carrier connections, numbers, agents, the audit
//! log, call records, operations in flight, webhook idempotency and active calls.

use sea_orm_migration::{prelude::*, schema::*};

/// Creates every registry table.
#[derive(Debug, DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Organizations {
    Table,
    Id,
    Name,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    Id,
    OrgId,
    Label,
    KeyHash,
    Prefix,
    CreatedAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum Connections {
    Table,
    Id,
    OrgId,
    Name,
    Provider,
    AccountId,
    TexmlAppId,
    Region,
    ApiKeySid,
    AuthSecret,
    ApiKeySecret,
    PublicKey,
    PreviousPublicKey,
    PreviousAuthSecret,
    PreviousAuthExpiresAt,
    Status,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Agents {
    Table,
    Id,
    OrgId,
    Name,
    TargetKind,
    Target,
    FallbackNumber,
    MaxConcurrentCalls,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Numbers {
    Table,
    Id,
    OrgId,
    ConnectionId,
    E164,
    Nickname,
    CarrierId,
    AgentId,
    WebhookMode,
    Status,
    SavedInbound,
    AppliedInbound,
    LastCallAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum AuditLog {
    Table,
    Id,
    OrgId,
    At,
    Action,
    Number,
    ConnectionId,
    ChangedAccount,
    Outcome,
}

#[derive(DeriveIden)]
enum CallRecords {
    Table,
    Id,
    OrgId,
    Provider,
    CarrierCallId,
    Number,
    Direction,
    Status,
    DurationSecs,
    StartedAt,
    EndedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Operations {
    Table,
    Id,
    OrgId,
    Kind,
    Number,
    ConnectionId,
    Step,
    Payload,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum WebhookIdempotency {
    Table,
    Provider,
    IdempotencyKey,
    ResponseBody,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ActiveCalls {
    Table,
    Provider,
    CarrierCallId,
    OrgId,
    NumberId,
    AgentId,
    StartedAt,
}

fn fk(
    name: &str,
    from: (impl IntoIden, impl IntoIden),
    to: (impl IntoIden, impl IntoIden),
    on_delete: ForeignKeyAction,
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(name)
        .from(from.0, from.1)
        .to(to.0, to.1)
        .on_delete(on_delete)
        .to_owned()
}

// The trait spells `&SchemaManager` with an elided lifetime; writing `<'_>` here would make the
// lifetime early-bound and no longer match the trait under `async_trait`.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Organizations::Table)
                    .if_not_exists()
                    .col(string(Organizations::Id).primary_key())
                    .col(string(Organizations::Name))
                    .col(timestamp_with_time_zone(Organizations::CreatedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ApiKeys::Table)
                    .if_not_exists()
                    .col(string(ApiKeys::Id).primary_key())
                    .col(string(ApiKeys::OrgId))
                    .col(string(ApiKeys::Label))
                    // Only the SHA-256 of the key is kept; it is unique so lookup is by hash.
                    .col(string_uniq(ApiKeys::KeyHash))
                    .col(string(ApiKeys::Prefix))
                    .col(timestamp_with_time_zone(ApiKeys::CreatedAt))
                    .col(timestamp_with_time_zone_null(ApiKeys::RevokedAt))
                    .foreign_key(&mut fk(
                        "fk_api_keys_org",
                        (ApiKeys::Table, ApiKeys::OrgId),
                        (Organizations::Table, Organizations::Id),
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Connections::Table)
                    .if_not_exists()
                    .col(string(Connections::Id).primary_key())
                    .col(string(Connections::OrgId))
                    .col(string(Connections::Name))
                    .col(string(Connections::Provider))
                    .col(string(Connections::AccountId))
                    .col(string_null(Connections::TexmlAppId))
                    .col(string_null(Connections::Region))
                    .col(string_null(Connections::ApiKeySid))
                    // Vault ciphertexts (versioned, AAD-bound to org, connection and field).
                    .col(text(Connections::AuthSecret))
                    .col(text_null(Connections::ApiKeySecret))
                    .col(text_null(Connections::PublicKey))
                    .col(text_null(Connections::PreviousPublicKey))
                    .col(text_null(Connections::PreviousAuthSecret))
                    .col(timestamp_with_time_zone_null(
                        Connections::PreviousAuthExpiresAt,
                    ))
                    .col(string(Connections::Status))
                    .col(timestamp_with_time_zone(Connections::CreatedAt))
                    .col(timestamp_with_time_zone(Connections::UpdatedAt))
                    .foreign_key(&mut fk(
                        "fk_connections_org",
                        (Connections::Table, Connections::OrgId),
                        (Organizations::Table, Organizations::Id),
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_connections_org_name")
                    .table(Connections::Table)
                    .col(Connections::OrgId)
                    .col(Connections::Name)
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Agents::Table)
                    .if_not_exists()
                    .col(string(Agents::Id).primary_key())
                    .col(string(Agents::OrgId))
                    .col(string(Agents::Name))
                    .col(string(Agents::TargetKind))
                    .col(text(Agents::Target))
                    .col(string_null(Agents::FallbackNumber))
                    .col(integer_null(Agents::MaxConcurrentCalls))
                    .col(timestamp_with_time_zone(Agents::CreatedAt))
                    .foreign_key(&mut fk(
                        "fk_agents_org",
                        (Agents::Table, Agents::OrgId),
                        (Organizations::Table, Organizations::Id),
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Numbers::Table)
                    .if_not_exists()
                    .col(string(Numbers::Id).primary_key())
                    .col(string(Numbers::OrgId))
                    .col(string(Numbers::ConnectionId))
                    // UNIQUE across every organization: the database, not the code, decides
                    // which of two racing imports wins.
                    .col(string_uniq(Numbers::E164))
                    .col(string_null(Numbers::Nickname))
                    .col(string(Numbers::CarrierId))
                    .col(string_null(Numbers::AgentId))
                    .col(string(Numbers::WebhookMode))
                    .col(string(Numbers::Status))
                    .col(text_null(Numbers::SavedInbound))
                    .col(text_null(Numbers::AppliedInbound))
                    .col(timestamp_with_time_zone_null(Numbers::LastCallAt))
                    .col(timestamp_with_time_zone(Numbers::CreatedAt))
                    .col(timestamp_with_time_zone(Numbers::UpdatedAt))
                    .foreign_key(&mut fk(
                        "fk_numbers_org",
                        (Numbers::Table, Numbers::OrgId),
                        (Organizations::Table, Organizations::Id),
                        ForeignKeyAction::Cascade,
                    ))
                    // Restrict: a connection is deleted only after its numbers were released.
                    .foreign_key(&mut fk(
                        "fk_numbers_connection",
                        (Numbers::Table, Numbers::ConnectionId),
                        (Connections::Table, Connections::Id),
                        ForeignKeyAction::Restrict,
                    ))
                    .foreign_key(&mut fk(
                        "fk_numbers_agent",
                        (Numbers::Table, Numbers::AgentId),
                        (Agents::Table, Agents::Id),
                        ForeignKeyAction::SetNull,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_numbers_org")
                    .table(Numbers::Table)
                    .col(Numbers::OrgId)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(AuditLog::Table)
                    .if_not_exists()
                    .col(pk_auto(AuditLog::Id))
                    .col(string(AuditLog::OrgId))
                    .col(timestamp_with_time_zone(AuditLog::At))
                    .col(string(AuditLog::Action))
                    .col(string_null(AuditLog::Number))
                    .col(string_null(AuditLog::ConnectionId))
                    .col(boolean(AuditLog::ChangedAccount))
                    .col(text(AuditLog::Outcome))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_audit_log_org_at")
                    .table(AuditLog::Table)
                    .col(AuditLog::OrgId)
                    .col(AuditLog::At)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(CallRecords::Table)
                    .if_not_exists()
                    .col(string(CallRecords::Id).primary_key())
                    .col(string(CallRecords::OrgId))
                    .col(string(CallRecords::Provider))
                    .col(string(CallRecords::CarrierCallId))
                    .col(string(CallRecords::Number))
                    .col(string(CallRecords::Direction))
                    .col(string(CallRecords::Status))
                    .col(big_integer_null(CallRecords::DurationSecs))
                    .col(timestamp_with_time_zone(CallRecords::StartedAt))
                    .col(timestamp_with_time_zone_null(CallRecords::EndedAt))
                    .col(timestamp_with_time_zone(CallRecords::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_call_records_provider_call")
                    .table(CallRecords::Table)
                    .col(CallRecords::Provider)
                    .col(CallRecords::CarrierCallId)
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Operations::Table)
                    .if_not_exists()
                    .col(string(Operations::Id).primary_key())
                    .col(string(Operations::OrgId))
                    .col(string(Operations::Kind))
                    .col(string_null(Operations::Number))
                    .col(string(Operations::ConnectionId))
                    .col(string(Operations::Step))
                    .col(text(Operations::Payload))
                    .col(timestamp_with_time_zone(Operations::CreatedAt))
                    .col(timestamp_with_time_zone(Operations::UpdatedAt))
                    .to_owned(),
            )
            .await?;

        // At most one operation in flight per number: two admins (or instances) changing the
        // same number at once cannot interleave their carrier calls.
        manager
            .create_index(
                Index::create()
                    .name("ux_operations_number")
                    .table(Operations::Table)
                    .col(Operations::Number)
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(WebhookIdempotency::Table)
                    .if_not_exists()
                    .col(string(WebhookIdempotency::Provider))
                    .col(string(WebhookIdempotency::IdempotencyKey))
                    .col(text(WebhookIdempotency::ResponseBody))
                    .col(timestamp_with_time_zone(WebhookIdempotency::CreatedAt))
                    .primary_key(
                        Index::create()
                            .col(WebhookIdempotency::Provider)
                            .col(WebhookIdempotency::IdempotencyKey),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ActiveCalls::Table)
                    .if_not_exists()
                    .col(string(ActiveCalls::Provider))
                    .col(string(ActiveCalls::CarrierCallId))
                    .col(string(ActiveCalls::OrgId))
                    .col(string(ActiveCalls::NumberId))
                    .col(string_null(ActiveCalls::AgentId))
                    .col(timestamp_with_time_zone(ActiveCalls::StartedAt))
                    .primary_key(
                        Index::create()
                            .col(ActiveCalls::Provider)
                            .col(ActiveCalls::CarrierCallId),
                    )
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Children before parents so foreign keys never block the drop.
        for table in [
            ActiveCalls::Table.into_iden(),
            WebhookIdempotency::Table.into_iden(),
            Operations::Table.into_iden(),
            CallRecords::Table.into_iden(),
            AuditLog::Table.into_iden(),
            Numbers::Table.into_iden(),
            Agents::Table.into_iden(),
            Connections::Table.into_iden(),
            ApiKeys::Table.into_iden(),
            Organizations::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
