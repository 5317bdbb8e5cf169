//! The service's behaviour, through its router: the REST API, the webhooks and the operator
//! endpoints, against a real registry (SQLite) and the carrier emulator over HTTP.

mod service {
    pub mod admission;
    pub mod api;
    pub mod auth_limit;
    pub mod calls;
    pub mod forwarding;
    pub mod hostile;
    pub mod managed;
    pub mod paging;
    pub mod route_cache;
    pub mod server;
    pub mod story;
    pub mod support;
    pub mod tenants;
    pub mod test_calls;
    pub mod webhooks;
}
