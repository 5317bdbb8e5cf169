//! A per-number limit of concurrent calls: admission control counts a number's active calls
//! against it, as it counts an agent's against the agent's limit. `NULL` is no limit.

use sea_orm_migration::prelude::*;

/// Adds the nullable `numbers.max_concurrent_calls`.
#[derive(Debug, DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Numbers {
    Table,
    MaxConcurrentCalls,
}

// async-trait's expansion cannot take `SchemaManager<'_>` in the signature.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Numbers::Table)
                    .add_column(ColumnDef::new(Numbers::MaxConcurrentCalls).integer().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Numbers::Table)
                    .drop_column(Numbers::MaxConcurrentCalls)
                    .to_owned(),
            )
            .await
    }
}
