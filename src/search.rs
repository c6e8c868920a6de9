//! Payload search: how an event's data becomes search tokens, and how a search box's
//! text becomes what to look for. One tokenizer for both backends, so that SQLite's FTS5
//! index and PostgreSQL's token arrays find the same events.
//!
//! A token is a run of letters and digits, lowercased, that may also hold `_`, `-`, `.`
//! and `@` inside it: `ord_1042`, `2026-12-01`, `ada@example.com` are one token each, so
//! a search for `ord_1042` never matches `ord_10420`. A `.`, `-` or `@` at either end
//! belongs to the text around it ("shipped." is `shipped`). Only the values of the data
//! are read, never its keys: strings with their escapes decoded, and numbers as
//! serde_json reads them (integers of up to 64 bits exactly; a decimal as its shortest
//! form, so `12.90` is found as `12.9`: ids belong in strings).

use serde_json::Value;

/// Characters that join letters and digits into one token.
const JOINERS: [char; 4] = ['_', '-', '.', '@'];
/// Longer tokens are not indexed (nobody types them); a search for one finds nothing.
pub const MAX_TOKEN_CHARS: usize = 100;
/// Distinct tokens indexed per event, at most: a huge payload indexes its first ones.
pub const MAX_TOKENS_PER_EVENT: usize = 2_000;

/// The tokens of a piece of text, in order, lowercased.
pub fn tokens(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !(c.is_alphanumeric() || JOINERS.contains(&c)))
        .map(|word| word.trim_matches(|c: char| c != '_' && JOINERS.contains(&c)))
        .filter(|word| !word.is_empty() && word.chars().count() <= MAX_TOKEN_CHARS)
        .map(str::to_lowercase)
}

/// The path of field `key` of the object at `parent` (`""` for the data itself), as
/// [`Terms::matched_paths`] names it: `customer.email`.
pub fn field_path(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// The path of item `index` of the array at `parent`: `items[0]`.
pub fn item_path(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

/// Every value of `data` with its JSON path (`customer.email`, `items[0].sku`), objects'
/// fields in key order, arrays' items in order: what is indexed, and what
/// [`Terms::matched_paths`] names.
fn values(data: &Value) -> Vec<(String, String)> {
    fn walk(value: &Value, path: String, out: &mut Vec<(String, String)>) {
        match value {
            Value::String(text) => out.push((path, text.clone())),
            Value::Number(number) => out.push((path, number.to_string())),
            Value::Array(items) => {
                for (index, item) in items.iter().enumerate() {
                    walk(item, item_path(&path, index), out);
                }
            }
            Value::Object(fields) => {
                for (key, field) in fields {
                    walk(field, field_path(&path, key), out);
                }
            }
            Value::Bool(_) | Value::Null => {}
        }
    }
    let mut out = Vec::new();
    walk(data, String::new(), &mut out);
    out
}

/// The text an event's data is indexed as: its values' tokens, space-separated, each
/// value's in order (so a phrase matches within a value), at most
/// [`MAX_TOKENS_PER_EVENT`] distinct.
/// `None` when the data is not JSON (never stored so; nothing to index).
pub fn indexed_text(data: &str) -> Option<String> {
    let data: Value = serde_json::from_str(data).ok()?;
    let mut distinct = std::collections::HashSet::new();
    let mut text = String::new();
    for (_, value) in values(&data) {
        for token in tokens(&value) {
            if distinct.len() >= MAX_TOKENS_PER_EVENT && !distinct.contains(&token) {
                continue;
            }
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str(&token);
            distinct.insert(token);
        }
    }
    Some(text)
}

/// The distinct tokens of an [`indexed_text`] (PostgreSQL's token array), in order.
pub fn distinct_tokens(text: &str) -> Vec<&str> {
    let mut seen = std::collections::HashSet::new();
    text.split(' ')
        .filter(|token| !token.is_empty() && seen.insert(*token))
        .collect()
}

/// What a search box's text looks for in the data: every token of it, in order; quoted,
/// as a phrase (the tokens next to each other).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Terms {
    pub tokens: Vec<String>,
    pub phrase: bool,
}

impl Terms {
    /// `None` when the text has no token to look for.
    pub fn parse(text: &str) -> Option<Self> {
        let trimmed = text.trim();
        let phrase = trimmed.len() >= 2 && trimmed.starts_with('"') && trimmed.ends_with('"');
        let tokens: Vec<String> = tokens(trimmed).collect();
        (!tokens.is_empty()).then_some(Self { tokens, phrase })
    }

    /// FTS5's query syntax: each token quoted, all required; a phrase as one quoted
    /// string.
    pub fn fts5_query(&self) -> String {
        if self.phrase {
            format!("\"{}\"", self.tokens.join(" "))
        } else {
            self.tokens
                .iter()
                .map(|token| format!("\"{token}\""))
                .collect::<Vec<_>>()
                .join(" AND ")
        }
    }

    /// The JSON paths of `data` whose value holds one of these tokens (the phrase, for a
    /// phrase), in the order of [`values`].
    pub fn matched_paths(&self, data: &str) -> Vec<String> {
        let Ok(data) = serde_json::from_str::<Value>(data) else {
            return Vec::new();
        };
        values(&data)
            .into_iter()
            .filter(|(_, value)| {
                let found: Vec<String> = tokens(value).collect();
                if self.phrase {
                    found
                        .windows(self.tokens.len())
                        .any(|window| window == self.tokens.as_slice())
                } else {
                    self.tokens.iter().any(|token| found.contains(token))
                }
            })
            .map(|(path, _)| path)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_emails_and_dates_stay_whole_and_punctuation_goes() {
        let found: Vec<String> =
            tokens("Order ORD_1042 for ada@example.com, shipped 2026-12-01. Done-").collect();
        assert_eq!(
            found,
            [
                "order",
                "ord_1042",
                "for",
                "ada@example.com",
                "shipped",
                "2026-12-01",
                "done"
            ]
        );
    }

    #[test]
    fn only_values_are_indexed_with_escapes_decoded() {
        let text = indexed_text(
            r#"{"order_id": "ord_1042", "total": 12.90, "city": "K\u00f6ln", "paid": true,
                "items": [{"sku": "SKU-1"}], "note": null}"#,
        )
        .expect("json");
        // Numbers as serde_json reads them: integers exactly, decimals as shortest f64.
        assert_eq!(text, "köln sku-1 ord_1042 12.9", "values in key order");
        assert_eq!(indexed_text("not json"), None);
    }

    #[test]
    fn a_quoted_search_is_a_phrase_and_paths_say_where_it_matched() {
        let terms = Terms::parse("\"Main Street\"").expect("terms");
        assert!(terms.phrase);
        assert_eq!(terms.fts5_query(), "\"main street\"");
        let data = r#"{"address": {"line": "1 Main Street"}, "note": "street main"}"#;
        assert_eq!(terms.matched_paths(data), ["address.line"]);

        let terms = Terms::parse("ord_1042 ada@example.com").expect("terms");
        assert!(!terms.phrase);
        assert_eq!(terms.fts5_query(), "\"ord_1042\" AND \"ada@example.com\"");
        let data =
            r#"{"order": "ord_1042", "customer": {"email": "ADA@example.com"}, "x": "ord_10420"}"#;
        assert_eq!(terms.matched_paths(data), ["customer.email", "order"]);
        assert_eq!(Terms::parse("  ,, "), None);
    }
}
