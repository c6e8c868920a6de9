//! The secret-once modal: after create and rotate it shows the new signing secret, says
//! whether the OS keychain has it, and cannot be reopened once closed. Dropping it zeroizes
//! the secret.

use egui::RichText;

use super::backend::{IssuedSecret, SecretReason};
use super::{theme, widgets};

pub struct SecretModal {
    issued: IssuedSecret,
    copied: bool,
    /// Without a keychain, closing needs this confirmation.
    acknowledged: bool,
}

impl SecretModal {
    pub fn new(issued: IssuedSecret) -> Self {
        Self {
            issued,
            copied: false,
            acknowledged: false,
        }
    }

    /// Draws the modal; returns false once the user closed it.
    pub fn ui(&mut self, ctx: &egui::Context) -> bool {
        let mut open = true;
        let saved = self.issued.saved.is_ok();
        let response = egui::Modal::new(egui::Id::unique("secret_once")).show(ctx, |ui| {
            ui.set_width(560.0);
            let title = match &self.issued.reason {
                SecretReason::Created => format!("Signing secret for {}", self.issued.webhook_name),
                SecretReason::Rotated { .. } => format!("New signing secret for {}", self.issued.webhook_name),
            };
            ui.heading(title);
            ui.label("This is the only time the secret is shown. Give it to the receiver so it can verify signatures.");
            if let SecretReason::Rotated { previous_expires_at } = &self.issued.reason {
                ui.label(format!(
                    "The previous secret keeps signing until {} — switch the receiver before then.",
                    widgets::time(*previous_expires_at)
                ));
            }
            ui.add_space(8.0);
            let label = ui.label("Secret (shown once)");
            let mut shown: &str = self.issued.secret.as_str();
            ui.add(
                egui::TextEdit::singleline(&mut shown)
                    .font(egui::TextStyle::Monospace)
                    .desired_width(f32::INFINITY),
            )
            .labelled_by(label.id);
            ui.horizontal(|ui| {
                if ui.button("Copy").clicked() {
                    ui.ctx().copy_text(self.issued.secret.as_str().to_owned());
                    self.copied = true;
                }
                if self.copied {
                    ui.label(RichText::new("Copied").color(theme::SUCCESS));
                }
            });
            ui.add_space(8.0);
            match &self.issued.saved {
                Ok(()) => {
                    ui.horizontal(|ui| {
                        widgets::status_dot(ui, theme::SUCCESS);
                        ui.label("Saved to the OS keychain (service \"hookpanel\").");
                    });
                }
                Err(err) => {
                    ui.label(RichText::new(err.to_string()).color(theme::FAILURE).strong());
                    ui.checkbox(&mut self.acknowledged, "I have copied the secret somewhere safe");
                }
            }
            ui.add_space(8.0);
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                let can_close = saved || self.acknowledged;
                if ui.add_enabled(can_close, egui::Button::new("Close")).clicked() {
                    open = false;
                }
            });
        });
        if response.should_close() && (saved || self.acknowledged) {
            open = false;
        }
        open
    }
}
