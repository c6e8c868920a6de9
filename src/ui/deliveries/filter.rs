//! What narrows a deliveries table: status, webhook, event type, class of HTTP answer,
//! time range and an event or delivery id. Drawn as one row of controls; a custom time
//! range that does not parse is explained beside its field and never sent.

use chrono::{DateTime, Local, NaiveDate, NaiveDateTime, TimeDelta, TimeZone, Utc};
use egui::{RichText, Ui};

use super::super::remote::Remote;
use super::super::theme;
use crate::api::{CodeClass, DeliveryQuery, DeliveryStatus};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TimeRange {
    #[default]
    Any,
    LastHour,
    LastDay,
    LastWeek,
    Custom,
}

impl TimeRange {
    const ALL: [Self; 5] = [
        Self::Any,
        Self::LastHour,
        Self::LastDay,
        Self::LastWeek,
        Self::Custom,
    ];

    fn label(self) -> &'static str {
        match self {
            Self::Any => "any time",
            Self::LastHour => "last hour",
            Self::LastDay => "last 24 hours",
            Self::LastWeek => "last 7 days",
            Self::Custom => "from … until …",
        }
    }

    fn span(self) -> Option<TimeDelta> {
        match self {
            Self::LastHour => Some(TimeDelta::hours(1)),
            Self::LastDay => Some(TimeDelta::days(1)),
            Self::LastWeek => Some(TimeDelta::days(7)),
            Self::Any | Self::Custom => None,
        }
    }
}

/// The filter controls' state. `status` is fixed in the failed-deliveries view.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Filter {
    pub status: Option<DeliveryStatus>,
    pub webhook_id: Option<String>,
    pub event_type: Option<String>,
    pub code: Option<CodeClass>,
    pub range: TimeRange,
    /// Custom range bounds as typed (local time).
    pub from: String,
    pub until: String,
    /// An event id, a delivery id, or text the payload holds.
    pub search: String,
}

/// Why the filter cannot be sent as it stands.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FilterErrors {
    pub from: Option<String>,
    pub until: Option<String>,
}

impl FilterErrors {
    pub fn is_empty(&self) -> bool {
        self.from.is_none() && self.until.is_none()
    }
}

impl Filter {
    /// The search text, when there is one.
    pub fn searched(&self) -> Option<String> {
        Some(self.search.trim().to_owned()).filter(|search| !search.is_empty())
    }

    /// The query for the first page, or what is wrong with the custom time range.
    pub fn query(&self, now: DateTime<Utc>, limit: u32) -> Result<DeliveryQuery, FilterErrors> {
        let (since, until) = match self.range {
            TimeRange::Custom => {
                let from = parse_time(&self.from);
                let until = parse_time(&self.until);
                let mut errors = FilterErrors {
                    from: from.clone().err(),
                    until: until.clone().err(),
                };
                if let (Ok(Some(from)), Ok(Some(until))) = (&from, &until)
                    && from >= until
                {
                    errors.until = Some("must be after From".to_owned());
                }
                if !errors.is_empty() {
                    return Err(errors);
                }
                (from.ok().flatten(), until.ok().flatten())
            }
            range => (range.span().map(|span| now - span), None),
        };
        let search = self.search.trim();
        Ok(DeliveryQuery {
            webhook_id: self.webhook_id.clone(),
            status: self.status,
            event_type: self.event_type.clone(),
            code: self.code,
            since,
            until,
            q: (!search.is_empty()).then(|| search.to_owned()),
            cursor: None,
            limit: Some(limit),
            order: None,
        })
    }

    /// Whether anything beyond the view's fixed status narrows the table.
    pub fn narrows(&self, fixed_status: bool) -> bool {
        // Typed custom bounds count only while the custom range is chosen.
        let cleared = Self {
            status: self.status.filter(|_| fixed_status),
            from: self.from.clone(),
            until: self.until.clone(),
            ..Self::default()
        };
        *self != cleared
    }
}

/// A time typed by the user in local time, as the table shows times: `2026-11-22`,
/// `2026-11-22 14:30`, or RFC 3339 with its own offset. Empty means unbounded.
fn parse_time(text: &str) -> Result<Option<DateTime<Utc>>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(Some(time.with_timezone(&Utc)));
    }
    let naive = ["%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S"]
        .into_iter()
        .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
        .or_else(|| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .and_then(|date| date.and_hms_opt(0, 0, 0))
        });
    match naive.map(|naive| Local.from_local_datetime(&naive).earliest()) {
        Some(Some(local)) => Ok(Some(local.with_timezone(&Utc))),
        Some(None) => Err("that local time does not exist (clock change)".to_owned()),
        None => Err("use 2026-11-22, 2026-11-22 14:30 or RFC 3339".to_owned()),
    }
}

/// Draws the filter row; returns whether the filter changed so the table must reload.
/// `fixed_status` hides the status choice (the failed-deliveries view).
pub fn filter_ui(
    ui: &mut Ui,
    filter: &mut Filter,
    errors: &FilterErrors,
    remote: &Remote,
    fixed_status: bool,
    search_focus: &mut bool,
) -> bool {
    let mut changed = false;
    ui.horizontal_wrapped(|ui| {
        if !fixed_status {
            changed |= combo(
                ui,
                "Status",
                &mut filter.status,
                DeliveryStatus::ALL.map(|s| (Some(s), s.as_str().to_owned())),
            );
        }
        let webhooks = remote
            .webhooks
            .iter()
            .flatten()
            .map(|w| (Some(w.id.clone()), w.name.clone()));
        changed |= combo(ui, "Webhook", &mut filter.webhook_id, webhooks);
        let types = remote
            .event_types
            .iter()
            .map(|t| (Some(t.name.clone()), t.name.clone()));
        changed |= combo(ui, "Event type", &mut filter.event_type, types);
        changed |= combo(
            ui,
            "HTTP code",
            &mut filter.code,
            CodeClass::ALL.map(|c| (Some(c), code_label(c).to_owned())),
        );
        let label = ui.label("Time");
        let before = filter.range;
        egui::ComboBox::from_id_salt("filter_time")
            .selected_text(filter.range.label())
            .show_ui(ui, |ui| {
                for range in TimeRange::ALL {
                    ui.selectable_value(&mut filter.range, range, range.label());
                }
            })
            .response
            .labelled_by(label.id);
        changed |= filter.range != before;
        if filter.range == TimeRange::Custom {
            changed |= time_field(ui, "From", &mut filter.from, errors.from.as_deref());
            changed |= time_field(ui, "Until", &mut filter.until, errors.until.as_deref());
        }
        // Its own size, so that the row wraps before it rather than cutting it off when
        // the inspector narrows the view.
        let size = egui::vec2(SEARCH_WIDTH + 60.0, ui.spacing().interact_size.y);
        let layout = egui::Layout::left_to_right(egui::Align::Center);
        let search = ui
            .allocate_ui_with_layout(size, layout, |ui| {
                let label = ui.label("Search");
                ui.add(
                    egui::TextEdit::singleline(&mut filter.search)
                        .hint_text("Event id, delivery id or payload text (Ctrl+F)")
                        .desired_width(SEARCH_WIDTH),
                )
                .labelled_by(label.id)
            })
            .inner;
        if std::mem::take(search_focus) {
            search.request_focus();
        }
        changed |= searched(ui, &search);
        if filter.narrows(fixed_status) && ui.button("Clear filters").clicked() {
            let status = filter.status.filter(|_| fixed_status);
            *filter = Filter {
                status,
                ..Filter::default()
            };
            changed = true;
        }
    });
    changed
}

/// The search box's width.
const SEARCH_WIDTH: f32 = 300.0;

/// How long the search box waits after the last keystroke before it searches.
const SEARCH_PAUSE: f64 = 0.3;

/// Whether the search box's text is to be searched now: [`SEARCH_PAUSE`] after the typing
/// stopped, so the results come as the operator types without a request per keystroke,
/// or at once on Enter.
fn searched(ui: &Ui, search: &egui::Response) -> bool {
    let typed_at = search.id.with("typed_at");
    let now = ui.input(|i| i.time);
    if search.changed() {
        ui.data_mut(|data| data.insert_temp(typed_at, now));
    }
    let entered = search.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
    let Some(at) = ui.data(|data| data.get_temp::<f64>(typed_at)) else {
        return entered;
    };
    let waited = now - at;
    if entered || waited >= SEARCH_PAUSE {
        ui.data_mut(|data| data.remove::<f64>(typed_at));
        true
    } else {
        ui.ctx()
            .request_repaint_after(std::time::Duration::from_secs_f64(SEARCH_PAUSE - waited));
        false
    }
}

fn code_label(code: CodeClass) -> &'static str {
    match code {
        CodeClass::Network => "network error",
        other => other.as_str(),
    }
}

/// A labelled choice among `options`, with "any" for no filter.
fn combo<T: Clone + PartialEq>(
    ui: &mut Ui,
    name: &str,
    value: &mut Option<T>,
    options: impl IntoIterator<Item = (Option<T>, String)>,
) -> bool {
    let options: Vec<(Option<T>, String)> = options.into_iter().collect();
    let shown = options
        .iter()
        .find(|(option, _)| option == value)
        .map_or("any", |(_, text)| text.as_str())
        .to_owned();
    let before = value.clone();
    // Label and box wrap to the next line together.
    ui.horizontal(|ui| {
        let label = ui.label(name);
        egui::ComboBox::from_id_salt(("filter", name))
            .selected_text(shown)
            .height(360.0)
            .show_ui(ui, |ui| {
                ui.selectable_value(value, None, "any");
                for (option, text) in options {
                    ui.selectable_value(value, option, text);
                }
            })
            .response
            .labelled_by(label.id);
    });
    *value != before
}

fn time_field(ui: &mut Ui, name: &str, text: &mut String, error: Option<&str>) -> bool {
    let label = ui.label(name);
    let field = ui
        .add(
            egui::TextEdit::singleline(text)
                .hint_text("2026-11-22 14:30")
                .desired_width(130.0),
        )
        .labelled_by(label.id);
    if let Some(error) = error {
        ui.label(RichText::new(error).color(theme::FAILURE));
    }
    field.lost_focus()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_in_the_forms_the_hint_shows() {
        let local = |text: &str| {
            let naive = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").ok()?;
            Some(
                Local
                    .from_local_datetime(&naive)
                    .earliest()?
                    .with_timezone(&Utc),
            )
        };
        assert_eq!(
            parse_time("2026-11-22 12:00"),
            Ok(local("2026-11-22 12:00"))
        );
        assert_eq!(
            parse_time(" 2026-11-22T13:00:00+01:00 "),
            Ok("2026-11-22T12:00:00Z".parse().ok())
        );
        assert_eq!(parse_time("2026-11-22"), Ok(local("2026-11-22 00:00")));
        assert_eq!(parse_time(""), Ok(None));
        assert!(parse_time("yesterday").is_err());
        assert!(parse_time("2026-13-01").is_err());
    }

    #[test]
    fn a_custom_range_must_parse_and_run_forwards() {
        let now = Utc::now();
        let mut filter = Filter {
            range: TimeRange::Custom,
            from: "2026-11-22".to_owned(),
            until: "2026-11-21".to_owned(),
            ..Filter::default()
        };
        let errors = filter.query(now, 10).expect_err("backwards");
        assert_eq!(errors.until.as_deref(), Some("must be after From"));
        filter.from = "soon".to_owned();
        let errors = filter.query(now, 10).expect_err("unparsable");
        assert!(errors.from.is_some());
        filter.from = "2026-11-20".to_owned();
        let query = filter.query(now, 10).expect("valid");
        assert_eq!(Ok(query.since), parse_time("2026-11-20 00:00"));
        assert_eq!(Ok(query.until), parse_time("2026-11-21 00:00"));

        filter.range = TimeRange::LastHour;
        let query = filter.query(now, 10).expect("valid");
        assert_eq!(query.since, Some(now - TimeDelta::hours(1)));
        assert_eq!(query.until, None);
    }
}
