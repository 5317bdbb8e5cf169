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

/// The index `name` of the ids of `table`'s rows whose `limit` is set.
fn limited(
    name: &str,
    table: impl IntoIden,
    id: impl IntoIden,
    limit: impl IntoIden,
) -> IndexCreateStatement {
    Index::create()
        .name(name)
        .table(table)
        .col(id)
        .cond_where(Expr::col(limit).is_not_null())
        .if_not_exists()
        .to_owned()
}

// async-trait's expansion cannot take `SchemaManager<'_>` in the signature.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(limited(
                AGENTS_INDEX,
                Agents::Table,
                Agents::Id,
                Agents::MaxConcurrentCalls,
            ))
            .await?;
        manager
            .create_index(limited(
                NUMBERS_INDEX,
                Numbers::Table,
                Numbers::Id,
                Numbers::MaxConcurrentCalls,
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, table) in [
            (NUMBERS_INDEX, Numbers::Table.into_iden()),
            (AGENTS_INDEX, Agents::Table.into_iden()),
        ] {
            manager
                .drop_index(Index::drop().name(name).table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
