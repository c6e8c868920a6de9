//! The event-type catalog: which event types webhooks may subscribe to.
//!
//! Read from a JSON file (an array of `{name, description, example}`); the default
//! catalog is built into the binary from `assets/event-types.json`.

use std::collections::BTreeMap;
use std::path::Path;

use crate::api::EventType;

/// Subscribes a webhook to every event type.
pub const WILDCARD: &str = "*";

const DEFAULT_CATALOG: &str = include_str!("../assets/event-types.json");

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("could not read the event-type catalog {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "the event-type catalog {path} is not a JSON array of {{name, description, example}}: {source}"
    )]
    Parse {
        path: String,
        source: serde_json::Error,
    },
    #[error("the event-type catalog {path} names {name:?} twice")]
    Duplicate { path: String, name: String },
    #[error("the event-type catalog {path} has an entry with an empty name")]
    EmptyName { path: String },
}

#[derive(Clone, Debug)]
pub struct Catalog {
    by_name: BTreeMap<String, EventType>,
}

impl Catalog {
    pub fn builtin() -> Result<Self, CatalogError> {
        Self::parse("built-in assets/event-types.json", DEFAULT_CATALOG)
    }

    pub fn from_file(path: &Path) -> Result<Self, CatalogError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| CatalogError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::parse(&shown, &text)
    }

    fn parse(path: &str, text: &str) -> Result<Self, CatalogError> {
        let entries: Vec<EventType> =
            serde_json::from_str(text).map_err(|source| CatalogError::Parse {
                path: path.to_owned(),
                source,
            })?;
        let mut by_name = BTreeMap::new();
        for entry in entries {
            if entry.name.trim().is_empty() {
                return Err(CatalogError::EmptyName {
                    path: path.to_owned(),
                });
            }
            let name = entry.name.clone();
            if by_name.insert(name.clone(), entry).is_some() {
                return Err(CatalogError::Duplicate {
                    path: path.to_owned(),
                    name,
                });
            }
        }
        Ok(Self { by_name })
    }

    pub fn contains(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    /// Every entry, sorted by name.
    pub fn entries(&self) -> impl Iterator<Item = &EventType> {
        self.by_name.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_catalog_has_the_documented_types() {
        let catalog = Catalog::builtin().expect("built-in catalog parses");
        for name in [
            "order.created",
            "order.status_changed",
            "order.fulfilled",
            "order.cancelled",
            "inventory.low_stock",
            "product.created",
            "product.updated",
            "payment.received",
            "shipment.delivered",
            "customer.created",
            "version.published",
            "event.created",
            "event.updated",
            "event.deleted",
            "collection.orderChanged",
            "webhook.test",
        ] {
            assert!(catalog.contains(name), "{name} missing from the catalog");
        }
        assert!(catalog.entries().all(|e| !e.description.is_empty()));
    }

    #[test]
    fn duplicates_are_refused() {
        let text = r#"[{"name":"a","description":"x","example":{}},{"name":"a","description":"y","example":{}}]"#;
        assert!(matches!(
            Catalog::parse("t", text),
            Err(CatalogError::Duplicate { .. })
        ));
    }
}
