//! The list of webhooks, with their health.

use egui::{RichText, Ui};
use egui_extras::{Column, TableBuilder};

use super::super::{theme, widgets};
use super::WebhooksView;
use crate::api::Webhook;

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
            .column(Column::initial(70.0))
            .column(Column::initial(110.0))
            .column(Column::initial(70.0))
            .column(Column::initial(90.0))
            .column(Column::remainder())
            .header(22.0, |mut header| {
                for title in [
                    "",
                    "Name",
                    "URL",
                    "Events",
                    "Last 24 h",
                    "Last code",
                    "Secret age",
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
                        let age = widgets::age_in_days(now - webhook.secret_created_at);
                        if self.secret_warning.is_old(webhook, now) {
                            widgets::cell(ui, RichText::new(age).color(theme::WARNING).strong());
                        } else {
                            widgets::cell(ui, age);
                        }
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
}
