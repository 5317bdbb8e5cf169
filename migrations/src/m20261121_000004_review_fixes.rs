//! Indexes for admission control: every inbound call counts the active calls of its agent (and
//! diagnostics those of a number), and the periodic sweep deletes the calls older than the
//! maximum call age.

use sea_orm_migration::prelude::*;

/// Creates the `active_calls` indexes on agent, number and start time.
#[derive(Debug, DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ActiveCalls {
    Table,
    AgentId,
    NumberId,
    StartedAt,
}

const AGENT: &str = "ix_active_calls_agent";
const NUMBER: &str = "ix_active_calls_number";
const STARTED: &str = "ix_active_calls_started_at";

// async-trait's expansion cannot take `SchemaManager<'_>` in the signature.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Counting an agent's (or a number's) young calls reads only the index.
        for (name, column) in [
            (AGENT, ActiveCalls::AgentId),
            (NUMBER, ActiveCalls::NumberId),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(ActiveCalls::Table)
                        .col(column)
                        .col(ActiveCalls::StartedAt)
                        .if_not_exists()
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name(STARTED)
                    .table(ActiveCalls::Table)
                    .col(ActiveCalls::StartedAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for name in [STARTED, NUMBER, AGENT] {
            manager
                .drop_index(
                    Index::drop()
                        .name(name)
                        .table(ActiveCalls::Table)
                        .if_exists()
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
