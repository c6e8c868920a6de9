//! The local test inbox: what a test endpoint of the embedded service received, each with
//! whether its signature verified.

use egui::{RichText, Ui};

use super::backend::Command;
use super::commands::Commands;
use super::remote::Remote;
use super::{theme, widgets};
use crate::client::ClientError;
use crate::server::inbox::{InboxMessage, InboxMessages};

#[derive(Default)]
pub struct InboxView {
    name: Option<String>,
    messages: Vec<InboxMessage>,
    error: Option<String>,
}

impl InboxView {
    pub fn open(&mut self, name: String) {
        self.name = Some(name);
        self.messages.clear();
        self.error = None;
    }

    pub fn refresh(&self, commands: &mut Commands) {
        if let Some(name) = &self.name {
            commands.send(Command::LoadInbox { name: name.clone() });
        }
    }

    pub fn handle(&mut self, name: &str, result: Result<InboxMessages, ClientError>) {
        if self.name.as_deref() != Some(name) {
            return;
        }
        match result {
            Ok(messages) => {
                self.messages = messages.items;
                self.error = None;
            }
            Err(err) => self.error = Some(err.to_string()),
        }
    }

    /// The inboxes of this service that webhooks point at.
    fn known_inboxes(remote: &Remote, base_url: &str) -> Vec<String> {
        let prefix = format!("{base_url}/inbox/");
        remote
            .webhooks
            .iter()
            .flatten()
            .filter_map(|w| w.url.strip_prefix(&prefix).map(str::to_owned))
            .collect()
    }

    pub fn ui(&mut self, ui: &mut Ui, remote: &Remote, base_url: &str, commands: &mut Commands) {
        let known = Self::known_inboxes(remote, base_url);
        if self.name.is_none()
            && let Some(first) = known.first()
        {
            self.open(first.clone());
            self.refresh(commands);
        }
        egui::CentralPanel::default().show(ui, |ui| {
            let Some(name) = &self.name else {
                ui.add_space(24.0);
                ui.vertical_centered(|ui| {
                    ui.label(RichText::new("No test endpoint open").heading());
                    ui.label("A test endpoint is a receiver hosted by the local service: it records what arrives and checks the signature.");
                    if ui.button(RichText::new("Create a test endpoint").strong()).clicked() {
                        commands.send(Command::CreateTestEndpoint { base_url: base_url.to_owned() });
                    }
                });
                return;
            };
            let mut chosen = None;
            ui.horizontal(|ui| {
                ui.heading(format!("Inbox {name}"));
                ui.label(RichText::new(format!("{base_url}/inbox/{name}")).monospace().weak());
                if known.len() > 1 {
                    ui.separator();
                    for other in known.iter().filter(|other| *other != name) {
                        if ui.small_button(other).clicked() {
                            chosen = Some(other.clone());
                        }
                    }
                }
            });
            if let Some(other) = chosen {
                self.open(other);
                self.refresh(commands);
                return;
            }
            if let Some(error) = &self.error {
                ui.label(RichText::new(error).color(theme::FAILURE));
            }
            if self.messages.is_empty() {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label("Waiting for a delivery…");
                });
                return;
            }
            egui::ScrollArea::vertical().show(ui, |ui| {
                for (index, message) in self.messages.iter().enumerate() {
                    egui::Frame::group(ui.style()).show(ui, |ui| {
                        ui.set_width(ui.available_width());
                        ui.horizontal(|ui| {
                            if message.verified {
                                ui.label(RichText::new("✔ signature verified").color(theme::SUCCESS).strong());
                            } else {
                                ui.label(RichText::new("✖ not verified").color(theme::FAILURE).strong());
                            }
                            ui.label(widgets::time(message.received_at));
                            ui.label(RichText::new(message.event_type.as_deref().unwrap_or("?")).monospace());
                            ui.label(RichText::new(message.event_id.as_deref().unwrap_or_default()).monospace().weak());
                        });
                        if let Some(error) = &message.verify_error {
                            ui.label(RichText::new(error).color(theme::FAILURE));
                        }
                        egui::CollapsingHeader::new("Body").id_salt(("inbox_body", index)).show(ui, |ui| {
                            let mut shown: &str = &message.body;
                            ui.add(egui::TextEdit::multiline(&mut shown).code_editor().desired_width(f32::INFINITY));
                        });
                    });
                }
            });
        });
    }
}
