//! A typed client for the admin API, as the panel uses it against the embedded service and
//! remote ones alike.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

use crate::api::{
    AdminKey, AdminKeyIn, AdminKeyList, AuditPage, AuditQuery, BulkResendIn, BulkResent,
    CreatedAdminKey, CreatedWebhook, Delivery, DeliveryDetail, DeliveryList, DeliveryQuery,
    EmittedEvent, EncryptionKeyStatus, ErrorBody, EventIn, EventType, EventTypeList, Health,
    QueuedDelivery, RecoverIn, Recovered, RotateSecretIn, RotatedSecret, StatsPoint, StatsQuery,
    Webhook, WebhookIn, WebhookList, WebhookPatch, WhoAmI,
};

/// Why a call failed, in words an operator can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach {base_url}: {detail}")]
    Unreachable { base_url: String, detail: String },
    #[error("the admin key was refused: {message}")]
    Unauthorized { message: String },
    /// The service refused the request; `field` names the request field at fault.
    #[error("{message}")]
    Api {
        status: u16,
        code: String,
        message: String,
        field: Option<String>,
    },
    #[error("the service answered something this panel does not understand: {detail}")]
    Protocol { detail: String },
}

impl ClientError {
    /// The request field this error is about, when the service named one.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::Api { field, .. } => field.as_deref(),
            _ => None,
        }
    }
}

pub type Result<T, E = ClientError> = std::result::Result<T, E>;

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base_url: String,
    admin_key: Zeroizing<String>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client of the service at `base_url`. A service on loopback (the embedded one) is
    /// reached directly, whatever `HTTP_PROXY` or `ALL_PROXY` say: the admin key must not
    /// travel to a proxy. Others go through the proxies the environment names.
    pub fn new(base_url: &str, admin_key: Zeroizing<String>) -> Result<Self> {
        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("Hookpanel/", env!("CARGO_PKG_VERSION")));
        if url::Url::parse(base_url).is_ok_and(|url| crate::validate::is_loopback_host(&url)) {
            builder = builder.no_proxy();
        }
        let http = builder.build().map_err(|err| ClientError::Protocol {
            detail: err.to_string(),
        })?;
        Ok(Self {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            admin_key,
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> Result<T> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base_url))
            .bearer_auth(self.admin_key.as_str());
        if let Some(body) = body {
            let json = serde_json::to_vec(body).map_err(|err| ClientError::Protocol {
                detail: err.to_string(),
            })?;
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(json);
        }
        let response = request
            .send()
            .await
            .map_err(|err| ClientError::Unreachable {
                base_url: self.base_url.clone(),
                detail: innermost(&err),
            })?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|err| ClientError::Unreachable {
                base_url: self.base_url.clone(),
                detail: innermost(&err),
            })?;
        if status.is_success() {
            let bytes: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
            return serde_json::from_slice(bytes).map_err(|err| ClientError::Protocol {
                detail: format!("{status}: {err}"),
            });
        }
        let error =
            serde_json::from_slice::<ErrorBody>(&bytes).map_err(|_| ClientError::Protocol {
                detail: format!(
                    "{status} without an error body — is {} a Hookpanel service?",
                    self.base_url
                ),
            })?;
        if status == StatusCode::UNAUTHORIZED {
            return Err(ClientError::Unauthorized {
                message: error.error.message,
            });
        }
        Err(ClientError::Api {
            status: status.as_u16(),
            code: error.error.code,
            message: error.error.message,
            field: error.error.field,
        })
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.call(Method::GET, path, None::<&()>).await
    }

    pub async fn health(&self) -> Result<Health> {
        self.get("/healthz").await
    }

    pub async fn webhooks(&self) -> Result<Vec<Webhook>> {
        Ok(self.get::<WebhookList>("/v1/admin/webhooks").await?.items)
    }

    pub async fn create_webhook(&self, webhook: &WebhookIn) -> Result<CreatedWebhook> {
        self.call(Method::POST, "/v1/admin/webhooks", Some(webhook))
            .await
    }

    pub async fn update_webhook(&self, id: &str, patch: &WebhookPatch) -> Result<Webhook> {
        self.call(
            Method::PATCH,
            &format!("/v1/admin/webhooks/{id}"),
            Some(patch),
        )
        .await
    }

    pub async fn delete_webhook(&self, id: &str) -> Result<()> {
        self.call::<serde_json::Value>(
            Method::DELETE,
            &format!("/v1/admin/webhooks/{id}"),
            None::<&()>,
        )
        .await
        .map(drop)
    }

    pub async fn rotate_secret(&self, id: &str, grace_seconds: u64) -> Result<RotatedSecret> {
        let body = RotateSecretIn {
            grace_seconds: Some(grace_seconds),
        };
        self.call(
            Method::POST,
            &format!("/v1/admin/webhooks/{id}/rotate-secret"),
            Some(&body),
        )
        .await
    }

    /// Every admin key, oldest first (never a key itself).
    pub async fn admin_keys(&self) -> Result<Vec<AdminKey>> {
        Ok(self.get::<AdminKeyList>("/v1/admin/keys").await?.items)
    }

    /// A new key, with the key itself shown this once.
    pub async fn create_admin_key(&self, input: &AdminKeyIn) -> Result<CreatedAdminKey> {
        self.call(Method::POST, "/v1/admin/keys", Some(input)).await
    }

    pub async fn delete_admin_key(&self, id: &str) -> Result<()> {
        self.call::<serde_json::Value>(Method::DELETE, &format!("/v1/admin/keys/{id}"), None::<&()>)
            .await
            .map(drop)
    }

    /// A page of the audit log, newest first.
    pub async fn audit(&self, query: &AuditQuery) -> Result<AuditPage> {
        self.get(&format!("/v1/admin/audit?{}", query_string(query)?))
            .await
    }

    /// Which key seals the signing secrets, and how many a rollover has left.
    pub async fn encryption_key(&self) -> Result<EncryptionKeyStatus> {
        self.get("/v1/admin/encryption-key").await
    }

    /// The key this client presents: its name and role.
    pub async fn whoami(&self) -> Result<WhoAmI> {
        self.get("/v1/admin/whoami").await
    }

    pub async fn webhook(&self, id: &str) -> Result<Webhook> {
        self.get(&format!("/v1/admin/webhooks/{id}")).await
    }

    /// Ends the grace period of every previous secret of a webhook now.
    pub async fn expire_previous_secrets(&self, id: &str) -> Result<()> {
        self.call::<serde_json::Value>(
            Method::POST,
            &format!("/v1/admin/webhooks/{id}/expire-previous-secrets"),
            None::<&()>,
        )
        .await
        .map(drop)
    }

    pub async fn send_test(&self, id: &str) -> Result<QueuedDelivery> {
        self.call(
            Method::POST,
            &format!("/v1/admin/webhooks/{id}/test"),
            None::<&()>,
        )
        .await
    }

    pub async fn recover(&self, id: &str, since: DateTime<Utc>) -> Result<Recovered> {
        self.call(
            Method::POST,
            &format!("/v1/admin/webhooks/{id}/recover"),
            Some(&RecoverIn { since }),
        )
        .await
    }

    pub async fn event_types(&self) -> Result<Vec<EventType>> {
        Ok(self
            .get::<EventTypeList>("/v1/admin/event-types")
            .await?
            .items)
    }

    pub async fn emit(&self, event: &EventIn) -> Result<EmittedEvent> {
        self.call(Method::POST, "/v1/admin/events", Some(event))
            .await
    }

    pub async fn deliveries(&self, query: &DeliveryQuery) -> Result<DeliveryList> {
        self.get(&format!("/v1/admin/deliveries?{}", query_string(query)?))
            .await
    }

    pub async fn delivery(&self, id: &str) -> Result<DeliveryDetail> {
        self.get(&format!("/v1/admin/deliveries/{id}")).await
    }

    /// A delivery found by a search: its `matched` names where the payload holds `q`.
    pub async fn delivery_found_by(&self, id: &str, q: &str) -> Result<DeliveryDetail> {
        let query = query_string(&crate::api::DeliveryDetailQuery {
            q: Some(q.to_owned()),
        })?;
        self.get(&format!("/v1/admin/deliveries/{id}?{query}"))
            .await
    }

    pub async fn resend(&self, id: &str) -> Result<Delivery> {
        self.call(
            Method::POST,
            &format!("/v1/admin/deliveries/{id}/resend"),
            None::<&()>,
        )
        .await
    }

    /// Queues many deliveries again in one request (`POST /deliveries/resend`), or with
    /// `dry_run` answers what that would do.
    pub async fn resend_many(&self, input: &BulkResendIn) -> Result<BulkResent> {
        self.call(Method::POST, "/v1/admin/deliveries/resend", Some(input))
            .await
    }

    /// What a test inbox of the embedded service received.
    pub async fn inbox(&self, name: &str) -> Result<crate::server::inbox::InboxMessages> {
        self.get(&format!("/v1/admin/inbox/{name}")).await
    }

    pub async fn stats(&self, query: &StatsQuery) -> Result<Vec<StatsPoint>> {
        self.get(&format!("/v1/admin/stats?{}", query_string(query)?))
            .await
    }
}

fn query_string(query: &impl Serialize) -> Result<String> {
    serde_urlencoded::to_string(query).map_err(|err| ClientError::Protocol {
        detail: err.to_string(),
    })
}

/// The innermost cause of a transport error ("Connection refused"), which says most.
fn innermost(err: &reqwest::Error) -> String {
    let mut current: &dyn std::error::Error = err;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}
