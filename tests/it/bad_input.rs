//! Bad input on every admin route: each is answered with a 4xx and the error body
//! (`{"error": {"code", "message", "field"?}}`), never a 5xx or a dropped connection, and
//! nothing already stored is lost.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{TestService, orders_webhook};

/// One request of the matrix: a raw body, so that malformed JSON can be sent.
struct Case {
    method: Method,
    path: String,
    body: Option<String>,
    /// The field the error must name, when the error concerns one.
    field: Option<&'static str>,
}

fn case(method: Method, path: impl Into<String>, body: Option<&str>) -> Case {
    Case {
        method,
        path: path.into(),
        body: body.map(str::to_owned),
        field: None,
    }
}

fn naming(mut case: Case, field: &'static str) -> Case {
    case.field = Some(field);
    case
}

fn json_body(value: &Value) -> Option<String> {
    Some(value.to_string())
}

on_both_backends! {
    #[tokio::test]
    async fn every_route_answers_bad_input_with_a_4xx_error_body() {
        let service = TestService::start().await;
        let webhook = service.create_webhook(orders_webhook()).await;
        let id = webhook["id"].as_str().expect("id").to_owned();
        let emitted = service
            .emit(json!({"type": "order.created", "data": {}}))
            .await;
        assert!(emitted["event_id"].is_string());

        let long = "x".repeat(10_000);
        let huge = format!("{{\"name\": \"{}\"}}", "x".repeat(300 * 1024));
        let valid = orders_webhook();
        let with = |field: &str, value: Value| {
            let mut body = valid.clone();
            body[field] = value;
            json_body(&body)
        };
        let webhooks = "/webhooks".to_owned();
        let one = format!("/webhooks/{id}");
        let mut cases = vec![
            // Creating a webhook.
            case(Method::POST, &webhooks, Some("{")),
            case(Method::POST, &webhooks, Some("[]")),
            case(Method::POST, &webhooks, Some("null")),
            case(Method::POST, &webhooks, Some("\"\\ud800\"")),
            case(Method::POST, &webhooks, Some("{}")),
            case(Method::POST, &webhooks, Some(&huge)),
            naming(
                case(Method::POST, &webhooks, with("name", json!(1)).as_deref()),
                "name",
            ),
            naming(
                case(Method::POST, &webhooks, with("name", json!("")).as_deref()),
                "name",
            ),
            naming(
                case(
                    Method::POST,
                    &webhooks,
                    with("name", json!("x".repeat(101))).as_deref(),
                ),
                "name",
            ),
            naming(
                case(
                    Method::POST,
                    &webhooks,
                    with("name", json!("bell\u{7}")).as_deref(),
                ),
                "name",
            ),
            naming(
                case(
                    Method::POST,
                    &webhooks,
                    with("name", json!("rtl\u{202e}")).as_deref(),
                ),
                "name",
            ),
            naming(
                case(
                    Method::POST,
                    &webhooks,
                    with("url", json!(["x"])).as_deref(),
                ),
                "url",
            ),
            naming(
                case(
                    Method::POST,
                    &webhooks,
                    with("url", json!("https://")).as_deref(),
                ),
                "url",
            ),
            naming(
                case(
                    Method::POST,
                    &webhooks,
                    with("url", json!(format!("https://e.com/{long}"))).as_deref(),
                ),
                "url",
            ),
            naming(
                case(
                    Method::POST,
                    &webhooks,
                    with("events", json!([])).as_deref(),
                ),
                "events",
            ),
            naming(
                case(
                    Method::POST,
                    &webhooks,
                    with("events", json!(["no.such"])).as_deref(),
                ),
                "events",
            ),
            naming(
                case(
                    Method::POST,
                    &webhooks,
                    with("kind", json!("fax")).as_deref(),
                ),
                "kind",
            ),
            naming(
                case(
                    Method::POST,
                    &webhooks,
                    with("colour", json!("red")).as_deref(),
                ),
                "colour",
            ),
            // Reading, changing, deleting one.
            case(Method::GET, "/webhooks/wh_nope", None),
            case(Method::GET, format!("/webhooks/{long}"), None),
            case(Method::GET, "/webhooks/%00", None),
            case(Method::PATCH, &one, Some("{")),
            naming(
                case(Method::PATCH, &one, Some(r#"{"is_active": "yes"}"#)),
                "is_active",
            ),
            naming(
                case(Method::PATCH, &one, Some(r#"{"secret": "mine"}"#)),
                "secret",
            ),
            naming(
                case(Method::PATCH, &one, Some(r#"{"events": []}"#)),
                "events",
            ),
            case(Method::PATCH, "/webhooks/wh_nope", Some(r#"{"name": "x"}"#)),
            case(Method::DELETE, "/webhooks/wh_nope", None),
            // Rotation, test, recovery.
            naming(
                case(
                    Method::POST,
                    format!("{one}/rotate-secret"),
                    Some(r#"{"grace_seconds": -1}"#),
                ),
                "grace_seconds",
            ),
            naming(
                case(
                    Method::POST,
                    format!("{one}/rotate-secret"),
                    Some(r#"{"grace_seconds": 604801}"#),
                ),
                "grace_seconds",
            ),
            case(Method::POST, "/webhooks/wh_nope/rotate-secret", Some("{}")),
            case(Method::POST, "/webhooks/wh_nope/test", None),
            naming(
                case(Method::POST, format!("{one}/recover"), Some("{}")),
                "since",
            ),
            naming(
                case(
                    Method::POST,
                    format!("{one}/recover"),
                    Some(r#"{"since": "yesterday"}"#),
                ),
                "since",
            ),
            // Events.
            case(Method::POST, "/events", Some("{")),
            naming(
                case(Method::POST, "/events", Some(r#"{"data": {}}"#)),
                "type",
            ),
            naming(
                case(
                    Method::POST,
                    "/events",
                    Some(r#"{"type": "no.such", "data": {}}"#),
                ),
                "type",
            ),
            naming(
                case(Method::POST, "/events", Some(r#"{"type": 7, "data": {}}"#)),
                "type",
            ),
            naming(
                case(
                    Method::POST,
                    "/events",
                    Some(r#"{"type": "order.created", "data": {}, "id": "a b"}"#),
                ),
                "id",
            ),
            naming(
                case(
                    Method::POST,
                    "/events",
                    Some(r#"{"type": "order.created", "data": {}, "id": "é"}"#),
                ),
                "id",
            ),
            naming(
                case(
                    Method::POST,
                    "/events",
                    json_body(&json!({"type": "order.created", "data": {}, "id": long})).as_deref(),
                ),
                "id",
            ),
            // Deliveries.
            naming(case(Method::GET, "/deliveries?limit=-1", None), "limit"),
            naming(case(Method::GET, "/deliveries?cursor=%00", None), "cursor"),
            naming(
                case(Method::GET, "/deliveries?since=2026-13-01", None),
                "since",
            ),
            naming(case(Method::GET, "/deliveries?until=now", None), "until"),
            naming(case(Method::GET, "/deliveries?status=", None), "status"),
            naming(case(Method::GET, "/deliveries?code=200", None), "code"),
            case(Method::GET, "/deliveries/dlv_nope", None),
            case(Method::GET, format!("/deliveries/{long}"), None),
            case(Method::POST, "/deliveries/dlv_nope/resend", None),
            // Stats.
            naming(case(Method::GET, "/stats?bucket=week", None), "bucket"),
            naming(case(Method::GET, "/stats?since=yesterday", None), "since"),
            // A struct may not come as an array of its fields.
            case(Method::PATCH, one.clone(), Some("[null, null]")),
        ];
        // Unknown routes and methods.
        cases.push(case(Method::GET, "/nothing-here", None));
        cases.push(case(Method::PUT, &webhooks, Some("{}")));

        let mut failures = Vec::new();
        for case in &cases {
            let mut request = service
                .client
                .request(
                    case.method.clone(),
                    service.url(&format!("/v1/admin{}", case.path)),
                )
                .bearer_auth(&service.admin_key)
                .header("content-type", "application/json");
            if let Some(body) = &case.body {
                request = request.body(body.clone());
            }
            let shown = format!("{} {}", case.method, &case.path[..case.path.len().min(80)]);
            let response = match request.send().await {
                Ok(response) => response,
                Err(err) => {
                    failures.push(format!("{shown}: no answer: {err}"));
                    continue;
                }
            };
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            let error = &body["error"];
            if !status.is_client_error() {
                failures.push(format!("{shown}: {status} {text}"));
            } else if !(error["code"].is_string() && error["message"].is_string()) {
                failures.push(format!("{shown}: {status} without an error body: {text}"));
            } else if let Some(field) = case.field
                && error["field"] != field
            {
                failures.push(format!(
                    "{shown}: names {} instead of {field}",
                    error["field"]
                ));
            }
        }
        assert!(
            failures.is_empty(),
            "{} of {}:\n{}",
            failures.len(),
            cases.len(),
            failures.join("\n")
        );

        // Nothing was lost, and the service still serves.
        let (status, list) = service.json(Method::GET, "/webhooks", None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(list["items"].as_array().map(Vec::len), Some(1));
        assert_eq!(list["items"][0]["name"], webhook["name"]);
        let (status, _) = service.json(Method::GET, "/deliveries", None).await;
        assert_eq!(status, StatusCode::OK);
    }
}
