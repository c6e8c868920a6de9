//! Small widgets the views share.

use egui::{Color32, RichText, Ui};

use crate::api::DeliveryStatus;

use super::theme;

/// A filled circle, for connection and health states.
pub fn status_dot(ui: &mut Ui, color: Color32) {
    let (rect, _) = ui.allocate_exact_size(egui::vec2(10.0, 10.0), egui::Sense::hover());
    ui.painter().circle_filled(rect.center(), 4.5, color);
}

/// A delivery status with its colour and icon, so a failure stands out.
pub fn delivery_status(status: DeliveryStatus) -> RichText {
    let (icon, color) = match status {
        DeliveryStatus::Succeeded => ("✔", theme::SUCCESS),
        DeliveryStatus::Failed => ("✖", theme::FAILURE),
        DeliveryStatus::Retrying => ("⟳", theme::WARNING),
        DeliveryStatus::Pending => ("…", theme::PENDING),
    };
    RichText::new(format!("{icon} {}", status.as_str()))
        .color(color)
        .strong()
}

/// A headline and the error text beneath it.
pub fn problem_ui(ui: &mut Ui, headline: &str, detail: &str) {
    ui.add_space(24.0);
    ui.vertical_centered(|ui| {
        ui.label(RichText::new(headline).heading().color(theme::FAILURE));
        ui.add_space(8.0);
        ui.label(detail);
    });
}

/// A field's error, right under it.
pub fn field_error_ui(ui: &mut Ui, error: Option<&str>) {
    if let Some(error) = error {
        ui.label(RichText::new(error).color(theme::FAILURE).small());
    }
}

/// A field's warning (something to check, not an error).
pub fn field_warning_ui(ui: &mut Ui, warning: &str) {
    ui.label(
        RichText::new(format!("⚠ {warning}"))
            .color(theme::WARNING)
            .small(),
    );
}

/// A non-selectable label, so that a click reaches the table row under it.
pub fn cell(ui: &mut Ui, text: impl Into<RichText>) {
    ui.add(egui::Label::new(text.into()).selectable(false).truncate());
}

/// A button for an action the connection's key may not take (`refused` says why), shown
/// disabled with that reason as its tooltip; otherwise an ordinary button.
pub fn action_button(
    ui: &mut Ui,
    refused: Option<&str>,
    text: impl Into<egui::WidgetText>,
) -> egui::Response {
    ui.add_enabled(refused.is_none(), egui::Button::new(text))
        .on_disabled_hover_text(refused.unwrap_or_default())
}

/// Time as `HH:MM:SS` today or `YYYY-MM-DD HH:MM` otherwise, in local time.
pub fn time(at: chrono::DateTime<chrono::Utc>) -> String {
    let local = at.with_timezone(&chrono::Local);
    if local.date_naive() == chrono::Local::now().date_naive() {
        local.format("%H:%M:%S").to_string()
    } else {
        local.format("%Y-%m-%d %H:%M").to_string()
    }
}

/// "1 delivery", "250 deliveries".
pub fn deliveries(n: u64) -> String {
    if n == 1 {
        "1 delivery".to_owned()
    } else {
        format!("{n} deliveries")
    }
}

/// A span of time in whole days, or hours and minutes under a day: "94 days", "1 hour 59
/// minutes", "5 minutes", "under a minute".
pub fn span(span: chrono::TimeDelta) -> String {
    let unit = |n: i64, one: &str, many: &str| {
        if n == 1 {
            format!("1 {one}")
        } else {
            format!("{n} {many}")
        }
    };
    if span.num_days() >= 1 {
        unit(span.num_days(), "day", "days")
    } else if span.num_hours() >= 1 {
        let minutes = span.num_minutes() % 60;
        let hours = unit(span.num_hours(), "hour", "hours");
        if minutes == 0 {
            hours
        } else {
            format!("{hours} {}", unit(minutes, "minute", "minutes"))
        }
    } else if span.num_minutes() >= 1 {
        unit(span.num_minutes(), "minute", "minutes")
    } else {
        "under a minute".to_owned()
    }
}

/// An age in whole days, for a column: "today", "1 day", "94 days".
pub fn age_in_days(age: chrono::TimeDelta) -> String {
    match age.num_days() {
        ..=0 => "today".to_owned(),
        1 => "1 day".to_owned(),
        days => format!("{days} days"),
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::{age_in_days, span};

    #[test]
    fn a_span_is_told_in_its_largest_whole_unit() {
        assert_eq!(span(TimeDelta::days(94) + TimeDelta::hours(23)), "94 days");
        assert_eq!(span(TimeDelta::days(1)), "1 day");
        assert_eq!(span(TimeDelta::minutes(119)), "1 hour 59 minutes");
        assert_eq!(span(TimeDelta::hours(3)), "3 hours");
        assert_eq!(span(TimeDelta::minutes(5)), "5 minutes");
        assert_eq!(span(TimeDelta::seconds(59)), "under a minute");
        assert_eq!(span(TimeDelta::seconds(-5)), "under a minute");
    }

    #[test]
    fn an_age_is_told_in_days() {
        assert_eq!(age_in_days(TimeDelta::hours(23)), "today");
        assert_eq!(age_in_days(TimeDelta::hours(47)), "1 day");
        assert_eq!(age_in_days(TimeDelta::days(94)), "94 days");
    }
}
