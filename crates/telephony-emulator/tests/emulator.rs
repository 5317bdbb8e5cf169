//! The emulator driven over real HTTP, the way the carrier clients and the gateway use it.

#[path = "emulator/conformance.rs"]
mod conformance;
#[path = "emulator/faults.rs"]
mod faults;
#[path = "emulator/seeds.rs"]
mod seeds;
#[path = "emulator/support.rs"]
mod support;
#[path = "emulator/telnyx.rs"]
mod telnyx;
#[path = "emulator/twilio.rs"]
mod twilio;
#[path = "emulator/webhooks.rs"]
mod webhooks;
