//! The payload as serde_json prints it (two-space indent), coloured as the other code in
//! the inspector, with the values a payload search matched highlighted: in a long payload
//! the eye goes straight to `ord_1042`.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use egui::text::{LayoutJob, TextFormat};
use egui::{Color32, Ui};
use egui_extras::syntax_highlighting::{CodeTheme, TokenType};
use serde_json::Value;

use super::super::theme;
use crate::search;

/// A payload laid out for the inspector: computed once per delivery and search, not
/// every frame.
pub struct PayloadView {
    /// serde_json's pretty text, coloured, the matched values highlighted.
    pub job: LayoutJob,
    /// Each matched value with its path, in the payload's order: strings as they read,
    /// other values as JSON.
    pub matched: Vec<(String, String)>,
}

/// `payload` laid out with the values at `matched` (paths as `search` names them)
/// highlighted, from egui's frame cache.
pub fn payload_view(
    ui: &Ui,
    delivery_id: &str,
    payload: &Value,
    matched: &[String],
) -> Arc<PayloadView> {
    type Cache = egui::cache::FrameCache<Arc<PayloadView>, Layouter>;
    let key = LayoutKey {
        delivery_id,
        payload,
        matched,
        theme: &CodeTheme::from_style(ui.style()),
    };
    ui.ctx()
        .memory_mut(|memory| Arc::clone(memory.caches.cache::<Cache>().get(key)))
}

/// What the layout depends on. A delivery's payload never changes, so its id stands for
/// it in the hash.
#[derive(Clone, Copy)]
struct LayoutKey<'a> {
    delivery_id: &'a str,
    payload: &'a Value,
    matched: &'a [String],
    theme: &'a CodeTheme,
}

impl Hash for LayoutKey<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.delivery_id.hash(state);
        self.matched.hash(state);
        self.theme.hash(state);
    }
}

#[derive(Default)]
struct Layouter;

impl egui::cache::ComputerMut<LayoutKey<'_>, Arc<PayloadView>> for Layouter {
    fn compute(&mut self, key: LayoutKey<'_>) -> Arc<PayloadView> {
        Arc::new(lay_out(key.payload, key.matched, key.theme))
    }
}

/// The payload's layout: serde_json's pretty text, in `theme`'s colours, with the values
/// at `matched` on the highlight colour.
fn lay_out(payload: &Value, matched: &[String], theme: &CodeTheme) -> PayloadView {
    let mut printer = Printer {
        view: PayloadView {
            job: LayoutJob::default(),
            matched: Vec::new(),
        },
        matched,
        string: theme.format(TokenType::StringLiteral).clone(),
        literal: theme.format(TokenType::Literal).clone(),
        punctuation: theme.format(TokenType::Punctuation).clone(),
    };
    printer.value(payload, "", 0);
    printer.view
}

struct Printer<'a> {
    view: PayloadView,
    matched: &'a [String],
    string: TextFormat,
    literal: TextFormat,
    punctuation: TextFormat,
}

impl Printer<'_> {
    fn value(&mut self, value: &Value, path: &str, depth: usize) {
        match value {
            Value::Array(items) if !items.is_empty() => {
                self.punctuation("[\n");
                for (index, item) in items.iter().enumerate() {
                    self.indent(depth + 1);
                    self.value(item, &search::item_path(path, index), depth + 1);
                    self.punctuation(if index + 1 < items.len() { ",\n" } else { "\n" });
                }
                self.indent(depth);
                self.punctuation("]");
            }
            Value::Object(fields) if !fields.is_empty() => {
                self.punctuation("{\n");
                for (index, (key, field)) in fields.iter().enumerate() {
                    self.indent(depth + 1);
                    self.append(&json_text(&Value::String(key.clone())), self.string.clone());
                    self.punctuation(": ");
                    self.value(field, &search::field_path(path, key), depth + 1);
                    self.punctuation(if index + 1 < fields.len() {
                        ",\n"
                    } else {
                        "\n"
                    });
                }
                self.indent(depth);
                self.punctuation("}");
            }
            scalar => {
                let format = match scalar {
                    Value::String(_) => self.string.clone(),
                    _ => self.literal.clone(),
                };
                let format = if self.matched.iter().any(|matched| matched == path) {
                    let text = match scalar {
                        Value::String(text) => text.clone(),
                        other => other.to_string(),
                    };
                    self.view.matched.push((path.to_owned(), text));
                    TextFormat {
                        color: Color32::BLACK,
                        background: theme::WARNING,
                        ..format
                    }
                } else {
                    format
                };
                self.append(&json_text(scalar), format);
            }
        }
    }

    fn indent(&mut self, depth: usize) {
        self.punctuation(&"  ".repeat(depth));
    }

    fn punctuation(&mut self, text: &str) {
        self.append(text, self.punctuation.clone());
    }

    fn append(&mut self, text: &str, format: TextFormat) {
        self.view.job.append(text, 0.0, format);
    }
}

/// A scalar (or an empty array or object) as JSON text.
fn json_text(value: &Value) -> String {
    // Serializing a `Value` cannot fail: its keys are strings.
    serde_json::to_string(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn theme() -> CodeTheme {
        CodeTheme::dark(12.0)
    }

    #[test]
    fn the_text_is_what_serde_json_pretty_prints() {
        let payload = serde_json::json!({
            "order_id": "ord_1042",
            "total": 12.9,
            "paid": true,
            "note": null,
            "empty": {},
            "none": [],
            "items": [{"sku": "SKU-1", "qty": 2}, [1, "two"]],
            "quote": "say \"hi\"\n",
        });
        let view = lay_out(&payload, &[], &theme());
        assert!(view.matched.is_empty());
        assert_eq!(
            view.job.text,
            serde_json::to_string_pretty(&payload).expect("pretty")
        );
    }

    #[test]
    fn only_the_matched_values_are_highlighted() {
        let payload = serde_json::json!({
            "order_id": "ord_1042",
            "customer": {"email": "ada@example.com", "name": "Ada"},
            "items": [{"sku": "ord_1042"}],
        });
        let matched = ["customer.email".to_owned(), "items[0].sku".to_owned()];
        let view = lay_out(&payload, &matched, &theme());
        let job = &view.job;
        let highlighted: Vec<&str> = job
            .sections
            .iter()
            .filter(|section| section.format.background == theme::WARNING)
            .map(|section| &job.text[section.byte_range.start.0..section.byte_range.end.0])
            .collect();
        assert_eq!(highlighted, ["\"ada@example.com\"", "\"ord_1042\""]);
        assert_eq!(
            view.matched,
            [
                ("customer.email".to_owned(), "ada@example.com".to_owned()),
                ("items[0].sku".to_owned(), "ord_1042".to_owned())
            ]
        );
    }
}
