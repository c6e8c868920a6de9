//! The OpenAPI document as served: what the handlers' annotations say, completed with what
//! they cannot: the answers every admin route may give (401, 429, 503, and 400, 408 and
//! 413 where a body is read), the exact constraints the validation applies, and the rules
//! that depend on this service's configuration (its event-type catalog, whether plain http
//! and private destinations are allowed, whether it answers to loopback hosts only).
//!
//! A fuzzer (`scripts/fuzz-api.sh`) holds the service to this document in both directions:
//! whatever it allows must be accepted, whatever it forbids refused.

use serde_json::{Map, Value, json};

use crate::api::Role;
use crate::catalog::{Catalog, WILDCARD};
use crate::validate::{
    self, DESCRIPTION_MAX_CHARS, EVENT_ID_MAX_CHARS, EVENTS_MAX, HttpPolicy, NAME_MAX_CHARS,
    OWNER_MAX_CHARS, URL_MAX_CHARS,
};

/// What the served document depends on.
pub struct Configuration<'a> {
    pub catalog: &'a Catalog,
    pub http_policy: HttpPolicy,
    pub allow_private_destinations: bool,
    pub loopback_host_only: bool,
}

const ERROR_BODY: &str = "#/components/schemas/ErrorBody";
/// Request bodies with no required field: an empty body is read as `{}`.
const OPTIONAL_BODIES: [&str; 2] = ["/WebhookPatch", "/RotateSecretIn"];

/// `base` (the annotated document) completed for `config`.
pub fn document(base: &utoipa::openapi::OpenApi, config: &Configuration<'_>) -> Value {
    let mut doc = serde_json::to_value(base).unwrap_or_else(|_| json!({}));
    add_responses(&mut doc, config);
    constrain_schemas(&mut doc, config);
    constrain_parameters(&mut doc);
    doc
}

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": ERROR_BODY}}},
    })
}

fn add_responses(doc: &mut Value, config: &Configuration<'_>) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let admin = path.starts_with("/v1/admin/");
        let Some(operations) = item.as_object_mut() else {
            continue;
        };
        for (method, operation) in operations.iter_mut() {
            let needs_admin = method
                .to_uppercase()
                .parse()
                .is_ok_and(|method| super::auth::role_needed(&method, path) == Role::Admin);
            // A body whose fields are all optional may be left out (read as `{}`).
            if let Some(body) = operation.get_mut("requestBody") {
                let schema = body
                    .pointer("/content/application~1json/schema/$ref")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if OPTIONAL_BODIES.iter().any(|name| schema.ends_with(name)) {
                    body["required"] = Value::Bool(false);
                }
            }
            let has_body = operation.get("requestBody").is_some();
            let has_name = operation
                .get("parameters")
                .and_then(Value::as_array)
                .is_some_and(|parameters| {
                    parameters
                        .iter()
                        .any(|p| p["in"] == "path" && p["name"] == "name")
                });
            let has_query = operation
                .get("parameters")
                .and_then(Value::as_array)
                .is_some_and(|parameters| parameters.iter().any(|p| p["in"] == "query"));
            let Some(responses) = operation
                .get_mut("responses")
                .and_then(Value::as_object_mut)
            else {
                continue;
            };
            let mut add = |status: &str, response: Value| {
                responses.entry(status.to_owned()).or_insert(response);
            };
            if admin {
                add("401", error_response("The admin key is missing or wrong"));
                let mut limited = error_response(
                    "Too many wrong admin keys from this address (20, then 10 a second); a valid key is never limited",
                );
                limited["headers"] = json!({
                    "Retry-After": {
                        "description": "Seconds until another attempt is allowed",
                        "schema": {"type": "integer", "minimum": 1},
                    }
                });
                add("429", limited);
                if needs_admin {
                    add(
                        "403",
                        error_response("The key's role is operator; this takes an admin key"),
                    );
                }
                add(
                    "503",
                    error_response("The database cannot be used right now; nothing was changed"),
                );
            }
            if has_body {
                add("400", error_response("The body is not JSON"));
                add(
                    "408",
                    error_response("The body did not arrive within 30 seconds"),
                );
                add(
                    "413",
                    error_response("The body is larger than the service takes"),
                );
                add("422", error_response("A field is not acceptable"));
            }
            if has_name {
                add(
                    "400",
                    error_response("The inbox name is not 1–64 of A-Z, a-z, 0-9, - and _"),
                );
            }
            if has_query {
                add("422", error_response("A query parameter is not acceptable"));
            }
            if config.loopback_host_only {
                add(
                    "421",
                    error_response("The Host header is not 127.0.0.1:<port> or localhost:<port>"),
                );
            }
        }
    }
}

/// Characters no text field takes: controls (category Cc) and text-direction controls.
const BIDI: &str = r"\u200e\u200f\u061c\u202a-\u202e\u2066-\u2069";
/// White space outside the controls, as Rust's `char::is_whitespace` sees it.
const SPACES: &str = r"\u0020\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";

/// A name: not blank, no controls.
pub fn name_pattern() -> String {
    format!(
        r"^[^\u0000-\u001f\u007f-\u009f{BIDI}]*[^\u0000-\u001f\u007f-\u009f{BIDI}{SPACES}][^\u0000-\u001f\u007f-\u009f{BIDI}]*$"
    )
}

/// A free text: no controls but tab and newline.
pub fn text_pattern() -> String {
    format!(r"^[^\u0000-\u0008\u000b-\u001f\u007f-\u009f{BIDI}]*$")
}

/// Event ids a caller may choose.
pub const EVENT_ID_PATTERN: &str = "^[A-Za-z0-9_.:-]{1,100}$";
/// A page cursor: the id of the last delivery of the previous page.
pub const CURSOR_PATTERN: &str = "^dlv_[A-Za-z0-9]{26}$";
/// A page cursor of the audit log: the id of the last entry of the previous page.
pub const AUDIT_CURSOR_PATTERN: &str = "^aud_[A-Za-z0-9]{26}$";
/// A test inbox's name.
pub const INBOX_NAME_PATTERN: &str = "^[A-Za-z0-9_-]{1,64}$";

fn constrain_schemas(doc: &mut Value, config: &Configuration<'_>) {
    let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    let mut event_types: Vec<Value> = config
        .catalog
        .entries()
        .map(|entry| Value::from(entry.name.clone()))
        .collect();
    let emittable = event_types.clone();
    event_types.push(Value::from(WILDCARD));
    let url = json!({
        "maxLength": URL_MAX_CHARS,
        "pattern": validate::webhook_url_pattern(
            config.http_policy,
            config.allow_private_destinations,
        ),
    });
    let name = json!({"minLength": 1, "maxLength": NAME_MAX_CHARS, "pattern": name_pattern()});
    let events = json!({
        "minItems": 1,
        "maxItems": EVENTS_MAX,
        "items": {"type": "string", "enum": event_types},
    });
    let text = |max: usize| json!({"maxLength": max, "pattern": text_pattern()});
    for schema in ["WebhookIn", "WebhookPatch"] {
        let Some(properties) = schemas
            .get_mut(schema)
            .and_then(|s| s.get_mut("properties"))
            .and_then(Value::as_object_mut)
        else {
            continue;
        };
        merge(properties.get_mut("name"), &name);
        merge(properties.get_mut("url"), &url);
        merge(properties.get_mut("events"), &events);
        merge(
            properties.get_mut("description"),
            &text(DESCRIPTION_MAX_CHARS),
        );
        merge(properties.get_mut("owner"), &text(OWNER_MAX_CHARS));
    }
    if let Some(properties) = schemas
        .get_mut("AdminKeyIn")
        .and_then(|s| s.get_mut("properties"))
        .and_then(Value::as_object_mut)
    {
        merge(properties.get_mut("name"), &name);
    }
    if let Some(properties) = schemas
        .get_mut("EventIn")
        .and_then(|s| s.get_mut("properties"))
        .and_then(Value::as_object_mut)
    {
        merge(properties.get_mut("type"), &json!({"enum": emittable}));
        merge(
            properties.get_mut("id"),
            &json!({"pattern": EVENT_ID_PATTERN, "maxLength": EVENT_ID_MAX_CHARS}),
        );
    }
    if let Some(bulk) = schemas.get_mut("BulkResendIn") {
        // Exactly one of the two: a shape the annotations cannot say.
        let description = bulk.get("description").cloned().unwrap_or(Value::Null);
        let dry_run = bulk
            .pointer("/properties/dry_run")
            .cloned()
            .unwrap_or_else(|| json!({"type": "boolean"}));
        *bulk = json!({
            "description": description,
            "oneOf": [
                {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["ids"],
                    "properties": {"ids": {
                        "description": "1 to 10 000 delivery ids",
                        "type": "array",
                        "minItems": 1,
                        "maxItems": crate::api::BULK_RESEND_MAX_IDS,
                        "items": {"type": "string"},
                    }, "dry_run": dry_run},
                },
                {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["filter"],
                    "properties": {
                        "filter": {"$ref": "#/components/schemas/DeliveryFilter"},
                        "dry_run": dry_run,
                    },
                },
            ],
        });
    }
    if let Some(grace) = schemas
        .get_mut("RotateSecretIn")
        .and_then(|s| s.pointer_mut("/properties/grace_seconds"))
    {
        merge(
            Some(grace),
            &json!({"minimum": 0, "maximum": super::MAX_GRACE_SECONDS}),
        );
    }
}

fn constrain_parameters(doc: &mut Value) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let audit = path == "/v1/admin/audit";
        let Some(operations) = item.as_object_mut() else {
            continue;
        };
        for operation in operations.values_mut() {
            let Some(parameters) = operation
                .get_mut("parameters")
                .and_then(Value::as_array_mut)
            else {
                continue;
            };
            for parameter in parameters {
                let constraint = match (parameter["in"].as_str(), parameter["name"].as_str()) {
                    (Some("query"), Some("limit")) => json!({
                        "type": "integer",
                        "minimum": 1,
                        "maximum": super::MAX_DELIVERY_PAGE,
                    }),
                    (Some("query"), Some("status")) => json!({
                        "enum": crate::api::DeliveryStatus::ALL.map(|s| s.as_str()),
                    }),
                    (Some("query"), Some("code")) => json!({
                        "enum": crate::api::CodeClass::ALL.map(|c| c.as_str()),
                    }),
                    (Some("query"), Some("bucket")) => json!({"enum": ["hour", "day"]}),
                    (Some("query"), Some("order")) => json!({"enum": ["asc", "desc"]}),
                    (Some("query"), Some("cursor")) if audit => {
                        json!({"pattern": AUDIT_CURSOR_PATTERN})
                    }
                    (Some("query"), Some("cursor")) => json!({"pattern": CURSOR_PATTERN}),
                    (Some("query"), Some("action")) => json!({
                        "enum": crate::api::AuditAction::ALL.map(|a| a.as_str()),
                    }),
                    (Some("path"), Some("name")) => json!({"pattern": INBOX_NAME_PATTERN}),
                    _ => continue,
                };
                merge(parameter.get_mut("schema"), &constraint);
            }
        }
    }
}

/// Sets every key of `constraint` on `schema`.
fn merge(schema: Option<&mut Value>, constraint: &Value) {
    if let (Some(Value::Object(schema)), Value::Object(constraint)) = (schema, constraint) {
        let schema: &mut Map<String, Value> = schema;
        for (key, value) in constraint {
            schema.insert(key.clone(), value.clone());
        }
    }
}
