//! Wire types of who may do what: named admin keys with their roles, and the audit log
//! of what each did.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// What a key may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything.
    Admin,
    /// Reads everything, resends (one, bulk, recover) and sends tests; changes nothing
    /// else.
    Operator,
}

impl Role {
    pub const ALL: [Self; 2] = [Self::Admin, Self::Operator];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Operator => "operator",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|role| role.as_str() == text)
    }
}

/// `POST /keys`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminKeyIn {
    /// Who or what holds the key, e.g. `alice` or `billing-service`: the audit log's actor.
    /// 1–100 characters, unique among the keys.
    pub name: String,
    pub role: Role,
}

/// An admin key as listed: never the key itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AdminKey {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    /// When a request last presented it (to the minute); none if never.
    pub last_used_at: Option<DateTime<Utc>>,
}

/// The answer to `POST /keys`: the key, shown this once.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedAdminKey {
    #[serde(flatten)]
    pub key_info: AdminKey,
    /// `hpk_…`: pass as `Authorization: Bearer <key>`. Only its hash is kept.
    pub key: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct AdminKeyList {
    pub items: Vec<AdminKey>,
}

/// The key a request presented: `GET /whoami`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WhoAmI {
    pub id: String,
    pub name: String,
    pub role: Role,
}

/// What an audit entry records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum AuditAction {
    #[serde(rename = "webhook.create")]
    WebhookCreate,
    #[serde(rename = "webhook.update")]
    WebhookUpdate,
    #[serde(rename = "webhook.delete")]
    WebhookDelete,
    #[serde(rename = "webhook.activate")]
    WebhookActivate,
    #[serde(rename = "webhook.deactivate")]
    WebhookDeactivate,
    #[serde(rename = "webhook.rotate_secret")]
    WebhookRotateSecret,
    #[serde(rename = "webhook.expire_previous_secrets")]
    WebhookExpirePreviousSecrets,
    #[serde(rename = "webhook.test")]
    WebhookTest,
    #[serde(rename = "webhook.recover")]
    WebhookRecover,
    #[serde(rename = "delivery.resend")]
    DeliveryResend,
    #[serde(rename = "deliveries.resend_bulk")]
    DeliveriesResendBulk,
    #[serde(rename = "key.create")]
    KeyCreate,
    #[serde(rename = "key.delete")]
    KeyDelete,
    #[serde(rename = "encryption_key.rollover")]
    EncryptionKeyRollover,
}

impl AuditAction {
    pub const ALL: [Self; 14] = [
        Self::WebhookCreate,
        Self::WebhookUpdate,
        Self::WebhookDelete,
        Self::WebhookActivate,
        Self::WebhookDeactivate,
        Self::WebhookRotateSecret,
        Self::WebhookExpirePreviousSecrets,
        Self::WebhookTest,
        Self::WebhookRecover,
        Self::DeliveryResend,
        Self::DeliveriesResendBulk,
        Self::KeyCreate,
        Self::KeyDelete,
        Self::EncryptionKeyRollover,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::WebhookCreate => "webhook.create",
            Self::WebhookUpdate => "webhook.update",
            Self::WebhookDelete => "webhook.delete",
            Self::WebhookActivate => "webhook.activate",
            Self::WebhookDeactivate => "webhook.deactivate",
            Self::WebhookRotateSecret => "webhook.rotate_secret",
            Self::WebhookExpirePreviousSecrets => "webhook.expire_previous_secrets",
            Self::WebhookTest => "webhook.test",
            Self::WebhookRecover => "webhook.recover",
            Self::DeliveryResend => "delivery.resend",
            Self::DeliveriesResendBulk => "deliveries.resend_bulk",
            Self::KeyCreate => "key.create",
            Self::KeyDelete => "key.delete",
            Self::EncryptionKeyRollover => "encryption_key.rollover",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|action| action.as_str() == text)
    }
}

/// One change, as the audit log keeps it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditEntry {
    /// `aud_…`; entries order by id as by time.
    pub id: String,
    pub at: DateTime<Utc>,
    /// The name of the key that asked, or `hookpanel` for the service's own changes
    /// (deactivating a webhook that kept failing).
    pub actor: String,
    pub action: AuditAction,
    /// The webhook, delivery or key changed; none for a bulk resend.
    pub target_id: Option<String>,
    /// What changed, as a JSON object: the fields a webhook update set, a bulk resend's
    /// filter and count. Never a secret or a key.
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

/// `GET /audit`'s filters and paging.
#[derive(Clone, Debug, Default, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// A key's name, exactly.
    pub actor: Option<String>,
    /// An action, e.g. `webhook.rotate_secret`.
    #[param(value_type = Option<String>, example = "webhook.rotate_secret")]
    pub action: Option<String>,
    /// A webhook, delivery or key id, exactly.
    pub target_id: Option<String>,
    /// At or after (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// Before (RFC 3339).
    pub until: Option<DateTime<Utc>>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1–500 (default 100).
    pub limit: Option<u32>,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditPage {
    pub items: Vec<AuditEntry>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// `GET /encryption-key`: which key seals the signing secrets, and how far a rollover
/// has come. Key ids name keys without revealing anything of them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EncryptionKeyStatus {
    /// The id of the key that seals new secrets; `plaintext` when secrets are stored
    /// unencrypted.
    pub key_id: String,
    /// The key being rolled away from, while this process still holds it.
    pub previous_key_id: Option<String>,
    /// Secrets still sealed with another key than the current one. The rollover has
    /// finished, and the previous key may be dropped, at 0.
    pub secrets_left_to_reseal: u64,
}
