//! The carrier clients against the carrier emulator, over real HTTP: every operation, every
//! error class, retries, pagination, and the requests checked against the official OpenAPI specs.

mod carrier {
    mod errors;
    mod factory;
    mod logs;
    mod openapi;
    mod regressions;
    mod support;
    mod telnyx;
    mod twilio;
}
