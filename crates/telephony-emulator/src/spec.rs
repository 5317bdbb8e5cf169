//! Checks requests and responses against the official OpenAPI documents of both carriers, so that
//! tests can prove a client sends only what the real API accepts and the emulator answers only
//! what the real API declares.

use std::path::Path;

use serde_json::{Map, Value};

use crate::EmulatorError;
use crate::model::{Carrier, RequestRecord};
use crate::util;

/// The two OpenAPI documents, loaded once.
#[derive(Debug, Clone)]
pub struct SpecChecker {
    twilio: Value,
    telnyx: Value,
}

impl SpecChecker {
    /// Loads `twilio_api_v2010.json` and `telnyx_openapi.json` from `dir` (the workspace's
    /// `shared/specs`).
    ///
    /// # Errors
    ///
    /// [`EmulatorError::SpecRead`] when a file cannot be read, [`EmulatorError::SpecParse`] when
    /// it is not JSON.
    pub fn load(dir: &Path) -> Result<SpecChecker, EmulatorError> {
        let read = |name: &str| -> Result<Value, EmulatorError> {
            let path = dir.join(name);
            let text =
                std::fs::read_to_string(&path).map_err(|source| EmulatorError::SpecRead {
                    path: path.display().to_string(),
                    source,
                })?;
            serde_json::from_str(&text)
                .map_err(|e| EmulatorError::SpecParse(format!("{name}: {e}")))
        };
        Ok(SpecChecker {
            twilio: read("twilio_api_v2010.json")?,
            telnyx: read("telnyx_openapi.json")?,
        })
    }

    fn spec_and_path<'a>(&'a self, carrier: Carrier, path: &str) -> (&'a Value, String) {
        match carrier {
            Carrier::Twilio => (&self.twilio, path.to_string()),
            Carrier::Telnyx => (
                &self.telnyx,
                path.strip_prefix("/v2").unwrap_or(path).to_string(),
            ),
        }
    }

    /// The spec's path template for a concrete request path (`/v2` stripped for Telnyx),
    /// preferring the most literal match.
    pub fn template_for(&self, carrier: Carrier, path: &str) -> Option<String> {
        let (spec, path) = self.spec_and_path(carrier, path);
        template_for(spec, &path)
    }

    /// Problems with a request a client sent: unknown route or method, query parameters and body
    /// fields the operation does not declare, required body fields missing, a body media type
    /// the operation does not accept. Empty when the request conforms. Messages name fields,
    /// never values.
    pub fn check_request(&self, record: &RequestRecord) -> Vec<String> {
        let Some(carrier) = record.carrier else {
            return vec![format!(
                "{} {}: not a carrier path",
                record.method, record.path
            )];
        };
        let (spec, path) = self.spec_and_path(carrier, &record.path);
        let label = format!("{} {}", record.method, record.path);
        let Some(template) = template_for(spec, &path) else {
            return vec![format!("{label}: no such path in the spec")];
        };
        let method = record.method.to_ascii_lowercase();
        let Some(operation) = spec["paths"][&template].get(&method) else {
            return vec![format!("{label}: the spec has no {method} on {template}")];
        };
        let mut problems = Vec::new();

        let mut declared: Vec<String> = Vec::new();
        for list in [
            &spec["paths"][&template]["parameters"],
            &operation["parameters"],
        ] {
            for p in list.as_array().into_iter().flatten() {
                let p = resolve(spec, p);
                if p["in"] == "query"
                    && let Some(name) = p["name"].as_str()
                {
                    declared.push(name.to_string());
                }
            }
        }
        for (name, _) in util::parse_pairs(record.query.as_deref().unwrap_or_default()) {
            // deepObject parameters (`page[size]`, `filter[phone_number]`) are declared by base name.
            let base = name.split('[').next().unwrap_or(&name);
            if !declared.iter().any(|d| d == &name || d == base) {
                problems.push(format!("{label}: query parameter `{name}` is not declared"));
            }
        }

        if record.body.is_empty() {
            return problems;
        }
        let content = &resolve(spec, &operation["requestBody"])["content"];
        let Some(types) = content.as_object() else {
            problems.push(format!("{label}: the operation takes no body"));
            return problems;
        };
        let sent_type = record.content_type.as_deref().unwrap_or_default();
        let sent_type = sent_type.split(';').next().unwrap_or_default().trim();
        let Some(media) = types.get(sent_type) else {
            let accepted: Vec<&String> = types.keys().collect();
            problems.push(format!(
                "{label}: body type `{sent_type}` not accepted (spec: {accepted:?})"
            ));
            return problems;
        };
        let names: Vec<String> = if sent_type.contains("json") {
            match serde_json::from_str::<Map<String, Value>>(&record.body) {
                Ok(object) => object.keys().cloned().collect(),
                Err(_) => {
                    problems.push(format!("{label}: body is not a JSON object"));
                    return problems;
                }
            }
        } else {
            util::parse_pairs(&record.body)
                .into_iter()
                .map(|(k, _)| k)
                .collect()
        };
        if let Some((properties, required)) = object_shape(spec, &media["schema"]) {
            for name in &names {
                if !properties.contains_key(name) {
                    problems.push(format!("{label}: body field `{name}` is not declared"));
                }
            }
            for name in required {
                if !names.contains(&name) {
                    problems.push(format!("{label}: required body field `{name}` is missing"));
                }
            }
        }
        problems
    }

    /// Problems with a JSON response: property names the response schema does not declare,
    /// required properties missing, basic type mismatches. Empty when it conforms, or when the
    /// spec declares no JSON body for that status.
    pub fn check_response(
        &self,
        carrier: Carrier,
        method: &str,
        path: &str,
        status: u16,
        body: &Value,
    ) -> Vec<String> {
        let (spec, spec_path) = self.spec_and_path(carrier, path);
        let label = format!("{method} {path}");
        let Some(template) = template_for(spec, &spec_path) else {
            return vec![format!("{label}: no such path in the spec")];
        };
        let Some(operation) = spec["paths"][&template].get(method.to_ascii_lowercase()) else {
            return vec![format!("{label}: method not in the spec")];
        };
        let Some(response) = operation["responses"].get(status.to_string()) else {
            return vec![format!("{label}: the spec lists no {status} response")];
        };
        let Some(schema) = resolve(spec, response)["content"]
            .get("application/json")
            .map(|c| &c["schema"])
        else {
            return Vec::new();
        };
        let mut problems = Vec::new();
        check_value(spec, schema, body, &label, &mut problems);
        problems
    }

    /// Checks a value against a named component schema (e.g. Telnyx `Errors`).
    pub fn check_component(&self, carrier: Carrier, component: &str, body: &Value) -> Vec<String> {
        let (spec, _) = self.spec_and_path(carrier, "");
        let schema = serde_json::json!({"$ref": format!("#/components/schemas/{component}")});
        let mut problems = Vec::new();
        check_value(spec, &schema, body, component, &mut problems);
        problems
    }
}

fn template_for(spec: &Value, path: &str) -> Option<String> {
    let concrete: Vec<&str> = path.split('/').collect();
    let mut best: Option<(usize, String)> = None;
    for template in spec["paths"].as_object()?.keys() {
        let parts: Vec<&str> = template.split('/').collect();
        if parts.len() != concrete.len() {
            continue;
        }
        let mut literal = 0;
        let matched = parts.iter().zip(&concrete).all(|(t, c)| {
            if t.starts_with('{') && t.ends_with("}.json") {
                c.len() > 5 && c.ends_with(".json")
            } else if t.starts_with('{') && t.ends_with('}') {
                !c.is_empty()
            } else {
                literal += 1;
                t == c
            }
        });
        if matched && best.as_ref().is_none_or(|(n, _)| literal > *n) {
            best = Some((literal, template.clone()));
        }
    }
    best.map(|(_, t)| t)
}

fn resolve<'a>(spec: &'a Value, mut schema: &'a Value) -> &'a Value {
    // A bounded walk: a cyclic `$ref` chain in a malformed document must not hang a test.
    for _ in 0..32 {
        let Some(reference) = schema.get("$ref").and_then(Value::as_str) else {
            break;
        };
        schema = spec
            .pointer(reference.trim_start_matches('#'))
            .unwrap_or(&Value::Null);
    }
    schema
}

/// Properties and required names of an object schema, merging `allOf` parts.
fn object_shape(spec: &Value, schema: &Value) -> Option<(Map<String, Value>, Vec<String>)> {
    let schema = resolve(spec, schema);
    let mut properties = Map::new();
    let mut required = Vec::new();
    let mut found = false;
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        properties.extend(props.clone());
        found = true;
    }
    if let Some(names) = schema.get("required").and_then(Value::as_array) {
        required.extend(names.iter().filter_map(Value::as_str).map(str::to_string));
    }
    for part in schema
        .get("allOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some((p, r)) = object_shape(spec, part) {
            properties.extend(p);
            required.extend(r);
            found = true;
        }
    }
    found.then_some((properties, required))
}

fn check_value(spec: &Value, schema: &Value, value: &Value, at: &str, problems: &mut Vec<String>) {
    let schema = resolve(spec, schema);
    if value.is_null() {
        return;
    }
    if let Some(kind) = schema.get("type").and_then(Value::as_str) {
        let ok = match kind {
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            "array" => value.is_array(),
            "object" => value.is_object(),
            _ => true,
        };
        if !ok {
            problems.push(format!("{at}: expected {kind}, got {value}"));
            return;
        }
    }
    if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
        for (i, item) in array.iter().enumerate() {
            check_value(spec, items, item, &format!("{at}[{i}]"), problems);
        }
    }
    let Some(object) = value.as_object() else {
        return;
    };
    let Some((properties, required)) = object_shape(spec, schema) else {
        return;
    };
    // Twilio's AvailablePhoneNumbers send `SMS`/`MMS` in upper case against lower-case schema
    // names (CARRIER_API_FACTS.md A.4): the one case-insensitive comparison.
    let capabilities =
        schema.get("format").and_then(Value::as_str) == Some("phone-number-capabilities");
    for (key, inner) in object {
        let declared = properties
            .iter()
            .find(|(name, _)| *name == key || (capabilities && name.eq_ignore_ascii_case(key)));
        match declared {
            Some((_, property)) => {
                check_value(spec, property, inner, &format!("{at}.{key}"), problems)
            }
            None => problems.push(format!("{at}: property `{key}` is not in the spec schema")),
        }
    }
    for name in required {
        if !object.contains_key(&name) {
            problems.push(format!("{at}: required property `{name}` missing"));
        }
    }
}
