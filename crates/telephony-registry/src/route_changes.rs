//! The change log of inbound routes, for callers that keep [`crate::InboundRoute`]s in memory.
//!
//! Database triggers (migration `m20261122_000007_route_changes`) record every change to what
//! a route is made of, in the transaction that makes it, whatever method (or other process)
//! made it: a number updated (any column but `last_call_at`) or deleted, a connection updated
//! or deleted, an agent updated or deleted. Each change takes the next version from a single
//! counter row, whose lock is held until the change commits, so versions are given in commit
//! order: whoever reads version `v` can read every change up to `v`.
//!
//! A holder of routes reads [`Registry::route_version`] once, then polls
//! [`Registry::route_changes_since`] and drops the routes each change touches. The log is
//! pruned by age ([`Registry::prune_route_changes`]); a holder that asks for changes already
//! pruned (or more than it asked for at once) is told to drop everything.

use std::time::Duration;

use sea_orm::{
    ConnectionTrait, QueryResult,
    sea_query::{Alias, Expr, ExprTrait, Order, Query},
};

use crate::error::{RegistryError, Result};
use crate::registry::{Registry, now};

/// What a route change touched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RouteChangeKind {
    /// A number (by its id).
    Number,
    /// A connection (by its id): every route of its numbers.
    Connection,
    /// An agent (by its id): every route that reaches it.
    Agent,
}

/// One change of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteChange {
    /// Its version (one more than the change before it).
    pub version: i64,
    /// What it touched.
    pub kind: RouteChangeKind,
    /// The id of the number, connection or agent.
    pub id: String,
}

/// The changes after a version (see [`Registry::route_changes_since`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteChanges {
    /// Every change after the version asked for, oldest first, up to `version`.
    Listed {
        /// The version the holder is current with once it applied `changes`.
        version: i64,
        /// The changes (empty when nothing changed).
        changes: Vec<RouteChange>,
    },
    /// Some changes after the version asked for cannot be listed (pruned, or more than the
    /// limit): the holder must drop every route, and is current with `version` once it has.
    Lost {
        /// The version the holder is current with once it dropped everything.
        version: i64,
    },
}

fn kind_of(text: &str) -> Result<RouteChangeKind> {
    match text {
        "number" => Ok(RouteChangeKind::Number),
        "connection" => Ok(RouteChangeKind::Connection),
        "agent" => Ok(RouteChangeKind::Agent),
        other => Err(RegistryError::Corrupt(format!(
            "unknown route change kind {other:?}"
        ))),
    }
}

impl Registry {
    /// The version of the last route change (0 when nothing changed yet).
    ///
    /// # Errors
    /// [`RegistryError::Database`].
    pub async fn route_version(&self) -> Result<i64> {
        let mut query = Query::select();
        query
            .from(Alias::new("route_version"))
            .column(Alias::new("version"))
            .and_where(Expr::col(Alias::new("id")).eq(1));
        let backend = self.db.get_database_backend();
        let row = self
            .db
            .query_one_raw(backend.build(&query))
            .await?
            .ok_or_else(|| RegistryError::Corrupt("route_version has no row".into()))?;
        Ok(row.try_get::<i64>("", "version")?)
    }

    /// The route changes after version `after`, at most `limit` of them: [`RouteChanges::Lost`]
    /// when some of them were pruned or there are more than `limit`.
    ///
    /// # Errors
    /// [`RegistryError::Database`].
    pub async fn route_changes_since(&self, after: i64, limit: u64) -> Result<RouteChanges> {
        // The counter first: every change up to it has committed (each held the counter's lock
        // until its commit), so the list below holds all of them unless pruned.
        let version = self.route_version().await?;
        if version <= after {
            return Ok(RouteChanges::Listed {
                version: after,
                changes: Vec::new(),
            });
        }
        let wanted = u64::try_from(version - after).unwrap_or(u64::MAX);
        if wanted > limit {
            return Ok(RouteChanges::Lost { version });
        }
        let mut query = Query::select();
        query
            .from(Alias::new("route_changes"))
            .columns([
                Alias::new("version"),
                Alias::new("kind"),
                Alias::new("ref_id"),
            ])
            .and_where(Expr::col(Alias::new("version")).gt(after))
            .and_where(Expr::col(Alias::new("version")).lte(version))
            .order_by(Alias::new("version"), Order::Asc);
        let backend = self.db.get_database_backend();
        let rows: Vec<QueryResult> = self.db.query_all_raw(backend.build(&query)).await?;
        if u64::try_from(rows.len()).unwrap_or(u64::MAX) != wanted {
            return Ok(RouteChanges::Lost { version });
        }
        let changes = rows
            .iter()
            .map(|row| {
                Ok(RouteChange {
                    version: row.try_get::<i64>("", "version")?,
                    kind: kind_of(&row.try_get::<String>("", "kind")?)?,
                    id: row.try_get::<String>("", "ref_id")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(RouteChanges::Listed { version, changes })
    }

    /// Deletes the route changes older than `age`; returns how many. A holder that has not
    /// polled for longer than that is told its changes are lost (and drops every route).
    ///
    /// # Errors
    /// [`RegistryError::Database`].
    pub async fn prune_route_changes(&self, age: Duration) -> Result<u64> {
        let age_ms = i64::try_from(age.as_millis()).unwrap_or(i64::MAX);
        let cutoff = now().timestamp_millis().saturating_sub(age_ms);
        let mut query = Query::delete();
        query
            .from_table(Alias::new("route_changes"))
            .and_where(Expr::col(Alias::new("changed_at_ms")).lt(cutoff));
        let backend = self.db.get_database_backend();
        Ok(self
            .db
            .execute_raw(backend.build(&query))
            .await?
            .rows_affected())
    }
}
