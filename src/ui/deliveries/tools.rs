//! Two small windows: "Recover failed since…" (resend one webhook's failed deliveries
//! since a time) and "Export…" (the filtered deliveries to a CSV or JSON file). They draw
//! and hand back a [`ToolAsk`]; the view turns it into a command.

use std::path::PathBuf;

use chrono::{DateTime, TimeDelta, Utc};
use egui::{RichText, Ui};

use super::super::backend::ListTag;
use super::super::remote::Remote;
use super::super::{theme, widgets};
use crate::export::ExportFormat;

pub enum ToolAsk {
    Close,
    Recover {
        webhook_id: String,
        name: String,
        since: DateTime<Utc>,
    },
    PickExportPath {
        suggested: PathBuf,
    },
    Export {
        format: ExportFormat,
        path: PathBuf,
    },
}

const RECOVER_SPANS: [(&str, i64); 4] = [
    ("the last hour", 1),
    ("the last 24 hours", 24),
    ("the last 3 days", 72),
    ("the last 7 days", 168),
];

pub struct RecoverForm {
    webhook_id: Option<String>,
    /// Hours back.
    hours: i64,
    error: Option<String>,
    sent: bool,
}

impl RecoverForm {
    pub fn new(webhook_id: Option<String>, remote: &Remote) -> Self {
        // With one webhook there is nothing to choose.
        let only = match remote.webhooks.as_deref() {
            Some([only]) => Some(only.id.clone()),
            _ => None,
        };
        Self {
            webhook_id: webhook_id.or(only),
            hours: 24,
            error: None,
            sent: false,
        }
    }

    pub fn failed(&mut self, error: String) {
        self.sent = false;
        self.error = Some(error);
    }

    pub fn window(&mut self, ctx: &egui::Context, remote: &Remote) -> Option<ToolAsk> {
        let mut ask = None;
        let mut open = true;
        egui::Window::new("Recover failed deliveries")
            .collapsible(false)
            .resizable(false)
            .open(&mut open)
            .show(ctx, |ui| {
                ui.label("Resend every failed delivery of one webhook created since a time.");
                ui.add_space(6.0);
                egui::Grid::new("recover_form")
                    .num_columns(2)
                    .spacing([12.0, 6.0])
                    .show(ui, |ui| {
                        let label = ui.label("Webhook");
                        let shown = self
                            .webhook_id
                            .as_deref()
                            .map_or("choose…", |id| remote.webhook_name(id).unwrap_or(id))
                            .to_owned();
                        ui.vertical(|ui| {
                            egui::ComboBox::from_id_salt("recover_webhook")
                                .selected_text(shown)
                                .show_ui(ui, |ui| {
                                    for webhook in remote.webhooks.iter().flatten() {
                                        ui.selectable_value(
                                            &mut self.webhook_id,
                                            Some(webhook.id.clone()),
                                            &webhook.name,
                                        );
                                    }
                                })
                                .response
                                .labelled_by(label.id);
                            widgets::field_error_ui(ui, self.error.as_deref());
                        });
                        ui.end_row();
                        let label = ui.label("Since");
                        let shown = RECOVER_SPANS
                            .iter()
                            .find(|(_, hours)| *hours == self.hours)
                            .map_or("", |(text, _)| text);
                        egui::ComboBox::from_id_salt("recover_since")
                            .selected_text(shown)
                            .show_ui(ui, |ui| {
                                for (text, hours) in RECOVER_SPANS {
                                    ui.selectable_value(&mut self.hours, hours, text);
                                }
                            })
                            .response
                            .labelled_by(label.id);
                        ui.end_row();
                    });
                ui.add_space(6.0);
                ui.horizontal(|ui| {
                    let recover = egui::Button::new(RichText::new("↻ Recover").strong());
                    if ui.add_enabled(!self.sent, recover).clicked() {
                        match &self.webhook_id {
                            None => self.error = Some("Choose a webhook".to_owned()),
                            Some(id) => {
                                self.error = None;
                                self.sent = true;
                                ask = Some(ToolAsk::Recover {
                                    webhook_id: id.clone(),
                                    name: remote.webhook_name(id).unwrap_or(id).to_owned(),
                                    since: Utc::now() - TimeDelta::hours(self.hours),
                                });
                            }
                        }
                    }
                    if self.sent {
                        ui.spinner();
                    }
                    if ui.button("Cancel").clicked() {
                        ask = Some(ToolAsk::Close);
                    }
                });
            });
        if !open {
            ask = Some(ToolAsk::Close);
        }
        ask
    }
}

pub struct ExportForm {
    format: ExportFormat,
    path: String,
    error: Option<String>,
    running: bool,
    done: Option<String>,
}

impl ExportForm {
    pub fn new(list: ListTag) -> Self {
        let dir = directories::UserDirs::new()
            .and_then(|dirs| dirs.download_dir().map(PathBuf::from))
            .or_else(|| std::env::current_dir().ok())
            .unwrap_or_default();
        let kind = if list == ListTag::Failed {
            "failed-deliveries"
        } else {
            "deliveries"
        };
        let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S");
        let path = dir.join(format!("hookpanel-{kind}-{stamp}.csv"));
        Self {
            format: ExportFormat::Csv,
            path: path.display().to_string(),
            error: None,
            running: false,
            done: None,
        }
    }

    pub fn set_path(&mut self, path: PathBuf) {
        self.path = path.display().to_string();
        self.error = None;
    }

    pub fn finished(&mut self, result: &Result<usize, String>) {
        self.running = false;
        match result {
            Ok(count) => {
                self.done = Some(format!("✔ Exported {count} deliveries to {}", self.path));
                self.error = None;
            }
            Err(error) => self.error = Some(error.clone()),
        }
    }

    /// The path with its extension following the chosen format.
    fn switch_extension(&mut self) {
        let path = PathBuf::from(&self.path);
        if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("csv" | "json")
        ) {
            self.path = path
                .with_extension(self.format.extension())
                .display()
                .to_string();
        }
    }

    fn checked_path(&self) -> Result<PathBuf, String> {
        let path = PathBuf::from(self.path.trim());
        if self.path.trim().is_empty() {
            return Err("Choose where to save the file".to_owned());
        }
        if path.is_dir() {
            return Err("That is a folder; add a file name".to_owned());
        }
        match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() && !dir.is_dir() => {
                Err(format!("The folder {} does not exist", dir.display()))
            }
            _ => Ok(path),
        }
    }

    pub fn window(&mut self, ctx: &egui::Context) -> Option<ToolAsk> {
        let mut ask = None;
        let mut open = true;
        egui::Window::new("Export deliveries")
            .collapsible(false)
            .resizable(false)
            .open(&mut open)
            .show(ctx, |ui| {
                ui.label("Every delivery matching the current filter, newest first.");
                ui.add_space(6.0);
                ui.horizontal(|ui| {
                    ui.label("Format");
                    for format in ExportFormat::ALL {
                        if ui
                            .radio_value(&mut self.format, format, format.label())
                            .changed()
                        {
                            self.switch_extension();
                        }
                    }
                });
                self.path_ui(ui, &mut ask);
                ui.add_space(6.0);
                ui.horizontal(|ui| {
                    let export = egui::Button::new(RichText::new("Export").strong());
                    if ui.add_enabled(!self.running, export).clicked() {
                        match self.checked_path() {
                            Ok(path) => {
                                self.error = None;
                                self.done = None;
                                self.running = true;
                                ask = Some(ToolAsk::Export {
                                    format: self.format,
                                    path,
                                });
                            }
                            Err(error) => self.error = Some(error),
                        }
                    }
                    if self.running {
                        ui.spinner();
                    }
                    if ui.button("Close").clicked() {
                        ask = Some(ToolAsk::Close);
                    }
                });
                if let Some(done) = &self.done {
                    ui.label(RichText::new(done).color(theme::SUCCESS));
                }
            });
        if !open {
            ask = Some(ToolAsk::Close);
        }
        ask
    }

    fn path_ui(&mut self, ui: &mut Ui, ask: &mut Option<ToolAsk>) {
        ui.horizontal(|ui| {
            let label = ui.label("File");
            ui.add(egui::TextEdit::singleline(&mut self.path).desired_width(360.0))
                .labelled_by(label.id);
            if ui
                .button("Browse…")
                .on_hover_text("Choose with the system's save dialog")
                .clicked()
            {
                *ask = Some(ToolAsk::PickExportPath {
                    suggested: PathBuf::from(&self.path),
                });
            }
        });
        widgets::field_error_ui(ui, self.error.as_deref());
    }
}
