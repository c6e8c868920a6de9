//! The served OpenAPI document describes every route the service answers.

use hookpanel::server::contract;
use hookpanel::validate::HttpPolicy;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::TestService;

#[tokio::test]
async fn openapi_lists_every_route() {
    let service = TestService::start().await;
    let doc: Value = service
        .client
        .get(service.url("/v1/admin/openapi.json"))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "{}",
        doc["openapi"]
    );
    let expected_routes = [
        ("/v1/admin/webhooks", "get"),
        ("/v1/admin/webhooks", "post"),
        ("/v1/admin/webhooks/{id}", "get"),
        ("/v1/admin/webhooks/{id}", "patch"),
        ("/v1/admin/webhooks/{id}", "delete"),
        ("/v1/admin/webhooks/{id}/rotate-secret", "post"),
        ("/v1/admin/webhooks/{id}/test", "post"),
        ("/v1/admin/webhooks/{id}/recover", "post"),
        ("/v1/admin/webhooks/{id}/expire-previous-secrets", "post"),
        ("/v1/admin/keys", "get"),
        ("/v1/admin/keys", "post"),
        ("/v1/admin/keys/{id}", "delete"),
        ("/v1/admin/audit", "get"),
        ("/v1/admin/whoami", "get"),
        ("/v1/admin/encryption-key", "get"),
        ("/v1/admin/event-types", "get"),
        ("/v1/admin/events", "post"),
        ("/v1/admin/deliveries", "get"),
        ("/v1/admin/deliveries/{id}", "get"),
        ("/v1/admin/deliveries/{id}/resend", "post"),
        ("/v1/admin/deliveries/resend", "post"),
        ("/v1/admin/stats", "get"),
        ("/v1/admin/inbox/{name}", "get"),
        ("/healthz", "get"),
    ];
    let paths = doc["paths"].as_object().expect("paths");
    for (path, method) in expected_routes {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} is not in the OpenAPI document"
        );
    }
    let documented: usize = paths
        .values()
        .map(|p| p.as_object().map_or(0, |methods| methods.len()))
        .sum();
    assert_eq!(
        documented,
        expected_routes.len(),
        "routes documented but not expected here"
    );
    assert!(doc["components"]["securitySchemes"]["admin_key"].is_object());
    let catalog = hookpanel::catalog::Catalog::builtin().expect("catalog");
    let expected = contract::document(
        &hookpanel::server::openapi(),
        &contract::Configuration {
            catalog: &catalog,
            http_policy: HttpPolicy::LoopbackOnly,
            allow_private_destinations: true,
            loopback_host_only: false,
        },
    );
    assert_eq!(doc, expected);

    // Every admin route documents the answers any of them may give, and those that read a
    // body the answers about the body.
    for (path, method) in expected_routes
        .iter()
        .filter(|(p, _)| p.starts_with("/v1/admin"))
    {
        let responses = &paths[*path][*method]["responses"];
        for status in ["401", "429", "503"] {
            assert!(responses[status].is_object(), "{method} {path}: {status}");
        }
        // 403 where an operator key is refused: every change but resends and tests.
        let operator_may = *method == "get"
            || [
                "/v1/admin/deliveries/{id}/resend",
                "/v1/admin/deliveries/resend",
                "/v1/admin/webhooks/{id}/recover",
                "/v1/admin/webhooks/{id}/test",
            ]
            .contains(path);
        assert_eq!(
            responses["403"].is_object(),
            !operator_may,
            "{method} {path}: 403"
        );
        if paths[*path][*method]["requestBody"].is_object() {
            for status in ["400", "408", "413", "422"] {
                assert!(responses[status].is_object(), "{method} {path}: {status}");
            }
        }
    }
    let limit = paths["/v1/admin/deliveries"]["get"]["parameters"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == "limit"))
        .expect("limit");
    assert_eq!(limit["schema"]["minimum"], 1);
    assert_eq!(limit["schema"]["maximum"], 500);
    let webhook_in = &doc["components"]["schemas"]["WebhookIn"];
    assert_eq!(webhook_in["additionalProperties"], false);
    assert_eq!(webhook_in["properties"]["name"]["maxLength"], 100);
    let url_pattern = webhook_in["properties"]["url"]["pattern"]
        .as_str()
        .expect("a url pattern");
    assert!(url_pattern.starts_with("^(?:https://"), "{url_pattern}");
    assert_eq!(
        doc["components"]["schemas"]["RotateSecretIn"]["properties"]["grace_seconds"]["maximum"],
        604_800
    );
}

/// Where the document says a value is valid, it is: whole-number floats are integers,
/// an empty window is an empty answer, a window too long starts 2000 buckets ago.
#[tokio::test]
async fn what_the_document_allows_is_accepted() {
    let service = TestService::start().await;
    let created = service
        .create_webhook(crate::support::orders_webhook())
        .await;
    let id = created["id"].as_str().expect("id");
    let (status, rotated) = service
        .json(
            Method::POST,
            &format!("/webhooks/{id}/rotate-secret"),
            Some(json!({"grace_seconds": 600.0})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let (status, page) = service
        .json(
            Method::GET,
            "/deliveries?since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["items"], json!([]));
    let (status, future) = service
        .json(Method::GET, "/stats?since=2999-01-01T00:00:00Z", None)
        .await;
    assert_eq!((status, future), (StatusCode::OK, json!([])));
    let (status, long) = service
        .json(Method::GET, "/stats?since=1970-01-01T00:00:00Z", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let points = long.as_array().map(Vec::len).unwrap_or_default();
    assert!((2000..=2001).contains(&points), "{points} hourly points");
    let (status, recovered) = service
        .json(
            Method::POST,
            &format!("/webhooks/{id}/recover"),
            Some(json!({"since": "2999-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{recovered}");
    assert_eq!(recovered["queued"], 0);
}
