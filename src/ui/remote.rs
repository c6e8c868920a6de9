//! What the panel has fetched from the service and every view reads: the webhooks (for
//! names), the event types, and which secrets this machine's keychain holds.

use std::collections::HashMap;

use crate::api::{EncryptionKeyStatus, EventType, Role, Webhook, WhoAmI};

/// Data fetched from the service, shared by the views.
#[derive(Default)]
pub struct Remote {
    pub webhooks: Option<Vec<Webhook>>,
    pub webhooks_error: Option<String>,
    pub event_types: Vec<EventType>,
    /// Webhook id → whether this machine's keychain holds its secret.
    pub keychain_holds: HashMap<String, bool>,
    pub keychain_error: Option<String>,
    /// The key this connection presents, once known.
    pub caller: Option<WhoAmI>,
    /// Which key seals the signing secrets, and how far a rollover has come.
    pub encryption_key: Option<EncryptionKeyStatus>,
}

impl Remote {
    /// Why this connection's key may not change anything, when it is an operator's: the
    /// tooltip of every action it cannot take.
    pub fn cannot_change(&self) -> Option<String> {
        self.caller
            .as_ref()
            .filter(|caller| caller.role == Role::Operator)
            .map(|caller| {
                format!(
                    "Needs an admin key: this connection's key ({}) is an operator's, which reads, resends and sends tests",
                    caller.name
                )
            })
    }

    pub fn webhook_name(&self, id: &str) -> Option<&str> {
        self.webhooks
            .as_ref()?
            .iter()
            .find(|w| w.id == id)
            .map(|w| w.name.as_str())
    }
}
