//! Telnyx API v2: JSON bodies, Bearer keys, `{"data": …}` envelopes, `{"errors": […]}` bodies and
//! page-number pagination with `meta`.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::model::{
    Call, Carrier, NumberOrder, NumberType, OrderedNumber, Recording, TelnyxAccount, TelnyxNumber,
    TexmlApplication,
};
use crate::server::{Handled, Reply, Req, Shared, bearer};
use crate::util::{self, get};
use crate::webhook;
use crate::world::World;

/// One Telnyx error in the `errors` array.
fn error_with(status: u16, code: &str, title: &str, detail: &str, source: Option<Value>) -> Reply {
    let mut e = json!({
        "code": code,
        "title": title,
        "detail": detail,
        "meta": {"url": format!("https://developers.telnyx.com/docs/overview/errors/{code}")},
    });
    if let (Some(source), Some(obj)) = (source, e.as_object_mut()) {
        obj.insert("source".into(), source);
    }
    Reply::json(status, &json!({"errors": [e]}))
}

fn unauthorized() -> Reply {
    error_with(
        401,
        "10009",
        "Authentication failed",
        "The required authentication headers were either invalid or not included in the request.",
        None,
    )
}

fn not_found() -> Reply {
    error_with(
        404,
        "10005",
        "Resource not found",
        "The requested resource or URL could not be found.",
        None,
    )
}

fn too_many() -> Reply {
    error_with(
        429,
        "10011",
        "Too many requests",
        "You have exceeded the maximum number of allowed requests.",
        None,
    )
    .with_header("retry-after", "1")
    .with_header("x-ratelimit-reset", "1")
    .with_header("x-ratelimit-remaining", "0")
}

fn invalid(pointer: &str, detail: &str) -> Reply {
    error_with(
        422,
        "10015",
        "Bad Request",
        detail,
        Some(json!({"pointer": pointer})),
    )
}

fn invalid_param(parameter: &str, detail: &str) -> Reply {
    error_with(
        400,
        "10015",
        "Bad Request",
        detail,
        Some(json!({"parameter": parameter})),
    )
}

/// The answer to an armed status fault, shaped like Telnyx's own errors.
pub(crate) fn fault_reply(status: u16) -> Reply {
    match status {
        401 => unauthorized(),
        403 => error_with(
            403,
            "10010",
            "Authorization failed",
            "You are not authorized to perform this action.",
            None,
        ),
        404 => not_found(),
        422 => invalid("/", "The request failed because it was not well-formed."),
        429 => too_many(),
        _ => error_with(
            status,
            "10007",
            "Unexpected error",
            "An unexpected error occured.",
            None,
        ),
    }
}

pub(crate) async fn handle(shared: &Arc<Shared>, req: &Req) -> Handled {
    let Some(key) = bearer(req) else {
        return unauthorized().into();
    };
    let mut world = shared.world();
    let Some(account) = world.telnyx_by_key(key).cloned() else {
        return unauthorized().into();
    };
    let window = world.count_request(&account.account_sid, account.rate_limit_per_second);
    // Telnyx reports its limits on every answer of a limited account.
    let handled = |reply: Reply| {
        let reply = match window {
            Some(w) if !w.exceeded() => reply
                .with_header("x-ratelimit-limit", w.limit.to_string())
                .with_header("x-ratelimit-remaining", w.remaining().to_string())
                .with_header("x-ratelimit-reset", "1"),
            _ => reply,
        };
        Handled {
            reply,
            account: Some(account.account_sid.clone()),
        }
    };
    if let Some(w) = window
        && w.exceeded()
    {
        return handled(too_many().with_header("x-ratelimit-limit", w.limit.to_string()));
    }
    let behaviour = world.seed.telnyx.number_orders;
    let rest = req.path.strip_prefix("/v2").unwrap_or_default();
    let segments: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
    let query = util::parse_pairs(&req.query);
    let method = req.method.as_str();
    let json_body = || -> Result<Value, Reply> {
        if req.body.is_empty() {
            return Ok(json!({}));
        }
        serde_json::from_slice::<Value>(&req.body)
            .ok()
            .filter(Value::is_object)
            .ok_or_else(|| invalid("/", "The request failed because it was not well-formed."))
    };

    let reply = match (method, segments.as_slice()) {
        ("GET", ["balance"]) => Reply::json(
            200,
            &json!({"data": {
                "record_type": "balance",
                "pending": "0.00",
                "balance": account.balance,
                "credit_limit": "0.00",
                "available_credit": account.balance,
                "currency": "USD",
            }}),
        ),
        ("GET", ["phone_numbers"]) => list_numbers(&world, &account, &query),
        (m, ["phone_numbers", id]) => {
            let index = world
                .state
                .telnyx_numbers
                .iter()
                .position(|n| n.id == *id && n.account_sid == account.account_sid);
            match (m, index) {
                (_, None) => not_found(),
                ("GET", Some(i)) => Reply::json(
                    200,
                    &json!({"data": number_json(&world, &world.state.telnyx_numbers[i])}),
                ),
                ("PATCH", Some(i)) => match json_body() {
                    Ok(body) => update_number(&mut world, i, &body),
                    Err(reply) => reply,
                },
                ("DELETE", Some(i)) => {
                    let mut number = world.state.telnyx_numbers.remove(i);
                    number.status = "deleted".into();
                    Reply::json(200, &json!({"data": number_json(&world, &number)}))
                }
                _ => method_not_allowed(),
            }
        }
        ("GET", ["available_phone_numbers"]) => available(&world, &query),
        ("POST", ["number_orders"]) => match json_body() {
            Ok(body) => create_order(&mut world, &account, &body, behaviour),
            Err(reply) => reply,
        },
        ("GET", ["number_orders"]) => list_orders(&world, &account, &query),
        ("GET", ["number_orders", id]) => get_order(&mut world, &account, id, behaviour),
        ("GET", ["texml_applications"]) => list_apps(&world, &account, &query),
        ("POST", ["texml_applications"]) => match json_body() {
            Ok(body) => create_app(&mut world, &account, &body),
            Err(reply) => reply,
        },
        (m, ["texml_applications", id]) => {
            let index = world
                .state
                .texml_applications
                .iter()
                .position(|a| a.id == *id && a.account_sid == account.account_sid);
            match (m, index) {
                (_, None) => not_found(),
                ("GET", Some(i)) => Reply::json(
                    200,
                    &json!({"data": app_json(&world.state.texml_applications[i])}),
                ),
                ("PATCH", Some(i)) => match json_body() {
                    Ok(body) => update_app(&mut world, i, &body),
                    Err(reply) => reply,
                },
                ("DELETE", Some(i)) => {
                    let app = world.state.texml_applications.remove(i);
                    Reply::json(200, &json!({"data": app_json(&app)}))
                }
                _ => method_not_allowed(),
            }
        }
        ("POST", ["texml", "Accounts", sid, "Calls"]) if *sid == account.account_sid => {
            let (reply, created) = texml_create_call(&mut world, &account, req);
            drop(world);
            if let Some(call_id) = created {
                webhook::spawn_call_url(shared, call_id.clone());
                webhook::spawn_inbound_leg(shared, Carrier::Telnyx, call_id);
            }
            return handled(reply);
        }
        (m, ["texml", "Accounts", sid, "Calls", call_sid]) if *sid == account.account_sid => {
            let call_sid = call_sid.trim_end_matches(".json");
            let Some(call) = find_call(&world, &account, call_sid) else {
                return handled(not_found());
            };
            match m {
                "GET" => Reply::json(200, &texml_call_json(&call)),
                "POST" => {
                    let (reply, ended) = texml_update_call(&mut world, &call, req);
                    drop(world);
                    if ended {
                        webhook::spawn_status_callback(shared, call.id.clone());
                    }
                    return handled(reply);
                }
                _ => method_not_allowed(),
            }
        }
        (
            "POST",
            [
                "texml",
                "Accounts",
                sid,
                "Calls",
                call_sid,
                "Recordings.json",
            ],
        ) if *sid == account.account_sid => match find_call(&world, &account, call_sid) {
            Some(call) => texml_start_recording(&mut world, &call, req),
            None => not_found(),
        },
        (
            "POST",
            [
                "texml",
                "Accounts",
                sid,
                "Calls",
                call_sid,
                "Recordings",
                rec_json,
            ],
        ) if *sid == account.account_sid && rec_json.ends_with(".json") => {
            let rec_sid = rec_json.trim_end_matches(".json");
            let exists = find_call(&world, &account, call_sid).is_some()
                && world
                    .state
                    .recordings
                    .iter()
                    .any(|r| r.id == rec_sid && r.call_id == *call_sid);
            if exists {
                texml_update_recording(&mut world, rec_sid, req)
            } else {
                not_found()
            }
        }
        ("POST", ["calls"]) => match json_body() {
            Ok(body) => {
                let (reply, events) = dial(&mut world, &account, &body);
                drop(world);
                if let Some(call_id) = events {
                    webhook::spawn_call_control_answered(shared, call_id);
                }
                return handled(reply);
            }
            Err(reply) => reply,
        },
        ("GET", ["calls", id]) => match find_call(&world, &account, id) {
            Some(call) => Reply::json(200, &json!({"data": call_control_json(&call)})),
            None => not_found(),
        },
        ("POST", ["calls", id, "actions", action]) => {
            let Some(call) = find_call(&world, &account, id) else {
                return handled(not_found());
            };
            let body = match json_body() {
                Ok(body) => body,
                Err(reply) => return handled(reply),
            };
            let (reply, ended) = call_action(&mut world, &call, action, &body);
            drop(world);
            if ended {
                webhook::spawn_status_callback(shared, call.id.clone());
            }
            return handled(reply);
        }
        _ => not_found(),
    };
    handled(reply)
}

fn method_not_allowed() -> Reply {
    error_with(
        405,
        "10015",
        "Bad Request",
        "Method not allowed on this resource.",
        None,
    )
}

// ---------------------------------------------------------------------------------------------
// Pagination

/// `page[number]` (1-based) and `page[size]` (1..=250, default 20).
fn paginate<T: Clone>(items: &[T], query: &[(String, String)]) -> Result<(Vec<T>, Value), Reply> {
    let number = match get(query, "page[number]") {
        None => 1,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if n >= 1 => n,
            _ => {
                return Err(invalid_param(
                    "page[number]",
                    "page[number] must be a positive integer",
                ));
            }
        },
    };
    let size = match get(query, "page[size]") {
        None => 20,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=250).contains(&n) => n,
            _ => {
                return Err(invalid_param(
                    "page[size]",
                    "page[size] must be between 1 and 250",
                ));
            }
        },
    };
    let total = items.len();
    let page: Vec<T> = items
        .iter()
        .skip((number - 1).saturating_mul(size))
        .take(size)
        .cloned()
        .collect();
    let meta = json!({
        "total_pages": total.div_ceil(size),
        "total_results": total,
        "page_number": number,
        "page_size": size,
    });
    Ok((page, meta))
}

// ---------------------------------------------------------------------------------------------
// Phone numbers

fn opt(s: &Option<String>) -> Value {
    s.as_ref().map_or(Value::Null, |v| json!(v))
}

pub(crate) fn number_json(world: &World, n: &TelnyxNumber) -> Value {
    let connection_name = n.connection_id.as_ref().and_then(|id| {
        world
            .state
            .texml_applications
            .iter()
            .find(|a| &a.id == id)
            .map(|a| a.friendly_name.clone())
    });
    json!({
        "id": n.id,
        "record_type": "phone_number",
        "phone_number": n.phone_number,
        "country_iso_alpha2": n.country_iso_alpha2,
        "status": n.status,
        "tags": n.tags,
        "external_pin": opt(&n.external_pin),
        "connection_name": opt(&connection_name),
        "connection_id": opt(&n.connection_id),
        "customer_reference": opt(&n.customer_reference),
        "messaging_profile_id": Value::Null,
        "messaging_profile_name": Value::Null,
        "billing_group_id": opt(&n.billing_group_id),
        "emergency_enabled": false,
        "emergency_address_id": Value::Null,
        "emergency_status": "disabled",
        "call_forwarding_enabled": true,
        "cnam_listing_enabled": false,
        "caller_id_name_enabled": false,
        "call_recording_enabled": false,
        "t38_fax_gateway_enabled": false,
        "purchased_at": n.purchased_at,
        "created_at": n.created_at,
        "phone_number_type": n.phone_number_type,
        "inbound_call_screening": "disabled",
        "source_type": n.source_type,
    })
}

fn list_numbers(world: &World, account: &TelnyxAccount, query: &[(String, String)]) -> Reply {
    let phone = get(query, "filter[phone_number]");
    let status = get(query, "filter[status]");
    let connection = get(query, "filter[connection_id]");
    let tag = get(query, "filter[tag]");
    let numbers: Vec<TelnyxNumber> = world
        .state
        .telnyx_numbers
        .iter()
        .filter(|n| n.account_sid == account.account_sid)
        // Telnyx matches filter[phone_number] on the digits, with or without the `+`.
        .filter(|n| phone.is_none_or(|p| n.phone_number.contains(p.trim().trim_start_matches('+'))))
        .filter(|n| status.is_none_or(|s| n.status == s))
        .filter(|n| connection.is_none_or(|c| n.connection_id.as_deref() == Some(c)))
        .filter(|n| tag.is_none_or(|t| n.tags.iter().any(|x| x == t)))
        .cloned()
        .collect();
    match paginate(&numbers, query) {
        Ok((page, meta)) => {
            let data: Vec<Value> = page.iter().map(|n| number_json(world, n)).collect();
            Reply::json(200, &json!({"data": data, "meta": meta}))
        }
        Err(reply) => reply,
    }
}

fn string_or_null(body: &Value, field: &str) -> Result<Option<Option<String>>, Reply> {
    match body.get(field) {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(s)) => Ok(Some((!s.is_empty()).then(|| s.clone()))),
        Some(_) => Err(invalid(
            &format!("/{field}"),
            &format!("{field} must be a string"),
        )),
    }
}

fn update_number(world: &mut World, index: usize, body: &Value) -> Reply {
    let mut n = world.state.telnyx_numbers[index].clone();
    let result = (|| -> Result<(), Reply> {
        if let Some(v) = string_or_null(body, "connection_id")? {
            n.connection_id = v;
        }
        if let Some(v) = string_or_null(body, "customer_reference")? {
            n.customer_reference = v;
        }
        if let Some(v) = string_or_null(body, "billing_group_id")? {
            n.billing_group_id = v;
        }
        if let Some(v) = string_or_null(body, "external_pin")? {
            n.external_pin = v;
        }
        match body.get("tags") {
            None => {}
            Some(Value::Array(tags)) => {
                n.tags = tags
                    .iter()
                    .map(|t| t.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| invalid("/tags", "tags must be an array of strings"))?;
            }
            Some(_) => return Err(invalid("/tags", "tags must be an array of strings")),
        }
        match body.get("hd_voice_enabled") {
            None => {}
            Some(Value::Bool(b)) => n.hd_voice_enabled = *b,
            Some(_) => {
                return Err(invalid(
                    "/hd_voice_enabled",
                    "hd_voice_enabled must be a boolean",
                ));
            }
        }
        Ok(())
    })();
    if let Err(reply) = result {
        return reply;
    }
    n.updated_at = util::iso8601(util::now());
    let data = number_json(world, &n);
    world.state.telnyx_numbers[index] = n;
    Reply::json(200, &json!({"data": data}))
}

fn telnyx_type(t: NumberType) -> &'static str {
    match t {
        NumberType::Local => "local",
        NumberType::Mobile => "mobile",
        NumberType::TollFree => "toll_free",
    }
}

fn available(world: &World, query: &[(String, String)]) -> Reply {
    let country = get(query, "filter[country_code]");
    let ndc = get(query, "filter[national_destination_code]");
    let kind = get(query, "filter[phone_number_type]");
    let contains = get(query, "filter[phone_number][contains]");
    let starts = get(query, "filter[phone_number][starts_with]");
    let limit = get(query, "filter[limit]")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(usize::MAX);
    let data: Vec<Value> = world
        .state
        .telnyx_available
        .iter()
        .filter(|a| country.is_none_or(|c| a.iso_country.eq_ignore_ascii_case(c)))
        .filter(|a| ndc.is_none_or(|code| util::area_code(&a.phone_number) == Some(code)))
        .filter(|a| kind.is_none_or(|k| telnyx_type(a.number_type) == k || (k == "toll-free" && a.number_type == NumberType::TollFree)))
        .filter(|a| contains.is_none_or(|c| a.phone_number.contains(c)))
        .filter(|a| starts.is_none_or(|s| a.phone_number.trim_start_matches("+1").starts_with(s.trim_start_matches('+'))))
        .take(limit)
        .map(|a| {
            let mut features = Vec::new();
            if a.capabilities.voice {
                features.push(json!({"name": "voice"}));
            }
            if a.capabilities.sms {
                features.push(json!({"name": "sms"}));
            }
            if a.capabilities.mms {
                features.push(json!({"name": "mms"}));
            }
            if a.capabilities.fax {
                features.push(json!({"name": "fax"}));
            }
            let mut regions = Vec::new();
            if let Some(r) = &a.region {
                regions.push(json!({"region_type": "state", "region_name": r}));
            }
            if let Some(r) = &a.rate_center {
                regions.push(json!({"region_type": "rate_center", "region_name": r}));
            }
            regions.push(json!({"region_type": "country_code", "region_name": a.iso_country}));
            json!({
                "record_type": "available_phone_number",
                "phone_number": a.phone_number,
                "vanity_format": "",
                "best_effort": false,
                "quickship": true,
                "reservable": true,
                "region_information": regions,
                "cost_information": {"upfront_cost": "1.00", "monthly_cost": "1.00", "currency": "USD"},
                "features": features,
            })
        })
        .collect();
    let total = data.len();
    Reply::json(
        200,
        &json!({"data": data, "meta": {"total_results": total, "best_effort_results": 0}}),
    )
}

// ---------------------------------------------------------------------------------------------
// Number orders

fn order_json(o: &NumberOrder) -> Value {
    let numbers: Vec<Value> = o
        .phone_numbers
        .iter()
        .map(|n| {
            json!({
                "id": n.id,
                "record_type": "number_order_phone_number",
                "phone_number": n.phone_number,
                "status": n.status,
                "requirements_met": true,
            })
        })
        .collect();
    json!({
        "id": o.id,
        "record_type": "number_order",
        "phone_numbers_count": o.phone_numbers.len(),
        "connection_id": opt(&o.connection_id),
        "messaging_profile_id": opt(&o.messaging_profile_id),
        "billing_group_id": opt(&o.billing_group_id),
        "phone_numbers": numbers,
        "sub_number_orders_ids": [],
        "status": o.status,
        "customer_reference": opt(&o.customer_reference),
        "created_at": o.created_at,
        "updated_at": o.updated_at,
        "requirements_met": true,
    })
}

fn create_order(
    world: &mut World,
    account: &TelnyxAccount,
    body: &Value,
    behaviour: crate::model::OrderBehaviour,
) -> Reply {
    let Some(requested) = body
        .get("phone_numbers")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
    else {
        return invalid("/phone_numbers", "phone_numbers is required.");
    };
    let mut wanted = Vec::new();
    for (i, entry) in requested.iter().enumerate() {
        let Some(phone) = entry.get("phone_number").and_then(Value::as_str) else {
            return invalid(
                &format!("/phone_numbers/{i}/phone_number"),
                "phone_number is required.",
            );
        };
        if !util::is_e164(phone) {
            return error_with(
                422,
                "10016",
                "Phone number must be in +E.164 format",
                "Phone number must be in +E.164 format",
                Some(json!({"pointer": format!("/phone_numbers/{i}/phone_number")})),
            );
        }
        if !world
            .state
            .telnyx_available
            .iter()
            .any(|a| a.phone_number == phone)
        {
            return invalid(
                &format!("/phone_numbers/{i}/phone_number"),
                &format!("{phone} is not available."),
            );
        }
        wanted.push(phone.to_string());
    }
    let field = |name: &str| body.get(name).and_then(Value::as_str).map(str::to_string);
    let now = util::now();
    // Reserve the numbers now so two orders cannot buy the same one.
    world
        .state
        .telnyx_available
        .retain(|a| !wanted.contains(&a.phone_number));
    let immediate = behaviour.pending_polls == 0 && behaviour.pending_seconds == 0;
    let mut order = NumberOrder {
        id: util::uuid(),
        account_sid: account.account_sid.clone(),
        status: "pending".into(),
        phone_numbers: wanted
            .iter()
            .map(|p| OrderedNumber {
                id: util::uuid(),
                phone_number: p.clone(),
                status: "pending".into(),
            })
            .collect(),
        connection_id: field("connection_id"),
        messaging_profile_id: field("messaging_profile_id"),
        billing_group_id: field("billing_group_id"),
        customer_reference: field("customer_reference"),
        polls: 0,
        created_unix: now.timestamp(),
        created_at: util::iso8601(now),
        updated_at: util::iso8601(now),
    };
    if immediate {
        complete_order(world, &mut order);
    }
    let data = order_json(&order);
    world.state.number_orders.push(order);
    Reply::json(200, &json!({"data": data}))
}

/// Marks an order successful and puts its numbers in the account.
fn complete_order(world: &mut World, order: &mut NumberOrder) {
    let now = util::iso8601(util::now());
    order.status = "success".into();
    order.updated_at = now.clone();
    for line in &mut order.phone_numbers {
        line.status = "success".into();
        let number = crate::world::normalize_telnyx_number(
            &TelnyxNumber {
                phone_number: line.phone_number.clone(),
                connection_id: order.connection_id.clone(),
                customer_reference: order.customer_reference.clone(),
                billing_group_id: order.billing_group_id.clone(),
                ..TelnyxNumber::default()
            },
            &order.account_sid,
            &now,
        );
        world.state.telnyx_numbers.push(number);
    }
}

fn list_orders(world: &World, account: &TelnyxAccount, query: &[(String, String)]) -> Reply {
    let status = get(query, "filter[status]");
    let reference = get(query, "filter[customer_reference]");
    let phone = get(query, "filter[phone_numbers.phone_number]");
    let orders: Vec<NumberOrder> = world
        .state
        .number_orders
        .iter()
        .filter(|o| o.account_sid == account.account_sid)
        .filter(|o| status.is_none_or(|s| o.status == s))
        .filter(|o| reference.is_none_or(|r| o.customer_reference.as_deref() == Some(r)))
        .filter(|o| phone.is_none_or(|p| o.phone_numbers.iter().any(|n| n.phone_number == p)))
        .cloned()
        .collect();
    match paginate(&orders, query) {
        Ok((page, meta)) => {
            // The list shows each order's numbers as {id, phone_number} only (spec `NumberOrder`).
            let data: Vec<Value> = page
                .iter()
                .map(|o| {
                    let mut order = order_json(o);
                    let numbers: Vec<Value> = o
                        .phone_numbers
                        .iter()
                        .map(|n| json!({"id": n.id, "phone_number": n.phone_number}))
                        .collect();
                    order["phone_numbers"] = Value::Array(numbers);
                    order
                })
                .collect();
            Reply::json(200, &json!({"data": data, "meta": meta}))
        }
        Err(reply) => reply,
    }
}

fn get_order(
    world: &mut World,
    account: &TelnyxAccount,
    id: &str,
    behaviour: crate::model::OrderBehaviour,
) -> Reply {
    let Some(index) = world
        .state
        .number_orders
        .iter()
        .position(|o| o.id == id && o.account_sid == account.account_sid)
    else {
        return not_found();
    };
    let mut order = world.state.number_orders[index].clone();
    if order.status == "pending" {
        let waited_polls = order.polls >= behaviour.pending_polls;
        let elapsed = util::now().timestamp() - order.created_unix;
        let waited_secs = elapsed >= i64::try_from(behaviour.pending_seconds).unwrap_or(i64::MAX);
        // Both limits configured means both must pass; a zero limit is already met.
        if waited_polls && waited_secs {
            complete_order(world, &mut order);
        } else {
            order.polls += 1;
        }
    }
    let data = order_json(&order);
    world.state.number_orders[index] = order;
    Reply::json(200, &json!({"data": data}))
}

// ---------------------------------------------------------------------------------------------
// TeXML applications

fn app_json(a: &TexmlApplication) -> Value {
    json!({
        "id": a.id,
        "record_type": "texml_application",
        "friendly_name": a.friendly_name,
        "active": a.active,
        "anchorsite_override": "Latency",
        "dtmf_type": "RFC 2833",
        "first_command_timeout": false,
        "first_command_timeout_secs": 10,
        "voice_url": a.voice_url,
        "voice_fallback_url": opt(&a.voice_fallback_url),
        "voice_method": a.voice_method,
        "status_callback": opt(&a.status_callback),
        "status_callback_method": a.status_callback_method,
        "tags": a.tags,
        "inbound": {"channel_limit": Value::Null, "shaken_stir_enabled": false, "sip_subdomain": Value::Null, "sip_subdomain_receive_settings": "only_my_connections"},
        "outbound": {"channel_limit": Value::Null, "outbound_voice_profile_id": Value::Null},
        "created_at": a.created_at,
        "updated_at": a.updated_at,
    })
}

fn list_apps(world: &World, account: &TelnyxAccount, query: &[(String, String)]) -> Reply {
    let name = get(query, "filter[friendly_name]")
        .or_else(|| get(query, "filter[friendly_name][contains]"));
    let mut apps: Vec<TexmlApplication> = world
        .state
        .texml_applications
        .iter()
        .filter(|a| a.account_sid == account.account_sid)
        .filter(|a| name.is_none_or(|n| a.friendly_name.contains(n)))
        .cloned()
        .collect();
    match get(query, "sort") {
        Some("friendly_name") => apps.sort_by(|a, b| a.friendly_name.cmp(&b.friendly_name)),
        Some("-friendly_name") => apps.sort_by(|a, b| b.friendly_name.cmp(&a.friendly_name)),
        // Default: created_at descending; seed order stands in for creation order.
        _ => apps.reverse(),
    }
    match paginate(&apps, query) {
        Ok((page, meta)) => {
            let data: Vec<Value> = page.iter().map(app_json).collect();
            Reply::json(200, &json!({"data": data, "meta": meta}))
        }
        Err(reply) => reply,
    }
}

fn apply_app(app: &mut TexmlApplication, body: &Value) -> Result<(), Reply> {
    let text = |name: &str| -> Result<Option<String>, Reply> {
        match body.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(invalid(
                &format!("/{name}"),
                &format!("{name} must be a string"),
            )),
        }
    };
    if let Some(v) = text("friendly_name")? {
        app.friendly_name = v;
    }
    if let Some(v) = text("voice_url")? {
        app.voice_url = v;
    }
    if let Some(v) = string_or_null(body, "voice_fallback_url")? {
        app.voice_fallback_url = v;
    }
    if let Some(v) = string_or_null(body, "status_callback")? {
        app.status_callback = v;
    }
    for (name, slot) in [
        ("voice_method", &mut app.voice_method),
        ("status_callback_method", &mut app.status_callback_method),
    ] {
        if let Some(v) = text(name)? {
            if v != "get" && v != "post" {
                return Err(invalid(
                    &format!("/{name}"),
                    &format!("{name} must be get or post"),
                ));
            }
            *slot = v;
        }
    }
    if let Some(active) = body.get("active") {
        app.active = active
            .as_bool()
            .ok_or_else(|| invalid("/active", "active must be a boolean"))?;
    }
    if let Some(tags) = body.get("tags") {
        app.tags = tags
            .as_array()
            .and_then(|t| {
                t.iter()
                    .map(|x| x.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()
            })
            .ok_or_else(|| invalid("/tags", "tags must be an array of strings"))?;
    }
    Ok(())
}

fn create_app(world: &mut World, account: &TelnyxAccount, body: &Value) -> Reply {
    for required in ["friendly_name", "voice_url"] {
        if body
            .get(required)
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return error_with(
                422,
                "10004",
                "Missing required parameter",
                &format!("{required} is required."),
                Some(json!({"pointer": format!("/{required}")})),
            );
        }
    }
    let now = util::iso8601(util::now());
    let mut app = crate::world::normalize_texml_app(
        &TexmlApplication {
            active: true,
            ..TexmlApplication::default()
        },
        &account.account_sid,
        &now,
    );
    if let Err(reply) = apply_app(&mut app, body) {
        return reply;
    }
    let data = app_json(&app);
    world.state.texml_applications.push(app);
    Reply::json(201, &json!({"data": data}))
}

fn update_app(world: &mut World, index: usize, body: &Value) -> Reply {
    let mut app = world.state.texml_applications[index].clone();
    if let Err(reply) = apply_app(&mut app, body) {
        return reply;
    }
    app.updated_at = util::iso8601(util::now());
    let data = app_json(&app);
    world.state.texml_applications[index] = app;
    Reply::json(200, &json!({"data": data}))
}

// ---------------------------------------------------------------------------------------------
// Calls: TeXML REST and call control

fn find_call(world: &World, account: &TelnyxAccount, id: &str) -> Option<Call> {
    world
        .state
        .calls
        .iter()
        .find(|c| {
            c.carrier == Carrier::Telnyx && c.id == id && c.account_sid == account.account_sid
        })
        .cloned()
}

pub(crate) fn texml_call_json(c: &Call) -> Value {
    let rfc = |unix: i64| {
        chrono::DateTime::from_timestamp(unix, 0).map_or(Value::Null, |t| json!(util::rfc2822(t)))
    };
    json!({
        "account_sid": c.account_sid,
        "answered_by": Value::Null,
        "caller_name": c.from,
        "date_created": c.date_created,
        "date_updated": c.date_updated,
        "direction": c.direction,
        "duration": c.end_unix.map_or(Value::Null, |end| json!((end - c.start_unix).max(0).to_string())),
        "end_time": c.end_unix.map_or(Value::Null, rfc),
        "from": c.from,
        "from_formatted": util::format_number(&c.from),
        "price": Value::Null,
        "price_unit": Value::Null,
        "sid": c.id,
        "start_time": rfc(c.start_unix),
        "status": c.status,
        "to": c.to,
        "to_formatted": util::format_number(&c.to),
        "uri": format!("/v2/texml/Accounts/{}/Calls/{}.json", c.account_sid, c.id),
    })
}

/// Reads a TeXML request body: JSON per the spec for create, form for update; both accepted.
fn texml_params(req: &Req) -> Vec<(String, String)> {
    let is_json = req.content_type().is_some_and(|ct| ct.contains("json"));
    if is_json {
        serde_json::from_slice::<serde_json::Map<String, Value>>(&req.body)
            .map(|m| {
                m.into_iter()
                    .filter_map(|(k, v)| match v {
                        Value::String(s) => Some((k, s)),
                        Value::Bool(b) => Some((k, b.to_string())),
                        Value::Number(n) => Some((k, n.to_string())),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default()
    } else {
        util::parse_pairs(&String::from_utf8_lossy(&req.body))
    }
}

fn texml_create_call(
    world: &mut World,
    account: &TelnyxAccount,
    req: &Req,
) -> (Reply, Option<String>) {
    let params = texml_params(req);
    for required in ["To", "From", "ApplicationSid"] {
        if get(&params, required).is_none_or(str::is_empty) {
            return (
                error_with(
                    422,
                    "10004",
                    "Missing required parameter",
                    &format!("{required} is required."),
                    Some(json!({"pointer": format!("/{required}")})),
                ),
                None,
            );
        }
    }
    let to = get(&params, "To").unwrap_or_default().to_string();
    let from = get(&params, "From").unwrap_or_default().to_string();
    let app_id = get(&params, "ApplicationSid")
        .unwrap_or_default()
        .to_string();
    let Some(app) = world
        .state
        .texml_applications
        .iter()
        .find(|a| a.id == app_id && a.account_sid == account.account_sid)
        .cloned()
    else {
        return (
            error_with(
                422,
                "10013",
                "Missing association",
                "ApplicationSid does not name a TeXML application of this account.",
                Some(json!({"pointer": "/ApplicationSid"})),
            ),
            None,
        );
    };
    let Some(number) = world
        .state
        .telnyx_numbers
        .iter()
        .find(|n| n.account_sid == account.account_sid && n.phone_number == from)
    else {
        return (
            invalid("/From", "From must be a number in your account."),
            None,
        );
    };
    let now = util::now();
    let call = Call {
        id: util::call_control_id(),
        carrier: Carrier::Telnyx,
        account_sid: account.account_sid.clone(),
        session_id: util::uuid(),
        from: from.clone(),
        to: to.clone(),
        direction: "outbound".into(),
        status: "in-progress".into(),
        forwarded_from: None,
        phone_number_id: Some(number.id.clone()),
        url: get(&params, "Url")
            .map(str::to_string)
            .or_else(|| Some(app.voice_url.clone())),
        url_method: get(&params, "UrlMethod")
            .unwrap_or("POST")
            .to_ascii_uppercase(),
        twiml: None,
        status_callback: get(&params, "StatusCallback")
            .map(str::to_string)
            .or(app.status_callback.clone()),
        status_callback_method: get(&params, "StatusCallbackMethod")
            .unwrap_or("POST")
            .to_ascii_uppercase(),
        connection_id: Some(app.id.clone()),
        call_control: false,
        transferred_to: None,
        start_unix: now.timestamp(),
        end_unix: None,
        date_created: util::rfc2822(now),
        date_updated: util::rfc2822(now),
    };
    // The spec's InitiateCallResult has only from/to/status; `call_sid` is added because a client
    // cannot act on the call without it (documented deviation, see the crate docs).
    let body = json!({"from": from, "to": to, "status": "queued", "call_sid": call.id});
    let created = call.id.clone();
    world.state.calls.push(call);
    (Reply::json(200, &body), Some(created))
}

fn ended_call_error() -> Reply {
    error_with(
        422,
        "90018",
        "Call has already ended",
        "This call is no longer active and can't receive commands.",
        None,
    )
}

fn end_call(world: &mut World, id: &str) {
    let now = util::now();
    if let Some(stored) = world.call_mut(id) {
        stored.status = "completed".into();
        stored.end_unix = Some(now.timestamp());
        stored.date_updated = util::rfc2822(now);
    }
    for r in world
        .state
        .recordings
        .iter_mut()
        .filter(|r| r.call_id == id && r.status != "stopped")
    {
        r.status = "stopped".into();
    }
}

fn texml_update_call(world: &mut World, call: &Call, req: &Req) -> (Reply, bool) {
    let params = texml_params(req);
    let status = get(&params, "Status");
    let url = get(&params, "Url").filter(|v| !v.is_empty());
    let texml = get(&params, "Texml").filter(|v| !v.is_empty());
    if let Some(s) = status
        && !matches!(s, "completed" | "canceled")
    {
        return (
            invalid("/Status", "Status must be completed or canceled"),
            false,
        );
    }
    if call.status == "completed" && (status.is_some() || url.is_some() || texml.is_some()) {
        return (ended_call_error(), false);
    }
    let mut ended = false;
    if status.is_some() {
        end_call(world, &call.id);
        ended = true;
    } else if let Some(stored) = world.call_mut(&call.id) {
        if url.is_some() || texml.is_some() {
            stored.url = url.map(str::to_string);
            stored.twiml = texml.map(str::to_string);
        }
        if let Some(cb) = get(&params, "StatusCallback") {
            stored.status_callback = (!cb.is_empty()).then(|| cb.to_string());
        }
        stored.date_updated = util::rfc2822(util::now());
    }
    let body = find_call_any(world, &call.id)
        .map_or_else(|| texml_call_json(call), |c| texml_call_json(&c));
    (Reply::json(200, &body), ended)
}

fn find_call_any(world: &World, id: &str) -> Option<Call> {
    world.state.calls.iter().find(|c| c.id == id).cloned()
}

fn call_action(world: &mut World, call: &Call, action: &str, body: &Value) -> (Reply, bool) {
    let ok = || Reply::json(200, &json!({"data": {"result": "ok"}}));
    if !matches!(
        action,
        "hangup" | "record_start" | "record_stop" | "transfer"
    ) {
        return (not_found(), false);
    }
    if call.status == "completed" {
        return (ended_call_error(), false);
    }
    match action {
        "hangup" => {
            end_call(world, &call.id);
            (ok(), true)
        }
        "record_start" => {
            let format = body.get("format").and_then(Value::as_str);
            let channels = body.get("channels").and_then(Value::as_str);
            let (Some(format @ ("wav" | "mp3")), Some(channels @ ("single" | "dual"))) =
                (format, channels)
            else {
                return (
                    invalid(
                        "/format",
                        "format (wav|mp3) and channels (single|dual) are required.",
                    ),
                    false,
                );
            };
            let now = util::rfc2822(util::now());
            world.state.recordings.push(Recording {
                id: util::uuid(),
                carrier: Carrier::Telnyx,
                call_id: call.id.clone(),
                account_sid: call.account_sid.clone(),
                status: "in-progress".into(),
                channels: channels.into(),
                format: format.into(),
                date_created: now.clone(),
                date_updated: now,
            });
            (ok(), false)
        }
        "record_stop" => {
            let now = util::rfc2822(util::now());
            let mut stopped = false;
            for r in world
                .state
                .recordings
                .iter_mut()
                .filter(|r| r.call_id == call.id && r.status != "stopped")
            {
                r.status = "stopped".into();
                r.date_updated = now.clone();
                stopped = true;
            }
            if stopped {
                (ok(), false)
            } else {
                (
                    error_with(
                        422,
                        "90055",
                        "No recording in progress",
                        "There is no recording in progress on this call.",
                        None,
                    ),
                    false,
                )
            }
        }
        _ => {
            let Some(to) = body
                .get("to")
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
            else {
                return (
                    error_with(
                        422,
                        "10004",
                        "Missing required parameter",
                        "to is required.",
                        Some(json!({"pointer": "/to"})),
                    ),
                    false,
                );
            };
            if let Some(stored) = world.call_mut(&call.id) {
                stored.transferred_to = Some(to.to_string());
            }
            (ok(), false)
        }
    }
}

/// The call-control view of a call (`record_type: call`).
fn call_control_json(c: &Call) -> Value {
    let iso = |unix: i64| {
        chrono::DateTime::from_timestamp(unix, 0).map_or(Value::Null, |t| json!(util::iso8601(t)))
    };
    let live = matches!(c.status.as_str(), "queued" | "ringing" | "in-progress");
    let duration = c.end_unix.unwrap_or_else(|| util::now().timestamp()) - c.start_unix;
    json!({
        "record_type": "call",
        "call_session_id": c.session_id,
        "call_leg_id": c.session_id,
        "call_control_id": c.id,
        "is_alive": live,
        "client_state": Value::Null,
        "call_duration": duration.max(0),
        "start_time": iso(c.start_unix),
        "end_time": c.end_unix.map_or(Value::Null, iso),
    })
}

/// `POST /calls`: dials out through a connection. The callee answers at once.
fn dial(world: &mut World, account: &TelnyxAccount, body: &Value) -> (Reply, Option<String>) {
    for required in ["connection_id", "to", "from"] {
        if body
            .get(required)
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return (
                error_with(
                    422,
                    "10004",
                    "Missing required parameter",
                    &format!("{required} is required."),
                    Some(json!({"pointer": format!("/{required}")})),
                ),
                None,
            );
        }
    }
    let text = |name: &str| body.get(name).and_then(Value::as_str).map(str::to_string);
    let now = util::now();
    let call = Call {
        id: util::call_control_id(),
        carrier: Carrier::Telnyx,
        account_sid: account.account_sid.clone(),
        session_id: util::uuid(),
        from: text("from").unwrap_or_default(),
        to: text("to").unwrap_or_default(),
        direction: "outbound".into(),
        status: "in-progress".into(),
        forwarded_from: None,
        phone_number_id: None,
        url: None,
        url_method: "POST".into(),
        twiml: None,
        status_callback: text("webhook_url"),
        status_callback_method: text("webhook_url_method")
            .unwrap_or_else(|| "POST".into())
            .to_ascii_uppercase(),
        connection_id: text("connection_id"),
        call_control: true,
        transferred_to: None,
        start_unix: now.timestamp(),
        end_unix: None,
        date_created: util::rfc2822(now),
        date_updated: util::rfc2822(now),
    };
    let mut data = call_control_json(&call);
    if let Some(object) = data.as_object_mut() {
        object.insert(
            "client_state".into(),
            body.get("client_state").cloned().unwrap_or(Value::Null),
        );
        object.remove("end_time");
    }
    let events = call.status_callback.is_some().then(|| call.id.clone());
    world.state.calls.push(call);
    (Reply::json(200, &json!({"data": data})), events)
}

fn texml_recording_json(r: &Recording, track: &str) -> Value {
    json!({
        "account_sid": r.account_sid,
        "call_sid": r.call_id,
        "conference_sid": Value::Null,
        "channels": if r.channels == "single" { 1 } else { 2 },
        "date_created": r.date_created,
        "date_updated": r.date_updated,
        "start_time": r.date_created,
        "price": Value::Null,
        "price_unit": Value::Null,
        "duration": Value::Null,
        "sid": r.id,
        "source": "StartCallRecordingAPI",
        "error_code": Value::Null,
        "track": track,
        "uri": format!("/v2/texml/Accounts/{}/Calls/{}/Recordings/{}.json", r.account_sid, r.call_id, r.id),
    })
}

/// TeXML's Twilio-compatible recording start (form body: `RecordingChannels`, `RecordingTrack` …).
fn texml_start_recording(world: &mut World, call: &Call, req: &Req) -> Reply {
    if call.status != "in-progress" {
        return ended_call_error();
    }
    let params = texml_params(req);
    let channels = match get(&params, "RecordingChannels") {
        Some("mono" | "single") => "single",
        _ => "dual",
    };
    let track = match get(&params, "RecordingTrack") {
        Some(t @ ("inbound" | "outbound" | "both")) => t,
        Some(_) => {
            return invalid(
                "/RecordingTrack",
                "RecordingTrack must be inbound, outbound or both",
            );
        }
        None => "both",
    };
    let now = util::rfc2822(util::now());
    let recording = Recording {
        id: util::uuid(),
        carrier: Carrier::Telnyx,
        call_id: call.id.clone(),
        account_sid: call.account_sid.clone(),
        status: "in-progress".into(),
        channels: channels.into(),
        format: "wav".into(),
        date_created: now.clone(),
        date_updated: now,
    };
    let body = texml_recording_json(&recording, track);
    world.state.recordings.push(recording);
    Reply::json(200, &body)
}

/// Pause, resume or stop a TeXML recording (`Status`).
fn texml_update_recording(world: &mut World, id: &str, req: &Req) -> Reply {
    let params = texml_params(req);
    let Some(status @ ("stopped" | "paused" | "in-progress")) = get(&params, "Status") else {
        return invalid("/Status", "Status must be stopped, paused or in-progress");
    };
    let Some(recording) = world.recording_mut(id) else {
        return not_found();
    };
    if recording.status == "stopped" && status != "stopped" {
        return invalid("/Status", "The recording has already stopped.");
    }
    recording.status = status.to_string();
    recording.date_updated = util::rfc2822(util::now());
    Reply::json(200, &texml_recording_json(recording, "both"))
}
