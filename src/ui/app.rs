//! The panel's `eframe::App`: state, the event loop between UI and background work, and the
//! frame around the views.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::backend::{Backend, Command, Event, ListTag};
use super::deliveries::DeliveriesView;
use super::inbox::InboxView;
use super::secret::SecretModal;
use super::webhooks::WebhooksView;
use super::{theme, widgets};
use crate::api::{EventType, Webhook};
use crate::client::Client;
use crate::embedded::{self, Embedded, Persistence};
use crate::keychain::{Keychain, KeychainError, LOCAL_PROFILE};

/// How often open views refresh by themselves.
pub const REFRESH_EVERY: Duration = Duration::from_secs(3);

/// What the panel remembers between runs. Never a secret.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PersistedState {
    pub view: View,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum View {
    #[default]
    Webhooks,
    Deliveries,
    Failed,
    Inbox,
}

impl View {
    pub const ALL: [Self; 4] = [Self::Webhooks, Self::Deliveries, Self::Failed, Self::Inbox];

    pub fn title(self) -> &'static str {
        match self {
            Self::Webhooks => "Webhooks",
            Self::Deliveries => "Deliveries",
            Self::Failed => "Failed deliveries",
            Self::Inbox => "Test inbox",
        }
    }
}

/// How the panel reaches its service.
pub struct Startup {
    /// Where the embedded service keeps its database.
    pub data_dir: PathBuf,
    /// The OS keychain, or why there is none. Opening it may block: it is opened on a
    /// blocking thread when `None`.
    pub keychain: Option<Result<Keychain, KeychainError>>,
}

/// The embedded service once started, with the keychain it found (or why there was none).
type Started = Result<(Embedded, Result<Keychain, KeychainError>), String>;

enum Connection {
    Starting(mpsc::Receiver<Started>),
    Ready {
        backend: Backend,
        /// Keeps the embedded service running.
        embedded: Box<Embedded>,
        keychain_note: String,
    },
    Failed(String),
}

/// A message in the status bar, with when it was said.
struct Notice {
    text: String,
    is_error: bool,
    at: Instant,
}

/// Data fetched from the service, shared by the views.
#[derive(Default)]
pub struct Remote {
    pub webhooks: Option<Vec<Webhook>>,
    pub webhooks_error: Option<String>,
    pub event_types: Vec<EventType>,
    /// Webhook id → whether this machine's keychain holds its secret.
    pub keychain_holds: HashMap<String, bool>,
    pub keychain_error: Option<String>,
}

impl Remote {
    pub fn webhook_name(&self, id: &str) -> Option<&str> {
        self.webhooks
            .as_ref()?
            .iter()
            .find(|w| w.id == id)
            .map(|w| w.name.as_str())
    }
}

/// Commands the views collected while drawing, run after the frame.
#[derive(Default)]
pub struct Commands(Vec<Command>);

impl Commands {
    pub fn send(&mut self, command: Command) {
        self.0.push(command);
    }
}

pub struct App {
    state: PersistedState,
    connection: Connection,
    events: mpsc::Receiver<Event>,
    events_tx: mpsc::Sender<Event>,
    runtime: tokio::runtime::Handle,
    ctx: egui::Context,
    remote: Remote,
    webhooks: WebhooksView,
    deliveries: DeliveriesView,
    failed: DeliveriesView,
    inbox: InboxView,
    secret: Option<SecretModal>,
    notice: Option<Notice>,
    last_refresh: Option<Instant>,
    refreshing: bool,
}

impl App {
    pub fn new(
        ctx: &egui::Context,
        runtime: tokio::runtime::Handle,
        storage: Option<&dyn eframe::Storage>,
        startup: Startup,
    ) -> Self {
        theme::apply(ctx);
        let state = storage
            .and_then(|storage| eframe::get_value(storage, eframe::APP_KEY))
            .unwrap_or_default();
        let (events_tx, events) = mpsc::channel();
        let (started_tx, started) = mpsc::channel();
        let repaint = ctx.clone();
        runtime.spawn(async move {
            let keychain = match startup.keychain {
                Some(keychain) => keychain,
                None => tokio::task::spawn_blocking(Keychain::platform)
                    .await
                    .unwrap_or_else(|err| {
                        Err(KeychainError::Failed {
                            detail: err.to_string(),
                        })
                    }),
            };
            let result = embedded::start(keychain.clone(), &startup.data_dir)
                .await
                .map(|embedded| (embedded, keychain))
                .map_err(|err| format!("{err:#}"));
            let _ = started_tx.send(result);
            repaint.request_repaint();
        });
        Self {
            state,
            connection: Connection::Starting(started),
            events,
            events_tx,
            runtime,
            ctx: ctx.clone(),
            remote: Remote::default(),
            webhooks: WebhooksView::default(),
            deliveries: DeliveriesView::all(),
            failed: DeliveriesView::failed_only(),
            inbox: InboxView::default(),
            secret: None,
            notice: None,
            last_refresh: None,
            refreshing: false,
        }
    }

    fn backend(&self) -> Option<&Backend> {
        match &self.connection {
            Connection::Ready { backend, .. } => Some(backend),
            Connection::Starting(_) | Connection::Failed(_) => None,
        }
    }

    /// Whether the panel is connected and has loaded its webhooks (for tests).
    pub fn is_ready(&self) -> bool {
        self.backend().is_some() && self.remote.webhooks.is_some()
    }

    /// The running embedded service's base URL (for tests).
    pub fn base_url(&self) -> Option<&str> {
        self.backend().map(Backend::base_url)
    }

    pub fn remote(&self) -> &Remote {
        &self.remote
    }

    pub fn show_view(&mut self, view: View) {
        self.state.view = view;
    }

    fn list_mut(&mut self, list: ListTag) -> &mut DeliveriesView {
        match list {
            ListTag::All => &mut self.deliveries,
            ListTag::Failed => &mut self.failed,
        }
    }

    fn say(&mut self, text: impl Into<String>, is_error: bool) {
        self.notice = Some(Notice {
            text: text.into(),
            is_error,
            at: Instant::now(),
        });
    }

    fn run(&mut self, commands: Commands) {
        let Some(backend) = self.backend() else {
            return;
        };
        for command in commands.0 {
            backend.send(command);
        }
    }

    fn poll_connection(&mut self) {
        let Connection::Starting(started) = &self.connection else {
            return;
        };
        let Ok(result) = started.try_recv() else {
            return;
        };
        self.connection = match result {
            Ok((embedded, keychain)) => {
                let keychain_note = match (&embedded.persistence, &keychain) {
                    (Persistence::Kept { database }, Ok(keychain)) => {
                        format!(
                            "keys in {} · data in {}",
                            keychain.description(),
                            database.display()
                        )
                    }
                    (Persistence::SessionOnly { reason, .. }, _) => format!(
                        "No OS keychain ({reason}) — this session's data is kept in memory only and is gone when you quit"
                    ),
                    (Persistence::Kept { .. }, Err(err)) => err.to_string(),
                };
                match Client::new(&embedded.service.base_url(), embedded.admin_key.clone()) {
                    Ok(client) => {
                        let backend = Backend::new(
                            self.runtime.clone(),
                            client,
                            keychain,
                            LOCAL_PROFILE.to_owned(),
                            self.events_tx.clone(),
                            self.ctx.clone(),
                        );
                        backend.send(Command::LoadEventTypes);
                        Connection::Ready {
                            backend,
                            embedded: Box::new(embedded),
                            keychain_note,
                        }
                    }
                    Err(err) => Connection::Failed(err.to_string()),
                }
            }
            Err(err) => Connection::Failed(err),
        };
    }

    fn handle(&mut self, event: Event, commands: &mut Commands) {
        match event {
            Event::Webhooks(result) => {
                self.refreshing = false;
                match result {
                    Ok(webhooks) => {
                        commands.send(Command::CheckKeychain {
                            ids: webhooks.iter().map(|w| w.id.clone()).collect(),
                        });
                        self.remote.webhooks = Some(webhooks);
                        self.remote.webhooks_error = None;
                    }
                    // The previous list stays on screen.
                    Err(err) => self.remote.webhooks_error = Some(err.to_string()),
                }
            }
            Event::EventTypes(result) => match result {
                Ok(types) => self.remote.event_types = types,
                Err(err) => self.say(format!("Loading the event types failed: {err}"), true),
            },
            Event::SecretIssued(issued) => {
                self.webhooks.form_succeeded(&issued.webhook_id);
                self.say(format!("Secret issued for {}", issued.webhook_name), false);
                self.secret = Some(SecretModal::new(issued));
                commands.send(Command::RefreshWebhooks);
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
            Event::Deliveries { list, result } => {
                if let Err(err) = self.list_mut(list).loaded(result) {
                    self.say(format!("Loading deliveries failed: {err}"), true);
                }
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
        }
    }

    /// Asks for fresh data every [`REFRESH_EVERY`], one request at a time.
    fn refresh_if_due(&mut self, commands: &mut Commands) {
        if self.backend().is_none() || self.refreshing {
            return;
        }
        if self
            .last_refresh
            .is_some_and(|at| at.elapsed() < REFRESH_EVERY)
        {
            return;
        }
        self.last_refresh = Some(Instant::now());
        self.refreshing = true;
        commands.send(Command::RefreshWebhooks);
        match self.state.view {
            View::Webhooks => {}
            View::Deliveries => self.deliveries.refresh(commands),
            View::Failed => self.failed.refresh(commands),
            View::Inbox => self.inbox.refresh(commands),
        }
    }

    fn top_bar_ui(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            ui.heading(egui::RichText::new("Hookpanel").strong());
            ui.separator();
            for view in View::ALL {
                let failed_count = (view == View::Failed)
                    .then(|| self.failed.count())
                    .flatten();
                let title = match failed_count {
                    Some(count) if count > 0 => format!("{} ({count})", view.title()),
                    _ => view.title().to_owned(),
                };
                if ui
                    .selectable_label(self.state.view == view, title)
                    .clicked()
                {
                    self.state.view = view;
                    self.last_refresh = None;
                }
            }
            ui.with_layout(
                egui::Layout::right_to_left(egui::Align::Center),
                |ui| match &self.connection {
                    Connection::Starting(_) => {
                        ui.spinner();
                        ui.label("Starting the local service…");
                    }
                    Connection::Ready { backend, .. } => {
                        widgets::status_dot(ui, theme::SUCCESS);
                        ui.label(format!("Local · {}", backend.base_url()))
                            .on_hover_text("The embedded service this panel started");
                    }
                    Connection::Failed(_) => {
                        widgets::status_dot(ui, theme::FAILURE);
                        ui.label("Not connected");
                    }
                },
            );
        });
    }

    fn status_bar_ui(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            if let Connection::Ready { keychain_note, .. } = &self.connection {
                ui.label(egui::RichText::new(keychain_note).small().weak());
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

impl App {
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
            Connection::Failed(error) => {
                let error = error.clone();
                egui::CentralPanel::default().show(ui, |ui| {
                    widgets::problem_ui(ui, "The local service could not start", &error);
                });
            }
            Connection::Starting(_) => {
                egui::CentralPanel::default().show(ui, |ui| {
                    ui.centered_and_justified(|ui| ui.spinner());
                });
            }
            Connection::Ready { backend, .. } => {
                let base_url = backend.base_url().to_owned();
                match self.state.view {
                    View::Webhooks => self.webhooks.ui(ui, &self.remote, &base_url, &mut commands),
                    View::Deliveries => self.deliveries.ui(ui, &self.remote, &mut commands),
                    View::Failed => self.failed.ui(ui, &self.remote, &mut commands),
                    View::Inbox => self.inbox.ui(ui, &self.remote, &base_url, &mut commands),
                }
            }
        }
        if let Some(modal) = &mut self.secret
            && !modal.ui(ui.ctx())
        {
            // Dropping the modal zeroizes the secret; it cannot be shown again.
            self.secret = None;
        }
        self.run(commands);
    }

    /// Stops the embedded service: finishes requests and attempts under way, closes the
    /// database.
    pub fn shutdown(&mut self) {
        let connection = std::mem::replace(
            &mut self.connection,
            Connection::Failed("closed".to_owned()),
        );
        if let Connection::Ready { embedded, .. } = connection
            && let Err(err) = self.runtime.block_on(embedded.service.shutdown())
        {
            tracing::warn!("the embedded service did not stop cleanly: {err}");
        }
    }
}
