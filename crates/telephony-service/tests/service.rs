//! The service's behaviour, through its router: the REST API, the webhooks and the operator
//! endpoints, against a real registry (SQLite) and the carrier emulator over HTTP.

mod service {
    pub mod api;
    pub mod story;
    pub mod support;
    pub mod webhooks;
}
