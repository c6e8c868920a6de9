//! Service ▾: which key seals the signing secrets, how far a rollover has come, and, for
//! the embedded service, "Roll encryption key…" with its confirmation.

use egui::RichText;

use super::remote::Remote;
use super::{theme, widgets};

#[derive(Default)]
pub struct RollConfirm {
    open: bool,
}

impl RollConfirm {
    /// Draws the menu button; true when the roll was confirmed. `cannot_roll` says why
    /// the key cannot be rolled from here, if it cannot.
    pub fn ui(&mut self, ui: &mut egui::Ui, remote: &Remote, cannot_roll: Option<&str>) -> bool {
        ui.menu_button("Service", |ui| {
            match &remote.encryption_key {
                Some(status) => {
                    ui.label(format!("Secrets are sealed with key {}", status.key_id))
                        .on_hover_text("A key's id names it without revealing it");
                    if status.secrets_left_to_reseal > 0 {
                        ui.label(
                            RichText::new(format!(
                                "Re-sealing: {} left under the previous key",
                                status.secrets_left_to_reseal
                            ))
                            .color(theme::WARNING),
                        );
                    }
                }
                None => {
                    ui.label(RichText::new("Encryption key: not known yet").weak());
                }
            }
            let rolling = remote
                .encryption_key
                .as_ref()
                .is_some_and(|status| status.secrets_left_to_reseal > 0);
            let refused = remote.cannot_change();
            let why_not = cannot_roll
                .map(str::to_owned)
                .or(refused)
                .or_else(|| rolling.then(|| "The last roll is still re-sealing".to_owned()));
            if widgets::action_button(ui, why_not.as_deref(), "Roll encryption key…").clicked() {
                self.open = true;
                ui.close();
            }
        });
        self.confirm_ui(ui.ctx())
    }

    fn confirm_ui(&mut self, ctx: &egui::Context) -> bool {
        if !self.open {
            return false;
        }
        let mut confirmed = false;
        let response = egui::Modal::new(egui::Id::unique("roll_key_confirm")).show(ctx, |ui| {
            ui.set_width(480.0);
            ui.heading("Roll the encryption key?");
            ui.label(
                "A new key is made and kept in the OS keychain, and the local service restarts \
                 with it. Every signing secret is then sealed again with the new key, in the \
                 background; the old key stays in the keychain until that has finished, then \
                 it is removed. Webhooks keep their secrets and keep signing throughout.",
            );
            ui.add_space(8.0);
            ui.horizontal(|ui| {
                if ui.button(RichText::new("Roll the key").strong()).clicked() {
                    confirmed = true;
                    self.open = false;
                }
                if ui.button("Cancel").clicked() {
                    self.open = false;
                }
            });
        });
        if response.should_close() {
            self.open = false;
        }
        confirmed
    }
}
