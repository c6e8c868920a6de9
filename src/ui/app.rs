//! The panel's `eframe::App`: state, the connection to a service, the loop between UI and
//! background work, and the frame around the views.

use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::activity::{ActivityView, Link};
use super::backend::{Backend, Command, Event, ListTag, SecretReason};
use super::commands::Commands;
use super::connection::{self, Connected, RemoteProfile};
use super::deliveries::DeliveriesView;
use super::inbox::InboxView;
use super::keys::KeysView;
use super::notifications::FailureWatch;
use super::profiles::{ProfileAction, ProfilesView};
use super::remote::Remote;
use super::requests::{REFRESH_EVERY, Requests};
use super::secret::SecretModal;
use super::service_menu::RollConfirm;
use super::webhooks::WebhooksView;
use super::{theme, widgets};
use crate::client::Client;
use crate::embedded::{Embedded, Persistence};
use crate::keychain::{Keychain, KeychainError, LOCAL_PROFILE};

/// What the panel remembers between runs. Never a secret.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PersistedState {
    pub view: View,
    /// Remote services, without their admin keys (those are in the keychain).
    pub profiles: Vec<RemoteProfile>,
    /// The remote profile in use; `None` for the embedded service.
    pub active_profile: Option<String>,
    /// Whether deliveries that fail for good raise a desktop notification.
    pub notifications: Notifications,
    /// Signing secrets older than this many days are marked in amber.
    pub secret_warning_days: SecretWarningDays,
}

/// The age in days past which a signing secret is marked as old: 90 unless set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretWarningDays(pub u32);

impl Default for SecretWarningDays {
    fn default() -> Self {
        Self(90)
    }
}

/// The settings menu's switch for desktop notifications.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Notifications {
    #[default]
    On,
    Off,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum View {
    #[default]
    Webhooks,
    Deliveries,
    Failed,
    Inbox,
    Keys,
    Activity,
}

impl View {
    pub const ALL: [Self; 6] = [
        Self::Webhooks,
        Self::Deliveries,
        Self::Failed,
        Self::Inbox,
        Self::Keys,
        Self::Activity,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Self::Webhooks => "Webhooks",
            Self::Deliveries => "Deliveries",
            Self::Failed => "Failed deliveries",
            Self::Inbox => "Test inbox",
            Self::Keys => "Keys",
            Self::Activity => "Activity",
        }
    }
}

/// How the panel starts.
pub struct Startup {
    /// Where the embedded service keeps its database.
    pub data_dir: PathBuf,
    /// The OS keychain, or why there is none. `None`: opened on a blocking thread.
    pub keychain: Option<Result<Keychain, KeychainError>>,
}

/// Which service the panel manages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The embedded service.
    Local,
    /// A remote profile, by name.
    Remote(String),
}

impl Target {
    fn label(&self) -> String {
        match self {
            Self::Local => "Local (embedded)".to_owned(),
            Self::Remote(name) => name.clone(),
        }
    }
}

/// The keychain, opened once by whichever background task needs it first.
type SharedKeychain = Arc<OnceLock<Result<Keychain, KeychainError>>>;

enum Connection {
    Connecting {
        target: Target,
        started: mpsc::Receiver<Result<Connected, String>>,
    },
    Ready {
        target: Target,
        backend: Backend,
        /// Where keys and data are, in words.
        note: String,
        /// Shown while connected over plain http beyond loopback.
        cleartext: Option<String>,
    },
    Failed {
        target: Target,
        error: String,
    },
}

impl Connection {
    fn target(&self) -> &Target {
        match self {
            Self::Connecting { target, .. }
            | Self::Ready { target, .. }
            | Self::Failed { target, .. } => target,
        }
    }
}

/// A message in the status bar, with when it was said.
struct Notice {
    text: String,
    is_error: bool,
    at: Instant,
}

pub struct App {
    state: PersistedState,
    connection: Connection,
    keychain: SharedKeychain,
    data_dir: PathBuf,
    /// The embedded service once started, with its note; kept while a remote is managed.
    embedded: Option<(Box<Embedded>, String)>,
    events: mpsc::Receiver<Event>,
    events_tx: mpsc::Sender<Event>,
    runtime: tokio::runtime::Handle,
    ctx: egui::Context,
    remote: Remote,
    webhooks: WebhooksView,
    deliveries: DeliveriesView,
    failed: DeliveriesView,
    inbox: InboxView,
    keys: KeysView,
    activity: ActivityView,
    roll: RollConfirm,
    profiles: ProfilesView,
    secret: Option<SecretModal>,
    notice: Option<Notice>,
    last_refresh: Option<Instant>,
    /// Each view's repeating requests under way, and how slow the answers are.
    requests: Requests,
    /// Deliveries newly failed for good, to notify.
    failures: FailureWatch,
    /// Why the platform showed no notification, once it refused one: none is tried again
    /// until the setting is switched.
    notifications_unavailable: Option<String>,
}

impl App {
    pub fn new(
        ctx: &egui::Context,
        runtime: tokio::runtime::Handle,
        storage: Option<&dyn eframe::Storage>,
        startup: Startup,
    ) -> Self {
        theme::apply(ctx);
        let state: PersistedState = storage
            .and_then(|storage| eframe::get_value(storage, eframe::APP_KEY))
            .unwrap_or_default();
        let (events_tx, events) = mpsc::channel();
        let keychain = SharedKeychain::default();
        if let Some(opened) = startup.keychain {
            let _ = keychain.set(opened);
        }
        let target = match &state.active_profile {
            Some(name) if state.profiles.iter().any(|p| &p.name == name) => {
                Target::Remote(name.clone())
            }
            _ => Target::Local,
        };
        let mut app = Self {
            state,
            connection: Connection::Failed {
                target: Target::Local,
                error: String::new(),
            },
            keychain,
            data_dir: startup.data_dir,
            embedded: None,
            events,
            events_tx,
            runtime,
            ctx: ctx.clone(),
            remote: Remote::default(),
            webhooks: WebhooksView::default(),
            deliveries: DeliveriesView::all(),
            failed: DeliveriesView::failed_only(),
            inbox: InboxView::default(),
            keys: KeysView::default(),
            activity: ActivityView::default(),
            roll: RollConfirm::default(),
            profiles: ProfilesView::default(),
            secret: None,
            notice: None,
            last_refresh: None,
            requests: Requests::default(),
            failures: FailureWatch::default(),
            notifications_unavailable: None,
        };
        app.connect(target);
        app
    }

    fn backend(&self) -> Option<&Backend> {
        match &self.connection {
            Connection::Ready { backend, .. } => Some(backend),
            Connection::Connecting { .. } | Connection::Failed { .. } => None,
        }
    }

    /// Whether the panel is connected and has loaded its webhooks (for tests).
    pub fn is_ready(&self) -> bool {
        self.backend().is_some() && self.remote.webhooks.is_some()
    }

    /// The connected service's base URL (for tests).
    pub fn base_url(&self) -> Option<&str> {
        self.backend().map(Backend::base_url)
    }

    /// Why the panel is not connected, when it is not (for tests).
    pub fn connection_error(&self) -> Option<&str> {
        match &self.connection {
            Connection::Failed { error, .. } => Some(error),
            Connection::Connecting { .. } | Connection::Ready { .. } => None,
        }
    }

    /// What would be persisted now (for tests: it must never hold a secret).
    pub fn persisted_state(&self) -> &PersistedState {
        &self.state
    }

    pub fn remote(&self) -> &Remote {
        &self.remote
    }

    pub fn show_view(&mut self, view: View) {
        self.state.view = view;
    }

    fn say(&mut self, text: impl Into<String>, is_error: bool) {
        self.notice = Some(Notice {
            text: text.into(),
            is_error,
            at: Instant::now(),
        });
    }

    fn list_mut(&mut self, list: ListTag) -> &mut DeliveriesView {
        match list {
            ListTag::All => &mut self.deliveries,
            ListTag::Failed => &mut self.failed,
        }
    }

    fn run(&mut self, commands: Commands) {
        let Connection::Ready { backend, .. } = &self.connection else {
            return;
        };
        let now = Instant::now();
        for command in commands {
            if let Some(key) = command.request_key() {
                self.requests.sent(key, now);
            }
            backend.send(command);
        }
    }

    fn reset_views(&mut self) {
        self.remote = Remote::default();
        self.webhooks = WebhooksView::default();
        self.deliveries = DeliveriesView::all();
        self.failed = DeliveriesView::failed_only();
        self.inbox = InboxView::default();
        self.keys = KeysView::default();
        self.activity = ActivityView::default();
        self.last_refresh = None;
        self.requests.clear();
        self.failures = FailureWatch::default();
    }

    /// Switches to `target`: at once for an embedded service already running, otherwise in
    /// the background. The views start over.
    fn connect(&mut self, target: Target) {
        self.reset_views();
        if target != Target::Local && self.state.view == View::Inbox {
            // Only the embedded service hosts test inboxes.
            self.state.view = View::Webhooks;
        }
        self.state.active_profile = match &target {
            Target::Local => None,
            Target::Remote(name) => Some(name.clone()),
        };
        let profile = match &target {
            Target::Local => {
                if let Some((embedded, note)) = &self.embedded {
                    let connected =
                        Client::new(&embedded.service.base_url(), embedded.admin_key.clone())
                            .map(|client| Connected {
                                client,
                                profile: LOCAL_PROFILE.to_owned(),
                                note: note.clone(),
                                embedded: None,
                            })
                            .map_err(|err| err.to_string());
                    self.connection = match connected {
                        Ok(connected) => self.ready(target, connected),
                        Err(error) => Connection::Failed { target, error },
                    };
                    return;
                }
                None
            }
            Target::Remote(name) => match self.state.profiles.iter().find(|p| &p.name == name) {
                Some(profile) => Some(profile.clone()),
                None => {
                    let error = format!("There is no profile named {name}");
                    self.connection = Connection::Failed { target, error };
                    return;
                }
            },
        };
        let keychain = Arc::clone(&self.keychain);
        let data_dir = self.data_dir.clone();
        self.start_connecting(target, async move {
            let keychain = open_keychain(keychain).await;
            match profile {
                None => connection::local(keychain, data_dir).await,
                Some(profile) => connection::remote(keychain, profile).await,
            }
        });
    }

    /// Runs `connecting` in the background; its result is picked up by `poll_connection`.
    fn start_connecting(
        &mut self,
        target: Target,
        connecting: impl Future<Output = Result<Connected, String>> + Send + 'static,
    ) {
        let (started_tx, started) = mpsc::channel();
        let repaint = self.ctx.clone();
        self.runtime.spawn(async move {
            let _ = started_tx.send(connecting.await);
            repaint.request_repaint();
        });
        self.connection = Connection::Connecting { target, started };
    }

    fn ready(&mut self, target: Target, connected: Connected) -> Connection {
        let Connected {
            client,
            profile,
            note,
            embedded,
        } = connected;
        if let Some(embedded) = embedded {
            self.embedded = Some((Box::new(embedded), note.clone()));
        }
        let cleartext = super::connection::cleartext_warning(client.base_url());
        let keychain = self.keychain.get().cloned().unwrap_or_else(|| {
            Err(KeychainError::Unavailable {
                detail: "the keychain was not opened".to_owned(),
            })
        });
        let backend = Backend::new(
            self.runtime.clone(),
            client,
            keychain,
            profile,
            self.events_tx.clone(),
            self.ctx.clone(),
        );
        backend.send(Command::LoadEventTypes);
        backend.send(Command::LoadIdentity);
        backend.send(Command::LoadEncryptionKey);
        Connection::Ready {
            target,
            backend,
            note,
            cleartext,
        }
    }

    fn poll_connection(&mut self) {
        let Connection::Connecting { started, target } = &self.connection else {
            return;
        };
        let Ok(result) = started.try_recv() else {
            return;
        };
        let target = target.clone();
        self.connection = match result {
            Ok(connected) => self.ready(target, connected),
            Err(error) => Connection::Failed { target, error },
        };
    }

    /// Applies what the profile manager asked for.
    fn apply_profile_action(&mut self, action: ProfileAction) {
        match action {
            ProfileAction::Save {
                profile,
                admin_key,
                renamed_from,
            } => {
                let name = profile.name.clone();
                let replaced = renamed_from.as_deref().unwrap_or(&name);
                match self.state.profiles.iter_mut().find(|p| p.name == replaced) {
                    Some(existing) => existing.clone_from(&profile),
                    None => self.state.profiles.push(profile.clone()),
                }
                self.reset_views();
                self.state.active_profile = Some(name.clone());
                let keychain = Arc::clone(&self.keychain);
                self.start_connecting(Target::Remote(name.clone()), async move {
                    let keychain = open_keychain(keychain).await;
                    let saved = match (admin_key, renamed_from) {
                        (Some(key), renamed_from) => {
                            match connection::save_admin_key(keychain.clone(), name, key).await {
                                Ok(()) => match renamed_from {
                                    Some(old) => {
                                        connection::forget_admin_key(keychain.clone(), old).await
                                    }
                                    None => Ok(()),
                                },
                                Err(err) => Err(err),
                            }
                        }
                        (None, Some(old)) => {
                            connection::move_admin_key(keychain.clone(), old, name).await
                        }
                        (None, None) => Ok(()),
                    };
                    saved.map_err(|err| {
                        format!("The admin key could not be saved to the OS keychain: {err}")
                    })?;
                    connection::remote(keychain, profile).await
                });
            }
            ProfileAction::Remove(name) => {
                self.state.profiles.retain(|p| p.name != name);
                let keychain = Arc::clone(&self.keychain);
                let forgotten = name.clone();
                self.runtime.spawn(async move {
                    let keychain = open_keychain(keychain).await;
                    if let Err(err) = connection::forget_admin_key(keychain, forgotten).await {
                        tracing::warn!("forgetting a profile's admin key failed: {err}");
                    }
                });
                if self.connection.target() == &Target::Remote(name) {
                    self.connect(Target::Local);
                }
            }
        }
    }

    fn handle(&mut self, event: Event, commands: &mut Commands) {
        if let Some(key) = event.request_key() {
            self.requests.answered(key, Instant::now());
        }
        match event {
            Event::Webhooks(result) => {
                match result {
                    Ok(webhooks) => {
                        commands.send(Command::CheckKeychain {
                            ids: webhooks.iter().map(|w| w.id.clone()).collect(),
                        });
                        self.failures.observe(&webhooks);
                        self.remote.webhooks = Some(webhooks);
                        self.remote.webhooks_error = None;
                    }
                    // The previous list stays on screen.
                    Err(err) => self.remote.webhooks_error = Some(err.to_string()),
                }
            }
            Event::Notified(result) => {
                if let Err(err) = result
                    && self.notifications_unavailable.is_none()
                {
                    // Said once, not every minute: a desktop without a notification
                    // service is how this machine is, not an error of the moment.
                    self.say(
                        "Desktop notifications are unavailable here: none is shown this session",
                        false,
                    );
                    self.notifications_unavailable = Some(err);
                }
            }
            Event::Identity(result) => match result {
                Ok(caller) => self.remote.caller = Some(caller),
                // A service older than `whoami`: every action is offered, as before.
                Err(err) => tracing::warn!("which key this is could not be read: {err}"),
            },
            Event::KeyRolled => self.say(
                "Rolled the encryption key: the local service re-seals every secret with the new one",
                false,
            ),
            Event::Keys(result) => self.keys.loaded(result),
            Event::KeyCreateFailed(error) => self.keys.create_failed(error),
            Event::KeyRevoked { name, .. } => {
                self.say(format!("Revoked the key {name}"), false);
                commands.send(Command::LoadKeys);
            }
            Event::AdminKeyKept { profile, result } => {
                if let Some(modal) = &mut self.secret {
                    modal.admin_key_kept(&profile, result);
                }
            }
            Event::Audit { page, result } => self.activity.loaded(page, result),
            Event::EncryptionKey(result) => match result {
                Ok(status) => self.remote.encryption_key = Some(status),
                Err(err) => tracing::warn!("which key seals the secrets could not be read: {err}"),
            },
            Event::EventTypes(result) => match result {
                Ok(types) => self.remote.event_types = types,
                Err(err) => self.say(format!("Loading the event types failed: {err}"), true),
            },
            Event::SecretIssued(issued) => {
                if let SecretReason::AdminKey { .. } = issued.reason {
                    self.keys.created();
                    self.say(format!("Created the key {}", issued.owner_name), false);
                    commands.send(Command::LoadKeys);
                } else {
                    self.webhooks.form_succeeded(&issued.owner_id);
                    self.say(format!("Secret issued for {}", issued.owner_name), false);
                    commands.send(Command::RefreshWebhooks);
                }
                let profiles = self.state.profiles.iter().map(|p| p.name.clone()).collect();
                self.secret = Some(SecretModal::new(issued, profiles));
            }
            Event::CreateFailed(error) => self.webhooks.form_failed(error),
            Event::Updated(webhook) => {
                self.say(format!("Saved {}", webhook.name), false);
                self.webhooks.form_succeeded(&webhook.id);
                if let Some(list) = &mut self.remote.webhooks
                    && let Some(slot) = list.iter_mut().find(|w| w.id == webhook.id)
                {
                    *slot = webhook;
                }
            }
            Event::UpdateFailed { id, error } => {
                if !self.webhooks.form_failed_for(&id, error.clone()) {
                    self.say(format!("Saving failed: {error}"), true);
                }
            }
            Event::Deleted { id, name } => {
                self.say(format!("Deleted {name}"), false);
                if let Some(list) = &mut self.remote.webhooks {
                    list.retain(|w| w.id != id);
                }
                self.webhooks.forget(&id);
            }
            Event::GraceEnded(webhook) => {
                self.say(
                    format!("Previous secrets of {} no longer sign", webhook.name),
                    false,
                );
                if let Some(list) = &mut self.remote.webhooks
                    && let Some(slot) = list.iter_mut().find(|w| w.id == webhook.id)
                {
                    *slot = webhook;
                }
            }
            Event::TestQueued { delivery_id, .. } => {
                self.say(format!("Test event queued ({delivery_id})"), false);
            }
            Event::KeychainHolds(result) => match result {
                Ok(holds) => {
                    self.remote.keychain_holds = holds;
                    self.remote.keychain_error = None;
                }
                Err(err) => self.remote.keychain_error = Some(err.to_string()),
            },
            Event::Deliveries { list, page, result } => {
                let view = match list {
                    ListTag::All => &mut self.deliveries,
                    ListTag::Failed => &mut self.failed,
                };
                if let Err(err) = view.loaded(page, result, &self.remote) {
                    self.say(format!("Loading deliveries failed: {err}"), true);
                }
            }
            Event::Stats { query, result } => self.deliveries.stats_loaded(&query, result),
            Event::Recovered { name, result } => match result {
                Ok(recovered) => {
                    self.say(
                        format!(
                            "Queued {} failed deliveries of {name} again",
                            recovered.queued
                        ),
                        false,
                    );
                    self.failed.recovered(commands);
                }
                Err(err) => {
                    self.failed.recover_failed(err.to_string());
                    self.say(format!("Recovering {name} failed: {err}"), true);
                }
            },
            Event::ExportPathPicked { list, path } => {
                if path.is_none() {
                    self.say(
                        "No file chosen. If no dialog appeared, type the path into the field.",
                        false,
                    );
                }
                self.list_mut(list).export_path_picked(path);
            }
            Event::Exported { list, path, result } => {
                match &result {
                    Ok(count) => self.say(
                        format!("Exported {count} deliveries to {}", path.display()),
                        false,
                    ),
                    Err(err) => self.say(format!("Export failed: {err}"), true),
                }
                self.list_mut(list).exported(&result);
            }
            Event::Delivery { list, result } => {
                if let Err(err) = self.list_mut(list).inspected(result) {
                    self.say(format!("Loading the delivery failed: {err}"), true);
                }
            }
            Event::Resent { id, result } => match result {
                Ok(delivery) => {
                    self.say(format!("Resending {id}"), false);
                    self.deliveries.resent(&delivery, commands);
                    self.failed.resent(&delivery, commands);
                }
                Err(err) => {
                    self.deliveries.resend_failed(&id);
                    self.failed.resend_failed(&id);
                    self.say(format!("Resend of {id} failed: {err}"), true);
                }
            },
            Event::ResentMany {
                list,
                dry_run,
                result,
            } => {
                match (&result, dry_run) {
                    (Ok(resent), false) => {
                        let queued = widgets::deliveries(resent.queued);
                        self.say(format!("Queued {queued} again"), false);
                    }
                    (Err(err), _) => self.say(format!("Bulk resend failed: {err}"), true),
                    (Ok(_), true) => {}
                }
                self.list_mut(list).resent_many(dry_run, result, commands);
            }
            Event::TestEndpointCreated { inbox } => {
                self.say(
                    format!("Created test endpoint {inbox} and sent it a test event"),
                    false,
                );
                self.inbox.open(inbox.clone());
                commands.send(Command::LoadInbox { name: inbox });
                commands.send(Command::RefreshWebhooks);
                self.state.view = View::Inbox;
            }
            Event::Inbox { name, result } => self.inbox.handle(&name, result),
            Event::Failed { what, error } => self.say(format!("{what} failed: {error}"), true),
            Event::Unchanged(_) => {}
        }
    }

    /// Asks for fresh data every [`REFRESH_EVERY`] (less often while the service is slow),
    /// skipping each request whose previous answer has not come back yet.
    fn refresh_if_due(&mut self, commands: &mut Commands) {
        if self.backend().is_none() {
            return;
        }
        if self
            .last_refresh
            .is_some_and(|at| at.elapsed() < self.requests.refresh_every())
        {
            return;
        }
        self.last_refresh = Some(Instant::now());
        let mut due = Commands::default();
        due.send(Command::RefreshWebhooks);
        match self.state.view {
            View::Webhooks => {}
            View::Deliveries => self.deliveries.refresh(&mut due),
            View::Failed => self.failed.refresh(&mut due),
            View::Inbox => self.inbox.refresh(&mut due),
            View::Keys => due.send(Command::LoadKeys),
            View::Activity => self.activity.refresh(&mut due),
        }
        if self
            .remote
            .encryption_key
            .as_ref()
            .is_some_and(|status| status.secrets_left_to_reseal > 0)
        {
            due.send(Command::LoadEncryptionKey);
        }
        for command in due {
            if command
                .request_key()
                .is_none_or(|key| !self.requests.is_waiting(key))
            {
                commands.send(command);
            }
        }
    }

    /// Tells of deliveries newly failed for good, at most once a minute, unless the
    /// settings turned that off.
    fn notify_failures(&mut self, commands: &mut Commands) {
        match self.state.notifications {
            Notifications::On if self.notifications_unavailable.is_none() => {
                if let Some(note) = self.failures.due(Instant::now()) {
                    commands.send(Command::Notify(note));
                }
            }
            Notifications::On | Notifications::Off => self.failures.drop_pending(),
        }
    }

    fn settings_ui(&mut self, ui: &mut egui::Ui) {
        ui.menu_button("Settings", |ui| {
            let mut on = self.state.notifications == Notifications::On;
            let hover = match &self.notifications_unavailable {
                None => "A desktop notification when deliveries fail for good while the \
                         panel runs: at most one a minute, naming how many and for which \
                         webhooks"
                    .to_owned(),
                Some(err) => format!("The platform refused the last notification: {err}"),
            };
            if ui
                .checkbox(&mut on, "Notify me when deliveries fail")
                .on_hover_text(hover)
                .changed()
            {
                self.notifications_unavailable = None;
                self.state.notifications = if on {
                    Notifications::On
                } else {
                    Notifications::Off
                };
            }
            ui.horizontal(|ui| {
                let label = ui.label("Mark secrets older than");
                ui.add(
                    egui::DragValue::new(&mut self.state.secret_warning_days.0)
                        .range(1..=3650)
                        .suffix(" days"),
                )
                .labelled_by(label.id)
                .on_hover_text(
                    "In the webhooks list and a webhook's detail, in amber: time to rotate",
                );
            });
        });
    }

    fn top_bar_ui(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            ui.heading(egui::RichText::new("Hookpanel").strong());
            ui.separator();
            let local = self.connection.target() == &Target::Local;
            for view in View::ALL {
                if view == View::Inbox && !local {
                    continue;
                }
                let failed_count = (view == View::Failed)
                    .then(|| self.failed.count_text())
                    .flatten();
                let title = match failed_count {
                    Some(count) => format!("{} ({count})", view.title()),
                    None => view.title().to_owned(),
                };
                if ui
                    .selectable_label(self.state.view == view, title)
                    .clicked()
                {
                    self.state.view = view;
                    self.last_refresh = None;
                }
            }
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                if ui
                    .button("Profiles…")
                    .on_hover_text("Add, edit or remove remote services")
                    .clicked()
                {
                    self.profiles.open();
                }
                self.settings_ui(ui);
                if self.backend().is_some() {
                    let cannot_roll = self.cannot_roll();
                    if self.roll.ui(ui, &self.remote, cannot_roll.as_deref()) {
                        self.roll_local_encryption_key();
                    }
                }
                let current = self.connection.target().clone();
                let mut chosen = None;
                egui::ComboBox::from_id_salt("connection_target")
                    .selected_text(current.label())
                    .show_ui(ui, |ui| {
                        let targets = std::iter::once(Target::Local).chain(
                            self.state
                                .profiles
                                .iter()
                                .map(|p| Target::Remote(p.name.clone())),
                        );
                        for target in targets {
                            if ui
                                .selectable_label(target == current, target.label())
                                .clicked()
                            {
                                chosen = Some(target);
                            }
                        }
                    });
                match &self.connection {
                    Connection::Connecting { .. } => {
                        ui.spinner();
                        ui.label("Connecting…");
                    }
                    Connection::Ready { backend, .. } => {
                        widgets::status_dot(ui, theme::SUCCESS);
                        ui.label(backend.base_url()).on_hover_text("Connected");
                    }
                    Connection::Failed { .. } => {
                        widgets::status_dot(ui, theme::FAILURE);
                        ui.label("Not connected");
                    }
                }
                if let Some(target) = chosen
                    && target != current
                {
                    self.connect(target);
                }
            });
        });
    }

    fn status_bar_ui(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            if let Some(slow) = self.requests.slowness(Instant::now()) {
                ui.label(
                    egui::RichText::new(format!("⏳ service slow: {:.1} s", slow.as_secs_f64()))
                        .color(theme::WARNING),
                )
                .on_hover_text(format!(
                    "Answers take long: views refresh every {} s, one request at a time",
                    self.requests.refresh_every().as_secs()
                ));
            }
            if let Connection::Ready {
                note, cleartext, ..
            } = &self.connection
            {
                if let Some(warning) = cleartext {
                    ui.label(egui::RichText::new(warning).color(theme::FAILURE).strong());
                }
                ui.label(egui::RichText::new(note).small().weak());
            }
            if let Some(notice) = &self.notice {
                if notice.at.elapsed() > Duration::from_secs(8) && !notice.is_error {
                    self.notice = None;
                } else {
                    ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                        let color = if notice.is_error {
                            theme::FAILURE
                        } else {
                            ui.visuals().text_color()
                        };
                        ui.label(egui::RichText::new(&notice.text).color(color));
                    });
                }
            }
        });
    }

    /// One whole frame, logic then drawing, for a test harness without an eframe window.
    pub fn frame_ui(&mut self, ui: &mut egui::Ui) {
        self.tick();
        self.draw(ui);
    }

    /// The non-UI work of a frame: take in background results and start due refreshes.
    fn tick(&mut self) {
        self.poll_connection();
        let mut commands = Commands::default();
        while let Ok(event) = self.events.try_recv() {
            self.handle(event, &mut commands);
        }
        self.refresh_if_due(&mut commands);
        self.notify_failures(&mut commands);
        self.run(commands);
        // Keep live views live even when nothing else asks for a frame.
        self.ctx.request_repaint_after(REFRESH_EVERY);
    }

    fn draw(&mut self, ui: &mut egui::Ui) {
        let mut commands = Commands::default();
        egui::Panel::top("top_bar").show(ui, |ui| {
            ui.add_space(4.0);
            self.top_bar_ui(ui);
            ui.add_space(4.0);
        });
        egui::Panel::bottom("status_bar").show(ui, |ui| self.status_bar_ui(ui));
        match &self.connection {
            Connection::Failed { target, error } => {
                let headline = format!("Cannot connect to {}", target.label());
                let error = error.clone();
                egui::CentralPanel::default().show(ui, |ui| {
                    widgets::problem_ui(ui, &headline, &error);
                });
            }
            Connection::Connecting { .. } => {
                egui::CentralPanel::default().show(ui, |ui| {
                    ui.centered_and_justified(|ui| ui.spinner());
                });
            }
            Connection::Ready { backend, .. } => {
                let base_url = backend.base_url().to_owned();
                match self.state.view {
                    View::Webhooks => {
                        let inbox_base = (self.connection.target() == &Target::Local)
                            .then_some(base_url.as_str());
                        self.webhooks.ui(
                            ui,
                            &self.remote,
                            inbox_base,
                            self.state.secret_warning_days.0,
                            &mut commands,
                        );
                    }
                    View::Deliveries => self.deliveries.ui(ui, &self.remote, &mut commands),
                    View::Failed => self.failed.ui(ui, &self.remote, &mut commands),
                    View::Inbox => self.inbox.ui(ui, &self.remote, &base_url, &mut commands),
                    View::Keys => {
                        egui::CentralPanel::default()
                            .show(ui, |ui| self.keys.ui(ui, &self.remote, &mut commands));
                    }
                    View::Activity => {
                        let link = egui::CentralPanel::default()
                            .show(ui, |ui| self.activity.ui(ui, &self.remote, &mut commands))
                            .inner;
                        if let Some(link) = link {
                            self.follow(link, &mut commands);
                        }
                    }
                }
            }
        }
        if let Some(action) = self.profiles.ui(ui.ctx(), &self.state.profiles) {
            self.apply_profile_action(action);
        }
        if let Some(modal) = &mut self.secret
            && !modal.ui(ui.ctx(), &mut commands)
        {
            // Dropping the modal zeroizes the secret; it cannot be shown again.
            self.secret = None;
        }
        self.run(commands);
    }

    /// Opens what an audit entry's target link leads to.
    fn follow(&mut self, link: Link, commands: &mut Commands) {
        match link {
            Link::Webhook(id) => {
                self.webhooks.select(&id);
                self.state.view = View::Webhooks;
            }
            Link::Delivery(id) => {
                self.deliveries.find(&id, commands);
                self.state.view = View::Deliveries;
            }
            Link::Keys => self.state.view = View::Keys,
        }
        self.last_refresh = None;
    }

    /// Why "Roll encryption key…" is not offered, when it is not: only the embedded
    /// service, with its key in the keychain, rolls its key from here.
    fn cannot_roll(&self) -> Option<String> {
        match (&self.connection.target(), &self.embedded) {
            (Target::Remote(_), _) => Some(
                "A remote service rolls its key when started with the new key and \
                 HOOKPANEL_PREVIOUS_ENCRYPTION_KEY set to the old one"
                    .to_owned(),
            ),
            (Target::Local, Some((embedded, _))) => match &embedded.persistence {
                Persistence::Kept { .. } => None,
                Persistence::SessionOnly { .. } => {
                    Some("This session's key lives in memory only, without a keychain".to_owned())
                }
            },
            (Target::Local, None) => Some("The local service is not running".to_owned()),
        }
    }

    /// Restarts the embedded service with a new encryption key, the old one kept as the
    /// previous key until every secret is re-sealed (see `embedded.rs`).
    fn roll_local_encryption_key(&mut self) {
        let Some((embedded, _)) = self.embedded.take() else {
            return;
        };
        self.reset_views();
        let keychain = Arc::clone(&self.keychain);
        let data_dir = self.data_dir.clone();
        let events = self.events_tx.clone();
        self.start_connecting(Target::Local, async move {
            if let Err(err) = embedded.service.shutdown().await {
                tracing::warn!("the embedded service did not stop cleanly: {err}");
            }
            let keychain = open_keychain(keychain).await;
            let rolled = match &keychain {
                Ok(opened) => {
                    let opened = opened.clone();
                    tokio::task::spawn_blocking(move || opened.roll_local_encryption_key())
                        .await
                        .unwrap_or_else(|err| {
                            Err(KeychainError::Failed {
                                detail: err.to_string(),
                            })
                        })
                }
                Err(err) => Err(err.clone()),
            };
            let _ = events.send(match rolled {
                Ok(()) => Event::KeyRolled,
                // The service starts again with the key it had.
                Err(err) => Event::Failed {
                    what: "Rolling the encryption key".to_owned(),
                    error: err.to_string(),
                },
            });
            connection::local(keychain, data_dir).await
        });
    }

    /// Stops the embedded service: finishes requests and attempts under way, closes the
    /// database.
    pub fn shutdown(&mut self) {
        if let Some((embedded, _)) = self.embedded.take()
            && let Err(err) = self.runtime.block_on(embedded.service.shutdown())
        {
            tracing::warn!("the embedded service did not stop cleanly: {err}");
        }
    }
}

impl eframe::App for App {
    fn logic(&mut self, _ctx: &egui::Context, _frame: &mut eframe::Frame) {
        self.tick();
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.draw(ui);
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, eframe::APP_KEY, &self.state);
    }

    fn on_exit(&mut self, _gl: Option<&eframe::glow::Context>) {
        self.shutdown();
    }
}

/// The keychain, opening it on a blocking thread the first time.
async fn open_keychain(keychain: SharedKeychain) -> Result<Keychain, KeychainError> {
    tokio::task::spawn_blocking(move || keychain.get_or_init(Keychain::platform).clone())
        .await
        .unwrap_or_else(|err| {
            Err(KeychainError::Failed {
                detail: err.to_string(),
            })
        })
}
