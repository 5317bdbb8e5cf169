//! Twilio REST API 2010-04-01: form-encoded requests, `.json` paths, Basic auth, the legacy error
//! body `{code, message, more_info, status}` and the 2010 paging keys.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::model::{Call, Carrier, NumberType, Recording, TwilioAccount, TwilioNumber};
use crate::server::{Handled, Reply, Req, Shared, basic_auth};
use crate::util::{self, get};
use crate::webhook;
use crate::world::World;

const API: &str = "/2010-04-01";

/// The legacy 2010 error body.
pub(crate) fn error(status: u16, code: u32, message: &str) -> Reply {
    let reply = Reply::json(
        status,
        &json!({
            "code": code,
            "message": message,
            "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
            "status": status,
        }),
    );
    if status == 429 {
        reply.with_header("retry-after", "1")
    } else {
        reply
    }
}

fn unauthorized() -> Reply {
    error(401, 20003, "Authenticate").with_header("www-authenticate", "Basic realm=\"Twilio API\"")
}

fn not_found(path: &str) -> Reply {
    error(
        404,
        20404,
        &format!("The requested resource {path} was not found"),
    )
}

/// The answer to an armed status fault, shaped like Twilio's own errors (20000 + status is how
/// Twilio numbers 20404, 20429, 20500, 20503).
pub(crate) fn fault_reply(status: u16, path: &str) -> Reply {
    match status {
        401 => unauthorized(),
        404 => not_found(path),
        429 => error(429, 20429, "Too Many Requests"),
        _ => error(status, 20000 + u32::from(status), "Emulated failure"),
    }
}

/// Twilio's Pricing API: the monthly price of phone numbers in a country, under the emulator's
/// `/pricing` prefix (`https://pricing.twilio.com/v1/PhoneNumbers/Countries/{IsoCountry}`).
const PRICING_COUNTRIES: &str = "/pricing/v1/PhoneNumbers/Countries/";

/// The emulated monthly prices, in USD, per number type: Twilio's US list prices.
const PRICES: [(NumberType, &str, f64); 3] = [
    (NumberType::Local, "local", 1.15),
    (NumberType::Mobile, "mobile", 1.15),
    (NumberType::TollFree, "toll free", 2.15),
];

/// A country's phone-number prices, shaped as `pricing.v1.phone_number.phone_number_country-
/// instance`: a price for each type of number the emulator has for sale in the country; 404
/// for a country with none.
fn phone_number_prices(world: &World, country: &str) -> Reply {
    let iso = country.to_ascii_uppercase();
    let types: Vec<NumberType> = world
        .state
        .twilio_available
        .iter()
        .filter(|n| n.iso_country == iso)
        .map(|n| n.number_type)
        .collect();
    if iso.len() != 2 || types.is_empty() {
        return not_found(&format!("{PRICING_COUNTRIES}{country}"));
    }
    let prices: Vec<Value> = PRICES
        .iter()
        .filter(|(kind, _, _)| types.contains(kind))
        .map(|(_, name, price)| {
            json!({"number_type": name, "base_price": price, "current_price": price})
        })
        .collect();
    Reply::json(
        200,
        &json!({
            "country": if iso == "US" { "United States" } else { iso.as_str() },
            "iso_country": iso,
            "phone_number_prices": prices,
            "price_unit": "USD",
            "url": format!("https://pricing.twilio.com/v1/PhoneNumbers/Countries/{iso}"),
        }),
    )
}

pub(crate) async fn handle(shared: &Arc<Shared>, req: &Req) -> Handled {
    let Some((user, pass)) = basic_auth(req) else {
        return unauthorized().into();
    };
    let rest = req.path.strip_prefix(API).unwrap_or_default();
    let segments: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
    let form = util::parse_pairs(&String::from_utf8_lossy(&req.body));
    let query = util::parse_pairs(&req.query);

    let mut world = shared.world();
    // Suspended and closed accounts cannot authenticate.
    let Some(principal) = world
        .twilio_principal(&user, &pass)
        .filter(|a| a.status == "active")
        .cloned()
    else {
        return unauthorized().into();
    };
    let account = Some(principal.sid.clone());
    let handled = |reply: Reply| Handled {
        reply,
        account: account.clone(),
    };
    if world
        .count_request(&principal.sid, principal.rate_limit_per_second)
        .is_some_and(|w| w.exceeded())
    {
        return handled(error(429, 20429, "Too Many Requests"));
    }

    let method = req.method.as_str();
    if let Some(country) = req.path.strip_prefix(PRICING_COUNTRIES) {
        return handled(match method {
            "GET" => phone_number_prices(&world, country),
            _ => method_not_allowed(),
        });
    }
    // `Accounts.json` and `Accounts/{Sid}.json` carry the target account differently from the
    // rest, where it is the third segment.
    if segments == ["Accounts.json"] {
        let reply = match method {
            "GET" => list_accounts(&world, &principal, req, &query),
            "POST" => create_account(&mut world, &principal, &form),
            _ => method_not_allowed(),
        };
        return handled(reply);
    }
    let (target, tail) = match segments.as_slice() {
        ["Accounts", sid_json] if sid_json.ends_with(".json") => {
            (sid_json.trim_end_matches(".json").to_string(), Vec::new())
        }
        ["Accounts", sid, tail @ ..] if !tail.is_empty() => (sid.to_string(), tail.to_vec()),
        _ => return handled(not_found(&req.path)),
    };
    // Twilio authenticates against the account in the path: credentials of an unrelated (or
    // unknown) account, or of a subaccount on its parent, answer 401 rather than 404.
    if !world.twilio_may_act_on(&principal.sid, &target) {
        return handled(unauthorized());
    }

    let reply = match (method, tail.as_slice()) {
        (_, []) => match method {
            "GET" => world.twilio_account(&target).map_or_else(
                || not_found(&req.path),
                |a| Reply::json(200, &account_json(a)),
            ),
            "POST" => update_account(&mut world, &target, &form, &req.path),
            _ => method_not_allowed(),
        },
        ("GET", ["IncomingPhoneNumbers.json"]) => list_numbers(&world, &target, req, &query, None),
        ("POST", ["IncomingPhoneNumbers.json"]) => buy_number(&mut world, &target, &form, None),
        (
            m,
            [
                "IncomingPhoneNumbers",
                sub @ ("Local.json" | "Mobile.json" | "TollFree.json"),
            ],
        ) => {
            let kind = subtype(sub);
            match m {
                "GET" => list_numbers(&world, &target, req, &query, Some(kind)),
                "POST" => buy_number(&mut world, &target, &form, Some(kind)),
                _ => method_not_allowed(),
            }
        }
        (m, ["IncomingPhoneNumbers", sid_json]) => {
            let sid = sid_json.trim_end_matches(".json");
            let found = world.state.twilio_numbers.iter().position(|n| {
                n.sid == sid && n.account_sid == target && sid_json.ends_with(".json")
            });
            match (m, found) {
                (_, None) => not_found(&req.path),
                ("GET", Some(i)) => Reply::json(200, &number_json(&world.state.twilio_numbers[i])),
                ("POST", Some(i)) => update_number(&mut world, i, &form),
                ("DELETE", Some(i)) => {
                    world.state.twilio_numbers.remove(i);
                    Reply::empty(204)
                }
                _ => method_not_allowed(),
            }
        }
        (
            "GET",
            [
                "AvailablePhoneNumbers",
                country,
                sub @ ("Local.json" | "Mobile.json" | "TollFree.json"),
            ],
        ) => available(&world, &target, country, subtype(sub), &query),
        ("GET", ["Calls.json"]) => list_calls(&world, &target, req, &query),
        ("POST", ["Calls.json"]) => {
            let (reply, created) = create_call(&mut world, &target, &form);
            drop(world);
            if let Some(call_id) = created {
                webhook::spawn_call_url(shared, call_id.clone());
                webhook::spawn_inbound_leg(shared, Carrier::Twilio, call_id);
            }
            return handled(reply);
        }
        (m, ["Calls", sid_json]) if sid_json.ends_with(".json") => {
            let sid = sid_json.trim_end_matches(".json");
            let Some(call) = find_call(&world, &target, sid) else {
                return handled(not_found(&req.path));
            };
            match m {
                "GET" => Reply::json(200, &call_json(&call)),
                "POST" => {
                    let (reply, ended) = update_call(&mut world, &call, &form);
                    drop(world);
                    if ended {
                        webhook::spawn_status_callback(shared, call.id.clone());
                    }
                    return handled(reply);
                }
                _ => method_not_allowed(),
            }
        }
        (m, ["Calls", call_sid, "Recordings.json"]) => {
            let Some(call) = find_call(&world, &target, call_sid) else {
                return handled(not_found(&req.path));
            };
            match m {
                "POST" => start_recording(&mut world, &call, &form),
                "GET" => list_recordings(&world, &call, req, &query),
                _ => method_not_allowed(),
            }
        }
        (m, ["Calls", call_sid, "Recordings", sid_json]) if sid_json.ends_with(".json") => {
            let sid = sid_json.trim_end_matches(".json");
            let exists = find_call(&world, &target, call_sid).is_some()
                && world
                    .state
                    .recordings
                    .iter()
                    .any(|r| r.id == sid && r.call_id == *call_sid);
            if !exists {
                return handled(not_found(&req.path));
            }
            match m {
                "GET" => world
                    .state
                    .recordings
                    .iter()
                    .find(|r| r.id == sid)
                    .map_or_else(
                        || not_found(&req.path),
                        |r| Reply::json(200, &recording_json(r)),
                    ),
                "POST" => update_recording(&mut world, sid, &form, &req.path),
                _ => method_not_allowed(),
            }
        }
        _ => not_found(&req.path),
    };
    handled(reply)
}

fn method_not_allowed() -> Reply {
    error(405, 20004, "Method not allowed")
}

fn subtype(file: &str) -> NumberType {
    match file {
        "Mobile.json" => NumberType::Mobile,
        "TollFree.json" => NumberType::TollFree,
        _ => NumberType::Local,
    }
}

fn type_name(t: NumberType) -> &'static str {
    match t {
        NumberType::Local => "local",
        NumberType::Mobile => "mobile",
        NumberType::TollFree => "toll-free",
    }
}

// ---------------------------------------------------------------------------------------------
// Pagination

struct Page<'a, T> {
    items: Vec<&'a T>,
    body: Map<String, Value>,
}

/// Twilio's 2010 paging: `PageSize` (1..=1000, default 50), zero-based `Page`, and an opaque
/// `PageToken` that the emulator makes `PT<offset>` so a next-page URI is self-sufficient.
fn paginate<'a, T>(
    items: &'a [T],
    path: &str,
    query: &[(String, String)],
    filters: &[(&str, &str)],
) -> Result<Page<'a, T>, Reply> {
    let page_size = match get(query, "PageSize") {
        None => 50,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=1000).contains(&n) => n,
            _ => return Err(error(400, 20001, "PageSize must be between 1 and 1000")),
        },
    };
    let page = match get(query, "Page") {
        None => 0,
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| error(400, 20001, "Page must be a non-negative integer"))?,
    };
    let start = match get(query, "PageToken") {
        None => page.saturating_mul(page_size),
        Some(token) => token
            .strip_prefix("PT")
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| error(400, 21481, "Invalid PageToken"))?,
    };
    let selected: Vec<&T> = items.iter().skip(start).take(page_size).collect();
    let filter_pairs: Vec<(String, String)> = filters
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect();
    let uri_for = |page: usize, token: Option<usize>| {
        let mut pairs = filter_pairs.clone();
        pairs.push(("PageSize".into(), page_size.to_string()));
        pairs.push(("Page".into(), page.to_string()));
        if let Some(offset) = token {
            pairs.push(("PageToken".into(), format!("PT{offset}")));
        }
        format!("{path}?{}", util::encode_pairs(&pairs))
    };
    let has_next = start + selected.len() < items.len();
    let mut body = Map::new();
    body.insert("first_page_uri".into(), json!(uri_for(0, None)));
    body.insert(
        "uri".into(),
        json!(uri_for(page, get(query, "PageToken").map(|_| start))),
    );
    body.insert(
        "next_page_uri".into(),
        if has_next {
            json!(uri_for(page + 1, Some(start + selected.len())))
        } else {
            Value::Null
        },
    );
    body.insert(
        "previous_page_uri".into(),
        if page > 0 && start > 0 {
            json!(uri_for(page - 1, Some(start.saturating_sub(page_size))))
        } else {
            Value::Null
        },
    );
    body.insert("page".into(), json!(page));
    body.insert("page_size".into(), json!(page_size));
    body.insert(
        "start".into(),
        json!(if selected.is_empty() { 0 } else { start }),
    );
    body.insert(
        "end".into(),
        json!(if selected.is_empty() {
            0
        } else {
            start + selected.len() - 1
        }),
    );
    Ok(Page {
        items: selected,
        body,
    })
}

fn page_reply<T>(page: Page<'_, T>, key: &str, render: impl Fn(&T) -> Value) -> Reply {
    let mut body = page.body;
    body.insert(
        key.into(),
        Value::Array(page.items.into_iter().map(render).collect()),
    );
    Reply::json(200, &Value::Object(body))
}

// ---------------------------------------------------------------------------------------------
// Accounts

fn account_json(a: &TwilioAccount) -> Value {
    let base = format!("{API}/Accounts/{}", a.sid);
    json!({
        "auth_token": a.auth_token,
        "date_created": a.date_created,
        "date_updated": a.date_updated,
        "friendly_name": a.friendly_name,
        "owner_account_sid": a.owner_account_sid.clone().unwrap_or_else(|| a.sid.clone()),
        "sid": a.sid,
        "status": a.status,
        "subresource_uris": {
            "incoming_phone_numbers": format!("{base}/IncomingPhoneNumbers.json"),
            "available_phone_numbers": format!("{base}/AvailablePhoneNumbers.json"),
            "calls": format!("{base}/Calls.json"),
            "recordings": format!("{base}/Recordings.json"),
        },
        "type": "Full",
        "uri": format!("{base}.json"),
    })
}

fn list_accounts(
    world: &World,
    principal: &TwilioAccount,
    req: &Req,
    query: &[(String, String)],
) -> Reply {
    let name = get(query, "FriendlyName");
    let status = get(query, "Status");
    let accounts: Vec<TwilioAccount> = world
        .state
        .twilio_accounts
        .iter()
        .filter(|a| world.twilio_may_act_on(&principal.sid, &a.sid))
        .filter(|a| name.is_none_or(|n| a.friendly_name == n))
        .filter(|a| status.is_none_or(|s| a.status == s))
        .cloned()
        .collect();
    let mut filters = Vec::new();
    if let Some(n) = name {
        filters.push(("FriendlyName", n));
    }
    if let Some(s) = status {
        filters.push(("Status", s));
    }
    match paginate(&accounts, &req.path, query, &filters) {
        Ok(page) => page_reply(page, "accounts", account_json),
        Err(reply) => reply,
    }
}

fn create_account(
    world: &mut World,
    principal: &TwilioAccount,
    form: &[(String, String)],
) -> Reply {
    // Twilio has one level of subaccounts: a subaccount's request creates a sibling.
    let owner = principal
        .owner_account_sid
        .clone()
        .unwrap_or_else(|| principal.sid.clone());
    let now = util::rfc2822(util::now());
    let sid = util::twilio_sid("AC");
    let account = TwilioAccount {
        friendly_name: get(form, "FriendlyName")
            .map_or_else(|| format!("SubAccount Created at {now}"), str::to_string),
        sid,
        auth_token: util::token(),
        api_keys: Vec::new(),
        status: "active".into(),
        owner_account_sid: Some(owner),
        region: principal.region.clone(),
        rate_limit_per_second: principal.rate_limit_per_second,
        date_created: now.clone(),
        date_updated: now,
    };
    let body = account_json(&account);
    world.state.twilio_accounts.push(account);
    Reply::json(201, &body)
}

fn update_account(world: &mut World, sid: &str, form: &[(String, String)], path: &str) -> Reply {
    let status = get(form, "Status");
    if let Some(s) = status
        && !matches!(s, "active" | "suspended" | "closed")
    {
        return error(400, 20001, "Status must be active, suspended or closed");
    }
    let Some(account) = world
        .state
        .twilio_accounts
        .iter_mut()
        .find(|a| a.sid == sid)
    else {
        return not_found(path);
    };
    if let Some(name) = get(form, "FriendlyName") {
        account.friendly_name = name.to_string();
    }
    if let Some(s) = status {
        account.status = s.to_string();
    }
    account.date_updated = util::rfc2822(util::now());
    Reply::json(200, &account_json(account))
}

// ---------------------------------------------------------------------------------------------
// IncomingPhoneNumbers

fn opt(s: &Option<String>) -> Value {
    s.as_ref().map_or(Value::Null, |v| json!(v))
}

pub(crate) fn number_json(n: &TwilioNumber) -> Value {
    json!({
        "account_sid": n.account_sid,
        "address_sid": Value::Null,
        "address_requirements": "none",
        "api_version": "2010-04-01",
        "beta": false,
        "capabilities": {
            "voice": n.capabilities.voice,
            "sms": n.capabilities.sms,
            "mms": n.capabilities.mms,
            "fax": n.capabilities.fax,
        },
        "date_created": n.date_created,
        "date_updated": n.date_updated,
        "friendly_name": n.friendly_name,
        "identity_sid": Value::Null,
        "phone_number": n.phone_number,
        "origin": n.origin,
        "sid": n.sid,
        "sms_application_sid": "",
        "sms_fallback_method": "POST",
        "sms_fallback_url": "",
        "sms_method": "POST",
        "sms_url": "",
        "status_callback": n.status_callback.clone().unwrap_or_default(),
        "status_callback_method": n.status_callback_method,
        "trunk_sid": opt(&n.trunk_sid),
        "uri": format!("{API}/Accounts/{}/IncomingPhoneNumbers/{}.json", n.account_sid, n.sid),
        "voice_receive_mode": "voice",
        "voice_application_sid": n.voice_application_sid.clone().unwrap_or_default(),
        "voice_caller_id_lookup": false,
        "voice_fallback_method": n.voice_fallback_method,
        "voice_fallback_url": opt(&n.voice_fallback_url),
        "voice_method": n.voice_method,
        "voice_url": opt(&n.voice_url),
        "emergency_status": "Inactive",
        "emergency_address_sid": Value::Null,
        "emergency_address_status": "unregistered",
        "bundle_sid": Value::Null,
        "status": "in-use",
        "type": n.number_type.clone().map_or(Value::Null, Value::String),
    })
}

fn list_numbers(
    world: &World,
    account: &str,
    req: &Req,
    query: &[(String, String)],
    kind: Option<NumberType>,
) -> Reply {
    let phone = get(query, "PhoneNumber");
    let name = get(query, "FriendlyName");
    let origin = get(query, "Origin");
    let numbers: Vec<TwilioNumber> = world
        .state
        .twilio_numbers
        .iter()
        .filter(|n| n.account_sid == account)
        // Twilio matches PhoneNumber as a pattern over the number; a plain prefix/substring is
        // what clients rely on (an exact E.164 is a substring of itself).
        .filter(|n| phone.is_none_or(|p| n.phone_number.contains(p.trim())))
        .filter(|n| name.is_none_or(|f| n.friendly_name == f))
        .filter(|n| origin.is_none_or(|o| n.origin == o))
        .filter(|n| kind.is_none_or(|k| n.number_type.as_deref() == Some(type_name(k))))
        .cloned()
        .collect();
    let mut filters = Vec::new();
    if let Some(n) = name {
        filters.push(("FriendlyName", n));
    }
    if let Some(p) = phone {
        filters.push(("PhoneNumber", p));
    }
    if let Some(o) = origin {
        filters.push(("Origin", o));
    }
    match paginate(&numbers, &req.path, query, &filters) {
        Ok(page) => page_reply(page, "incoming_phone_numbers", number_json),
        Err(reply) => reply,
    }
}

/// Applies the voice-configuration parameters of create and update.
fn apply_number_params(n: &mut TwilioNumber, form: &[(String, String)]) -> Result<(), Reply> {
    for (key, value) in form {
        let method = || -> Result<String, Reply> {
            let m = value.to_ascii_uppercase();
            if m == "GET" || m == "POST" {
                Ok(m)
            } else {
                Err(error(400, 21609, &format!("{key} must be GET or POST")))
            }
        };
        let url = || (!value.is_empty()).then(|| value.clone());
        match key.as_str() {
            "FriendlyName" => n.friendly_name = value.clone(),
            "VoiceUrl" => n.voice_url = url(),
            "VoiceMethod" => n.voice_method = method()?,
            "VoiceFallbackUrl" => n.voice_fallback_url = url(),
            "VoiceFallbackMethod" => n.voice_fallback_method = method()?,
            "StatusCallback" => n.status_callback = url(),
            "StatusCallbackMethod" => n.status_callback_method = method()?,
            "VoiceApplicationSid" => n.voice_application_sid = url(),
            "TrunkSid" => n.trunk_sid = url(),
            _ => {}
        }
    }
    Ok(())
}

fn update_number(world: &mut World, index: usize, form: &[(String, String)]) -> Reply {
    let mut number = world.state.twilio_numbers[index].clone();
    if let Err(reply) = apply_number_params(&mut number, form) {
        return reply;
    }
    // Moving a number between a parent and its subaccounts is an update of AccountSid.
    if let Some(new_owner) = get(form, "AccountSid") {
        let related = world.twilio_may_act_on(&number.account_sid, new_owner)
            || world.twilio_may_act_on(new_owner, &number.account_sid);
        if !related {
            return error(
                400,
                20001,
                "AccountSid must be the number's account or a related subaccount",
            );
        }
        number.account_sid = new_owner.to_string();
    }
    number.date_updated = util::rfc2822(util::now());
    let body = number_json(&number);
    world.state.twilio_numbers[index] = number;
    Reply::json(200, &body)
}

fn buy_number(
    world: &mut World,
    account: &str,
    form: &[(String, String)],
    kind: Option<NumberType>,
) -> Reply {
    let kind_ok = |t: NumberType| kind.is_none_or(|k| k == t);
    let index =
        if let Some(phone) = get(form, "PhoneNumber") {
            if !util::is_e164(phone) {
                return error(400, 21421, "PhoneNumber is invalid");
            }
            match world
                .state
                .twilio_available
                .iter()
                .position(|a| a.phone_number == phone && kind_ok(a.number_type))
            {
                Some(i) => i,
                None => return error(400, 21422, "PhoneNumber requested is not available"),
            }
        } else if let Some(area) = get(form, "AreaCode") {
            match world.state.twilio_available.iter().position(|a| {
                util::area_code(&a.phone_number) == Some(area) && kind_ok(a.number_type)
            }) {
                Some(i) => i,
                None => return error(400, 21452, "No phone numbers found in area code"),
            }
        } else {
            return error(400, 21421, "A PhoneNumber or AreaCode is required");
        };
    let available = world.state.twilio_available[index].clone();
    let now = util::rfc2822(util::now());
    let mut number = crate::world::normalize_twilio_number(
        &TwilioNumber {
            phone_number: available.phone_number.clone(),
            capabilities: available.capabilities,
            number_type: Some(type_name(available.number_type).to_string()),
            ..TwilioNumber::default()
        },
        account,
        &now,
    );
    if let Err(reply) = apply_number_params(&mut number, form) {
        return reply;
    }
    world.state.twilio_available.remove(index);
    let body = number_json(&number);
    world.state.twilio_numbers.push(number);
    Reply::json(201, &body)
}

fn available(
    world: &World,
    account: &str,
    country: &str,
    kind: NumberType,
    query: &[(String, String)],
) -> Reply {
    let area = get(query, "AreaCode");
    let contains = get(query, "Contains");
    let voice = get(query, "VoiceEnabled").map(|v| v.eq_ignore_ascii_case("true"));
    let limit = get(query, "PageSize")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(50);
    let items: Vec<Value> = world
        .state
        .twilio_available
        .iter()
        .filter(|a| a.iso_country.eq_ignore_ascii_case(country) && a.number_type == kind)
        .filter(|a| area.is_none_or(|code| util::area_code(&a.phone_number) == Some(code)))
        .filter(|a| contains.is_none_or(|c| a.phone_number.contains(c)))
        .filter(|a| voice.is_none_or(|v| !v || a.capabilities.voice))
        .take(limit)
        .map(|a| {
            json!({
                "friendly_name": util::format_number(&a.phone_number),
                "phone_number": a.phone_number,
                "lata": opt(&a.lata),
                "locality": opt(&a.locality),
                "rate_center": opt(&a.rate_center),
                "latitude": Value::Null,
                "longitude": Value::Null,
                "region": opt(&a.region),
                "postal_code": opt(&a.postal_code),
                "iso_country": a.iso_country,
                "address_requirements": "none",
                "beta": false,
                // Upper-case SMS/MMS here, unlike IncomingPhoneNumbers: that is what Twilio sends.
                "capabilities": {
                    "voice": a.capabilities.voice,
                    "SMS": a.capabilities.sms,
                    "MMS": a.capabilities.mms,
                },
            })
        })
        .collect();
    let file = match kind {
        NumberType::Local => "Local",
        NumberType::Mobile => "Mobile",
        NumberType::TollFree => "TollFree",
    };
    let query_string = util::encode_pairs(query);
    let mut uri = format!("{API}/Accounts/{account}/AvailablePhoneNumbers/{country}/{file}.json");
    if !query_string.is_empty() {
        uri = format!("{uri}?{query_string}");
    }
    Reply::json(200, &json!({"uri": uri, "available_phone_numbers": items}))
}

// ---------------------------------------------------------------------------------------------
// Calls and recordings

fn find_call(world: &World, account: &str, sid: &str) -> Option<Call> {
    world
        .state
        .calls
        .iter()
        .find(|c| c.carrier == Carrier::Twilio && c.id == sid && c.account_sid == account)
        .cloned()
}

pub(crate) fn call_json(c: &Call) -> Value {
    let base = format!("{API}/Accounts/{}/Calls/{}", c.account_sid, c.id);
    let rfc = |unix: i64| {
        chrono::DateTime::from_timestamp(unix, 0).map_or(Value::Null, |t| json!(util::rfc2822(t)))
    };
    let duration = c
        .end_unix
        .map(|end| (end - c.start_unix).max(0).to_string());
    json!({
        "sid": c.id,
        "date_created": c.date_created,
        "date_updated": c.date_updated,
        "parent_call_sid": Value::Null,
        "account_sid": c.account_sid,
        "to": c.to,
        "to_formatted": util::format_number(&c.to),
        "from": c.from,
        "from_formatted": util::format_number(&c.from),
        "phone_number_sid": opt(&c.phone_number_id),
        "status": c.status,
        "start_time": if c.status == "queued" { Value::Null } else { rfc(c.start_unix) },
        "end_time": c.end_unix.map_or(Value::Null, rfc),
        "duration": duration.map_or(Value::Null, Value::String),
        "price": Value::Null,
        "price_unit": "USD",
        "direction": c.direction,
        "answered_by": Value::Null,
        "api_version": "2010-04-01",
        "forwarded_from": opt(&c.forwarded_from),
        "group_sid": Value::Null,
        "caller_name": Value::Null,
        "queue_time": "0",
        "trunk_sid": Value::Null,
        "uri": format!("{base}.json"),
        "subresource_uris": {
            "recordings": format!("{base}/Recordings.json"),
            "notifications": format!("{base}/Notifications.json"),
            "events": format!("{base}/Events.json"),
        },
    })
}

fn list_calls(world: &World, account: &str, req: &Req, query: &[(String, String)]) -> Reply {
    let to = get(query, "To");
    let from = get(query, "From");
    let status = get(query, "Status");
    let calls: Vec<Call> = world
        .state
        .calls
        .iter()
        .filter(|c| c.carrier == Carrier::Twilio && c.account_sid == account)
        .filter(|c| to.is_none_or(|t| c.to == t))
        .filter(|c| from.is_none_or(|f| c.from == f))
        .filter(|c| status.is_none_or(|s| c.status == s))
        .cloned()
        .collect();
    let mut filters = Vec::new();
    for (k, v) in [("To", to), ("From", from), ("Status", status)] {
        if let Some(v) = v {
            filters.push((k, v));
        }
    }
    match paginate(&calls, &req.path, query, &filters) {
        Ok(page) => page_reply(page, "calls", call_json),
        Err(reply) => reply,
    }
}

/// Creates an outbound call. The callee "answers" at once, so the stored call is in progress
/// while the create response shows `queued`, as Twilio's does. Returns the call to fetch TwiML
/// for, when it has a `Url`.
fn create_call(
    world: &mut World,
    account: &str,
    form: &[(String, String)],
) -> (Reply, Option<String>) {
    let Some(to) = get(form, "To").filter(|v| !v.is_empty()) else {
        return (error(400, 21201, "No 'To' number is specified"), None);
    };
    let Some(from) = get(form, "From").filter(|v| !v.is_empty()) else {
        return (
            error(400, 21603, "A 'From' phone number is required."),
            None,
        );
    };
    let url = get(form, "Url").filter(|v| !v.is_empty());
    let twiml = get(form, "Twiml").filter(|v| !v.is_empty());
    let app = get(form, "ApplicationSid").filter(|v| !v.is_empty());
    if url.is_none() && twiml.is_none() && app.is_none() {
        return (error(400, 21205, "Url parameter is required."), None);
    }
    let Some(number) = world
        .state
        .twilio_numbers
        .iter()
        .find(|n| n.account_sid == account && n.phone_number == from)
    else {
        return (
            error(
                400,
                21210,
                &format!(
                    "The source phone number provided, {from}, is not yet verified for your account."
                ),
            ),
            None,
        );
    };
    let now = util::now();
    let mut call = Call {
        id: util::twilio_sid("CA"),
        carrier: Carrier::Twilio,
        account_sid: account.to_string(),
        session_id: String::new(),
        from: from.to_string(),
        to: to.to_string(),
        direction: "outbound-api".into(),
        status: "queued".into(),
        forwarded_from: None,
        phone_number_id: Some(number.sid.clone()),
        url: url.map(str::to_string),
        url_method: get(form, "Method").unwrap_or("POST").to_ascii_uppercase(),
        twiml: twiml.map(str::to_string),
        status_callback: get(form, "StatusCallback")
            .filter(|v| !v.is_empty())
            .map(str::to_string),
        status_callback_method: get(form, "StatusCallbackMethod")
            .unwrap_or("POST")
            .to_ascii_uppercase(),
        connection_id: None,
        call_control: false,
        transferred_to: None,
        start_unix: now.timestamp(),
        end_unix: None,
        date_created: util::rfc2822(now),
        date_updated: util::rfc2822(now),
    };
    let body = call_json(&call);
    call.status = "in-progress".into();
    // Once answered, Twilio fetches the call's TwiML from `Url`.
    let fetch = call.url.is_some().then(|| call.id.clone());
    world.state.calls.push(call);
    (Reply::json(201, &body), fetch)
}

/// Redirect (`Url`/`Twiml`) or hang up (`Status`). Returns the reply and whether the call ended.
fn update_call(world: &mut World, call: &Call, form: &[(String, String)]) -> (Reply, bool) {
    let live = matches!(call.status.as_str(), "queued" | "ringing" | "in-progress");
    let status = get(form, "Status");
    let url = get(form, "Url").filter(|v| !v.is_empty());
    let twiml = get(form, "Twiml").filter(|v| !v.is_empty());
    if let Some(s) = status
        && !matches!(s, "completed" | "canceled")
    {
        return (
            error(400, 20001, "Status must be completed or canceled"),
            false,
        );
    }
    if (status.is_some() || url.is_some() || twiml.is_some()) && !live {
        return (
            error(400, 21220, "Call is not in-progress. Cannot redirect."),
            false,
        );
    }
    // `canceled` only hangs up calls that have not been answered; on an answered call it is
    // accepted and changes nothing.
    if status == Some("canceled") && call.status == "in-progress" {
        return (Reply::json(200, &call_json(call)), false);
    }
    let Some(stored) = world.call_mut(&call.id) else {
        return (
            error(404, 20404, "The requested resource was not found"),
            false,
        );
    };
    let now = util::now();
    if url.is_some() || twiml.is_some() {
        stored.url = url.map(str::to_string);
        stored.twiml = twiml.map(str::to_string);
    }
    if let Some(cb) = get(form, "StatusCallback") {
        stored.status_callback = (!cb.is_empty()).then(|| cb.to_string());
    }
    let mut ended = false;
    if let Some(s) = status {
        stored.status = s.to_string();
        stored.end_unix = Some(now.timestamp());
        ended = true;
    }
    stored.date_updated = util::rfc2822(now);
    let body = call_json(stored);
    if ended {
        for r in world
            .state
            .recordings
            .iter_mut()
            .filter(|r| r.call_id == call.id)
        {
            if r.status == "in-progress" || r.status == "paused" {
                r.status = "stopped".into();
            }
        }
    }
    (Reply::json(200, &body), ended)
}

pub(crate) fn recording_json(r: &Recording) -> Value {
    json!({
        "account_sid": r.account_sid,
        "api_version": "2010-04-01",
        "call_sid": r.call_id,
        "conference_sid": Value::Null,
        "date_created": r.date_created,
        "date_updated": r.date_updated,
        "start_time": r.date_created,
        "duration": Value::Null,
        "sid": r.id,
        "price": Value::Null,
        "uri": format!("{API}/Accounts/{}/Calls/{}/Recordings/{}.json", r.account_sid, r.call_id, r.id),
        "encryption_details": Value::Null,
        "price_unit": Value::Null,
        "status": r.status,
        "channels": r.channels.parse::<u32>().unwrap_or(2),
        "source": "StartCallRecordingAPI",
        "error_code": Value::Null,
        "track": "both",
    })
}

fn start_recording(world: &mut World, call: &Call, form: &[(String, String)]) -> Reply {
    if call.status != "in-progress" {
        return error(400, 21220, "Invalid call state");
    }
    let channels = match get(form, "RecordingChannels") {
        Some("mono") => "1",
        _ => "2",
    };
    let now = util::rfc2822(util::now());
    let recording = Recording {
        id: util::twilio_sid("RE"),
        carrier: Carrier::Twilio,
        call_id: call.id.clone(),
        account_sid: call.account_sid.clone(),
        status: "in-progress".into(),
        channels: channels.into(),
        format: String::new(),
        date_created: now.clone(),
        date_updated: now,
    };
    let body = recording_json(&recording);
    world.state.recordings.push(recording);
    Reply::json(201, &body)
}

fn list_recordings(world: &World, call: &Call, req: &Req, query: &[(String, String)]) -> Reply {
    let recordings: Vec<Recording> = world
        .state
        .recordings
        .iter()
        .filter(|r| r.call_id == call.id)
        .cloned()
        .collect();
    match paginate(&recordings, &req.path, query, &[]) {
        Ok(page) => page_reply(page, "recordings", recording_json),
        Err(reply) => reply,
    }
}

fn update_recording(world: &mut World, sid: &str, form: &[(String, String)], path: &str) -> Reply {
    let Some(status) = get(form, "Status") else {
        return error(400, 20001, "Status is required");
    };
    if !matches!(status, "stopped" | "paused" | "in-progress") {
        return error(400, 20001, "Status must be stopped, paused or in-progress");
    }
    let Some(recording) = world.recording_mut(sid) else {
        return not_found(path);
    };
    if recording.status == "stopped" && status != "stopped" {
        return error(400, 21220, "Invalid call state");
    }
    recording.status = status.to_string();
    recording.date_updated = util::rfc2822(util::now());
    Reply::json(200, &recording_json(recording))
}
