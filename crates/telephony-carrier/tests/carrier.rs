//! The carrier clients against the carrier emulator, over real HTTP: every operation, every
//! error class, retries, pagination, and the requests checked against the official OpenAPI specs.
//! (What the clients log is checked in `carrier_logs.rs`, a process of its own.)

mod carrier {
    mod errors;
    mod factory;
    mod openapi;
    mod regressions;
    mod support;
    mod telnyx;
    mod twilio;
}
