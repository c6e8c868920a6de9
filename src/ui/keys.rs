//! The Keys view: the service's admin keys with their role and last use; creating one
//! (shown once, in the secret-once modal) and revoking one, after a confirmation.

use egui::{RichText, Ui};
use egui_extras::{Column, TableBuilder};

use super::backend::Command;
use super::commands::Commands;
use super::remote::Remote;
use super::{theme, widgets};
use crate::api::{AdminKey, AdminKeyIn, Role};
use crate::client::ClientError;

#[derive(Default)]
pub struct KeysView {
    keys: Option<Vec<AdminKey>>,
    /// Why the keys could not be loaded.
    error: Option<String>,
    form: NewKeyForm,
    /// The key whose revocation waits for a confirmation: id and name.
    confirm: Option<(String, String)>,
}

struct NewKeyForm {
    name: String,
    role: Role,
    submitting: bool,
    /// The service's complaint about the name, shown beside it.
    name_error: Option<String>,
    /// Any other reason the key was not created.
    error: Option<String>,
}

impl Default for NewKeyForm {
    fn default() -> Self {
        Self {
            name: String::new(),
            // The least a new key may do; an admin key is a deliberate choice.
            role: Role::Operator,
            submitting: false,
            name_error: None,
            error: None,
        }
    }
}

impl KeysView {
    pub fn loaded(&mut self, result: Result<Vec<AdminKey>, ClientError>) {
        match result {
            Ok(keys) => {
                self.keys = Some(keys);
                self.error = None;
            }
            Err(err) => self.error = Some(err.to_string()),
        }
    }

    /// The key asked for was created (and is shown in the secret-once modal).
    pub fn created(&mut self) {
        self.form = NewKeyForm::default();
    }

    pub fn create_failed(&mut self, error: ClientError) {
        self.form.submitting = false;
        match &error {
            ClientError::Api {
                field: Some(field), ..
            } if field == "name" => self.form.name_error = Some(error.to_string()),
            _ => self.form.error = Some(error.to_string()),
        }
    }

    pub fn ui(&mut self, ui: &mut Ui, remote: &Remote, commands: &mut Commands) {
        let refused = remote.cannot_change();
        ui.heading("Admin keys");
        ui.label(
            RichText::new(
                "Who may call this service. An operator reads everything, resends and sends \
                 tests; an admin may also change webhooks, secrets and keys. Every change is \
                 recorded under the name of the key that made it (see Activity).",
            )
            .weak(),
        );
        ui.add_space(6.0);
        self.form_ui(ui, refused.as_deref(), commands);
        ui.add_space(6.0);
        ui.separator();
        if let Some(error) = &self.error {
            widgets::problem_ui(ui, "The keys could not be loaded", error);
            return;
        }
        let Some(keys) = &self.keys else {
            ui.spinner();
            return;
        };
        let mine = remote.caller.as_ref().map(|caller| caller.id.as_str());
        if let Some(revoke) = table_ui(ui, keys, mine, refused.as_deref()) {
            self.confirm = Some(revoke);
        }
        self.confirm_ui(ui.ctx(), commands);
    }

    fn form_ui(&mut self, ui: &mut Ui, refused: Option<&str>, commands: &mut Commands) {
        let form = &mut self.form;
        ui.horizontal(|ui| {
            let label = ui.label("New key for");
            let name = ui
                .add_enabled(
                    refused.is_none(),
                    egui::TextEdit::singleline(&mut form.name)
                        .hint_text("alice, billing-service…")
                        .desired_width(220.0),
                )
                .labelled_by(label.id);
            if name.changed() {
                form.name_error = None;
                form.error = None;
            }
            let label = ui.label("Role");
            ui.add_enabled_ui(refused.is_none(), |ui| {
                egui::ComboBox::from_id_salt("new_key_role")
                    .selected_text(form.role.as_str())
                    .show_ui(ui, |ui| {
                        ui.selectable_value(&mut form.role, Role::Operator, "operator")
                            .on_hover_text("Reads, resends and sends tests");
                        ui.selectable_value(&mut form.role, Role::Admin, "admin")
                            .on_hover_text("Everything, keys included");
                    })
                    .response
                    .labelled_by(label.id);
            });
            let submit = name.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
            if form.submitting {
                ui.spinner();
            } else if (widgets::action_button(ui, refused, "Create key").clicked() || submit)
                && refused.is_none()
            {
                form.submitting = true;
                form.name_error = None;
                form.error = None;
                commands.send(Command::CreateKey(AdminKeyIn {
                    name: form.name.trim().to_owned(),
                    role: form.role,
                }));
            }
        });
        widgets::field_error_ui(ui, form.name_error.as_deref());
        if let Some(error) = &form.error {
            ui.label(RichText::new(error).color(theme::FAILURE));
        }
    }
}

/// The keys, one a row; the id and name of the key whose "Revoke…" was clicked.
fn table_ui(
    ui: &mut Ui,
    keys: &[AdminKey],
    mine: Option<&str>,
    refused: Option<&str>,
) -> Option<(String, String)> {
    let mut revoke = None;
    {
        let now = chrono::Utc::now();
        let admins = keys.iter().filter(|key| key.role == Role::Admin).count();
        TableBuilder::new(ui)
            .striped(true)
            .cell_layout(egui::Layout::left_to_right(egui::Align::Center))
            .column(Column::initial(220.0).at_least(100.0).resizable(true))
            .column(Column::initial(90.0))
            .column(Column::initial(150.0))
            .column(Column::initial(150.0))
            .column(Column::remainder())
            .header(22.0, |mut header| {
                for title in ["Name", "Role", "Created", "Last used", ""] {
                    header.col(|ui| {
                        ui.strong(title);
                    });
                }
            })
            .body(|body| {
                body.rows(26.0, keys.len(), |mut row| {
                    let key = &keys[row.index()];
                    let is_mine = mine == Some(key.id.as_str());
                    row.col(|ui| {
                        widgets::cell(ui, RichText::new(&key.name).strong());
                        if is_mine {
                            widgets::cell(ui, RichText::new("(this panel)").weak());
                        }
                    });
                    row.col(|ui| {
                        let role = RichText::new(key.role.as_str());
                        widgets::cell(
                            ui,
                            if key.role == Role::Admin {
                                role.color(theme::WARNING)
                            } else {
                                role
                            },
                        );
                    });
                    row.col(|ui| {
                        widgets::cell(ui, widgets::time(key.created_at));
                    });
                    row.col(|ui| match key.last_used_at {
                        Some(at) => {
                            ui.add(
                                egui::Label::new(format!("{} ago", widgets::span(now - at)))
                                    .selectable(false),
                            )
                            .on_hover_text(widgets::time(at));
                        }
                        None => widgets::cell(ui, RichText::new("never").weak()),
                    });
                    row.col(|ui| {
                        let last_admin = key.role == Role::Admin && admins <= 1;
                        let why_not = refused.map(str::to_owned).or_else(|| {
                            last_admin.then(|| {
                                "The last admin key cannot be revoked: create another admin \
                                 key first"
                                    .to_owned()
                            })
                        });
                        if widgets::action_button(ui, why_not.as_deref(), "Revoke…").clicked() {
                            revoke = Some((key.id.clone(), key.name.clone()));
                        }
                    });
                });
            });
    }
    revoke
}

impl KeysView {
    fn confirm_ui(&mut self, ctx: &egui::Context, commands: &mut Commands) {
        let Some((id, name)) = &self.confirm else {
            return;
        };
        let mut done = false;
        let response = egui::Modal::new(egui::Id::unique("revoke_key_confirm")).show(ctx, |ui| {
            ui.set_width(440.0);
            ui.heading(format!("Revoke the key {name}?"));
            ui.label(
                "It is refused from now on, by every replica. Whoever uses it loses access; \
                 what it did stays in the audit log.",
            );
            ui.add_space(8.0);
            ui.horizontal(|ui| {
                if ui
                    .button(
                        RichText::new(format!("Revoke {name}"))
                            .color(theme::FAILURE)
                            .strong(),
                    )
                    .clicked()
                {
                    commands.send(Command::RevokeKey {
                        id: id.clone(),
                        name: name.clone(),
                    });
                    done = true;
                }
                if ui.button("Cancel").clicked() {
                    done = true;
                }
            });
        });
        if done || response.should_close() {
            self.confirm = None;
        }
    }
}
