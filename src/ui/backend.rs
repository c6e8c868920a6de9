//! Background work for the panel. The UI sends [`Command`]s; each runs on the tokio runtime
//! (keychain calls on a blocking thread), and its result comes back as an [`Event`] through a
//! channel, with a repaint request so the UI picks it up at once. The UI thread never waits.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, mpsc};

use chrono::{DateTime, Utc};
use zeroize::Zeroizing;

use super::notifications::{self, FailureNote};
use super::requests::RequestKey;
use crate::api::{
    AdminKey, AdminKeyIn, AuditPage, AuditQuery, BULK_RESEND_MAX_IDS, BulkResendIn, BulkResent,
    Delivery, DeliveryDetail, DeliveryList, DeliveryQuery, EncryptionKeyStatus, EventType,
    Recovered, Role, StatsPoint, StatsQuery, Webhook, WebhookIn, WebhookPatch, WhoAmI,
};
use crate::client::{Client, ClientError};
use crate::export::ExportFormat;
use crate::keychain::{Account, Keychain, KeychainError};
use crate::server::inbox::InboxMessages;

/// What the UI asks for.
#[derive(Debug)]
pub enum Command {
    RefreshWebhooks,
    LoadEventTypes,
    /// Which key this connection presents, and its role.
    LoadIdentity,
    CreateWebhook(WebhookIn),
    UpdateWebhook {
        id: String,
        patch: WebhookPatch,
    },
    DeleteWebhook {
        id: String,
        name: String,
    },
    RotateSecret {
        id: String,
        name: String,
        grace_seconds: u64,
    },
    SendTest {
        id: String,
    },
    /// End the grace period of a webhook's previous secrets now.
    ExpirePreviousSecrets {
        id: String,
        name: String,
    },
    /// Which of these webhooks' secrets this machine's keychain holds.
    CheckKeychain {
        ids: Vec<String>,
    },
    LoadDeliveries {
        list: ListTag,
        page: PageRequest,
        query: DeliveryQuery,
    },
    LoadDelivery {
        list: ListTag,
        id: String,
        /// The list's search, if any: the answer names where the payload matched it.
        search: Option<String>,
    },
    Resend {
        id: String,
    },
    /// Queue many deliveries again, by ids (in requests of at most 10 000) or by filter,
    /// or with `dry_run` ask what that would do.
    ResendMany {
        list: ListTag,
        input: BulkResendIn,
    },
    /// Success and failure counts over time, for the chart.
    LoadStats {
        query: StatsQuery,
    },
    /// Resend every failed delivery of a webhook since a time.
    Recover {
        webhook_id: String,
        name: String,
        since: DateTime<Utc>,
    },
    /// Ask the system's save dialog where an export goes.
    PickExportPath {
        list: ListTag,
        suggested: PathBuf,
    },
    /// Every delivery matching `query` (its cursor and limit aside), written to `path`.
    Export {
        list: ListTag,
        query: DeliveryQuery,
        format: ExportFormat,
        path: PathBuf,
    },
    /// Register a webhook pointing at a new inbox of the embedded service.
    CreateTestEndpoint {
        base_url: String,
    },
    LoadInbox {
        name: String,
    },
    /// Show a desktop notification.
    Notify(FailureNote),
    /// The service's admin keys.
    LoadKeys,
    /// Create an admin key; it comes back as a secret to show once.
    CreateKey(AdminKeyIn),
    RevokeKey {
        id: String,
        name: String,
    },
    /// Keep an admin key in the keychain as `profile`'s.
    KeepAdminKey {
        profile: String,
        key: Hidden,
    },
    /// A page of the audit log: the newest (a refresh) or the next (scrolling on).
    LoadAudit {
        page: PageRequest,
        query: AuditQuery,
    },
    /// Which key seals the secrets, and how far a rollover has come.
    LoadEncryptionKey,
}

/// A secret passed along, which `Debug` never prints.
pub struct Hidden(pub Zeroizing<String>);

impl std::fmt::Debug for Hidden {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hidden(..)")
    }
}

impl Command {
    /// Which repeating request this is, if it is one (see [`Requests`]).
    ///
    /// [`Requests`]: super::requests::Requests
    pub fn request_key(&self) -> Option<RequestKey> {
        match self {
            Self::RefreshWebhooks => Some(RequestKey::Webhooks),
            Self::LoadDeliveries { list, page, .. } if !page.more => Some(RequestKey::Page(*list)),
            Self::LoadDelivery { list, .. } => Some(RequestKey::Detail(*list)),
            Self::LoadStats { .. } => Some(RequestKey::Stats),
            Self::LoadInbox { .. } => Some(RequestKey::Inbox),
            Self::LoadKeys => Some(RequestKey::Keys),
            Self::LoadAudit { page, .. } if !page.more => Some(RequestKey::Audit),
            _ => None,
        }
    }
}

/// Which deliveries list asked, so an answer lands where it was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListTag {
    All,
    Failed,
}

/// Which page of a deliveries list an answer is: the newest (a refresh) or the next one
/// (scrolling on), for the filter of `generation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub generation: u64,
    pub more: bool,
}

/// Why a secret is being shown.
#[derive(Debug, Clone, PartialEq)]
pub enum SecretReason {
    /// A new webhook's signing secret.
    Created,
    /// A webhook's new signing secret.
    Rotated { previous_expires_at: DateTime<Utc> },
    /// A new admin key with this role.
    AdminKey { role: Role },
}

/// Where a secret shown once is kept besides.
#[derive(Debug)]
pub enum Kept {
    /// In the OS keychain.
    Saved,
    /// Saving it to the OS keychain failed.
    Failed(KeychainError),
    /// Nowhere yet: the modal offers to keep it (an admin key, for a profile).
    Offered,
}

/// A secret fresh from the service, to be shown once.
pub struct IssuedSecret {
    /// The webhook or admin key it belongs to.
    pub owner_id: String,
    pub owner_name: String,
    pub secret: Zeroizing<String>,
    pub kept: Kept,
    pub reason: SecretReason,
}

impl std::fmt::Debug for IssuedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedSecret")
            .field("owner_id", &self.owner_id)
            .field("kept", &self.kept)
            .finish_non_exhaustive()
    }
}

/// What came back.
#[derive(Debug)]
pub enum Event {
    Webhooks(Result<Vec<Webhook>, ClientError>),
    EventTypes(Result<Vec<EventType>, ClientError>),
    Identity(Result<WhoAmI, ClientError>),
    SecretIssued(IssuedSecret),
    CreateFailed(ClientError),
    Updated(Webhook),
    UpdateFailed {
        id: String,
        error: ClientError,
    },
    Deleted {
        id: String,
        name: String,
    },
    /// A webhook's previous secrets no longer sign; the webhook as it is now.
    GraceEnded(Webhook),
    TestQueued {
        webhook_id: String,
        delivery_id: String,
    },
    KeychainHolds(Result<HashMap<String, bool>, KeychainError>),
    Deliveries {
        list: ListTag,
        page: PageRequest,
        result: Result<DeliveryList, ClientError>,
    },
    Stats {
        query: StatsQuery,
        result: Result<Vec<StatsPoint>, ClientError>,
    },
    Recovered {
        name: String,
        result: Result<Recovered, ClientError>,
    },
    ExportPathPicked {
        list: ListTag,
        path: Option<PathBuf>,
    },
    Exported {
        list: ListTag,
        path: PathBuf,
        result: Result<usize, String>,
    },
    Delivery {
        list: ListTag,
        result: Result<DeliveryDetail, ClientError>,
    },
    Resent {
        id: String,
        result: Result<Delivery, ClientError>,
    },
    ResentMany {
        list: ListTag,
        dry_run: bool,
        result: Result<BulkResent, ClientError>,
    },
    TestEndpointCreated {
        inbox: String,
    },
    Inbox {
        name: String,
        result: Result<InboxMessages, ClientError>,
    },
    /// Something the user asked for failed; `what` says what it was.
    Failed {
        what: String,
        error: String,
    },
    /// A repeating request answered exactly as it did last time: nothing to redraw.
    Unchanged(RequestKey),
    /// A desktop notification was shown, or why not.
    Notified(Result<(), String>),
    Keys(Result<Vec<AdminKey>, ClientError>),
    KeyCreateFailed(ClientError),
    KeyRevoked {
        id: String,
        name: String,
    },
    AdminKeyKept {
        profile: String,
        result: Result<(), KeychainError>,
    },
    Audit {
        page: PageRequest,
        result: Result<AuditPage, ClientError>,
    },
    EncryptionKey(Result<EncryptionKeyStatus, ClientError>),
    /// The embedded service's encryption key was rolled; it restarts re-sealing.
    KeyRolled,
}

impl Event {
    /// The repeating request this answers, if it answers one.
    pub fn request_key(&self) -> Option<RequestKey> {
        match self {
            Self::Webhooks(_) => Some(RequestKey::Webhooks),
            Self::Deliveries { list, page, .. } if !page.more => Some(RequestKey::Page(*list)),
            Self::Delivery { list, .. } => Some(RequestKey::Detail(*list)),
            Self::Stats { .. } => Some(RequestKey::Stats),
            Self::Inbox { .. } => Some(RequestKey::Inbox),
            Self::Keys(_) => Some(RequestKey::Keys),
            Self::Audit { page, .. } if !page.more => Some(RequestKey::Audit),
            Self::Unchanged(key) => Some(*key),
            _ => None,
        }
    }
}

/// Most pages one export fetches (of 500 rows each): a million deliveries.
const MAX_EXPORT_PAGES: usize = 2000;

/// Runs commands against one service.
#[derive(Clone)]
pub struct Backend {
    runtime: tokio::runtime::Handle,
    client: Client,
    keychain: Result<Keychain, KeychainError>,
    profile: String,
    events: mpsc::Sender<Event>,
    repaint: egui::Context,
    /// A digest of each repeating request's latest answer: see [`Backend::send`].
    last_answers: Arc<Mutex<HashMap<RequestKey, u64>>>,
}

impl Backend {
    pub fn new(
        runtime: tokio::runtime::Handle,
        client: Client,
        keychain: Result<Keychain, KeychainError>,
        profile: String,
        events: mpsc::Sender<Event>,
        repaint: egui::Context,
    ) -> Self {
        Self {
            runtime,
            client,
            keychain,
            profile,
            events,
            repaint,
            last_answers: Arc::default(),
        }
    }

    pub fn base_url(&self) -> &str {
        self.client.base_url()
    }

    /// Runs `command` in the background; its [`Event`] arrives through the channel and
    /// asks for a frame. A repeating request that answered as it did last time arrives as
    /// [`Event::Unchanged`] and asks for none: an idle panel then neither redraws nor
    /// rebuilds its rows every few seconds (the next scheduled frame takes it in).
    pub fn send(&self, command: Command) {
        let backend = self.clone();
        self.runtime.spawn(async move {
            let event = backend.run(command).await;
            let event = backend.unless_unchanged(event);
            let changed = !matches!(event, Event::Unchanged(_));
            // The receiver is gone only when the panel is closing.
            let _ = backend.events.send(event);
            if changed {
                backend.repaint.request_repaint();
            }
        });
    }

    /// `event`, or [`Event::Unchanged`] when it answers the webhooks list, the keys, or a
    /// list's or the audit log's newest page exactly as the previous answer did: the views keep those answers for as
    /// long as this backend serves them (a new filter is a new generation, so a different
    /// answer). The inspector and the chart drop theirs when closed or changed, so theirs
    /// always arrive. Answers are compared by a digest of their `Debug` text, which shows
    /// every field (and no secret: those types print none).
    fn unless_unchanged(&self, event: Event) -> Event {
        use std::hash::{Hash as _, Hasher as _};
        let Some(
            key @ (RequestKey::Webhooks
            | RequestKey::Page(_)
            | RequestKey::Keys
            | RequestKey::Audit),
        ) = event.request_key()
        else {
            return event;
        };
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        format!("{event:?}").hash(&mut hasher);
        let digest = hasher.finish();
        let Ok(mut last) = self.last_answers.lock() else {
            return event;
        };
        if last.insert(key, digest) == Some(digest) {
            Event::Unchanged(key)
        } else {
            event
        }
    }

    async fn keychain_call<T: Send + 'static>(
        &self,
        call: impl FnOnce(&Keychain) -> Result<T, KeychainError> + Send + 'static,
    ) -> Result<T, KeychainError> {
        let keychain = self.keychain.clone()?;
        tokio::task::spawn_blocking(move || call(&keychain))
            .await
            .unwrap_or_else(|err| {
                Err(KeychainError::Failed {
                    detail: err.to_string(),
                })
            })
    }

    async fn save_secret(
        &self,
        webhook_id: &str,
        secret: &Zeroizing<String>,
    ) -> Result<(), KeychainError> {
        let account = Account::webhook_secret(&self.profile, webhook_id);
        let secret = secret.clone();
        self.keychain_call(move |keychain| keychain.set(&account, &secret))
            .await
    }

    /// One request for a filter or for up to 10 000 ids; more ids go in requests of
    /// 10 000, one after another, their answers added up.
    async fn resend_many(&self, input: BulkResendIn) -> Result<BulkResent, ClientError> {
        let Some(ids) = input
            .ids
            .as_ref()
            .filter(|ids| ids.len() > BULK_RESEND_MAX_IDS)
        else {
            return self.client.resend_many(&input).await;
        };
        let mut total = BulkResent::default();
        for chunk in ids.chunks(BULK_RESEND_MAX_IDS) {
            let part = self
                .client
                .resend_many(&BulkResendIn {
                    ids: Some(chunk.to_vec()),
                    filter: None,
                    dry_run: input.dry_run,
                })
                .await?;
            total.add(part);
        }
        Ok(total)
    }

    /// Fetches every page matching `query` and writes the file; the count written, or
    /// what went wrong in words.
    async fn export(
        &self,
        mut query: DeliveryQuery,
        format: ExportFormat,
        path: PathBuf,
    ) -> Result<usize, String> {
        query.limit = Some(crate::server::MAX_DELIVERY_PAGE);
        query.cursor = None;
        let mut deliveries = Vec::new();
        for _ in 0..MAX_EXPORT_PAGES {
            let page = self
                .client
                .deliveries(&query)
                .await
                .map_err(|err| err.to_string())?;
            deliveries.extend(page.items);
            match page.next_cursor {
                Some(cursor) => query.cursor = Some(cursor),
                None => break,
            }
        }
        let names: HashMap<String, String> = self
            .client
            .webhooks()
            .await
            .map_err(|err| err.to_string())?
            .into_iter()
            .map(|webhook| (webhook.id, webhook.name))
            .collect();
        tokio::task::spawn_blocking(move || {
            crate::export::write(&path, format, &deliveries, &names)
                .map(|()| deliveries.len())
                .map_err(|err| err.to_string())
        })
        .await
        .map_err(|err| err.to_string())?
    }

    async fn run(&self, command: Command) -> Event {
        match command {
            Command::RefreshWebhooks => Event::Webhooks(self.client.webhooks().await),
            Command::LoadEventTypes => Event::EventTypes(self.client.event_types().await),
            Command::LoadIdentity => Event::Identity(self.client.whoami().await),
            Command::CreateWebhook(input) => match self.client.create_webhook(&input).await {
                Ok(created) => {
                    let secret = Zeroizing::new(created.secret);
                    let saved = self.save_secret(&created.webhook.id, &secret).await;
                    Event::SecretIssued(IssuedSecret {
                        owner_id: created.webhook.id,
                        owner_name: created.webhook.name,
                        secret,
                        kept: saved.map_or_else(Kept::Failed, |()| Kept::Saved),
                        reason: SecretReason::Created,
                    })
                }
                Err(error) => Event::CreateFailed(error),
            },
            Command::UpdateWebhook { id, patch } => {
                match self.client.update_webhook(&id, &patch).await {
                    Ok(webhook) => Event::Updated(webhook),
                    Err(error) => Event::UpdateFailed { id, error },
                }
            }
            Command::DeleteWebhook { id, name } => match self.client.delete_webhook(&id).await {
                Ok(()) => {
                    let account = Account::webhook_secret(&self.profile, &id);
                    if let Err(err) = self
                        .keychain_call(move |keychain| keychain.delete(&account))
                        .await
                        && !err.is_unavailable()
                    {
                        tracing::warn!(
                            "removing the deleted webhook's secret from the keychain failed: {err}"
                        );
                    }
                    Event::Deleted { id, name }
                }
                Err(error) => Event::Failed {
                    what: format!("Deleting {name}"),
                    error: error.to_string(),
                },
            },
            Command::RotateSecret {
                id,
                name,
                grace_seconds,
            } => match self.client.rotate_secret(&id, grace_seconds).await {
                Ok(rotated) => {
                    let secret = Zeroizing::new(rotated.secret);
                    let saved = self.save_secret(&id, &secret).await;
                    Event::SecretIssued(IssuedSecret {
                        owner_id: id,
                        owner_name: name,
                        secret,
                        kept: saved.map_or_else(Kept::Failed, |()| Kept::Saved),
                        reason: SecretReason::Rotated {
                            previous_expires_at: rotated.previous_secret_expires_at,
                        },
                    })
                }
                Err(error) => Event::Failed {
                    what: format!("Rotating the secret of {name}"),
                    error: error.to_string(),
                },
            },
            Command::ExpirePreviousSecrets { id, name } => {
                let ended = match self.client.expire_previous_secrets(&id).await {
                    Ok(()) => self.client.webhook(&id).await,
                    Err(error) => Err(error),
                };
                match ended {
                    Ok(webhook) => Event::GraceEnded(webhook),
                    Err(error) => Event::Failed {
                        what: format!("Ending the grace period of {name}'s previous secrets"),
                        error: error.to_string(),
                    },
                }
            }
            Command::SendTest { id } => match self.client.send_test(&id).await {
                Ok(queued) => Event::TestQueued {
                    webhook_id: id,
                    delivery_id: queued.delivery_id,
                },
                Err(error) => Event::Failed {
                    what: "Sending a test event".to_owned(),
                    error: error.to_string(),
                },
            },
            Command::CheckKeychain { ids } => {
                let profile = self.profile.clone();
                Event::KeychainHolds(
                    self.keychain_call(move |keychain| {
                        ids.into_iter()
                            .map(|id| {
                                let held =
                                    keychain.contains(&Account::webhook_secret(&profile, &id))?;
                                Ok((id, held))
                            })
                            .collect()
                    })
                    .await,
                )
            }
            Command::LoadDeliveries { list, page, query } => Event::Deliveries {
                list,
                page,
                result: self.client.deliveries(&query).await,
            },
            Command::LoadStats { query } => {
                let result = self.client.stats(&query).await;
                Event::Stats { query, result }
            }
            Command::Recover {
                webhook_id,
                name,
                since,
            } => Event::Recovered {
                name,
                result: self.client.recover(&webhook_id, since).await,
            },
            Command::PickExportPath { list, suggested } => {
                let mut dialog = rfd::AsyncFileDialog::new().set_title("Export deliveries");
                if let Some(dir) = suggested.parent() {
                    dialog = dialog.set_directory(dir);
                }
                if let Some(name) = suggested.file_name() {
                    dialog = dialog.set_file_name(name.to_string_lossy());
                }
                let path = dialog.save_file().await.map(|file| file.path().to_owned());
                Event::ExportPathPicked { list, path }
            }
            Command::Export {
                list,
                query,
                format,
                path,
            } => {
                let result = self.export(query, format, path.clone()).await;
                Event::Exported { list, path, result }
            }
            Command::LoadDelivery { list, id, search } => Event::Delivery {
                list,
                result: match search {
                    Some(search) => self.client.delivery_found_by(&id, &search).await,
                    None => self.client.delivery(&id).await,
                },
            },
            Command::Resend { id } => {
                let result = self.client.resend(&id).await;
                Event::Resent { id, result }
            }
            Command::ResendMany { list, input } => {
                let dry_run = input.dry_run;
                let result = self.resend_many(input).await;
                Event::ResentMany {
                    list,
                    dry_run,
                    result,
                }
            }
            Command::CreateTestEndpoint { base_url } => {
                // The ULID's last 8 characters are random: enough to tell endpoints apart.
                let ulid = ulid::Ulid::new().to_string().to_ascii_lowercase();
                let inbox = format!("test-{}", &ulid[ulid.len() - 8..]);
                let input = WebhookIn {
                    name: format!("Test endpoint {inbox}"),
                    url: format!("{base_url}/inbox/{inbox}"),
                    events: vec![crate::catalog::WILDCARD.to_owned()],
                    kind: crate::api::WebhookKind::Generic,
                    description: Some(
                        "A local test receiver hosted by the embedded service".to_owned(),
                    ),
                    owner: None,
                    rate_limit: None,
                };
                match self.client.create_webhook(&input).await {
                    Ok(created) => {
                        let secret = Zeroizing::new(created.secret);
                        if let Err(err) = self.save_secret(&created.webhook.id, &secret).await {
                            tracing::info!("test endpoint secret not saved to the keychain: {err}");
                        }
                        if let Err(error) = self.client.send_test(&created.webhook.id).await {
                            return Event::Failed {
                                what: "Sending a test event".to_owned(),
                                error: error.to_string(),
                            };
                        }
                        Event::TestEndpointCreated { inbox }
                    }
                    Err(error) => Event::Failed {
                        what: "Creating a test endpoint".to_owned(),
                        error: error.to_string(),
                    },
                }
            }
            Command::LoadInbox { name } => {
                let result = self.client.inbox(&name).await;
                Event::Inbox { name, result }
            }
            Command::LoadKeys => Event::Keys(self.client.admin_keys().await),
            Command::CreateKey(input) => match self.client.create_admin_key(&input).await {
                Ok(created) => Event::SecretIssued(IssuedSecret {
                    owner_id: created.key_info.id,
                    owner_name: created.key_info.name,
                    secret: Zeroizing::new(created.key),
                    kept: Kept::Offered,
                    reason: SecretReason::AdminKey {
                        role: created.key_info.role,
                    },
                }),
                Err(error) => Event::KeyCreateFailed(error),
            },
            Command::RevokeKey { id, name } => match self.client.delete_admin_key(&id).await {
                Ok(()) => Event::KeyRevoked { id, name },
                Err(error) => Event::Failed {
                    what: format!("Revoking the key {name}"),
                    error: error.to_string(),
                },
            },
            Command::KeepAdminKey { profile, key } => {
                let account = Account::admin_key(&profile);
                let result = self
                    .keychain_call(move |keychain| keychain.set(&account, &key.0))
                    .await;
                Event::AdminKeyKept { profile, result }
            }
            Command::LoadAudit { page, query } => Event::Audit {
                page,
                result: self.client.audit(&query).await,
            },
            Command::LoadEncryptionKey => Event::EncryptionKey(self.client.encryption_key().await),
            Command::Notify(note) => Event::Notified(
                tokio::task::spawn_blocking(move || notifications::show(&note))
                    .await
                    .unwrap_or_else(|err| Err(format!("the notification task failed: {err}"))),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn webhooks(names: &[&str]) -> Event {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default();
        Event::Webhooks(Ok(names
            .iter()
            .map(|name| Webhook::sample(&format!("wh_{name}"), name, now))
            .collect()))
    }

    #[test]
    fn an_answer_like_the_last_one_asks_for_no_frame() {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let (events, _received) = mpsc::channel();
        let client =
            Client::new("http://127.0.0.1:9", Zeroizing::new("hpk_k".to_owned())).expect("client");
        let backend = Backend::new(
            runtime.handle().clone(),
            client,
            Err(KeychainError::Unavailable {
                detail: "none in this test".to_owned(),
            }),
            "local".to_owned(),
            events,
            egui::Context::default(),
        );
        let unchanged = |event: &Event| matches!(event, Event::Unchanged(RequestKey::Webhooks));
        assert!(!unchanged(&backend.unless_unchanged(webhooks(&["a"]))));
        assert!(unchanged(&backend.unless_unchanged(webhooks(&["a"]))));
        assert!(
            !unchanged(&backend.unless_unchanged(webhooks(&["a", "b"]))),
            "a new webhook"
        );
        assert!(unchanged(&backend.unless_unchanged(webhooks(&["a", "b"]))));
        // The chart's answers always arrive: it may have dropped the last one.
        let stats = || Event::Stats {
            query: StatsQuery::default(),
            result: Ok(Vec::new()),
        };
        assert!(matches!(
            backend.unless_unchanged(stats()),
            Event::Stats { .. }
        ));
        assert!(matches!(
            backend.unless_unchanged(stats()),
            Event::Stats { .. }
        ));
    }
}
