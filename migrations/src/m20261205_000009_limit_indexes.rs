//! Partial indexes of the agents and numbers that have a limit on concurrent calls.
//!
//! Every group commit of inbound calls asks, for each call, whether its agent or its number
//! has a limit by now. PostgreSQL answers that for a batch by hashing the set of limited agents
//! and numbers, and without these indexes it read the whole `agents` and `numbers` tables to
//! build that set, in every batch: at 1,000 calls a second that was most of the database's
//! time. Few rows have a limit, so these indexes are small, and they change only when a limit
//! is set or removed (not when a call notes its time on its number).

use sea_orm_migration::prelude::*;

/// Adds `ix_agents_limited` and `ix_numbers_limited`.
#[derive(Debug, DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Agents {
    Table,
    Id,
    MaxConcurrentCalls,
}

#[derive(DeriveIden)]
enum Numbers {
    Table,
    Id,
    MaxConcurrentCalls,
}

const AGENTS_INDEX: &str = "ix_agents_limited";
const NUMBERS_INDEX: &str = "ix_numbers_limited";

// async-trait's expansion cannot take `SchemaManager<'_>` in the signature.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name(AGENTS_INDEX)
                    .table(Agents::Table)
                    .col(Agents::Id)
                    .cond_where(Expr::col(Agents::MaxConcurrentCalls).is_not_null())
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(NUMBERS_INDEX)
                    .table(Numbers::Table)
                    .col(Numbers::Id)
                    .cond_where(Expr::col(Numbers::MaxConcurrentCalls).is_not_null())
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(NUMBERS_INDEX)
                    .table(Numbers::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name(AGENTS_INDEX)
                    .table(Agents::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}
