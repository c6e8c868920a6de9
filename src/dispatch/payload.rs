//! What a receiver gets in the request body.

use chrono::SecondsFormat;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::api::WebhookKind;
use crate::store::DeliveryJob;

/// Slack limits: a header's text, a section's field count, a field's text.
const SLACK_HEADER_MAX_CHARS: usize = 150;
const SLACK_FIELDS_MAX: usize = 10;
const SLACK_FIELD_VALUE_MAX_CHARS: usize = 200;

#[derive(Serialize)]
struct Envelope<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    event_type: &'a str,
    timestamp: String,
    data: &'a RawValue,
}

/// The request body for `job`, by its webhook's kind.
pub fn body(job: &DeliveryJob) -> Result<Vec<u8>, serde_json::Error> {
    match job.kind {
        WebhookKind::Generic => {
            let data: &RawValue = serde_json::from_str(&job.data)?;
            serde_json::to_vec(&Envelope {
                id: &job.event_id,
                event_type: &job.event_type,
                timestamp: job
                    .event_created_at
                    .to_rfc3339_opts(SecondsFormat::Millis, true),
                data,
            })
        }
        WebhookKind::Slack => {
            let data: Value = serde_json::from_str(&job.data)?;
            serde_json::to_vec(&slack_message(job, &data))
        }
    }
}

fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars.saturating_sub(1)) {
        Some((cut, _)) if text.chars().count() > max_chars => format!("{}…", &text[..cut]),
        _ => text.to_owned(),
    }
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

/// A Block Kit message: a header with the event type, a field per top-level scalar of the
/// event's data, and a footer with the event id and time.
fn slack_message(job: &DeliveryJob, data: &Value) -> Value {
    let fields: Vec<Value> = data
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(name, value)| {
            let text = scalar_text(value)?;
            Some(json!({
                "type": "mrkdwn",
                "text": format!("*{name}*\n{}", truncate(&text, SLACK_FIELD_VALUE_MAX_CHARS)),
            }))
        })
        .take(SLACK_FIELDS_MAX)
        .collect();
    let mut blocks = vec![json!({
        "type": "header",
        "text": {"type": "plain_text", "text": truncate(&job.event_type, SLACK_HEADER_MAX_CHARS)},
    })];
    if !fields.is_empty() {
        blocks.push(json!({"type": "section", "fields": fields}));
    }
    blocks.push(json!({
        "type": "context",
        "elements": [{
            "type": "mrkdwn",
            "text": format!(
                "Event `{}` · {} · sent by Hookpanel",
                job.event_id,
                job.event_created_at.to_rfc3339_opts(SecondsFormat::Secs, true)
            ),
        }],
    }));
    json!({"text": job.event_type, "blocks": blocks})
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone as _, Utc};

    fn job(kind: WebhookKind, data: &str) -> DeliveryJob {
        DeliveryJob {
            delivery_id: "dlv_1".into(),
            event_id: "msg_1".into(),
            event_type: "order.created".into(),
            data: data.into(),
            event_created_at: Utc.timestamp_opt(1_700_000_000, 0).single().expect("time"),
            webhook_id: "wh_1".into(),
            url: "https://x.example.com".into(),
            kind,
            webhook_deleted: false,
            retry_step: 0,
        }
    }

    #[test]
    fn envelope_keeps_data_byte_for_byte() {
        let body = body(&job(WebhookKind::Generic, r#"{"b":1,"a":[1, 2]}"#)).expect("body");
        let text = String::from_utf8(body).expect("utf-8");
        assert_eq!(
            text,
            r#"{"id":"msg_1","type":"order.created","timestamp":"2023-11-14T22:13:20.000Z","data":{"b":1,"a":[1, 2]}}"#
        );
    }

    #[test]
    fn slack_message_has_header_fields_and_footer() {
        let data = r#"{"order_id":"ord_1","total":12.5,"paid":true,"items":[1],"note":null}"#;
        let body = body(&job(WebhookKind::Slack, data)).expect("body");
        let message: Value = serde_json::from_slice(&body).expect("json");
        let blocks = message["blocks"].as_array().expect("blocks");
        assert_eq!(blocks[0]["type"], "header");
        assert_eq!(blocks[0]["text"]["text"], "order.created");
        let fields = blocks[1]["fields"].as_array().expect("fields");
        let texts: Vec<&str> = fields.iter().filter_map(|f| f["text"].as_str()).collect();
        assert_eq!(
            texts,
            ["*order_id*\nord_1", "*paid*\ntrue", "*total*\n12.5"]
        );
        assert_eq!(blocks[2]["type"], "context");
        assert!(
            blocks[2]["elements"][0]["text"]
                .as_str()
                .is_some_and(|t| t.contains("msg_1"))
        );
    }

    #[test]
    fn long_values_are_cut() {
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
    }
}
