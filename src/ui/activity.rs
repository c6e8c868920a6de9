//! The Activity view: the audit log, newest first, filtered by who, what, which target and
//! since when; a virtualised table that pages on as it is scrolled, each entry linking to
//! the webhook or delivery it changed.

use chrono::{TimeDelta, Utc};
use egui::{RichText, Ui};
use egui_extras::{Column, TableBuilder};

use super::backend::{Command, PageRequest};
use super::commands::Commands;
use super::remote::Remote;
use super::{theme, widgets};
use crate::api::{AuditAction, AuditEntry, AuditPage, AuditQuery};
use crate::client::ClientError;

/// Entries in the newest page, and in each page loaded on scrolling.
const PAGE: u32 = 200;
const ROW_HEIGHT: f32 = 24.0;

/// Where an entry's target leads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Link {
    Webhook(String),
    Delivery(String),
    Keys,
}

impl Link {
    fn of(target_id: &str) -> Option<Self> {
        if target_id.starts_with("wh_") {
            Some(Self::Webhook(target_id.to_owned()))
        } else if target_id.starts_with("dlv_") {
            Some(Self::Delivery(target_id.to_owned()))
        } else if target_id.starts_with("key_") {
            Some(Self::Keys)
        } else {
            None
        }
    }
}

/// How far back the log is read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Since {
    #[default]
    Always,
    Hour,
    Day,
    Week,
    Month,
}

impl Since {
    const ALL: [Self; 5] = [Self::Always, Self::Hour, Self::Day, Self::Week, Self::Month];

    fn title(self) -> &'static str {
        match self {
            Self::Always => "Any time",
            Self::Hour => "Last hour",
            Self::Day => "Last 24 hours",
            Self::Week => "Last 7 days",
            Self::Month => "Last 30 days",
        }
    }

    fn span(self) -> Option<TimeDelta> {
        match self {
            Self::Always => None,
            Self::Hour => Some(TimeDelta::hours(1)),
            Self::Day => Some(TimeDelta::days(1)),
            Self::Week => Some(TimeDelta::days(7)),
            Self::Month => Some(TimeDelta::days(30)),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Filter {
    actor: String,
    action: Option<AuditAction>,
    target_id: String,
    since: Since,
}

impl Filter {
    fn query(&self) -> AuditQuery {
        let text = |text: &str| Some(text.trim().to_owned()).filter(|text| !text.is_empty());
        AuditQuery {
            actor: text(&self.actor),
            action: self.action.map(|action| action.as_str().to_owned()),
            target_id: text(&self.target_id),
            since: self.since.span().map(|span| Utc::now() - span),
            until: None,
            cursor: None,
            limit: Some(PAGE),
        }
    }
}

#[derive(Default)]
pub struct ActivityView {
    filter: Filter,
    /// Bumped when the filter changes, so answers to an older filter are dropped.
    generation: u64,
    entries: Vec<AuditEntry>,
    /// Where the next (older) page starts; `None` once the oldest is loaded.
    next_cursor: Option<String>,
    loaded: bool,
    loading_more: bool,
    error: Option<String>,
}

impl ActivityView {
    /// Asks for the newest page: entries newer than those shown go on top.
    pub fn refresh(&self, commands: &mut Commands) {
        commands.send(Command::LoadAudit {
            page: PageRequest {
                generation: self.generation,
                more: false,
            },
            query: self.filter.query(),
        });
    }

    /// Shows the entries about `target_id` alone.
    pub fn filter_by_target(&mut self, target_id: &str, commands: &mut Commands) {
        self.filter = Filter {
            target_id: target_id.to_owned(),
            ..Filter::default()
        };
        self.filter_changed(commands);
    }

    fn filter_changed(&mut self, commands: &mut Commands) {
        self.generation += 1;
        self.entries.clear();
        self.next_cursor = None;
        self.loaded = false;
        self.loading_more = false;
        self.error = None;
        self.refresh(commands);
    }

    pub fn loaded(&mut self, page: PageRequest, result: Result<AuditPage, ClientError>) {
        if page.generation != self.generation {
            return;
        }
        if page.more {
            self.loading_more = false;
        }
        let answer = match result {
            Ok(answer) => answer,
            Err(err) => {
                self.error = Some(err.to_string());
                return;
            }
        };
        self.error = None;
        if page.more {
            self.entries.extend(answer.items);
            self.next_cursor = answer.next_cursor;
        } else if !self.loaded {
            self.entries = answer.items;
            self.next_cursor = answer.next_cursor;
            self.loaded = true;
        } else {
            // Ids order entries as time does: what is newer than the top is new. A page
            // all new, with more behind it, leaves a gap: start over from it.
            let newest = self.entries.first().map(|entry| entry.id.clone());
            let reaches_top = answer.next_cursor.is_none()
                || answer
                    .items
                    .iter()
                    .any(|entry| Some(&entry.id) == newest.as_ref());
            if reaches_top {
                let fresh: Vec<AuditEntry> = answer
                    .items
                    .into_iter()
                    .take_while(|entry| newest.as_ref().is_none_or(|newest| &entry.id > newest))
                    .collect();
                self.entries.splice(0..0, fresh);
            } else {
                self.entries = answer.items;
                self.next_cursor = answer.next_cursor;
            }
        }
    }

    fn load_more(&mut self, commands: &mut Commands) {
        let Some(cursor) = self.next_cursor.clone() else {
            return;
        };
        if self.loading_more {
            return;
        }
        self.loading_more = true;
        let mut query = self.filter.query();
        query.cursor = Some(cursor);
        commands.send(Command::LoadAudit {
            page: PageRequest {
                generation: self.generation,
                more: true,
            },
            query,
        });
    }

    /// Draws the view; where a clicked target leads, if one was.
    pub fn ui(&mut self, ui: &mut Ui, remote: &Remote, commands: &mut Commands) -> Option<Link> {
        self.filter_ui(ui, commands);
        ui.add_space(4.0);
        if let Some(error) = &self.error {
            ui.label(
                RichText::new(format!("The audit log could not be loaded: {error}"))
                    .color(theme::FAILURE),
            );
        }
        if !self.loaded {
            if self.error.is_none() {
                ui.spinner();
            }
            return None;
        }
        if self.entries.is_empty() {
            ui.add_space(16.0);
            ui.vertical_centered(|ui| {
                ui.label(RichText::new("No change recorded matches").weak());
            });
            return None;
        }
        ui.label(
            RichText::new(match &self.next_cursor {
                Some(_) => format!(
                    "{} entries shown, newest first; older ones load as you scroll",
                    self.entries.len()
                ),
                None => format!("{} entries, newest first", self.entries.len()),
            })
            .weak(),
        );
        let (link, near_end) = table_ui(ui, &self.entries, remote);
        if near_end {
            self.load_more(commands);
        }
        link
    }

    fn filter_ui(&mut self, ui: &mut Ui, commands: &mut Commands) {
        let before = self.filter.clone();
        ui.horizontal(|ui| {
            let label = ui.label("Who");
            ui.add(
                egui::TextEdit::singleline(&mut self.filter.actor)
                    .hint_text("key name")
                    .desired_width(130.0),
            )
            .labelled_by(label.id);
            let label = ui.label("What");
            egui::ComboBox::from_id_salt("audit_action")
                .selected_text(self.filter.action.map_or("Any change", AuditAction::as_str))
                .height(360.0)
                .show_ui(ui, |ui| {
                    ui.selectable_value(&mut self.filter.action, None, "Any change");
                    for action in AuditAction::ALL {
                        ui.selectable_value(&mut self.filter.action, Some(action), action.as_str());
                    }
                })
                .response
                .labelled_by(label.id);
            let label = ui.label("Target");
            ui.add(
                egui::TextEdit::singleline(&mut self.filter.target_id)
                    .hint_text("wh_…, dlv_…, key_…")
                    .desired_width(200.0),
            )
            .labelled_by(label.id);
            let label = ui.label("When");
            egui::ComboBox::from_id_salt("audit_since")
                .selected_text(self.filter.since.title())
                .show_ui(ui, |ui| {
                    for since in Since::ALL {
                        ui.selectable_value(&mut self.filter.since, since, since.title());
                    }
                })
                .response
                .labelled_by(label.id);
            if self.filter != Filter::default() && ui.button("Clear").clicked() {
                self.filter = Filter::default();
            }
        });
        if self.filter != before {
            self.filter_changed(commands);
        }
    }
}

/// The entries as a table that draws only the rows in view; where a clicked target
/// leads, and whether the last rows are in view (time to load older ones).
fn table_ui(ui: &mut Ui, entries: &[AuditEntry], remote: &Remote) -> (Option<Link>, bool) {
    let mut link = None;
    let mut near_end = false;
    TableBuilder::new(ui)
        .striped(true)
        .cell_layout(egui::Layout::left_to_right(egui::Align::Center))
        .column(Column::initial(140.0))
        .column(Column::initial(130.0).resizable(true))
        .column(Column::initial(210.0).resizable(true))
        .column(Column::initial(230.0).resizable(true).clip(true))
        .column(Column::remainder().clip(true))
        .header(22.0, |mut header| {
            for title in ["When", "Who", "What", "Target", "Detail"] {
                header.col(|ui| {
                    ui.strong(title);
                });
            }
        })
        .body(|body| {
            body.rows(ROW_HEIGHT, entries.len(), |mut row| {
                let index = row.index();
                if index + 20 >= entries.len() {
                    near_end = true;
                }
                let entry = &entries[index];
                row.col(|ui| {
                    ui.add(egui::Label::new(widgets::time(entry.at)).selectable(false))
                        .on_hover_text(entry.at.to_rfc3339());
                });
                row.col(|ui| {
                    widgets::cell(ui, RichText::new(&entry.actor).strong());
                });
                row.col(|ui| {
                    widgets::cell(ui, action_text(entry.action));
                });
                row.col(|ui| {
                    let Some(target) = &entry.target_id else {
                        return;
                    };
                    // A webhook by its name while it exists; the id on hover.
                    let text = remote.webhook_name(target).unwrap_or(target);
                    match Link::of(target) {
                        Some(to) => {
                            if ui
                                .link(text)
                                .on_hover_text(format!("Open {target}"))
                                .clicked()
                            {
                                link = Some(to);
                            }
                        }
                        None => widgets::cell(ui, text),
                    }
                });
                row.col(|ui| {
                    if let Some(detail) = detail_text(&entry.detail) {
                        ui.add(
                            egui::Label::new(RichText::new(&detail).monospace().small()).truncate(),
                        )
                        .on_hover_text(detail);
                    }
                });
            });
        });
    (link, near_end)
}

/// An action, coloured by what it does: removals in red, secret changes in amber.
fn action_text(action: AuditAction) -> RichText {
    let text = RichText::new(action.as_str());
    match action {
        AuditAction::WebhookDelete | AuditAction::KeyDelete | AuditAction::WebhookDeactivate => {
            text.color(theme::FAILURE)
        }
        AuditAction::WebhookRotateSecret
        | AuditAction::WebhookExpirePreviousSecrets
        | AuditAction::EncryptionKeyRollover
        | AuditAction::KeyCreate => text.color(theme::WARNING),
        _ => text,
    }
}

/// The detail as one line of JSON, or nothing when it says nothing.
fn detail_text(detail: &serde_json::Value) -> Option<String> {
    match detail {
        serde_json::Value::Null => None,
        serde_json::Value::Object(fields) if fields.is_empty() => None,
        other => Some(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_links_by_its_prefix() {
        assert_eq!(Link::of("wh_1"), Some(Link::Webhook("wh_1".to_owned())));
        assert_eq!(Link::of("dlv_9"), Some(Link::Delivery("dlv_9".to_owned())));
        assert_eq!(Link::of("key_2"), Some(Link::Keys));
        assert_eq!(Link::of("something"), None);
    }
}
