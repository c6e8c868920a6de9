//! Delivery history: a filtered, sortable table of deliveries (newest first) with Resend
//! on every row, an inspector with the payload and every attempt, bulk resend, export,
//! and a success-rate chart. The same view, with the status fixed to `failed`, is the
//! operator's inbox of failed deliveries across webhooks, with "Recover failed since…".
//!
//! Drawing lives in the submodules ([`table`], [`inspector`], [`filter`], [`chart`],
//! [`tools`], [`bulk`]); this module holds the state and turns what the user did into
//! commands.

mod bulk;
mod chart;
mod filter;
mod inspector;
mod payload;
mod rows;
mod table;
mod tools;

use std::collections::{BTreeSet, HashSet};

use chrono::Utc;
use egui::{RichText, Ui};

use self::bulk::{BulkAsk, BulkResend};
use self::chart::SuccessChart;
use self::filter::{Filter, FilterErrors};
use self::inspector::InspectorAction;
use self::rows::{Merged, Rows};
use self::table::{ROW_HEIGHT, TableState};
use self::tools::{ExportForm, RecoverForm, ToolAsk};
use super::backend::{Command, ListTag, PageRequest};
use super::commands::Commands;
use super::remote::Remote;
use super::theme;
use crate::api::{
    BulkResendIn, BulkResent, Delivery, DeliveryDetail, DeliveryFilter, DeliveryList,
    DeliveryQuery, DeliveryStatus, StatsPoint, StatsQuery,
};
use crate::client::ClientError;

/// Deliveries fetched per page.
const PAGE: u32 = 200;
/// Pages fetched as the user scrolls to the end.
const MORE_PAGE: u32 = 500;

pub struct DeliveriesView {
    list: ListTag,
    filter: Filter,
    filter_errors: FilterErrors,
    rows: Rows,
    loaded: bool,
    /// Bumped when the filter changes, so answers to older filters are dropped.
    generation: u64,
    loading_more: bool,
    /// The inspected delivery and, once loaded, its detail.
    inspected: Option<String>,
    detail: Option<DeliveryDetail>,
    /// Deliveries whose resend is on its way, so their button shows it.
    resending: HashSet<String>,
    /// Rows picked for a bulk resend (click, Ctrl+click, Shift+click, Select all).
    picked: BTreeSet<String>,
    /// Display row where a Shift+click range starts, and where the arrow keys move from.
    anchor: Option<usize>,
    bulk: Option<BulkResend>,
    scroll_offset: f32,
    /// A row's height with the spacing below it, as the table last drew it.
    row_pitch: f32,
    /// A scroll position to apply next frame.
    scroll_to: Option<f32>,
    reveal_row: Option<usize>,
    focus_search: bool,
    chart: Option<SuccessChart>,
    recover: Option<RecoverForm>,
    export: Option<ExportForm>,
}

impl DeliveriesView {
    fn new(list: ListTag) -> Self {
        let filter = Filter {
            status: (list == ListTag::Failed).then_some(DeliveryStatus::Failed),
            ..Filter::default()
        };
        Self {
            list,
            filter,
            filter_errors: FilterErrors::default(),
            rows: Rows::default(),
            loaded: false,
            generation: 0,
            loading_more: false,
            inspected: None,
            detail: None,
            resending: HashSet::new(),
            picked: BTreeSet::new(),
            anchor: None,
            bulk: None,
            scroll_offset: 0.0,
            row_pitch: ROW_HEIGHT,
            scroll_to: None,
            reveal_row: None,
            focus_search: false,
            chart: (list == ListTag::All).then(SuccessChart::default),
            recover: None,
            export: None,
        }
    }

    pub fn all() -> Self {
        Self::new(ListTag::All)
    }

    pub fn failed_only() -> Self {
        Self::new(ListTag::Failed)
    }

    fn fixed_status(&self) -> bool {
        self.list == ListTag::Failed
    }

    /// The table's vertical scroll position, as last drawn.
    pub fn scroll_offset(&self) -> f32 {
        self.scroll_offset
    }

    /// How many deliveries are loaded, once loaded.
    /// How many deliveries match the view's filter, as the service counts them ("3 041",
    /// "10 000+"); none before the first page, or when none match.
    pub fn count_text(&self) -> Option<String> {
        if !self.loaded || self.rows.is_empty() {
            return None;
        }
        Some(self.rows.total_text())
    }

    /// The query the filter stands for, or `None` while it has errors (shown by the fields).
    fn query(&mut self, limit: u32) -> Option<DeliveryQuery> {
        match self.filter.query(Utc::now(), limit) {
            Ok(query) => {
                self.filter_errors = FilterErrors::default();
                Some(query)
            }
            Err(errors) => {
                self.filter_errors = errors;
                None
            }
        }
    }

    /// Reloads the newest page and the inspected delivery; loaded older rows stay.
    pub fn refresh(&mut self, commands: &mut Commands) {
        if let Some(query) = self.query(PAGE) {
            commands.send(Command::LoadDeliveries {
                list: self.list,
                page: PageRequest {
                    generation: self.generation,
                    more: false,
                },
                query,
            });
        }
        if let Some(id) = &self.inspected {
            commands.send(Command::LoadDelivery {
                list: self.list,
                id: id.clone(),
                search: self.filter.searched(),
            });
        }
        if let Some(chart) = &mut self.chart {
            chart.refresh_if_due(self.filter.webhook_id.as_deref(), commands);
        }
    }

    /// The filter changed: start over from the newest page.
    fn filter_changed(&mut self, commands: &mut Commands) {
        self.generation += 1;
        self.loaded = false;
        self.loading_more = false;
        self.rows = Rows::default();
        self.picked.clear();
        self.anchor = None;
        self.scroll_to = Some(0.0);
        self.refresh(commands);
    }

    /// Shows delivery `id` alone, open in the inspector, as a link from elsewhere asks.
    pub fn find(&mut self, id: &str, commands: &mut Commands) {
        self.filter = Filter {
            search: id.to_owned(),
            status: self.filter.status.filter(|_| self.fixed_status()),
            ..Filter::default()
        };
        self.filter_changed(commands);
        self.inspected = Some(id.to_owned());
        self.detail = None;
        commands.send(Command::LoadDelivery {
            list: self.list,
            id: id.to_owned(),
            search: None,
        });
    }

    fn load_more(&mut self, commands: &mut Commands) {
        let Some(cursor) = self.rows.next_cursor().map(str::to_owned) else {
            return;
        };
        if self.loading_more {
            return;
        }
        if let Some(mut query) = self.query(MORE_PAGE) {
            query.cursor = Some(cursor);
            self.loading_more = true;
            commands.send(Command::LoadDeliveries {
                list: self.list,
                page: PageRequest {
                    generation: self.generation,
                    more: true,
                },
                query,
            });
        }
    }

    pub fn loaded(
        &mut self,
        page: PageRequest,
        result: Result<DeliveryList, ClientError>,
        remote: &Remote,
    ) -> Result<(), ClientError> {
        if page.generation != self.generation {
            return Ok(());
        }
        if page.more {
            self.loading_more = false;
        }
        let list = result?;
        let name_of = |id: &str| remote.webhook_name(id).unwrap_or(id).to_owned();
        if page.more {
            self.rows.append(list, name_of);
        } else if !self.loaded {
            self.rows.replace(list, name_of);
        } else {
            match self.rows.merge_newest(list, name_of) {
                // Keep the rows the user is looking at where they are.
                Merged::Added(added)
                    if added > 0 && self.scroll_offset > 0.0 && self.rows.is_default_order() =>
                {
                    self.scroll_to = Some(self.scroll_offset + added as f32 * self.row_pitch);
                }
                Merged::Added(_) => {}
                Merged::Restarted => self.scroll_to = Some(0.0),
            }
        }
        self.loaded = true;
        Ok(())
    }

    /// Picks every loaded row ("Resend all matching" covers the rows not loaded too).
    fn select_all(&mut self) {
        self.picked = self.rows.iter().map(|d| d.id.clone()).collect();
    }

    pub fn inspected(
        &mut self,
        result: Result<DeliveryDetail, ClientError>,
    ) -> Result<(), ClientError> {
        let detail = result?;
        if self.inspected.as_deref() == Some(detail.id.as_str()) {
            self.rows.update(&detail.delivery());
            self.detail = Some(detail);
        }
        Ok(())
    }

    pub fn stats_loaded(
        &mut self,
        query: &StatsQuery,
        result: Result<Vec<StatsPoint>, ClientError>,
    ) {
        if let Some(chart) = &mut self.chart {
            chart.loaded(query, result);
        }
    }

    pub fn recover_failed(&mut self, error: String) {
        if let Some(form) = &mut self.recover {
            form.failed(error);
        }
    }

    /// A resend was accepted: show the row's new state and look again shortly.
    pub fn resent(&mut self, delivery: &Delivery, commands: &mut Commands) {
        self.resending.remove(&delivery.id);
        if self.rows.update(delivery) {
            self.refresh(commands);
        }
    }

    pub fn resend_failed(&mut self, id: &str) {
        self.resending.remove(id);
    }

    /// The service answered a bulk resend (or its dry run): confirm, or sum up and load
    /// the list again, once.
    pub fn resent_many(
        &mut self,
        dry_run: bool,
        result: Result<BulkResent, ClientError>,
        commands: &mut Commands,
    ) {
        self.bulk = match (dry_run, result, self.bulk.take()) {
            (true, Ok(preview), Some(BulkResend::Previewing { filter })) => {
                Some(BulkResend::Confirming { filter, preview })
            }
            // A preview the user no longer waits for.
            (true, Ok(_), bulk) => bulk,
            (false, Ok(resent), _) => {
                self.filter_changed(commands);
                Some(BulkResend::Done(resent))
            }
            (_, Err(err), _) => Some(BulkResend::Failed(err.to_string())),
        };
    }

    pub fn recovered(&mut self, commands: &mut Commands) {
        self.recover = None;
        self.refresh(commands);
    }

    pub fn export_path_picked(&mut self, path: Option<std::path::PathBuf>) {
        if let (Some(form), Some(path)) = (&mut self.export, path) {
            form.set_path(path);
        }
    }

    pub fn exported(&mut self, result: &Result<usize, String>) {
        if let Some(form) = &mut self.export {
            form.finished(result);
        }
    }

    fn resend(&mut self, id: String, commands: &mut Commands) {
        if self.resending.insert(id.clone()) {
            commands.send(Command::Resend { id });
        }
    }

    fn bulk_busy(&self) -> bool {
        self.bulk.as_ref().is_some_and(BulkResend::busy)
    }

    /// Resends every picked row in one request, with a summary from its answer.
    fn resend_picked(&mut self, commands: &mut Commands) {
        if self.picked.is_empty() || self.bulk_busy() {
            return;
        }
        let ids: Vec<String> = std::mem::take(&mut self.picked).into_iter().collect();
        self.bulk = Some(BulkResend::Sending {
            expected: ids.len() as u64,
        });
        commands.send(Command::ResendMany {
            list: self.list,
            input: BulkResendIn {
                ids: Some(ids),
                filter: None,
                dry_run: false,
            },
        });
    }

    /// Asks the service what resending every delivery matching the filter covers, for
    /// the confirmation.
    fn resend_all_matching(&mut self, commands: &mut Commands) {
        if self.bulk_busy() {
            return;
        }
        let Some(query) = self.query(PAGE) else {
            return;
        };
        let filter = DeliveryFilter::of(&query);
        self.bulk = Some(BulkResend::Previewing {
            filter: filter.clone(),
        });
        commands.send(Command::ResendMany {
            list: self.list,
            input: BulkResendIn {
                ids: None,
                filter: Some(filter),
                dry_run: true,
            },
        });
    }

    fn confirm_resend_all(
        &mut self,
        filter: DeliveryFilter,
        expected: u64,
        commands: &mut Commands,
    ) {
        self.bulk = Some(BulkResend::Sending { expected });
        commands.send(Command::ResendMany {
            list: self.list,
            input: BulkResendIn {
                ids: None,
                filter: Some(filter),
                dry_run: false,
            },
        });
    }

    /// Picks rows as a click with `modifiers` on display row `index` asks.
    fn pick(&mut self, index: usize, modifiers: egui::Modifiers) {
        let Some(id) = self.rows.get(index).map(|d| d.id.clone()) else {
            return;
        };
        if modifiers.shift
            && let Some(anchor) = self.anchor
        {
            let (from, to) = (anchor.min(index), anchor.max(index));
            self.picked
                .extend((from..=to).filter_map(|i| self.rows.get(i).map(|d| d.id.clone())));
            return;
        }
        if modifiers.command {
            if !self.picked.remove(&id) {
                self.picked.insert(id);
            }
        } else {
            self.picked.clear();
            self.picked.insert(id);
        }
        self.anchor = Some(index);
    }

    fn inspect(&mut self, index: usize, commands: &mut Commands) {
        if let Some(id) = self.rows.get(index).map(|d| d.id.clone()) {
            if self.inspected.as_ref() != Some(&id) {
                self.detail = None;
            }
            self.inspected = Some(id.clone());
            commands.send(Command::LoadDelivery {
                list: self.list,
                id,
                search: self.filter.searched(),
            });
        }
    }

    fn close_inspector(&mut self) {
        self.inspected = None;
        self.detail = None;
    }

    /// Ctrl+F search, Ctrl+R refresh, R resend the selection (or the inspected row),
    /// arrows move the selection, Enter opens the inspector, Esc closes it — unless a text
    /// field has the keyboard.
    fn keyboard(&mut self, ctx: &egui::Context, commands: &mut Commands) {
        let search = ctx.input_mut(|i| i.consume_key(egui::Modifiers::COMMAND, egui::Key::F));
        if search {
            self.focus_search = true;
        }
        if ctx.egui_wants_keyboard_input() {
            return;
        }
        let (escape, refresh, resend, up, down, enter) = ctx.input_mut(|input| {
            (
                input.consume_key(egui::Modifiers::NONE, egui::Key::Escape),
                input.consume_key(egui::Modifiers::COMMAND, egui::Key::R),
                input.consume_key(egui::Modifiers::NONE, egui::Key::R),
                input.consume_key(egui::Modifiers::NONE, egui::Key::ArrowUp),
                input.consume_key(egui::Modifiers::NONE, egui::Key::ArrowDown),
                input.consume_key(egui::Modifiers::NONE, egui::Key::Enter),
            )
        });
        if escape {
            if self.inspected.is_some() {
                self.close_inspector();
            } else {
                self.picked.clear();
            }
        }
        if refresh {
            self.refresh(commands);
        }
        if resend {
            if self.picked.is_empty()
                && let Some(id) = self.inspected.clone()
            {
                self.picked.insert(id);
            }
            self.resend_picked(commands);
        }
        if (up || down) && !self.rows.is_empty() {
            let last = self.rows.len() - 1;
            let next = match (self.anchor, down) {
                (Some(index), true) => (index + 1).min(last),
                (Some(index), false) => index.saturating_sub(1),
                (None, _) => 0,
            };
            self.pick(next, egui::Modifiers::NONE);
            self.reveal_row = Some(next);
            if self.inspected.is_some() {
                self.inspect(next, commands);
            }
        }
        if enter && let Some(index) = self.anchor {
            self.inspect(index, commands);
        }
    }

    pub fn ui(&mut self, ui: &mut Ui, remote: &Remote, commands: &mut Commands) {
        if self.inspected.is_some() {
            let busy = self
                .inspected
                .as_ref()
                .is_some_and(|id| self.resending.contains(id));
            let mut action = None;
            egui::Panel::right(("delivery_inspector", self.list == ListTag::Failed))
                .resizable(true)
                .default_size(440.0)
                .show(ui, |ui| {
                    action = inspector::inspector_ui(ui, self.detail.as_ref(), busy, remote);
                });
            match action {
                Some(InspectorAction::Close) => self.close_inspector(),
                Some(InspectorAction::Resend(id)) => self.resend(id, commands),
                None => {}
            }
        }
        self.keyboard(ui.ctx(), commands);
        self.tools_windows(ui.ctx(), remote, commands);
        egui::CentralPanel::default().show(ui, |ui| {
            if let Some(chart) = &mut self.chart {
                let webhook = self.filter.webhook_id.as_deref();
                chart.ui(ui, webhook, remote, commands);
            }
            let fixed_status = self.fixed_status();
            let changed = filter::filter_ui(
                ui,
                &mut self.filter,
                &self.filter_errors,
                remote,
                fixed_status,
                &mut self.focus_search,
            );
            if changed {
                self.filter_changed(commands);
            }
            self.actions_ui(ui, remote, commands);
            ui.add_space(4.0);
            if !self.loaded {
                if self.filter_errors.is_empty() {
                    ui.spinner();
                }
                return;
            }
            if self.rows.is_empty() {
                ui.add_space(24.0);
                ui.vertical_centered(|ui| {
                    let text = match (self.list, self.filter.narrows(self.fixed_status())) {
                        (ListTag::Failed, false) => "No failed deliveries. All caught up.",
                        (ListTag::All, false) => "No deliveries yet.",
                        (ListTag::Failed, true) => "No failed deliveries match the filter.",
                        (ListTag::All, true) => "No deliveries match the filter.",
                    };
                    ui.label(RichText::new(text).heading());
                });
                return;
            }
            self.table_ui(ui, remote, commands);
        });
    }

    /// Selection, bulk resend, and the tools; a progress bar or summary while a bulk
    /// resend runs or has just ended.
    fn actions_ui(&mut self, ui: &mut Ui, remote: &Remote, commands: &mut Commands) {
        let (mut resend_picked, mut resend_all) = (false, false);
        let busy = self.bulk_busy();
        ui.horizontal(|ui| {
            let more = if self.rows.next_cursor().is_some() {
                "+"
            } else {
                ""
            };
            let select_all = egui::Button::new(format!("Select all ({}{more})", self.rows.len()));
            if ui
                .add_enabled(!self.rows.is_empty(), select_all)
                .on_hover_text("Every loaded row; \"Resend all matching\" covers the rest too")
                .clicked()
            {
                self.select_all();
            }
            if !self.picked.is_empty() {
                let label =
                    RichText::new(format!("↻ Resend {} selected", self.picked.len())).strong();
                let button = egui::Button::new(label).fill(theme::FAILURE.gamma_multiply(0.35));
                resend_picked = ui.add_enabled(!busy, button).on_hover_text("R").clicked();
                if ui.button("Clear selection").clicked() {
                    self.picked.clear();
                }
            } else if !self.rows.is_empty() {
                let text = format!("↻ Resend all {} matching…", self.rows.total_text());
                let label = RichText::new(text).strong();
                let button = egui::Button::new(label).fill(theme::FAILURE.gamma_multiply(0.35));
                resend_all = ui
                    .add_enabled(!busy, button)
                    .on_hover_text(
                        "Every delivery matching the filter, loaded or not: \
                         the service says how many first",
                    )
                    .clicked();
            }
            if let Some(bulk) = &self.bulk {
                bulk.status_ui(ui);
            }
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                if ui
                    .button("Export…")
                    .on_hover_text("Save the filtered deliveries as CSV or JSON")
                    .clicked()
                {
                    self.export = Some(ExportForm::new(self.list));
                }
                if self.list == ListTag::Failed
                    && ui
                        .button("Recover failed since…")
                        .on_hover_text("Resend every failed delivery of one webhook since a time")
                        .clicked()
                {
                    self.recover = Some(RecoverForm::new(self.filter.webhook_id.clone(), remote));
                }
                let more = match self.rows.next_cursor() {
                    Some(_) if self.loading_more => "loading more…",
                    Some(_) => "more as you scroll",
                    None => "all loaded",
                };
                ui.label(RichText::new(format!("{} rows · {more}", self.rows.len())).weak());
            });
        });
        if resend_picked {
            self.resend_picked(commands);
        }
        if resend_all {
            self.resend_all_matching(commands);
        }
    }

    fn table_ui(&mut self, ui: &mut Ui, remote: &Remote, commands: &mut Commands) {
        let state = TableState {
            rows: &self.rows,
            picked: &self.picked,
            inspected: self.inspected.as_deref(),
            resending: &self.resending,
            scroll_to: self.scroll_to.take(),
            reveal_row: self.reveal_row.take(),
        };
        self.row_pitch = ROW_HEIGHT + ui.spacing().item_spacing.y;
        let out = table::table_ui(ui, &state, remote);
        self.scroll_offset = out.scroll_offset;
        if let Some(id) = out.resend {
            self.resend(id, commands);
        }
        if let Some(column) = out.sort_by {
            let sort = self.rows.sort().clicked(column);
            let name_of = |id: &str| remote.webhook_name(id).unwrap_or(id).to_owned();
            self.rows.set_sort(sort, name_of);
            self.anchor = None;
        }
        if let Some((index, modifiers)) = out.clicked {
            self.pick(index, modifiers);
            if !modifiers.shift && !modifiers.command {
                self.inspect(index, commands);
            }
        }
        if let Some(index) = out.double_clicked {
            self.inspect(index, commands);
        }
        if out.reached_end {
            self.load_more(commands);
        }
    }

    fn tools_windows(&mut self, ctx: &egui::Context, remote: &Remote, commands: &mut Commands) {
        let bulk_ask = self
            .bulk
            .as_ref()
            .and_then(|bulk| bulk.confirm_window(ctx, remote));
        match bulk_ask {
            Some(BulkAsk::Confirm { filter, expected }) => {
                self.confirm_resend_all(filter, expected, commands);
            }
            Some(BulkAsk::Cancel) => self.bulk = None,
            None => {}
        }
        let ask = match (&mut self.recover, &mut self.export) {
            (Some(form), _) => form.window(ctx, remote),
            (None, Some(form)) => form.window(ctx),
            (None, None) => None,
        };
        match ask {
            Some(ToolAsk::Close) => {
                self.recover = None;
                self.export = None;
            }
            Some(ToolAsk::Recover {
                webhook_id,
                name,
                since,
            }) => commands.send(Command::Recover {
                webhook_id,
                name,
                since,
            }),
            Some(ToolAsk::PickExportPath { suggested }) => {
                commands.send(Command::PickExportPath {
                    list: self.list,
                    suggested,
                });
            }
            Some(ToolAsk::Export { format, path }) => {
                if let Some(query) = self.query(crate::server::MAX_DELIVERY_PAGE) {
                    commands.send(Command::Export {
                        list: self.list,
                        query,
                        format,
                        path,
                    });
                }
            }
            None => {}
        }
    }
}
