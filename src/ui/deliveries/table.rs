//! The deliveries table. It only draws: what the user did comes back as a
//! [`TableOutput`] for the view to act on.

use std::collections::{BTreeSet, HashSet};

use egui::{RichText, Ui};
use egui_extras::{Column, TableBuilder};

use super::super::remote::Remote;
use super::super::{theme, widgets};
use super::rows::{Rows, SortColumn};
use crate::api::DeliveryStatus;

/// Row height without spacing.
pub const ROW_HEIGHT: f32 = 26.0;

/// What the table shows besides the rows.
pub struct TableState<'a> {
    pub rows: &'a Rows,
    pub picked: &'a BTreeSet<String>,
    pub inspected: Option<&'a str>,
    pub resending: &'a HashSet<String>,
    /// Set once to move the scroll position (rows were added above the visible ones).
    pub scroll_to: Option<f32>,
    /// Scroll so that this display row is visible (keyboard selection).
    pub reveal_row: Option<usize>,
}

#[derive(Default)]
pub struct TableOutput {
    pub resend: Option<String>,
    /// A row clicked, with the modifiers held.
    pub clicked: Option<(usize, egui::Modifiers)>,
    pub double_clicked: Option<usize>,
    pub sort_by: Option<SortColumn>,
    /// The last loaded row came into view.
    pub reached_end: bool,
    /// The vertical scroll position after this frame.
    pub scroll_offset: f32,
}

const COLUMNS: [(&str, Option<SortColumn>); 9] = [
    ("", None),
    ("Time", Some(SortColumn::Time)),
    ("Status", Some(SortColumn::Status)),
    ("Webhook", Some(SortColumn::Webhook)),
    ("Event", Some(SortColumn::Event)),
    ("Code", Some(SortColumn::Code)),
    ("Tries", Some(SortColumn::Attempts)),
    ("Duration", Some(SortColumn::Duration)),
    ("Next retry / error", None),
];

pub fn table_ui(ui: &mut Ui, state: &TableState<'_>, remote: &Remote) -> TableOutput {
    let mut out = TableOutput::default();
    let sort = state.rows.sort();
    let mut builder = TableBuilder::new(ui)
        .striped(true)
        .sense(egui::Sense::click())
        .cell_layout(egui::Layout::left_to_right(egui::Align::Center))
        // Narrow enough that beside the open inspector (440 of a 1 280 window) the error
        // column still starts with the reason; its whole text shows on hover.
        .column(Column::exact(86.0))
        .column(Column::initial(80.0).resizable(true))
        .column(Column::initial(84.0).resizable(true))
        .column(Column::initial(112.0).resizable(true).clip(true))
        .column(Column::initial(136.0).resizable(true).clip(true))
        .column(Column::initial(44.0).resizable(true))
        .column(Column::initial(40.0).resizable(true))
        .column(Column::initial(64.0).resizable(true))
        .column(Column::remainder().at_least(120.0).clip(true));
    if let Some(offset) = state.scroll_to {
        builder = builder.vertical_scroll_offset(offset);
    }
    if let Some(row) = state.reveal_row {
        builder = builder.scroll_to_row(row, None);
    }
    let scroll = builder
        .header(22.0, |mut header| {
            for (title, column) in COLUMNS {
                header.col(|ui| {
                    let Some(column) = column else {
                        ui.strong(title);
                        return;
                    };
                    let arrow = match (sort.column == column, sort.descending) {
                        (true, true) => " ⏷",
                        (true, false) => " ⏶",
                        (false, _) => "",
                    };
                    let text = RichText::new(format!("{title}{arrow}")).strong();
                    if ui
                        .add(egui::Button::new(text).frame(false))
                        .on_hover_text("Sort by this column")
                        .clicked()
                    {
                        out.sort_by = Some(column);
                    }
                });
            }
        })
        .body(|body| {
            let total = state.rows.len();
            body.rows(ROW_HEIGHT, total, |mut row| {
                let index = row.index();
                let Some(delivery) = state.rows.get(index) else {
                    return;
                };
                if index + 1 == total {
                    out.reached_end = true;
                }
                row.set_selected(
                    state.picked.contains(&delivery.id)
                        || state.inspected == Some(delivery.id.as_str()),
                );
                row.col(|ui| {
                    let busy = state.resending.contains(&delivery.id);
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
                        out.resend = Some(delivery.id.clone());
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
                row.col(|ui| widgets::cell(ui, RichText::new(&delivery.event_type).monospace()));
                row.col(|ui| {
                    let code = delivery
                        .status_code
                        .map_or_else(|| "—".to_owned(), |c| c.to_string());
                    widgets::cell(ui, code);
                });
                row.col(|ui| widgets::cell(ui, delivery.attempts.to_string()));
                row.col(|ui| {
                    let duration = delivery
                        .last_duration_ms
                        .map_or_else(|| "—".to_owned(), |ms| format!("{ms} ms"));
                    widgets::cell(ui, duration);
                });
                row.col(
                    |ui| match (&delivery.next_attempt_at, &delivery.last_error) {
                        (Some(next), error) if delivery.status == DeliveryStatus::Retrying => {
                            let error = error.as_deref().unwrap_or_default();
                            let text = format!("next {} · {error}", widgets::time(*next));
                            widgets::cell(ui, RichText::new(text).color(theme::WARNING));
                        }
                        (_, Some(error)) => {
                            widgets::cell(ui, RichText::new(error).color(theme::FAILURE))
                        }
                        _ => {}
                    },
                );
                let response = row.response();
                if response.double_clicked() {
                    out.double_clicked = Some(index);
                } else if response.clicked() {
                    out.clicked = Some((index, response.ctx.input(|i| i.modifiers)));
                }
            });
        });
    out.scroll_offset = scroll.state.clamped_offset().y;
    out
}
