//! Delivery history: a table of deliveries (newest first) with Resend on every row, and an
//! inspector with the payload and every attempt. The same view, with the status fixed to
//! `failed`, is the operator's inbox of failed deliveries across webhooks.

use std::collections::HashSet;

use egui::{RichText, Ui};
use egui_extras::{Column, TableBuilder};

use super::app::{Commands, Remote};
use super::backend::{Command, ListTag};
use super::{theme, widgets};
use crate::api::{Delivery, DeliveryDetail, DeliveryList, DeliveryQuery, DeliveryStatus};
use crate::client::ClientError;

/// Deliveries fetched per page.
const PAGE: u32 = 200;

pub struct DeliveriesView {
    list: ListTag,
    items: Vec<Delivery>,
    next_cursor: Option<String>,
    loaded: bool,
    status: Option<DeliveryStatus>,
    event_id: String,
    selected: Option<String>,
    detail: Option<DeliveryDetail>,
    /// Deliveries whose resend is on its way, so their button shows it.
    resending: HashSet<String>,
}

impl DeliveriesView {
    fn new(list: ListTag) -> Self {
        Self {
            list,
            items: Vec::new(),
            next_cursor: None,
            loaded: false,
            status: (list == ListTag::Failed).then_some(DeliveryStatus::Failed),
            event_id: String::new(),
            selected: None,
            detail: None,
            resending: HashSet::new(),
        }
    }

    pub fn all() -> Self {
        Self::new(ListTag::All)
    }

    pub fn failed_only() -> Self {
        Self::new(ListTag::Failed)
    }

    /// How many deliveries are listed, once loaded.
    pub fn count(&self) -> Option<usize> {
        self.loaded.then_some(self.items.len())
    }

    fn query(&self, limit: u32) -> DeliveryQuery {
        DeliveryQuery {
            status: self.status,
            q: Some(self.event_id.trim().to_owned()).filter(|q| !q.is_empty()),
            limit: Some(limit),
            ..DeliveryQuery::default()
        }
    }

    /// Reloads the newest page (as many rows as are shown, within limits), and the
    /// inspected delivery. The previous rows stay on screen meanwhile.
    pub fn refresh(&self, commands: &mut Commands) {
        let shown = u32::try_from(self.items.len()).unwrap_or(u32::MAX);
        commands.send(Command::LoadDeliveries {
            list: self.list,
            query: self.query(shown.clamp(PAGE, crate::server::MAX_DELIVERY_PAGE)),
        });
        if let Some(id) = &self.selected {
            commands.send(Command::LoadDelivery {
                list: self.list,
                id: id.clone(),
            });
        }
    }

    pub fn loaded(&mut self, result: Result<DeliveryList, ClientError>) -> Result<(), ClientError> {
        let page = result?;
        self.items = page.items;
        self.next_cursor = page.next_cursor;
        self.loaded = true;
        Ok(())
    }

    pub fn inspected(
        &mut self,
        result: Result<DeliveryDetail, ClientError>,
    ) -> Result<(), ClientError> {
        let detail = result?;
        if self.selected.as_deref() == Some(detail.id.as_str()) {
            if let Some(row) = self.items.iter_mut().find(|d| d.id == detail.id) {
                *row = detail.delivery();
            }
            self.detail = Some(detail);
        }
        Ok(())
    }

    /// A resend was accepted: show the row's new state and look again shortly.
    pub fn resent(&mut self, delivery: &Delivery, commands: &mut Commands) {
        self.resending.remove(&delivery.id);
        if let Some(row) = self.items.iter_mut().find(|d| d.id == delivery.id) {
            *row = delivery.clone();
            self.refresh(commands);
        }
    }

    pub fn resend_failed(&mut self, id: &str) {
        self.resending.remove(id);
    }

    pub fn ui(&mut self, ui: &mut Ui, remote: &Remote, commands: &mut Commands) {
        if self.selected.is_some() {
            egui::Panel::right(("delivery_inspector", self.list == ListTag::Failed))
                .resizable(true)
                .default_size(420.0)
                .show(ui, |ui| self.inspector_ui(ui, remote, commands));
        }
        egui::CentralPanel::default().show(ui, |ui| {
            self.filters_ui(ui, commands);
            ui.add_space(4.0);
            if !self.loaded {
                ui.spinner();
                return;
            }
            if self.items.is_empty() {
                ui.add_space(24.0);
                ui.vertical_centered(|ui| {
                    let text = if self.list == ListTag::Failed {
                        "No failed deliveries. All caught up."
                    } else {
                        "No deliveries match."
                    };
                    ui.label(RichText::new(text).heading());
                });
                return;
            }
            self.table_ui(ui, remote, commands);
        });
    }

    fn filters_ui(&mut self, ui: &mut Ui, commands: &mut Commands) {
        ui.horizontal(|ui| {
            let mut changed = false;
            if self.list == ListTag::All {
                let label = ui.label("Status");
                let shown = self.status.map_or("any", DeliveryStatus::as_str);
                egui::ComboBox::from_id_salt("delivery_status_filter")
                    .selected_text(shown)
                    .show_ui(ui, |ui| {
                        changed |= ui.selectable_value(&mut self.status, None, "any").changed();
                        for status in DeliveryStatus::ALL {
                            changed |= ui
                                .selectable_value(&mut self.status, Some(status), status.as_str())
                                .changed();
                        }
                    })
                    .response
                    .labelled_by(label.id);
            } else {
                ui.label(
                    RichText::new("Every failed delivery, across all webhooks, newest first")
                        .weak(),
                );
            }
            let label = ui.label("Event id");
            let search = ui
                .add(egui::TextEdit::singleline(&mut self.event_id).desired_width(220.0))
                .labelled_by(label.id);
            changed |= search.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
            if ui.button("⟳ Refresh").clicked() {
                changed = true;
            }
            if changed {
                self.refresh(commands);
            }
        });
    }

    fn table_ui(&mut self, ui: &mut Ui, remote: &Remote, commands: &mut Commands) {
        let mut resend = None;
        let mut inspect = None;
        TableBuilder::new(ui)
            .striped(true)
            .sense(egui::Sense::click())
            .cell_layout(egui::Layout::left_to_right(egui::Align::Center))
            .column(Column::initial(90.0))
            .column(Column::initial(80.0))
            .column(Column::initial(110.0))
            .column(Column::initial(160.0).resizable(true).clip(true))
            .column(Column::initial(150.0).resizable(true).clip(true))
            .column(Column::initial(50.0))
            .column(Column::initial(60.0))
            .column(Column::initial(70.0))
            .column(Column::remainder().at_least(120.0).clip(true))
            .header(22.0, |mut header| {
                for title in [
                    "", "Time", "Status", "Webhook", "Event", "Code", "Tries", "Duration", "Error",
                ] {
                    header.col(|ui| {
                        ui.strong(title);
                    });
                }
            })
            .body(|body| {
                body.rows(26.0, self.items.len(), |mut row| {
                    let delivery = &self.items[row.index()];
                    row.set_selected(self.selected.as_deref() == Some(delivery.id.as_str()));
                    row.col(|ui| {
                        let busy = self.resending.contains(&delivery.id);
                        let button = egui::Button::new(RichText::new("↻ Resend").strong());
                        let button = if delivery.status == DeliveryStatus::Failed {
                            button.fill(theme::FAILURE.gamma_multiply(0.35))
                        } else {
                            button
                        };
                        if ui
                            .add_enabled(!busy, button)
                            .on_hover_text("Send again now, same event id")
                            .clicked()
                        {
                            resend = Some(delivery.id.clone());
                        }
                    });
                    row.col(|ui| widgets::cell(ui, widgets::time(delivery.created_at)));
                    row.col(|ui| widgets::cell(ui, widgets::delivery_status(delivery.status)));
                    row.col(|ui| {
                        let name = remote
                            .webhook_name(&delivery.webhook_id)
                            .unwrap_or(&delivery.webhook_id);
                        widgets::cell(ui, name);
                    });
                    row.col(|ui| {
                        widgets::cell(ui, RichText::new(&delivery.event_type).monospace())
                    });
                    row.col(|ui| {
                        let code = delivery
                            .status_code
                            .map_or_else(|| "—".to_owned(), |c| c.to_string());
                        widgets::cell(ui, code);
                    });
                    row.col(|ui| widgets::cell(ui, delivery.attempts.to_string()));
                    row.col(|ui| {
                        widgets::cell(
                            ui,
                            delivery
                                .last_duration_ms
                                .map_or_else(|| "—".to_owned(), |ms| format!("{ms} ms")),
                        );
                    });
                    row.col(|ui| {
                        let error = delivery.last_error.as_deref().unwrap_or_default();
                        widgets::cell(ui, RichText::new(error).color(theme::FAILURE));
                    });
                    if row.response().clicked() {
                        inspect = Some(delivery.id.clone());
                    }
                });
            });
        if let Some(id) = resend {
            self.resending.insert(id.clone());
            commands.send(Command::Resend { id });
        }
        if let Some(id) = inspect {
            self.detail = None;
            self.selected = Some(id.clone());
            commands.send(Command::LoadDelivery {
                list: self.list,
                id,
            });
        }
    }

    fn inspector_ui(&mut self, ui: &mut Ui, remote: &Remote, commands: &mut Commands) {
        ui.add_space(6.0);
        ui.horizontal(|ui| {
            ui.heading("Delivery");
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                if ui
                    .button("✖")
                    .on_hover_text("Close the inspector")
                    .clicked()
                {
                    self.selected = None;
                    self.detail = None;
                }
            });
        });
        let Some(detail) = &self.detail else {
            ui.spinner();
            return;
        };
        let delivery = detail;
        ui.label(widgets::delivery_status(delivery.status).size(16.0));
        if let Some(error) = &delivery.last_error {
            ui.label(RichText::new(error).color(theme::FAILURE));
        }
        let busy = self.resending.contains(&delivery.id);
        if ui
            .add_enabled(
                !busy,
                egui::Button::new(RichText::new("↻ Resend now").strong()),
            )
            .clicked()
        {
            self.resending.insert(delivery.id.clone());
            commands.send(Command::Resend {
                id: delivery.id.clone(),
            });
        }
        ui.add_space(6.0);
        egui::Grid::new("delivery_facts")
            .num_columns(2)
            .spacing([12.0, 4.0])
            .show(ui, |ui| {
                let fact = |ui: &mut Ui, name: &str, value: &str| {
                    ui.label(name);
                    ui.horizontal(|ui| {
                        ui.label(RichText::new(value).monospace());
                        if ui.small_button("Copy").clicked() {
                            ui.ctx().copy_text(value.to_owned());
                        }
                    });
                    ui.end_row();
                };
                fact(ui, "Event id", &delivery.event_id);
                fact(ui, "Event type", &delivery.event_type);
                fact(ui, "Delivery id", &delivery.id);
                let webhook = remote
                    .webhook_name(&delivery.webhook_id)
                    .unwrap_or(&delivery.webhook_id);
                fact(ui, "Webhook", webhook);
            });
        ui.add_space(6.0);
        egui::ScrollArea::vertical().show(ui, |ui| {
            egui::CollapsingHeader::new("Payload")
                .default_open(true)
                .show(ui, |ui| {
                    let pretty = serde_json::to_string_pretty(&detail.payload).unwrap_or_default();
                    let mut shown: &str = &pretty;
                    ui.add(
                        egui::TextEdit::multiline(&mut shown)
                            .code_editor()
                            .desired_width(f32::INFINITY),
                    );
                });
            ui.label(RichText::new(format!("Attempts ({})", detail.attempts.len())).strong());
            for (number, attempt) in detail.attempts.iter().enumerate().rev() {
                let outcome = match (attempt.status_code, &attempt.error) {
                    (Some(code @ 200..=299), _) => {
                        RichText::new(format!("#{} · {code}", number + 1)).color(theme::SUCCESS)
                    }
                    (Some(code), _) => {
                        RichText::new(format!("#{} · {code}", number + 1)).color(theme::FAILURE)
                    }
                    (None, _) => {
                        RichText::new(format!("#{} · no answer", number + 1)).color(theme::FAILURE)
                    }
                };
                egui::CollapsingHeader::new(outcome)
                    .id_salt(("attempt", number))
                    .default_open(number + 1 == detail.attempts.len())
                    .show(ui, |ui| {
                        ui.label(format!(
                            "{} · {} ms",
                            widgets::time(attempt.started_at),
                            attempt.duration_ms
                        ));
                        if let Some(error) = &attempt.error {
                            ui.label(RichText::new(error).color(theme::FAILURE));
                        }
                        if let Some(body) = &attempt.response_body {
                            ui.label(RichText::new("Response body").weak());
                            let mut shown: &str = body;
                            ui.add(
                                egui::TextEdit::multiline(&mut shown)
                                    .code_editor()
                                    .desired_rows(2)
                                    .desired_width(f32::INFINITY),
                            );
                        }
                        egui::CollapsingHeader::new("Request headers")
                            .id_salt(("request_headers", number))
                            .show(ui, |ui| {
                                for (name, value) in &attempt.request_headers {
                                    ui.label(
                                        RichText::new(format!("{name}: {value}"))
                                            .monospace()
                                            .small(),
                                    );
                                }
                            });
                    });
            }
        });
    }
}
