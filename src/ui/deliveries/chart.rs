//! Success rate over the last 24 hours or 7 days, for the webhook the table is filtered
//! to (or all of them), from `GET /stats`: succeeded and failed deliveries per bucket as
//! stacked bars, and the rate in words above them.

use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use egui::{RichText, Ui};
use egui_plot::{Bar, BarChart, Plot};

use super::super::backend::Command;
use super::super::commands::Commands;
use super::super::remote::Remote;
use super::super::theme;
use crate::api::{StatsBucket, StatsPoint, StatsQuery};
use crate::client::ClientError;

/// Stats change slowly; the table refreshes far more often.
const RELOAD_EVERY: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Window {
    #[default]
    Day,
    Week,
}

impl Window {
    fn label(self) -> &'static str {
        match self {
            Self::Day => "24 hours",
            Self::Week => "7 days",
        }
    }

    fn bucket(self) -> StatsBucket {
        match self {
            Self::Day => StatsBucket::Hour,
            Self::Week => StatsBucket::Day,
        }
    }

    fn span(self) -> TimeDelta {
        match self {
            Self::Day => TimeDelta::days(1),
            Self::Week => TimeDelta::days(7),
        }
    }
}

#[derive(Default)]
pub struct SuccessChart {
    window: Window,
    /// What the shown points are for: webhook filter and window.
    shown_for: Option<(Option<String>, Window)>,
    points: Option<Result<Vec<StatsPoint>, String>>,
    asked_at: Option<Instant>,
}

impl SuccessChart {
    fn ask(&mut self, webhook_id: Option<&str>, commands: &mut Commands) {
        self.asked_at = Some(Instant::now());
        commands.send(Command::LoadStats {
            query: StatsQuery {
                webhook_id: webhook_id.map(str::to_owned),
                since: Some(Utc::now() - self.window.span()),
                bucket: Some(self.window.bucket()),
            },
        });
    }

    /// Asks again when the filter or window changed, or the numbers are old.
    pub fn refresh_if_due(&mut self, webhook_id: Option<&str>, commands: &mut Commands) {
        let key = (webhook_id.map(str::to_owned), self.window);
        let stale = self.asked_at.is_none_or(|at| at.elapsed() >= RELOAD_EVERY);
        if stale || self.shown_for.as_ref() != Some(&key) {
            self.ask(webhook_id, commands);
        }
    }

    pub fn loaded(&mut self, query: &StatsQuery, result: Result<Vec<StatsPoint>, ClientError>) {
        let window = match query.bucket {
            Some(StatsBucket::Day) => Window::Week,
            _ => Window::Day,
        };
        if window != self.window {
            return;
        }
        self.shown_for = Some((query.webhook_id.clone(), window));
        self.points = Some(result.map_err(|err| err.to_string()));
    }

    pub fn ui(
        &mut self,
        ui: &mut Ui,
        webhook_id: Option<&str>,
        remote: &Remote,
        commands: &mut Commands,
    ) {
        let whose = webhook_id.map_or("all webhooks", |id| remote.webhook_name(id).unwrap_or(id));
        let summary = self.summary();
        egui::CollapsingHeader::new(format!("Success rate · {whose} · {summary}"))
            .id_salt("success_chart")
            .default_open(false)
            .show(ui, |ui| {
                let before = self.window;
                ui.horizontal(|ui| {
                    for window in [Window::Day, Window::Week] {
                        ui.selectable_value(&mut self.window, window, window.label());
                    }
                });
                if self.window != before {
                    self.ask(webhook_id, commands);
                }
                match &self.points {
                    None => {
                        ui.spinner();
                    }
                    Some(Err(error)) => {
                        ui.label(RichText::new(error).color(theme::FAILURE));
                    }
                    Some(Ok(points)) => plot_ui(ui, points, self.window),
                }
            });
    }

    /// "97.5 % of 1 204 delivered in 24 hours", or why there is no figure.
    fn summary(&self) -> String {
        let Some(Ok(points)) = &self.points else {
            return format!("last {}", self.window.label());
        };
        let succeeded: u64 = points.iter().map(|p| p.succeeded).sum();
        let failed: u64 = points.iter().map(|p| p.failed).sum();
        let total = succeeded + failed;
        if total == 0 {
            return format!("no finished deliveries in {}", self.window.label());
        }
        let rate = succeeded as f64 * 100.0 / total as f64;
        format!(
            "{rate:.1} % of {total} delivered in {}",
            self.window.label()
        )
    }
}

fn plot_ui(ui: &mut Ui, points: &[StatsPoint], window: Window) {
    let now = Utc::now();
    let (unit, suffix) = match window {
        Window::Day => (3600.0, "h"),
        Window::Week => (86_400.0, "d"),
    };
    // x: how many units ago the bucket started (negative), so "now" is at 0.
    let x = |point: &StatsPoint| -((now - point.start).num_seconds() as f64 / unit);
    let succeeded = BarChart::new(
        "succeeded",
        points
            .iter()
            .map(|p| {
                Bar::new(x(p) + 0.5, p.succeeded as f64)
                    .width(0.8)
                    .fill(theme::SUCCESS)
            })
            .collect(),
    )
    .color(theme::SUCCESS);
    let failed = BarChart::new(
        "failed",
        points
            .iter()
            .map(|p| {
                Bar::new(x(p) + 0.5, p.failed as f64)
                    .width(0.8)
                    .fill(theme::FAILURE)
            })
            .collect(),
    )
    .color(theme::FAILURE)
    .stack_on(&[&succeeded]);
    Plot::new("success_plot")
        .height(120.0)
        .allow_zoom(false)
        .allow_drag(false)
        .allow_scroll(false)
        .allow_boxed_zoom(false)
        .allow_double_click_reset(false)
        .include_y(0.0)
        .x_axis_formatter(move |mark, _| {
            let ago = -mark.value;
            if ago.abs() < f64::EPSILON {
                "now".to_owned()
            } else {
                format!("−{ago:.0} {suffix}")
            }
        })
        .y_axis_min_width(24.0)
        .show(ui, |plot| {
            plot.bar_chart(succeeded);
            plot.bar_chart(failed);
        });
}
