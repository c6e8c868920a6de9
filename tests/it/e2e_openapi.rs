//! The served OpenAPI document describes every route the service answers.

use serde_json::Value;

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
    let expected = [
        ("/v1/admin/webhooks", "get"),
        ("/v1/admin/webhooks", "post"),
        ("/v1/admin/webhooks/{id}", "get"),
        ("/v1/admin/webhooks/{id}", "patch"),
        ("/v1/admin/webhooks/{id}", "delete"),
        ("/v1/admin/webhooks/{id}/rotate-secret", "post"),
        ("/v1/admin/webhooks/{id}/test", "post"),
        ("/v1/admin/webhooks/{id}/recover", "post"),
        ("/v1/admin/event-types", "get"),
        ("/v1/admin/events", "post"),
        ("/v1/admin/deliveries", "get"),
        ("/v1/admin/deliveries/{id}", "get"),
        ("/v1/admin/deliveries/{id}/resend", "post"),
        ("/v1/admin/stats", "get"),
        ("/v1/admin/inbox/{name}", "get"),
        ("/healthz", "get"),
    ];
    let paths = doc["paths"].as_object().expect("paths");
    for (path, method) in expected {
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
        expected.len(),
        "routes documented but not expected here"
    );
    assert!(doc["components"]["securitySchemes"]["admin_key"].is_object());
    assert_eq!(
        doc,
        serde_json::to_value(hookpanel::server::openapi()).expect("serialises")
    );
}
