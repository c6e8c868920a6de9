//! The confirmations: deleting a webhook, rotating its secret, ending the grace period of
//! its previous secrets.

use egui::RichText;

use super::super::backend::Command;
use super::super::commands::Commands;
use super::super::theme;
use super::{Confirm, WebhooksView};
use crate::server::MAX_GRACE_SECONDS;

impl WebhooksView {
    pub(super) fn confirm_ui(&mut self, ctx: &egui::Context, commands: &mut Commands) {
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
                Confirm::EndGrace { id, name, previous } => {
                    let secrets = if *previous == 1 { "secret" } else { "secrets" };
                    ui.heading(format!("End the grace period of {name}'s previous {secrets} now?"));
                    ui.label("From the next attempt, deliveries carry the current secret's signature alone. A receiver that still checks with a previous secret will reject them.");
                    ui.add_space(8.0);
                    ui.horizontal(|ui| {
                        if ui.button(RichText::new("End grace now").color(theme::WARNING).strong()).clicked() {
                            commands.send(Command::ExpirePreviousSecrets { id: id.clone(), name: name.clone() });
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
