//! The webhooks view: the list with health, a detail panel with actions, the create/edit
//! form and the confirmations. Draws and emits commands; owns only UI state.

use std::collections::BTreeSet;

use egui::{RichText, Ui};
use egui_extras::{Column, TableBuilder};

use super::app::{Commands, Remote};
use super::backend::Command;
use super::{theme, widgets};
use crate::api::{Webhook, WebhookIn, WebhookKind, WebhookPatch};
use crate::client::ClientError;
use crate::server::{DEFAULT_GRACE_SECONDS, MAX_GRACE_SECONDS};

#[derive(Default)]
pub struct WebhooksView {
    search: String,
    selected: Option<String>,
    form: Option<WebhookForm>,
    confirm: Option<Confirm>,
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
}

/// The create/edit dialog's state.
struct WebhookForm {
    /// `Some(id)` when editing.
    editing: Option<String>,
    name: String,
    url: String,
    events: BTreeSet<String>,
    kind: WebhookKind,
    description: String,
    owner: String,
    event_search: String,
    submitting: bool,
    error: Option<ClientError>,
}

impl WebhookForm {
    fn create() -> Self {
        Self {
            editing: None,
            name: String::new(),
            url: String::new(),
            events: BTreeSet::new(),
            kind: WebhookKind::Generic,
            description: String::new(),
            owner: String::new(),
            event_search: String::new(),
            submitting: false,
            error: None,
        }
    }

    fn edit(webhook: &Webhook) -> Self {
        Self {
            editing: Some(webhook.id.clone()),
            name: webhook.name.clone(),
            url: webhook.url.clone(),
            events: webhook.events.iter().cloned().collect(),
            kind: webhook.kind,
            description: webhook.description.clone().unwrap_or_default(),
            owner: webhook.owner.clone().unwrap_or_default(),
            event_search: String::new(),
            submitting: false,
            error: None,
        }
    }

    /// The server's message for `field`, to show beside it.
    fn error_for(&self, field: &str) -> Option<String> {
        let error = self.error.as_ref()?;
        let named = error.field()?;
        (named == field || named.starts_with(&format!("{field}["))).then(|| error.to_string())
    }

    /// The error when it names no field shown in the form.
    fn general_error(&self) -> Option<String> {
        let error = self.error.as_ref()?;
        match error.field() {
            Some("name" | "url" | "events" | "kind" | "description" | "owner") => None,
            Some(field) if field.starts_with("events[") => None,
            _ => Some(error.to_string()),
        }
    }

    fn command(&self) -> Command {
        let events: Vec<String> = self.events.iter().cloned().collect();
        match &self.editing {
            None => Command::CreateWebhook(WebhookIn {
                name: self.name.clone(),
                url: self.url.clone(),
                events,
                kind: self.kind,
                description: Some(self.description.clone()).filter(|d| !d.trim().is_empty()),
                owner: Some(self.owner.clone()).filter(|o| !o.trim().is_empty()),
            }),
            Some(id) => Command::UpdateWebhook {
                id: id.clone(),
                patch: WebhookPatch {
                    name: Some(self.name.clone()),
                    url: Some(self.url.clone()),
                    events: Some(events),
                    is_active: None,
                    description: Some(self.description.clone()),
                    owner: Some(self.owner.clone()),
                },
            },
        }
    }
}

/// Warnings about a URL that is allowed but probably not meant.
pub fn url_warnings(url: &str, editing: Option<&str>, webhooks: &[Webhook]) -> Vec<String> {
    let mut warnings = Vec::new();
    if let Ok(parsed) = url::Url::parse(url.trim())
        && parsed.path() == "/"
        && parsed.query().is_none()
    {
        warnings.push(
            "The URL has no path: receivers usually listen on one, such as /webhooks".to_owned(),
        );
    }
    let normalized = url::Url::parse(url.trim())
        .map(String::from)
        .unwrap_or_else(|_| url.trim().to_owned());
    if let Some(other) = webhooks
        .iter()
        .find(|w| Some(w.id.as_str()) != editing && w.url == normalized)
    {
        warnings.push(format!(
            "This URL is already registered as \"{}\"",
            other.name
        ));
    }
    warnings
}

fn health_ui(ui: &mut Ui, webhook: &Webhook) {
    ui.horizontal(|ui| {
        ui.add(
            egui::Label::new(
                RichText::new(format!("✔ {}", webhook.success_24h)).color(theme::SUCCESS),
            )
            .selectable(false),
        );
        let failed = RichText::new(format!("✖ {}", webhook.failed_24h));
        let failed = if webhook.failed_24h > 0 {
            failed.color(theme::FAILURE).strong()
        } else {
            failed.weak()
        };
        ui.add(egui::Label::new(failed).selectable(false));
    });
}

impl WebhooksView {
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
    /// remote service.
    pub fn ui(
        &mut self,
        ui: &mut Ui,
        remote: &Remote,
        inbox_base: Option<&str>,
        commands: &mut Commands,
    ) {
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
                ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                    if ui.button(RichText::new("+ New webhook").strong()).clicked() {
                        self.form = Some(WebhookForm::create());
                    }
                    if let Some(base_url) = inbox_base
                        && ui
                            .button("Create a test endpoint")
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

    fn table_ui(&mut self, ui: &mut Ui, webhooks: &[Webhook]) {
        let shown: Vec<&Webhook> = webhooks.iter().filter(|w| self.matches(w)).collect();
        let row_height = 26.0;
        TableBuilder::new(ui)
            .striped(true)
            .sense(egui::Sense::click())
            .cell_layout(egui::Layout::left_to_right(egui::Align::Center))
            .column(Column::exact(18.0))
            .column(Column::initial(180.0).at_least(80.0).resizable(true))
            .column(
                Column::initial(300.0)
                    .at_least(120.0)
                    .resizable(true)
                    .clip(true),
            )
            .column(Column::initial(70.0))
            .column(Column::initial(110.0))
            .column(Column::initial(70.0))
            .column(Column::remainder())
            .header(22.0, |mut header| {
                for title in [
                    "",
                    "Name",
                    "URL",
                    "Events",
                    "Last 24 h",
                    "Last code",
                    "State",
                ] {
                    header.col(|ui| {
                        ui.strong(title);
                    });
                }
            })
            .body(|body| {
                body.rows(row_height, shown.len(), |mut row| {
                    let webhook = shown[row.index()];
                    row.set_selected(self.selected.as_deref() == Some(webhook.id.as_str()));
                    row.col(|ui| {
                        let color = if !webhook.is_active {
                            ui.visuals().weak_text_color()
                        } else if webhook.failed_24h > 0 {
                            theme::FAILURE
                        } else if webhook
                            .last_status_code
                            .is_some_and(|code| !(200..300).contains(&code))
                        {
                            // Retrying: not failed for good yet, but not well either.
                            theme::WARNING
                        } else {
                            theme::SUCCESS
                        };
                        widgets::status_dot(ui, color);
                    });
                    row.col(|ui| widgets::cell(ui, RichText::new(&webhook.name).strong()));
                    row.col(|ui| widgets::cell(ui, RichText::new(&webhook.url).monospace()));
                    row.col(|ui| widgets::cell(ui, webhook.events.len().to_string()));
                    row.col(|ui| health_ui(ui, webhook));
                    row.col(|ui| {
                        let code = webhook
                            .last_status_code
                            .map_or_else(|| "—".to_owned(), |c| c.to_string());
                        let color = match webhook.last_status_code {
                            Some(200..=299) => theme::SUCCESS,
                            Some(_) => theme::FAILURE,
                            None => ui.visuals().weak_text_color(),
                        };
                        widgets::cell(ui, RichText::new(code).color(color));
                    });
                    row.col(|ui| {
                        let state = if webhook.is_active {
                            RichText::new("active")
                        } else {
                            RichText::new("inactive").weak()
                        };
                        widgets::cell(ui, state);
                    });
                    if row.response().clicked() {
                        self.selected = Some(webhook.id.clone());
                    }
                });
            });
    }

    fn detail_ui(
        &mut self,
        ui: &mut Ui,
        webhook: &Webhook,
        remote: &Remote,
        commands: &mut Commands,
    ) {
        ui.add_space(6.0);
        ui.heading(&webhook.name);
        ui.label(RichText::new(&webhook.url).monospace());
        if let Some(reason) = &webhook.disabled_reason {
            ui.label(
                RichText::new(format!("Deactivated by the service: {reason}"))
                    .color(theme::FAILURE),
            );
        }
        ui.add_space(6.0);
        egui::Grid::new("webhook_facts")
            .num_columns(2)
            .spacing([12.0, 4.0])
            .show(ui, |ui| {
                ui.label("State");
                ui.label(if webhook.is_active {
                    "active"
                } else {
                    "inactive"
                });
                ui.end_row();
                ui.label("Kind");
                ui.label(webhook.kind.as_str());
                ui.end_row();
                ui.label("Owner");
                ui.label(webhook.owner.as_deref().unwrap_or("—"));
                ui.end_row();
                ui.label("Secret");
                ui.label(RichText::new(format!("…{}", webhook.secret_hint)).monospace());
                ui.end_row();
                ui.label("Keychain");
                match (
                    remote.keychain_holds.get(&webhook.id),
                    &remote.keychain_error,
                ) {
                    (Some(true), _) => ui.label(
                        RichText::new("this machine holds the secret").color(theme::SUCCESS),
                    ),
                    (Some(false), _) => ui.label("not on this machine"),
                    (None, Some(error)) => ui.label(RichText::new(error).color(theme::WARNING)),
                    (None, None) => ui.label("checking…"),
                };
                ui.end_row();
                ui.label("Last 24 h");
                health_ui(ui, webhook);
                ui.end_row();
                ui.label("Last success");
                ui.label(
                    webhook
                        .last_success_at
                        .map_or_else(|| "—".to_owned(), widgets::time),
                );
                ui.end_row();
                if let Some(since) = webhook.failing_since {
                    ui.label("Failing since");
                    ui.label(
                        RichText::new(format!(
                            "{} (every attempt since has failed)",
                            widgets::time(since)
                        ))
                        .color(theme::FAILURE)
                        .strong(),
                    );
                    ui.end_row();
                }
                ui.label("Id");
                ui.label(RichText::new(&webhook.id).monospace().small());
                ui.end_row();
            });
        if let Some(description) = &webhook.description {
            ui.add_space(4.0);
            ui.label(description);
        }
        ui.add_space(6.0);
        ui.label(RichText::new("Events").strong());
        for event in &webhook.events {
            ui.label(RichText::new(event).monospace());
        }
        ui.add_space(10.0);
        ui.horizontal_wrapped(|ui| {
            if ui.button("Edit").clicked() {
                self.form = Some(WebhookForm::edit(webhook));
            }
            if ui.button("Send test").clicked() {
                commands.send(Command::SendTest {
                    id: webhook.id.clone(),
                });
            }
            let toggle = if webhook.is_active {
                "Deactivate"
            } else {
                "Activate"
            };
            if ui.button(toggle).clicked() {
                commands.send(Command::UpdateWebhook {
                    id: webhook.id.clone(),
                    patch: WebhookPatch {
                        is_active: Some(!webhook.is_active),
                        ..WebhookPatch::default()
                    },
                });
            }
            if ui.button("Rotate secret…").clicked() {
                self.confirm = Some(Confirm::Rotate {
                    id: webhook.id.clone(),
                    name: webhook.name.clone(),
                    grace_hours: DEFAULT_GRACE_SECONDS / 3600,
                });
            }
            if ui
                .button(RichText::new("Delete…").color(theme::FAILURE))
                .clicked()
            {
                self.confirm = Some(Confirm::Delete {
                    id: webhook.id.clone(),
                    name: webhook.name.clone(),
                });
            }
        });
    }

    fn form_ui(&mut self, ctx: &egui::Context, remote: &Remote, commands: &mut Commands) {
        let Some(form) = &mut self.form else {
            return;
        };
        let mut close = false;
        let webhooks: &[Webhook] = remote.webhooks.as_deref().unwrap_or_default();
        let response = egui::Modal::new(egui::Id::unique("webhook_form")).show(ctx, |ui| {
            ui.set_width(620.0);
            ui.heading(if form.editing.is_some() {
                "Edit webhook"
            } else {
                "New webhook"
            });
            ui.add_space(6.0);
            egui::Grid::new("webhook_form_fields")
                .num_columns(2)
                .spacing([12.0, 6.0])
                .show(ui, |ui| {
                    let label = ui.label("Name");
                    ui.vertical(|ui| {
                        ui.add(egui::TextEdit::singleline(&mut form.name).desired_width(400.0))
                            .labelled_by(label.id);
                        widgets::field_error_ui(ui, form.error_for("name").as_deref());
                    });
                    ui.end_row();

                    let label = ui.label("URL");
                    ui.vertical(|ui| {
                        ui.add(
                            egui::TextEdit::singleline(&mut form.url)
                                .hint_text("https://example.com/webhooks")
                                .font(egui::TextStyle::Monospace)
                                .desired_width(400.0),
                        )
                        .labelled_by(label.id);
                        widgets::field_error_ui(ui, form.error_for("url").as_deref());
                        for warning in url_warnings(&form.url, form.editing.as_deref(), webhooks) {
                            widgets::field_warning_ui(ui, &warning);
                        }
                    });
                    ui.end_row();

                    ui.label("Kind");
                    ui.horizontal(|ui| {
                        ui.radio_value(
                            &mut form.kind,
                            WebhookKind::Generic,
                            "Generic (signed JSON)",
                        );
                        ui.radio_value(&mut form.kind, WebhookKind::Slack, "Slack message");
                    });
                    ui.end_row();

                    let label = ui.label("Description");
                    ui.add(egui::TextEdit::singleline(&mut form.description).desired_width(400.0))
                        .labelled_by(label.id);
                    ui.end_row();

                    let label = ui.label("Owner");
                    ui.vertical(|ui| {
                        ui.add(
                            egui::TextEdit::singleline(&mut form.owner)
                                .hint_text("team or person")
                                .desired_width(400.0),
                        )
                        .labelled_by(label.id);
                        widgets::field_error_ui(ui, form.error_for("owner").as_deref());
                    });
                    ui.end_row();
                });
            ui.add_space(6.0);
            ui.horizontal(|ui| {
                ui.label(RichText::new(format!("Events ({} chosen)", form.events.len())).strong());
                let label = ui.label("Filter");
                ui.add(egui::TextEdit::singleline(&mut form.event_search).desired_width(200.0))
                    .labelled_by(label.id);
            });
            widgets::field_error_ui(ui, form.error_for("events").as_deref());
            egui::ScrollArea::vertical()
                .max_height(220.0)
                .show(ui, |ui| {
                    let mut all = form.events.contains(crate::catalog::WILDCARD);
                    if ui.checkbox(&mut all, "* — every event type").changed() {
                        toggle(&mut form.events, crate::catalog::WILDCARD, all);
                    }
                    let needle = form.event_search.trim().to_lowercase();
                    for event_type in remote.event_types.iter().filter(|t| {
                        needle.is_empty()
                            || t.name.to_lowercase().contains(&needle)
                            || t.description.to_lowercase().contains(&needle)
                    }) {
                        let mut chosen = form.events.contains(&event_type.name);
                        ui.horizontal(|ui| {
                            if ui
                                .checkbox(&mut chosen, RichText::new(&event_type.name).monospace())
                                .changed()
                            {
                                toggle(&mut form.events, &event_type.name, chosen);
                            }
                            ui.label(RichText::new(&event_type.description).weak());
                        });
                    }
                });
            if let Some(error) = form.general_error() {
                ui.label(RichText::new(error).color(theme::FAILURE));
            }
            ui.add_space(8.0);
            ui.horizontal(|ui| {
                let submit = if form.editing.is_some() {
                    "Save"
                } else {
                    "Create webhook"
                };
                if ui
                    .add_enabled(
                        !form.submitting,
                        egui::Button::new(RichText::new(submit).strong()),
                    )
                    .clicked()
                {
                    form.submitting = true;
                    form.error = None;
                    commands.send(form.command());
                }
                if ui.button("Cancel").clicked() {
                    close = true;
                }
                if form.submitting {
                    ui.spinner();
                }
            });
        });
        if close || (response.should_close() && !form.submitting) {
            self.form = None;
        }
    }

    fn confirm_ui(&mut self, ctx: &egui::Context, commands: &mut Commands) {
        let Some(confirm) = &mut self.confirm else {
            return;
        };
        let mut done = false;
        let response = egui::Modal::new(egui::Id::unique("webhook_confirm")).show(ctx, |ui| {
            ui.set_width(460.0);
            match confirm {
                Confirm::Delete { id, name } => {
                    ui.heading(format!("Delete {name}?"));
                    ui.label("It stops receiving events at once and its secret is destroyed. Its delivery history stays readable.");
                    ui.add_space(8.0);
                    ui.horizontal(|ui| {
                        if ui.button(RichText::new(format!("Delete {name}")).color(theme::FAILURE).strong()).clicked() {
                            commands.send(Command::DeleteWebhook { id: id.clone(), name: name.clone() });
                            done = true;
                        }
                        if ui.button("Cancel").clicked() {
                            done = true;
                        }
                    });
                }
                Confirm::Rotate { id, name, grace_hours } => {
                    ui.heading(format!("Rotate the secret of {name}?"));
                    ui.label("A new secret is issued and shown once. Until the grace period ends, deliveries carry signatures with both the old and the new secret: the receiver must switch to the new one before then.");
                    ui.add_space(6.0);
                    let label = ui.label("Grace period (hours)");
                    ui.add(egui::Slider::new(grace_hours, 0..=MAX_GRACE_SECONDS / 3600).suffix(" h"))
                        .labelled_by(label.id);
                    if *grace_hours == 0 {
                        ui.label(RichText::new("The old secret stops working at once.").color(theme::WARNING));
                    }
                    ui.add_space(8.0);
                    ui.horizontal(|ui| {
                        if ui.button(RichText::new("Rotate secret").strong()).clicked() {
                            commands.send(Command::RotateSecret {
                                id: id.clone(),
                                name: name.clone(),
                                grace_seconds: *grace_hours * 3600,
                            });
                            done = true;
                        }
                        if ui.button("Cancel").clicked() {
                            done = true;
                        }
                    });
                }
            }
        });
        if done || response.should_close() {
            self.confirm = None;
        }
    }
}

fn toggle(set: &mut BTreeSet<String>, value: &str, on: bool) {
    if on {
        set.insert(value.to_owned());
    } else {
        set.remove(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warns_about_a_bare_path_and_a_duplicate() {
        assert_eq!(
            url_warnings("https://example.com/hooks", None, &[]),
            Vec::<String>::new()
        );
        assert_eq!(url_warnings("https://example.com", None, &[]).len(), 1);
        assert_eq!(url_warnings("https://example.com/", None, &[]).len(), 1);
    }
}
