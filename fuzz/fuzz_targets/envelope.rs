//! The request body built from an event's stored data, for both webhook kinds: it must
//! never panic, must be JSON, and a generic envelope must carry the data's text unchanged.
#![no_main]

use chrono::Utc;
use hookpanel::api::WebhookKind;
use hookpanel::dispatch::payload;
use hookpanel::store::DeliveryJob;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (bool, &str, &str)| {
    let (slack, event_type, data) = input;
    // The service stores the caller's JSON text as sent (POST /events reads `data` as a
    // raw value and refuses what does not also parse as values, such as 1e400).
    let Ok(raw) = serde_json::from_str::<&serde_json::value::RawValue>(data) else {
        return;
    };
    if serde_json::from_str::<serde_json::Value>(raw.get()).is_err() {
        return;
    }
    let data = raw.get();
    let job = DeliveryJob {
        delivery_id: "dlv_fuzz".to_owned(),
        event_id: "evt_fuzz".to_owned(),
        event_type: event_type.to_owned(),
        data: data.to_owned(),
        event_created_at: Utc::now(),
        webhook_id: "wh_fuzz".to_owned(),
        url: "https://example.com/".to_owned(),
        kind: if slack {
            WebhookKind::Slack
        } else {
            WebhookKind::Generic
        },
        webhook_deleted: false,
        retry_step: 0,
    };
    let Ok(body) = payload::body(&job) else {
        return;
    };
    let sent: serde_json::Value = serde_json::from_slice(&body).expect("the body is JSON");
    if !slack {
        let text = std::str::from_utf8(&body).expect("the body is UTF-8");
        assert!(
            text.contains(&format!("\"data\":{data}")),
            "the envelope changed the data"
        );
        assert_eq!(sent["type"], event_type);
    }
});
