//! The delivery inspector: what was sent, and every attempt as a timeline, oldest first.
//! It only draws; the user's asks come back as an [`InspectorAction`].

use egui::{RichText, Ui};
use egui_extras::syntax_highlighting::{CodeTheme, code_view_ui};

use super::super::remote::Remote;
use super::super::{theme, widgets};
use super::payload;
use crate::api::{Attempt, DeliveryDetail};

pub enum InspectorAction {
    Close,
    Resend(String),
}

pub fn inspector_ui(
    ui: &mut Ui,
    detail: Option<&DeliveryDetail>,
    resending: bool,
    remote: &Remote,
) -> Option<InspectorAction> {
    let mut action = None;
    ui.add_space(6.0);
    ui.horizontal(|ui| {
        ui.heading("Delivery");
        ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
            if ui.button("✖").on_hover_text("Close (Esc)").clicked() {
                action = Some(InspectorAction::Close);
            }
        });
    });
    let Some(detail) = detail else {
        ui.spinner();
        return action;
    };
    ui.horizontal(|ui| {
        ui.label(widgets::delivery_status(detail.status).size(16.0));
        let resend = egui::Button::new(RichText::new("↻ Resend now").strong());
        if ui
            .add_enabled(!resending, resend)
            .on_hover_text("A new attempt now, same event id (R)")
            .clicked()
        {
            action = Some(InspectorAction::Resend(detail.id.clone()));
        }
    });
    if let Some(error) = &detail.last_error {
        ui.label(RichText::new(error).color(theme::FAILURE));
    }
    ui.add_space(6.0);
    egui::Grid::new("delivery_facts")
        .num_columns(2)
        .spacing([12.0, 4.0])
        .show(ui, |ui| {
            let webhook = remote
                .webhook_name(&detail.webhook_id)
                .unwrap_or(&detail.webhook_id);
            for (name, value) in [
                ("Event id", detail.event_id.as_str()),
                ("Event type", detail.event_type.as_str()),
                ("Delivery id", detail.id.as_str()),
                ("Webhook", webhook),
            ] {
                ui.label(name);
                ui.horizontal(|ui| {
                    ui.label(RichText::new(value).monospace());
                    copy_button(ui, value);
                });
                ui.end_row();
            }
        });
    ui.add_space(6.0);
    egui::ScrollArea::vertical().show(ui, |ui| {
        let payload = payload::payload_view(ui, &detail.id, &detail.payload, &detail.matched);
        matched_ui(ui, &payload.matched);
        egui::CollapsingHeader::new("Payload")
            .default_open(true)
            .show(ui, |ui| {
                copy_button(ui, &payload.job.text);
                code_frame(ui, |ui| {
                    ui.add(egui::Label::new(payload.job.clone()).selectable(true))
                });
            });
        ui.add_space(4.0);
        ui.label(RichText::new(format!("Attempts ({})", detail.attempts.len())).strong());
        if detail.attempts.is_empty() {
            ui.label(RichText::new("Not tried yet").weak());
        }
        let last = detail.attempts.len();
        for (index, attempt) in detail.attempts.iter().enumerate() {
            attempt_ui(ui, index + 1, attempt, index + 1 == last);
        }
    });
    action
}

/// Where the payload holds what the list was searched for: each field with its value.
fn matched_ui(ui: &mut Ui, matched: &[(String, String)]) {
    if matched.is_empty() {
        return;
    }
    ui.label(RichText::new("Found by the search in").strong());
    egui::Grid::new("matched_fields")
        .num_columns(2)
        .spacing([12.0, 2.0])
        .show(ui, |ui| {
            for (path, value) in matched {
                ui.label(RichText::new(path).monospace());
                ui.label(
                    RichText::new(value)
                        .monospace()
                        .strong()
                        .color(theme::WARNING),
                );
                ui.end_row();
            }
        });
    ui.add_space(4.0);
}

/// One attempt of the timeline; the newest is open.
fn attempt_ui(ui: &mut Ui, number: usize, attempt: &Attempt, open: bool) {
    let (outcome, color) = match (attempt.status_code, &attempt.error) {
        (Some(code @ 200..=299), _) => (code.to_string(), theme::SUCCESS),
        (Some(code), _) => (code.to_string(), theme::FAILURE),
        (None, _) => ("no answer".to_owned(), theme::FAILURE),
    };
    let title = RichText::new(format!(
        "#{number} · {outcome} · {} · {} ms",
        widgets::time(attempt.started_at),
        attempt.duration_ms
    ))
    .color(color);
    egui::CollapsingHeader::new(title)
        .id_salt(("attempt", number))
        .default_open(open)
        .show(ui, |ui| {
            if let Some(error) = &attempt.error {
                ui.label(RichText::new(error).color(theme::FAILURE));
            }
            if let Some(body) = attempt.response_body.as_deref().filter(|b| !b.is_empty()) {
                ui.horizontal(|ui| {
                    ui.label(RichText::new("Response body").weak());
                    copy_button(ui, body);
                });
                let language = if body.trim_start().starts_with(['{', '[']) {
                    "json"
                } else {
                    "txt"
                };
                code_ui(ui, body, language);
            }
            headers_ui(
                ui,
                ("request_headers", number),
                "Request headers",
                &attempt.request_headers,
            );
            headers_ui(
                ui,
                ("response_headers", number),
                "Response headers",
                &attempt.response_headers,
            );
        });
}

fn headers_ui(
    ui: &mut Ui,
    id: (&str, usize),
    title: &str,
    headers: &std::collections::BTreeMap<String, String>,
) {
    if headers.is_empty() {
        return;
    }
    egui::CollapsingHeader::new(title)
        .id_salt(id)
        .show(ui, |ui| {
            let text: String = headers
                .iter()
                .map(|(name, value)| format!("{name}: {value}\n"))
                .collect();
            copy_button(ui, &text);
            ui.label(RichText::new(text.trim_end()).monospace().small());
        });
}

fn code_ui(ui: &mut Ui, code: &str, language: &str) {
    let theme = CodeTheme::from_style(ui.style());
    code_frame(ui, |ui| code_view_ui(ui, &theme, code, language));
}

/// The background code is drawn on, the width of the inspector.
fn code_frame<R>(ui: &mut Ui, add_contents: impl FnOnce(&mut Ui) -> R) -> R {
    egui::Frame::new()
        .fill(ui.visuals().extreme_bg_color)
        .inner_margin(6.0)
        .corner_radius(4.0)
        .show(ui, |ui| {
            ui.set_width(ui.available_width());
            add_contents(ui)
        })
        .inner
}

fn copy_button(ui: &mut Ui, text: &str) {
    if ui
        .small_button("Copy")
        .on_hover_text("Copy to the clipboard")
        .clicked()
    {
        ui.ctx().copy_text(text.to_owned());
    }
}
