//! The list of webhooks, with their health.

use egui::{RichText, Ui};
use egui_extras::{Column, TableBuilder};

use super::super::{theme, widgets};
use super::WebhooksView;
use crate::api::{Webhook, WebhookHealth};

/// How urgent a health is, most urgent first, for "Failing first".
pub(super) fn severity(health: WebhookHealth) -> u8 {
    match health {
        WebhookHealth::Failing => 0,
        WebhookHealth::Degraded => 1,
        WebhookHealth::Healthy => 2,
        WebhookHealth::Inactive => 3,
    }
}

/// The latest attempt in a word or a code: "200", "500", "timeout", "refused"; "—"
/// before any attempt. The whole error is the cell's tooltip.
pub(super) fn last_result(webhook: &Webhook) -> String {
    if let Some(code) = webhook.last_status_code {
        return code.to_string();
    }
    let Some(error) = webhook.last_error.as_deref() else {
        return "—".to_owned();
    };
    let word = if error.starts_with("timed out") {
        "timeout"
    } else if error.starts_with("could not connect") {
        "refused"
    } else if error.contains("redirect") {
        "redirect"
    } else if error.starts_with("the connection broke") {
        "broken"
    } else {
        "error"
    };
    word.to_owned()
}

/// What waits: "12", or "12 (12 retrying)"; "—" for nothing.
fn unfinished_text(webhook: &Webhook) -> String {
    match (webhook.pending, webhook.retrying) {
        (0, _) => "—".to_owned(),
        (pending, 0) => pending.to_string(),
        (pending, retrying) => format!("{pending} ({retrying} retrying)"),
    }
}

pub(super) fn health_ui(ui: &mut Ui, webhook: &Webhook) {
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
    pub(super) fn table_ui(&mut self, ui: &mut Ui, webhooks: &[Webhook]) {
        let shown = self.shown(webhooks);
        let now = chrono::Utc::now();
        let row_height = 26.0;
        let weak = ui.visuals().weak_text_color();
        TableBuilder::new(ui)
            .striped(true)
            .sense(egui::Sense::click())
            .cell_layout(egui::Layout::left_to_right(egui::Align::Center))
            .column(Column::exact(18.0))
            .column(Column::initial(180.0).at_least(80.0).resizable(true))
            .column(
                Column::initial(260.0)
                    .at_least(120.0)
                    .resizable(true)
                    .clip(true),
            )
            .column(Column::initial(60.0))
            .column(Column::initial(110.0))
            .column(Column::initial(130.0).clip(true))
            .column(Column::initial(80.0))
            .column(Column::initial(80.0))
            .column(Column::remainder())
            .header(22.0, |mut header| {
                for title in [
                    "",
                    "Name",
                    "URL",
                    "Events",
                    "Last 24 h",
                    "Unfinished",
                    "Last result",
                    "Secret age",
                    "Health",
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
                    let health_color = theme::health_color(webhook.health, weak);
                    row.col(|ui| widgets::status_dot(ui, health_color));
                    row.col(|ui| widgets::cell(ui, RichText::new(&webhook.name).strong()));
                    row.col(|ui| widgets::cell(ui, RichText::new(&webhook.url).monospace()));
                    row.col(|ui| widgets::cell(ui, webhook.events.len().to_string()));
                    row.col(|ui| health_ui(ui, webhook));
                    row.col(|ui| {
                        let text = RichText::new(unfinished_text(webhook));
                        let text = if webhook.retrying > 0 {
                            text.color(theme::WARNING)
                        } else {
                            text
                        };
                        widgets::cell(ui, text);
                    });
                    row.col(|ui| {
                        let color = match webhook.last_status_code {
                            Some(200..=299) => theme::SUCCESS,
                            None if webhook.last_error.is_none() => weak,
                            _ => theme::FAILURE,
                        };
                        let text = RichText::new(last_result(webhook)).color(color);
                        let cell = ui.add(egui::Label::new(text).selectable(false).truncate());
                        if let Some(error) = &webhook.last_error {
                            cell.on_hover_text(error);
                        }
                    });
                    row.col(|ui| {
                        let age = widgets::age_in_days(now - webhook.secret_created_at);
                        if self.secret_warning.is_old(webhook, now) {
                            widgets::cell(ui, RichText::new(age).color(theme::WARNING).strong());
                        } else {
                            widgets::cell(ui, age);
                        }
                    });
                    row.col(|ui| {
                        let text = RichText::new(webhook.health.as_str()).color(health_color);
                        widgets::cell(ui, text.strong());
                    });
                    if row.response().clicked() {
                        self.selected = Some(webhook.id.clone());
                    }
                });
            });
    }
}
