//! The secret-once modal: after a webhook is created or its secret rotated, and after an
//! admin key is created, it shows the new secret, says whether the OS keychain has it (or
//! offers to keep an admin key there for a profile), and cannot be reopened once closed.
//! Dropping it zeroizes the secret.

use egui::RichText;

use super::backend::{Command, Hidden, IssuedSecret, Kept, SecretReason};
use super::commands::Commands;
use super::{theme, widgets};
use crate::keychain::KeychainError;

pub struct SecretModal {
    issued: IssuedSecret,
    copied: bool,
    /// Unless the keychain has it, closing needs this confirmation.
    acknowledged: bool,
    /// The remote profiles an admin key may be kept for, and the one chosen.
    profiles: Vec<String>,
    profile: Option<String>,
    /// The profile an admin key is being saved for, until the keychain answers.
    saving: Option<String>,
}

impl SecretModal {
    pub fn new(issued: IssuedSecret, profiles: Vec<String>) -> Self {
        Self {
            issued,
            copied: false,
            acknowledged: false,
            profile: profiles.first().cloned(),
            profiles,
            saving: None,
        }
    }

    /// The keychain's answer to keeping the admin key for `profile`.
    pub fn admin_key_kept(&mut self, profile: &str, result: Result<(), KeychainError>) {
        if self.saving.as_deref() != Some(profile) {
            return;
        }
        self.saving = None;
        self.issued.kept = result.map_or_else(Kept::Failed, |()| Kept::Saved);
    }

    fn title(&self) -> String {
        let name = &self.issued.owner_name;
        match &self.issued.reason {
            SecretReason::Created => format!("Signing secret for {name}"),
            SecretReason::Rotated { .. } => format!("New signing secret for {name}"),
            SecretReason::AdminKey { role } => format!("Admin key {name} ({})", role.as_str()),
        }
    }

    /// Draws the modal; returns false once the user closed it.
    pub fn ui(&mut self, ctx: &egui::Context, commands: &mut Commands) -> bool {
        let mut open = true;
        let is_key = matches!(self.issued.reason, SecretReason::AdminKey { .. });
        let what = if is_key { "key" } else { "secret" };
        let response = egui::Modal::new(egui::Id::unique("secret_once")).show(ctx, |ui| {
            ui.set_width(560.0);
            ui.heading(self.title());
            match &self.issued.reason {
                SecretReason::AdminKey { .. } => {
                    ui.label("This is the only time the key is shown; the service keeps only its hash. Give it to whoever it is for, or keep it for a profile below.");
                }
                SecretReason::Created | SecretReason::Rotated { .. } => {
                    ui.label("This is the only time the secret is shown. Give it to the receiver so it can verify signatures.");
                }
            }
            if let SecretReason::Rotated { previous_expires_at } = &self.issued.reason {
                ui.label(format!(
                    "The previous secret keeps signing until {} — switch the receiver before then.",
                    widgets::time(*previous_expires_at)
                ));
            }
            ui.add_space(8.0);
            let label = ui.label(format!("{} (shown once)", if is_key { "Key" } else { "Secret" }));
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
            match &self.issued.kept {
                Kept::Saved => {
                    ui.horizontal(|ui| {
                        widgets::status_dot(ui, theme::SUCCESS);
                        match &self.profile {
                            Some(profile) if is_key => ui.label(format!(
                                "Kept in the OS keychain as the admin key of profile {profile}."
                            )),
                            _ => ui.label("Saved to the OS keychain (service \"hookpanel\")."),
                        };
                    });
                }
                Kept::Failed(err) => {
                    ui.label(RichText::new(err.to_string()).color(theme::FAILURE).strong());
                    ui.checkbox(&mut self.acknowledged, format!("I have copied the {what} somewhere safe"));
                }
                Kept::Offered => {
                    self.offer_ui(ui, commands);
                    ui.checkbox(&mut self.acknowledged, format!("I have copied the {what} somewhere safe"));
                }
            }
            ui.add_space(8.0);
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                if ui.add_enabled(self.can_close(), egui::Button::new("Close")).clicked() {
                    open = false;
                }
            });
        });
        if response.should_close() && self.can_close() {
            open = false;
        }
        open
    }

    fn can_close(&self) -> bool {
        matches!(self.issued.kept, Kept::Saved) || self.acknowledged
    }

    /// "Keep it in the keychain for profile [..] [Keep]".
    fn offer_ui(&mut self, ui: &mut egui::Ui, commands: &mut Commands) {
        if self.profiles.is_empty() {
            ui.label(
                RichText::new(
                    "To connect with this key from here, add a profile under Profiles… and paste it there.",
                )
                .weak(),
            );
            return;
        }
        ui.horizontal(|ui| {
            ui.label("Keep it in the OS keychain for profile");
            egui::ComboBox::from_id_salt("keep_key_profile")
                .selected_text(self.profile.as_deref().unwrap_or("choose…"))
                .show_ui(ui, |ui| {
                    for profile in &self.profiles {
                        ui.selectable_value(&mut self.profile, Some(profile.clone()), profile);
                    }
                });
            if self.saving.is_some() {
                ui.spinner();
            } else if ui
                .button("Keep")
                .on_hover_text(
                    "The profile then connects with this key; the key it had is replaced",
                )
                .clicked()
                && let Some(profile) = self.profile.clone()
            {
                commands.send(Command::KeepAdminKey {
                    profile: profile.clone(),
                    key: Hidden(self.issued.secret.clone()),
                });
                self.saving = Some(profile);
            }
        });
    }
}
