//! Colours and spacing: status colours that read at a glance in dark and light themes.

use egui::Color32;

use crate::api::WebhookHealth;

/// Delivered, healthy.
pub const SUCCESS: Color32 = Color32::from_rgb(0x2e, 0xa0, 0x43);
/// Failed: the colour the eye should go to first.
pub const FAILURE: Color32 = Color32::from_rgb(0xe0, 0x3e, 0x3e);
/// Waiting for a retry.
pub const WARNING: Color32 = Color32::from_rgb(0xd9, 0x8e, 0x04);
/// Waiting for its first attempt.
pub const PENDING: Color32 = Color32::from_rgb(0x5b, 0x8d, 0xef);

/// The colour every view gives a webhook's health: red for failing, amber for degraded,
/// `weak` (the theme's weak text) for inactive.
pub fn health_color(health: WebhookHealth, weak: Color32) -> Color32 {
    match health {
        WebhookHealth::Healthy => SUCCESS,
        WebhookHealth::Degraded => WARNING,
        WebhookHealth::Failing => FAILURE,
        WebhookHealth::Inactive => weak,
    }
}

pub fn apply(ctx: &egui::Context) {
    ctx.global_style_mut(|style| {
        style.spacing.item_spacing = egui::vec2(8.0, 6.0);
        style.spacing.button_padding = egui::vec2(8.0, 4.0);
        style.spacing.interact_size.y = 24.0;
    });
}
