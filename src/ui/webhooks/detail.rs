//! The selected webhook: its settings, health and actions.

use egui::{RichText, Ui};

use super::super::backend::Command;
use super::super::commands::Commands;
use super::super::remote::Remote;
use super::super::{theme, widgets};
use super::form::WebhookForm;
use super::table::health_ui;
use super::{Confirm, WebhooksView};
use crate::api::{Webhook, WebhookPatch};
use crate::server::DEFAULT_GRACE_SECONDS;

impl WebhooksView {
    pub(super) fn detail_ui(
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
        let now = chrono::Utc::now();
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
                ui.label("Rate limit");
                ui.label(rate_limit_text(webhook.rate_limit));
                ui.end_row();
                ui.label("Secret");
                ui.horizontal(|ui| {
                    ui.label(RichText::new(format!("…{}", webhook.secret_hint)).monospace());
                    let issued = format!(
                        "issued {} ago",
                        widgets::span(now - webhook.secret_created_at)
                    );
                    if self.secret_warning.is_old(webhook, now) {
                        ui.label(RichText::new(issued).color(theme::WARNING).strong())
                            .on_hover_text("Older than the age set in Settings: time to rotate it");
                    } else {
                        ui.label(issued);
                    }
                });
                ui.end_row();
                for previous in &webhook.previous_secrets {
                    ui.label("Previous secret");
                    let hint = previous
                        .hint
                        .as_deref()
                        .map_or_else(|| "…????".to_owned(), |hint| format!("…{hint}"));
                    ui.horizontal(|ui| {
                        ui.label(RichText::new(hint).monospace());
                        ui.label(
                            RichText::new(format!(
                                "signs {} more",
                                widgets::span(previous.expires_at - now)
                            ))
                            .color(theme::WARNING),
                        )
                        .on_hover_text(format!(
                            "Deliveries carry its signature too until {}",
                            widgets::time(previous.expires_at)
                        ));
                    });
                    ui.end_row();
                }
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
                ui.label("Health");
                let weak = ui.visuals().weak_text_color();
                ui.label(
                    RichText::new(webhook.health.as_str())
                        .color(theme::health_color(webhook.health, weak))
                        .strong(),
                );
                ui.end_row();
                ui.label("Last 24 h");
                health_ui(ui, webhook);
                ui.end_row();
                ui.label("Unfinished");
                ui.label(match webhook.oldest_due_at {
                    None => "none".to_owned(),
                    Some(due) => format!(
                        "{} ({} retrying), the earliest due {}",
                        webhook.pending,
                        webhook.retrying,
                        widgets::time(due)
                    ),
                });
                ui.end_row();
                if let Some(error) = &webhook.last_error {
                    ui.label("Last error");
                    ui.add(egui::Label::new(RichText::new(error).color(theme::FAILURE)).wrap());
                    ui.end_row();
                }
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
        let refused = remote.cannot_change();
        let refused = refused.as_deref();
        ui.horizontal_wrapped(|ui| {
            if widgets::action_button(ui, refused, "Edit").clicked() {
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
            if widgets::action_button(ui, refused, toggle).clicked() {
                commands.send(Command::UpdateWebhook {
                    id: webhook.id.clone(),
                    patch: WebhookPatch {
                        is_active: Some(!webhook.is_active),
                        ..WebhookPatch::default()
                    },
                });
            }
            if widgets::action_button(ui, refused, "Rotate secret…").clicked() {
                self.confirm = Some(Confirm::Rotate {
                    id: webhook.id.clone(),
                    name: webhook.name.clone(),
                    grace_hours: DEFAULT_GRACE_SECONDS / 3600,
                });
            }
            if !webhook.previous_secrets.is_empty()
                && widgets::action_button(ui, refused, "End grace now…")
                    .on_hover_text(
                        "Stop signing with the previous secrets before their grace period ends",
                    )
                    .clicked()
            {
                self.confirm = Some(Confirm::EndGrace {
                    id: webhook.id.clone(),
                    name: webhook.name.clone(),
                    previous: webhook.previous_secrets.len(),
                });
            }
            if widgets::action_button(ui, refused, RichText::new("Delete…").color(theme::FAILURE))
                .clicked()
            {
                self.confirm = Some(Confirm::Delete {
                    id: webhook.id.clone(),
                    name: webhook.name.clone(),
                });
            }
        });
    }
}

/// A webhook's rate limit as the detail shows it.
pub(super) fn rate_limit_text(rate_limit: Option<u32>) -> String {
    match rate_limit {
        Some(rate) => format!("{rate} deliveries per second at most"),
        None => "none".to_owned(),
    }
}
