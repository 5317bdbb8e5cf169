//! The OpenAPI description of the REST API, generated from the handlers' annotations.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::api::{agents, audit, calls, carriers, managed, numbers, test_calls};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "telephony-gateway",
        description = "Bring-your-own-carrier telephony gateway: connect Twilio or Telnyx accounts, import numbers, route inbound calls to voice agents. Every error is `{\"error\": {\"code\", \"message\"}}`."
    ),
    paths(
        carriers::connect, carriers::list, carriers::get, carriers::rotate, carriers::disconnect,
        carriers::available_numbers,
        numbers::import, numbers::list, numbers::get, numbers::update, numbers::remove,
        numbers::diagnostics, test_calls::place, test_calls::get,
        agents::create, agents::list, agents::get, agents::update, agents::delete,
        calls::list, calls::place, calls::get, calls::transfer, calls::hangup,
        calls::start_recording, calls::stop_recording, calls::delete_recording,
        audit::list,
        managed::search, managed::buy, managed::list_orders, managed::get_order,
        managed::refresh_order, managed::release, managed::add_forwarded,
        managed::list_forwarded_to, managed::remove_forwarded, managed::list_forwarded,
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "carriers", description = "Carrier accounts (connections) of the organization"),
        (name = "numbers", description = "Imported numbers"),
        (name = "agents", description = "Voice agents calls are routed to"),
        (name = "calls", description = "Call records"),
        (name = "managed", description = "Numbers bought in the platform's carrier account"),
        (name = "audit", description = "Every carrier API call made for the organization"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The document served at `/openapi.json`.
#[must_use]
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
