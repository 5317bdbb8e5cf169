//! Managed numbers and call forwarding: the per-organization platform accounts (a Twilio
//! subaccount, the platform's Telnyx account), number purchases in flight, business numbers
//! forwarded to a gateway number, and the forwarded calls seen.

use sea_orm_migration::{prelude::*, schema::*};

/// Creates `managed_accounts`, `managed_orders`, `forwarded_numbers` and `forwarded_calls`.
#[derive(Debug, DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Organizations {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Numbers {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Agents {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum ManagedAccounts {
    Table,
    OrgId,
    Provider,
    ConnectionId,
    State,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ManagedOrders {
    Table,
    Id,
    OrgId,
    ConnectionId,
    Provider,
    E164,
    OrderId,
    Status,
    NumberId,
    ClaimedAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ForwardedNumbers {
    Table,
    Id,
    OrgId,
    NumberId,
    BusinessNumber,
    Nickname,
    AgentId,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ForwardedCalls {
    Table,
    Provider,
    CarrierCallId,
    OrgId,
    NumberId,
    BusinessNumber,
    ForwardedNumberId,
    CreatedAt,
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

// See the first migration for why the lifetime stays elided.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ManagedAccounts::Table)
                    .if_not_exists()
                    .col(string(ManagedAccounts::OrgId))
                    .col(string(ManagedAccounts::Provider))
                    // Empty while `creating`: the (org, provider) key is claimed before the
                    // carrier is asked, so two instances never create two subaccounts.
                    .col(string_null(ManagedAccounts::ConnectionId))
                    .col(string(ManagedAccounts::State))
                    .col(timestamp_with_time_zone(ManagedAccounts::CreatedAt))
                    .col(timestamp_with_time_zone(ManagedAccounts::UpdatedAt))
                    .primary_key(
                        Index::create()
                            .col(ManagedAccounts::OrgId)
                            .col(ManagedAccounts::Provider),
                    )
                    .foreign_key(&mut fk(
                        "fk_managed_accounts_org",
                        (ManagedAccounts::Table, ManagedAccounts::OrgId),
                        (Organizations::Table, Organizations::Id),
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ManagedOrders::Table)
                    .if_not_exists()
                    .col(string(ManagedOrders::Id).primary_key())
                    .col(string(ManagedOrders::OrgId))
                    .col(string(ManagedOrders::ConnectionId))
                    .col(string(ManagedOrders::Provider))
                    .col(string(ManagedOrders::E164))
                    .col(string_null(ManagedOrders::OrderId))
                    .col(string(ManagedOrders::Status))
                    .col(string_null(ManagedOrders::NumberId))
                    .col(timestamp_with_time_zone_null(ManagedOrders::ClaimedAt))
                    .col(timestamp_with_time_zone(ManagedOrders::CreatedAt))
                    .col(timestamp_with_time_zone(ManagedOrders::UpdatedAt))
                    .foreign_key(&mut fk(
                        "fk_managed_orders_org",
                        (ManagedOrders::Table, ManagedOrders::OrgId),
                        (Organizations::Table, Organizations::Id),
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_managed_orders_status")
                    .table(ManagedOrders::Table)
                    .col(ManagedOrders::Status)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ForwardedNumbers::Table)
                    .if_not_exists()
                    .col(string(ForwardedNumbers::Id).primary_key())
                    .col(string(ForwardedNumbers::OrgId))
                    .col(string(ForwardedNumbers::NumberId))
                    .col(string(ForwardedNumbers::BusinessNumber))
                    .col(string_null(ForwardedNumbers::Nickname))
                    .col(string_null(ForwardedNumbers::AgentId))
                    .col(timestamp_with_time_zone(ForwardedNumbers::CreatedAt))
                    .foreign_key(&mut fk(
                        "fk_forwarded_numbers_org",
                        (ForwardedNumbers::Table, ForwardedNumbers::OrgId),
                        (Organizations::Table, Organizations::Id),
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut fk(
                        "fk_forwarded_numbers_number",
                        (ForwardedNumbers::Table, ForwardedNumbers::NumberId),
                        (Numbers::Table, Numbers::Id),
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut fk(
                        "fk_forwarded_numbers_agent",
                        (ForwardedNumbers::Table, ForwardedNumbers::AgentId),
                        (Agents::Table, Agents::Id),
                        ForeignKeyAction::SetNull,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_forwarded_numbers_target_business")
                    .table(ForwardedNumbers::Table)
                    .col(ForwardedNumbers::NumberId)
                    .col(ForwardedNumbers::BusinessNumber)
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ForwardedCalls::Table)
                    .if_not_exists()
                    .col(string(ForwardedCalls::Provider))
                    .col(string(ForwardedCalls::CarrierCallId))
                    .col(string(ForwardedCalls::OrgId))
                    // No foreign key: the record outlives the number and the registration.
                    .col(string(ForwardedCalls::NumberId))
                    .col(string(ForwardedCalls::BusinessNumber))
                    .col(string_null(ForwardedCalls::ForwardedNumberId))
                    .col(timestamp_with_time_zone(ForwardedCalls::CreatedAt))
                    .primary_key(
                        Index::create()
                            .col(ForwardedCalls::Provider)
                            .col(ForwardedCalls::CarrierCallId),
                    )
                    .foreign_key(&mut fk(
                        "fk_forwarded_calls_org",
                        (ForwardedCalls::Table, ForwardedCalls::OrgId),
                        (Organizations::Table, Organizations::Id),
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            ForwardedCalls::Table.into_iden(),
            ForwardedNumbers::Table.into_iden(),
            ManagedOrders::Table.into_iden(),
            ManagedAccounts::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
