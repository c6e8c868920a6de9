//! The webhooks view: the list with health, a detail panel with actions, the create/edit
//! form and the confirmations. Draws and emits commands; owns only UI state.
//!
//! This module holds the state and lays the view out; drawing lives in the submodules:
//! [`table`] (the list), [`detail`] (the selected webhook), [`form`] (create and edit),
//! [`confirm`] (delete and rotate).

mod confirm;
mod detail;
mod form;
mod table;

use egui::{RichText, Ui};

use self::form::WebhookForm;
use super::backend::Command;
use super::commands::Commands;
use super::remote::Remote;
use super::{theme, widgets};
use crate::api::Webhook;
use crate::client::ClientError;

#[derive(Default)]
pub struct WebhooksView {
    search: String,
    selected: Option<String>,
    form: Option<WebhookForm>,
    confirm: Option<Confirm>,
    sort: Sort,
    /// Secrets older than this are marked as old; set by the settings each frame.
    secret_warning: SecretWarning,
}

/// The order of the list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Sort {
    /// Oldest webhook first, as the service lists them.
    #[default]
    Created,
    /// Oldest signing secret first: the next to rotate at the top.
    SecretAge,
    /// Failing, then degraded, healthy and inactive; within each, the most unfinished first.
    FailingFirst,
}

/// The age past which a signing secret is old.
#[derive(Clone, Copy, Debug)]
struct SecretWarning(chrono::TimeDelta);

impl Default for SecretWarning {
    fn default() -> Self {
        Self(chrono::TimeDelta::days(90))
    }
}

impl SecretWarning {
    /// Whether `webhook`'s secret is old at `now`.
    fn is_old(self, webhook: &Webhook, now: chrono::DateTime<chrono::Utc>) -> bool {
        now - webhook.secret_created_at > self.0
    }
}

enum Confirm {
    Delete {
        id: String,
        name: String,
    },
    Rotate {
        id: String,
        name: String,
        grace_hours: u64,
    },
    EndGrace {
        id: String,
        name: String,
        previous: usize,
    },
}

impl Sort {
    fn title(self) -> &'static str {
        match self {
            Self::Created => "Oldest webhook first",
            Self::SecretAge => "Oldest secret first",
            Self::FailingFirst => "Failing first",
        }
    }
}

impl WebhooksView {
    /// Opens `id`'s detail, as a link from elsewhere asks.
    pub fn select(&mut self, id: &str) {
        self.selected = Some(id.to_owned());
        self.search.clear();
    }

    pub fn form_succeeded(&mut self, id: &str) {
        if self.form.as_ref().is_some_and(|form| {
            form.submitting && form.editing.as_deref().is_none_or(|editing| editing == id)
        }) {
            self.form = None;
        }
        self.selected = Some(id.to_owned());
    }

    pub fn form_failed(&mut self, error: ClientError) {
        if let Some(form) = &mut self.form {
            form.submitting = false;
            form.error = Some(error);
        }
    }

    /// Shows `error` in the edit form of `id`; false when no such form is open.
    pub fn form_failed_for(&mut self, id: &str, error: ClientError) -> bool {
        match &mut self.form {
            Some(form) if form.editing.as_deref() == Some(id) => {
                form.submitting = false;
                form.error = Some(error);
                true
            }
            _ => false,
        }
    }

    pub fn forget(&mut self, id: &str) {
        if self.selected.as_deref() == Some(id) {
            self.selected = None;
        }
    }

    /// `inbox_base` is the embedded service's URL, which hosts test inboxes; `None` for a
    /// remote service. Secrets older than `secret_warning_days` are marked.
    pub fn ui(
        &mut self,
        ui: &mut Ui,
        remote: &Remote,
        inbox_base: Option<&str>,
        secret_warning_days: u32,
        commands: &mut Commands,
    ) {
        self.secret_warning =
            SecretWarning(chrono::TimeDelta::days(i64::from(secret_warning_days)));
        let webhooks: &[Webhook] = remote.webhooks.as_deref().unwrap_or_default();
        let selected = self
            .selected
            .as_ref()
            .and_then(|id| webhooks.iter().find(|w| &w.id == id));
        if let Some(webhook) = selected {
            egui::Panel::right("webhook_detail")
                .resizable(true)
                .default_size(360.0)
                .show(ui, |ui| self.detail_ui(ui, webhook, remote, commands));
        }
        egui::CentralPanel::default().show(ui, |ui| {
            ui.horizontal(|ui| {
                let label = ui.label("Search");
                ui.add(egui::TextEdit::singleline(&mut self.search).hint_text("name, URL, event, owner").desired_width(260.0))
                    .labelled_by(label.id);
                let label = ui.label("Sort");
                egui::ComboBox::from_id_salt("webhook_sort")
                    .selected_text(self.sort.title())
                    .show_ui(ui, |ui| {
                        for sort in [Sort::Created, Sort::FailingFirst, Sort::SecretAge] {
                            ui.selectable_value(&mut self.sort, sort, sort.title());
                        }
                    })
                    .response
                    .labelled_by(label.id);
                let refused = remote.cannot_change();
                let refused = refused.as_deref();
                ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                    if widgets::action_button(ui, refused, RichText::new("+ New webhook").strong()).clicked() {
                        self.form = Some(WebhookForm::create());
                    }
                    if let Some(base_url) = inbox_base
                        && widgets::action_button(ui, refused, "Create a test endpoint")
                            .on_hover_text("Register a webhook that points at a test inbox of the local service, and send it a test event")
                            .clicked()
                    {
                        commands.send(Command::CreateTestEndpoint { base_url: base_url.to_owned() });
                    }
                });
            });
            if let Some(error) = &remote.webhooks_error {
                ui.label(RichText::new(format!("Refreshing failed: {error}")).color(theme::FAILURE));
            }
            ui.add_space(4.0);
            match &remote.webhooks {
                None => {
                    ui.spinner();
                }
                Some(list) if list.is_empty() => {
                    ui.add_space(24.0);
                    ui.vertical_centered(|ui| {
                        ui.label(RichText::new("No webhooks yet").heading());
                        ui.label("Register a receiver with “New webhook”, or try one out with “Create a test endpoint”.");
                    });
                }
                Some(list) => self.table_ui(ui, list),
            }
        });
        self.form_ui(ui.ctx(), remote, commands);
        self.confirm_ui(ui.ctx(), commands);
    }

    /// The webhooks the list shows, in its order.
    fn shown<'a>(&self, webhooks: &'a [Webhook]) -> Vec<&'a Webhook> {
        let mut shown: Vec<&Webhook> = webhooks.iter().filter(|w| self.matches(w)).collect();
        match self.sort {
            Sort::Created => {}
            Sort::SecretAge => shown.sort_by_key(|webhook| webhook.secret_created_at),
            Sort::FailingFirst => shown.sort_by_key(|webhook| {
                (
                    table::severity(webhook.health),
                    std::cmp::Reverse(webhook.pending),
                )
            }),
        }
        shown
    }

    fn matches(&self, webhook: &Webhook) -> bool {
        let needle = self.search.trim().to_lowercase();
        needle.is_empty()
            || webhook.name.to_lowercase().contains(&needle)
            || webhook.url.to_lowercase().contains(&needle)
            || webhook
                .owner
                .as_deref()
                .is_some_and(|o| o.to_lowercase().contains(&needle))
            || webhook
                .events
                .iter()
                .any(|e| e.to_lowercase().contains(&needle))
    }
}
