//! The sea-orm entities, one module per table. Private to the crate: the public API speaks in
//! the domain types of [`crate::model`], so no other crate names sea-orm.

macro_rules! no_relations {
    () => {
        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}
        impl ActiveModelBehavior for ActiveModel {}
    };
}

pub(crate) mod organization {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "organizations")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub name: String,
        pub created_at: DateTimeUtc,
    }
    no_relations!();
}

pub(crate) mod api_key {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "api_keys")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub org_id: String,
        pub label: String,
        pub key_hash: String,
        pub prefix: String,
        pub created_at: DateTimeUtc,
        pub revoked_at: Option<DateTimeUtc>,
    }
    no_relations!();
}

pub(crate) mod connection {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "connections")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub org_id: String,
        pub name: String,
        pub provider: String,
        pub account_id: String,
        pub texml_app_id: Option<String>,
        pub region: Option<String>,
        pub api_key_sid: Option<String>,
        pub auth_secret: String,
        pub api_key_secret: Option<String>,
        pub public_key: Option<String>,
        pub previous_public_key: Option<String>,
        pub previous_auth_secret: Option<String>,
        pub previous_auth_expires_at: Option<DateTimeUtc>,
        pub status: String,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
    }
    no_relations!();
}

pub(crate) mod agent {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "agents")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub org_id: String,
        pub name: String,
        pub target_kind: String,
        pub target: String,
        pub fallback_number: Option<String>,
        pub max_concurrent_calls: Option<i32>,
        pub created_at: DateTimeUtc,
    }
    no_relations!();
}

pub(crate) mod number {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "numbers")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub org_id: String,
        pub connection_id: String,
        pub e164: String,
        pub nickname: Option<String>,
        pub carrier_id: String,
        pub agent_id: Option<String>,
        pub webhook_mode: String,
        pub status: String,
        pub saved_inbound: Option<String>,
        pub applied_inbound: Option<String>,
        pub last_call_at: Option<DateTimeUtc>,
        pub max_concurrent_calls: Option<i32>,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
    }
    no_relations!();
}

pub(crate) mod audit {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "audit_log")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        pub org_id: String,
        pub at: DateTimeUtc,
        pub action: String,
        pub number: Option<String>,
        pub connection_id: Option<String>,
        pub changed_account: bool,
        pub outcome: String,
    }
    no_relations!();
}

pub(crate) mod call_record {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "call_records")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub org_id: String,
        pub provider: String,
        pub carrier_call_id: String,
        pub number: String,
        pub direction: String,
        pub status: String,
        pub duration_secs: Option<i64>,
        pub started_at: DateTimeUtc,
        pub ended_at: Option<DateTimeUtc>,
        pub updated_at: DateTimeUtc,
        /// The number an inbound call called (unset on outbound calls and on records a status
        /// callback created first).
        pub number_id: Option<String>,
        /// The agent an inbound call was connected to: unset when it reached no agent or was
        /// refused at a limit.
        pub agent_id: Option<String>,
    }
    no_relations!();
}

pub(crate) mod operation {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "operations")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub org_id: String,
        pub kind: String,
        pub number: Option<String>,
        pub connection_id: String,
        pub step: String,
        pub payload: String,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
    }
    no_relations!();
}

pub(crate) mod idempotency {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "webhook_idempotency")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub provider: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub idempotency_key: String,
        pub response_body: String,
        pub created_at: DateTimeUtc,
    }
    no_relations!();
}

pub(crate) mod active_call {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "active_calls")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub provider: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub carrier_call_id: String,
        pub org_id: String,
        pub number_id: String,
        pub agent_id: Option<String>,
        pub started_at: DateTimeUtc,
    }
    no_relations!();
}
