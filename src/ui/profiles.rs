//! The profile manager: remote services the panel can manage. Name and base URL are
//! remembered; the admin key is typed once and kept in the OS keychain.

use egui::RichText;
use zeroize::Zeroizing;

use super::connection::{RemoteProfile, cleartext_warning};
use super::{theme, widgets};
use crate::keychain::LOCAL_PROFILE;

/// What the user asked the profile manager for.
pub enum ProfileAction {
    /// Save (add or replace) and connect; `admin_key` is `None` to keep the stored one.
    Save {
        profile: RemoteProfile,
        admin_key: Option<Zeroizing<String>>,
        /// The profile's name before this edit, when the edit renames it: its entry is
        /// replaced, and its admin key moves to the new name.
        renamed_from: Option<String>,
    },
    Remove(String),
}

#[derive(Default)]
pub struct ProfilesView {
    open: bool,
    form: ProfileForm,
}

#[derive(Default)]
struct ProfileForm {
    /// The profile being edited, by its name before the edit.
    editing: Option<String>,
    name: String,
    base_url: String,
    admin_key: Zeroizing<String>,
    /// The user accepts that the admin key travels unencrypted (plain http beyond
    /// loopback).
    cleartext_confirmed: bool,
    error: Option<(&'static str, String)>,
}

impl ProfileForm {
    fn edit(profile: &RemoteProfile) -> Self {
        Self {
            editing: Some(profile.name.clone()),
            name: profile.name.clone(),
            base_url: profile.base_url.clone(),
            ..Self::default()
        }
    }

    fn error_for(&self, field: &str) -> Option<&str> {
        self.error
            .as_ref()
            .filter(|(named, _)| *named == field)
            .map(|(_, message)| message.as_str())
    }

    /// Checks the form; on success the action to take.
    fn submit(&mut self, profiles: &[RemoteProfile]) -> Option<ProfileAction> {
        let name = self.name.trim().to_owned();
        let base_url = self.base_url.trim().trim_end_matches('/').to_owned();
        let taken = profiles
            .iter()
            .any(|p| p.name == name && self.editing.as_deref() != Some(name.as_str()));
        self.error = if name.is_empty() {
            Some(("name", "Give the profile a name".to_owned()))
        } else if name == LOCAL_PROFILE || name.contains('/') {
            Some((
                "name",
                format!("\"{LOCAL_PROFILE}\" and names with / are reserved"),
            ))
        } else if taken {
            Some(("name", "Another profile has this name".to_owned()))
        } else if let Err(err) = url::Url::parse(&base_url)
            .map_err(|err| err.to_string())
            .and_then(|url| {
                matches!(url.scheme(), "http" | "https")
                    .then_some(())
                    .ok_or_else(|| "use http:// or https://".to_owned())
            })
        {
            Some(("base_url", format!("Not a service URL: {err}")))
        } else if cleartext_warning(&base_url).is_some() && !self.cleartext_confirmed {
            Some((
                "base_url",
                "http:// sends the admin key unencrypted: use https://, or confirm below"
                    .to_owned(),
            ))
        } else if self.admin_key.trim().is_empty() && self.editing.is_none() {
            Some((
                "admin_key",
                "Paste the admin key the service printed on its first start".to_owned(),
            ))
        } else {
            None
        };
        if self.error.is_some() {
            return None;
        }
        let admin_key = (!self.admin_key.trim().is_empty())
            .then(|| Zeroizing::new(self.admin_key.trim().to_owned()));
        self.admin_key = Zeroizing::default();
        let renamed_from = self.editing.clone().filter(|old| *old != name);
        Some(ProfileAction::Save {
            profile: RemoteProfile { name, base_url },
            admin_key,
            renamed_from,
        })
    }
}

impl ProfilesView {
    pub fn open(&mut self) {
        self.open = true;
        self.form = ProfileForm::default();
    }

    /// Draws the manager when open; returns what the user asked for.
    pub fn ui(&mut self, ctx: &egui::Context, profiles: &[RemoteProfile]) -> Option<ProfileAction> {
        if !self.open {
            return None;
        }
        let mut action = None;
        let mut close = false;
        let response = egui::Modal::new(egui::Id::unique("profiles")).show(ctx, |ui| {
            ui.set_width(560.0);
            ui.heading("Services");
            ui.label("The panel manages its own embedded service, or a remote `hookpanel serve`.");
            ui.add_space(6.0);
            if profiles.is_empty() {
                ui.label(RichText::new("No remote profiles yet.").weak());
            }
            for profile in profiles {
                ui.horizontal(|ui| {
                    ui.label(RichText::new(&profile.name).strong());
                    ui.label(RichText::new(&profile.base_url).monospace().weak());
                    ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                        if ui
                            .button(RichText::new("Remove").color(theme::FAILURE))
                            .clicked()
                        {
                            action = Some(ProfileAction::Remove(profile.name.clone()));
                        }
                        if ui.button("Edit").clicked() {
                            self.form = ProfileForm::edit(profile);
                        }
                    });
                });
            }
            ui.separator();
            let form = &mut self.form;
            ui.label(
                RichText::new(if form.editing.is_some() {
                    "Edit profile"
                } else {
                    "Add a remote service"
                })
                .strong(),
            );
            egui::Grid::new("profile_form")
                .num_columns(2)
                .spacing([12.0, 6.0])
                .show(ui, |ui| {
                    let label = ui.label("Profile name");
                    ui.vertical(|ui| {
                        ui.add(egui::TextEdit::singleline(&mut form.name).hint_text("production"))
                            .labelled_by(label.id);
                        widgets::field_error_ui(ui, form.error_for("name"));
                    });
                    ui.end_row();
                    let label = ui.label("Base URL");
                    ui.vertical(|ui| {
                        ui.add(
                            egui::TextEdit::singleline(&mut form.base_url)
                                .hint_text("https://hooks.example.com"),
                        )
                        .labelled_by(label.id);
                        widgets::field_error_ui(ui, form.error_for("base_url"));
                        if cleartext_warning(form.base_url.trim()).is_some() {
                            ui.checkbox(
                                &mut form.cleartext_confirmed,
                                RichText::new("Send the admin key unencrypted to this host")
                                    .color(theme::WARNING),
                            );
                        }
                    });
                    ui.end_row();
                    let label = ui.label("Admin key");
                    ui.vertical(|ui| {
                        let hint = if form.editing.is_some() {
                            "leave empty to keep the saved key"
                        } else {
                            "hpk_…"
                        };
                        ui.add(
                            egui::TextEdit::singleline(&mut *form.admin_key)
                                .password(true)
                                .hint_text(hint),
                        )
                        .labelled_by(label.id);
                        widgets::field_error_ui(ui, form.error_for("admin_key"));
                        ui.label(
                            RichText::new(
                                "Kept in the OS keychain, never in the panel's settings.",
                            )
                            .small()
                            .weak(),
                        );
                    });
                    ui.end_row();
                });
            ui.add_space(6.0);
            ui.horizontal(|ui| {
                if ui
                    .button(RichText::new("Save and connect").strong())
                    .clicked()
                    && let Some(save) = form.submit(profiles)
                {
                    action = Some(save);
                    close = true;
                }
                if ui.button("Close").clicked() {
                    close = true;
                }
            });
        });
        if close || response.should_close() {
            self.open = false;
            self.form = ProfileForm::default();
        }
        action
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(base_url: &str) -> ProfileForm {
        ProfileForm {
            name: "staging".to_owned(),
            base_url: base_url.to_owned(),
            admin_key: Zeroizing::new("hpk_0123456789abcdefghijklmnopqrstuv".to_owned()),
            ..ProfileForm::default()
        }
    }

    #[test]
    fn plain_http_beyond_loopback_needs_an_explicit_confirmation() {
        let mut cleartext = form("http://hooks.internal.example:8080");
        assert!(cleartext.submit(&[]).is_none());
        let (field, message) = cleartext.error.clone().expect("an error");
        assert_eq!(field, "base_url");
        assert!(message.contains("unencrypted"), "{message}");
        cleartext.cleartext_confirmed = true;
        assert!(matches!(
            cleartext.submit(&[]),
            Some(ProfileAction::Save { .. })
        ));
        for fine in ["https://hooks.example.com", "http://127.0.0.1:8790"] {
            assert!(form(fine).submit(&[]).is_some(), "{fine}");
        }
    }

    #[test]
    fn an_edit_that_changes_the_name_says_which_profile_it_renames() {
        let existing = RemoteProfile {
            name: "staging".to_owned(),
            base_url: "https://hooks.example.com".to_owned(),
        };
        let mut renamed = ProfileForm::edit(&existing);
        renamed.name = "production".to_owned();
        let Some(ProfileAction::Save { renamed_from, .. }) =
            renamed.submit(std::slice::from_ref(&existing))
        else {
            panic!("saved");
        };
        assert_eq!(renamed_from.as_deref(), Some("staging"));
        let mut kept = ProfileForm::edit(&existing);
        let Some(ProfileAction::Save { renamed_from, .. }) = kept.submit(&[existing]) else {
            panic!("saved");
        };
        assert_eq!(renamed_from, None);
    }
}
