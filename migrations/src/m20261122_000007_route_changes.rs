//! The change log of inbound routes: every change to what a voice webhook is routed by (a
//! number updated or removed, a connection updated or removed, an agent updated or removed) is
//! recorded by a trigger, in the transaction that makes it, so instances that keep routes in
//! memory can drop exactly the ones that changed (`telephony-service`'s route cache).
//!
//! - `route_version` holds one row (`id` 1): the version of the last change. Each change adds
//!   one to it, which also locks the row until the change commits, so versions are given in
//!   commit order: a reader that sees version `v` committed sees every change up to `v`.
//! - `route_changes` holds one row per change: its `version`, what changed (`kind`: `number`,
//!   `connection` or `agent`) and its id (`ref_id`), and when (`changed_at_ms`, Unix
//!   milliseconds, so old rows can be pruned).
//!
//! A number's insert records nothing (a new number was never routed, and unknown numbers are
//! not kept in memory), nor does the inbound path's update of `last_call_at`.

use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};
use sea_orm_migration::{prelude::*, schema::*};

/// Creates `route_version`, `route_changes` and the triggers that fill them.
#[derive(Debug, DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum RouteVersion {
    Table,
    Id,
    Version,
}

#[derive(DeriveIden)]
enum RouteChanges {
    Table,
    Version,
    Kind,
    RefId,
    ChangedAtMs,
}

/// The columns of `numbers` a route depends on: every one but `last_call_at` (written on every
/// call) and `updated_at` (written only with another).
const NUMBER_COLUMNS: &str = "org_id, connection_id, e164, nickname, carrier_id, agent_id, \
     webhook_mode, status, saved_inbound, applied_inbound, max_concurrent_calls";

/// (trigger name, table, event, kind) of every trigger.
const TRIGGERS: [(&str, &str, &str, &str); 6] = [
    (
        "route_change_number_update",
        "numbers",
        "UPDATE_NUMBER",
        "number",
    ),
    ("route_change_number_delete", "numbers", "DELETE", "number"),
    (
        "route_change_connection_update",
        "connections",
        "UPDATE",
        "connection",
    ),
    (
        "route_change_connection_delete",
        "connections",
        "DELETE",
        "connection",
    ),
    ("route_change_agent_update", "agents", "UPDATE", "agent"),
    ("route_change_agent_delete", "agents", "DELETE", "agent"),
];

fn event_sql(event: &str) -> String {
    match event {
        "UPDATE_NUMBER" => format!("UPDATE OF {NUMBER_COLUMNS}"),
        other => other.to_owned(),
    }
}

fn sqlite_trigger(name: &str, table: &str, event: &str, kind: &str) -> String {
    format!(
        "CREATE TRIGGER IF NOT EXISTS {name} AFTER {event} ON {table} FOR EACH ROW BEGIN \
           UPDATE route_version SET version = version + 1 WHERE id = 1; \
           INSERT INTO route_changes (version, kind, ref_id, changed_at_ms) \
             SELECT version, '{kind}', OLD.id, CAST(unixepoch('subsec') * 1000 AS INTEGER) \
             FROM route_version WHERE id = 1; \
         END",
        event = event_sql(event),
    )
}

fn postgres_function(kind: &str) -> String {
    format!(
        "CREATE OR REPLACE FUNCTION route_change_{kind}() RETURNS trigger AS $$ \
         BEGIN \
           WITH bumped AS (UPDATE route_version SET version = version + 1 WHERE id = 1 \
                           RETURNING version) \
           INSERT INTO route_changes (version, kind, ref_id, changed_at_ms) \
             SELECT version, '{kind}', OLD.id, \
                    (extract(epoch FROM clock_timestamp()) * 1000)::bigint \
             FROM bumped; \
           RETURN NULL; \
         END $$ LANGUAGE plpgsql"
    )
}

fn postgres_trigger(name: &str, table: &str, event: &str, kind: &str) -> String {
    format!(
        "CREATE OR REPLACE TRIGGER {name} AFTER {event} ON {table} FOR EACH ROW \
         EXECUTE FUNCTION route_change_{kind}()",
        event = event_sql(event),
    )
}

// async-trait's expansion cannot take `SchemaManager<'_>` in the signature.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(RouteVersion::Table)
                    .if_not_exists()
                    .col(integer(RouteVersion::Id).primary_key())
                    .col(big_integer(RouteVersion::Version))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(RouteChanges::Table)
                    .if_not_exists()
                    .col(big_integer(RouteChanges::Version).primary_key())
                    .col(string(RouteChanges::Kind))
                    .col(string(RouteChanges::RefId))
                    .col(big_integer(RouteChanges::ChangedAtMs))
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        db.execute_unprepared(
            "INSERT INTO route_version (id, version) SELECT 1, 0 \
             WHERE NOT EXISTS (SELECT 1 FROM route_version WHERE id = 1)",
        )
        .await?;
        match manager.get_database_backend() {
            DbBackend::Postgres => {
                for kind in ["number", "connection", "agent"] {
                    db.execute_unprepared(&postgres_function(kind)).await?;
                }
                for (name, table, event, kind) in TRIGGERS {
                    db.execute_unprepared(&postgres_trigger(name, table, event, kind))
                        .await?;
                }
            }
            _ => {
                for (name, table, event, kind) in TRIGGERS {
                    db.execute_unprepared(&sqlite_trigger(name, table, event, kind))
                        .await?;
                }
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let postgres = manager.get_database_backend() == DbBackend::Postgres;
        for (name, table, _, _) in TRIGGERS {
            let on = if postgres {
                format!(" ON {table}")
            } else {
                String::new()
            };
            db.execute_unprepared(&format!("DROP TRIGGER IF EXISTS {name}{on}"))
                .await?;
        }
        if postgres {
            for kind in ["number", "connection", "agent"] {
                db.execute_unprepared(&format!("DROP FUNCTION IF EXISTS route_change_{kind}()"))
                    .await?;
            }
        }
        manager
            .drop_table(
                Table::drop()
                    .table(RouteChanges::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(
                Table::drop()
                    .table(RouteVersion::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}
