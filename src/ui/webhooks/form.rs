//! The create and edit dialog, and the warnings about a URL it shows.

use std::collections::BTreeSet;

use egui::RichText;

use super::super::backend::Command;
use super::super::commands::Commands;
use super::super::remote::Remote;
use super::super::{theme, widgets};
use super::WebhooksView;
use crate::api::{Webhook, WebhookIn, WebhookKind, WebhookPatch};
use crate::client::ClientError;
use crate::validate;

/// The create/edit dialog's state.
pub(super) struct WebhookForm {
    /// `Some(id)` when editing.
    pub(super) editing: Option<String>,
    pub(super) name: String,
    pub(super) url: String,
    pub(super) events: BTreeSet<String>,
    pub(super) kind: WebhookKind,
    pub(super) description: String,
    pub(super) owner: String,
    /// Deliveries per second, as typed; empty for none.
    pub(super) rate_limit: String,
    pub(super) event_search: String,
    pub(super) submitting: bool,
    pub(super) error: Option<ClientError>,
}

impl WebhookForm {
    pub(super) fn create() -> Self {
        Self {
            editing: None,
            name: String::new(),
            url: String::new(),
            events: BTreeSet::new(),
            kind: WebhookKind::Generic,
            description: String::new(),
            owner: String::new(),
            rate_limit: String::new(),
            event_search: String::new(),
            submitting: false,
            error: None,
        }
    }

    pub(super) fn edit(webhook: &Webhook) -> Self {
        Self {
            editing: Some(webhook.id.clone()),
            name: webhook.name.clone(),
            url: webhook.url.clone(),
            events: webhook.events.iter().cloned().collect(),
            kind: webhook.kind,
            description: webhook.description.clone().unwrap_or_default(),
            owner: webhook.owner.clone().unwrap_or_default(),
            rate_limit: webhook
                .rate_limit
                .map(|rate| rate.to_string())
                .unwrap_or_default(),
            event_search: String::new(),
            submitting: false,
            error: None,
        }
    }

    /// The rate limit as typed, or why it is not one.
    fn rate_limit(&self) -> Result<Option<u32>, String> {
        validate::rate_limit_text("rate_limit", &self.rate_limit).map_err(|err| err.message)
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
            Some("name" | "url" | "events" | "kind" | "description" | "owner" | "rate_limit") => {
                None
            }
            Some(field) if field.starts_with("events[") => None,
            _ => Some(error.to_string()),
        }
    }

    /// What submitting the form sends, or `None` while a field is not acceptable as typed.
    fn command(&self) -> Option<Command> {
        let rate_limit = self.rate_limit().ok()?.map(i64::from);
        let events: Vec<String> = self.events.iter().cloned().collect();
        Some(match &self.editing {
            None => Command::CreateWebhook(WebhookIn {
                name: self.name.clone(),
                url: self.url.clone(),
                events,
                kind: self.kind,
                description: Some(self.description.clone()).filter(|d| !d.trim().is_empty()),
                owner: Some(self.owner.clone()).filter(|o| !o.trim().is_empty()),
                rate_limit,
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
                    rate_limit: Some(rate_limit),
                },
            },
        })
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

impl WebhooksView {
    pub(super) fn form_ui(
        &mut self,
        ctx: &egui::Context,
        remote: &Remote,
        commands: &mut Commands,
    ) {
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

                    let label = ui.label("Rate limit");
                    ui.vertical(|ui| {
                        ui.horizontal(|ui| {
                            ui.add(
                                egui::TextEdit::singleline(&mut form.rate_limit)
                                    .hint_text("none")
                                    .desired_width(80.0),
                            )
                            .labelled_by(label.id);
                            ui.label(RichText::new("deliveries per second, 1–10 000").weak());
                        });
                        let typed = form.rate_limit().err();
                        widgets::field_error_ui(
                            ui,
                            typed.or_else(|| form.error_for("rate_limit")).as_deref(),
                        );
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
                let command = form.command();
                if ui
                    .add_enabled(
                        !form.submitting && command.is_some(),
                        egui::Button::new(RichText::new(submit).strong()),
                    )
                    .clicked()
                    && let Some(command) = command
                {
                    form.submitting = true;
                    form.error = None;
                    commands.send(command);
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
