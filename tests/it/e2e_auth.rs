//! The admin key guards every `/v1/admin` route; `/healthz` and the OpenAPI document are open.

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::support::TestService;

#[tokio::test]
async fn admin_routes_need_the_right_key() {
    let service = TestService::start().await;
    let routes = [
        (Method::GET, "/v1/admin/webhooks"),
        (Method::POST, "/v1/admin/webhooks"),
        (Method::GET, "/v1/admin/webhooks/wh_x"),
        (Method::PATCH, "/v1/admin/webhooks/wh_x"),
        (Method::DELETE, "/v1/admin/webhooks/wh_x"),
        (Method::POST, "/v1/admin/webhooks/wh_x/rotate-secret"),
        (Method::GET, "/v1/admin/event-types"),
    ];
    let wrong_keys: [Option<String>; 4] = [
        None,
        Some("Bearer hpk_wrong".to_owned()),
        Some(format!("Bearer {}x", service.admin_key)),
        Some(format!("Basic {}", service.admin_key)),
    ];
    for (method, path) in &routes {
        for header in &wrong_keys {
            let mut request = service.client.request(method.clone(), service.url(path));
            if let Some(header) = header {
                request = request.header("authorization", header);
            }
            let response = request.send().await.expect("sent");
            // Past a burst of 20 wrong keys from this address, 429 (see clients.rs).
            let status = response.status();
            let body: Value = response.json().await.expect("json error body");
            match status {
                StatusCode::UNAUTHORIZED => assert_eq!(body["error"]["code"], "unauthorized"),
                StatusCode::TOO_MANY_REQUESTS => {
                    assert_eq!(body["error"]["code"], "too_many_attempts");
                }
                other => panic!("{method} {path} with {header:?}: {other} {body}"),
            }
        }
    }
    let (status, _) = service.call(Method::GET, "/webhooks", None).await;
    assert_eq!(status, StatusCode::OK, "the right key is accepted");
    let lower_case_scheme = service
        .client
        .get(service.url("/v1/admin/webhooks"))
        .header("authorization", format!("bearer {}", service.admin_key))
        .send()
        .await
        .expect("sent");
    assert_eq!(lower_case_scheme.status(), StatusCode::OK);
}

#[tokio::test]
async fn health_and_openapi_are_open() {
    let service = TestService::start().await;
    let health = service
        .client
        .get(service.url("/healthz"))
        .send()
        .await
        .expect("sent");
    assert_eq!(health.status(), StatusCode::OK);
    let health: Value = health.json().await.expect("json");
    assert_eq!(health["status"], "ok");
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));
    let doc = service
        .client
        .get(service.url("/v1/admin/openapi.json"))
        .send()
        .await
        .expect("sent");
    assert_eq!(doc.status(), StatusCode::OK);
}
