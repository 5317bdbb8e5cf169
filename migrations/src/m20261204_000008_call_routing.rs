//! What an inbound call was routed to, on its record: the number it called (`number_id`) and
//! the agent it was connected to (`agent_id`, `NULL` when it reached none or was refused at a
//! limit), and an index on `started_at`.
//!
//! A call that no limit applies to is written as its record alone (no `active_calls` row); when a
//! limit is set later on its agent or its number, the calls in progress are found among the
//! records started within the maximum call age (the `started_at` index, which only ever grows
//! at its end) and counted from then on.

use sea_orm_migration::prelude::*;

/// Adds `call_records.number_id`, `call_records.agent_id` and `ix_call_records_started_at`.
#[derive(Debug, DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum CallRecords {
    Table,
    NumberId,
    AgentId,
    StartedAt,
}

const STARTED_AT_INDEX: &str = "ix_call_records_started_at";

// async-trait's expansion cannot take `SchemaManager<'_>` in the signature.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one thing at a time.
        for column in [CallRecords::NumberId, CallRecords::AgentId] {
            manager
                .alter_table(
                    Table::alter()
                        .table(CallRecords::Table)
                        .add_column(ColumnDef::new(column).string().null())
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name(STARTED_AT_INDEX)
                    .table(CallRecords::Table)
                    .col(CallRecords::StartedAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(STARTED_AT_INDEX)
                    .table(CallRecords::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await?;
        for column in [CallRecords::AgentId, CallRecords::NumberId] {
            manager
                .alter_table(
                    Table::alter()
                        .table(CallRecords::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
