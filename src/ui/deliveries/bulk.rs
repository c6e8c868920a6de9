//! Bulk resend as the operator sees it: "Resend N selected" and "Resend all N matching"
//! are one request each to the service. Resending a whole filter is confirmed first,
//! with what the service says it covers (a dry run): how many deliveries, of which
//! webhooks, and what it would skip. Progress and the summary come from the answers.

use std::collections::BTreeMap;

use egui::RichText;

use super::super::remote::Remote;
use super::super::theme;
use super::super::widgets::deliveries;
use crate::api::{BulkResent, DeliveryFilter, SkipReason};

/// A bulk resend being confirmed, under way, or just finished.
pub enum BulkResend {
    /// Asking the service what resending every delivery matching `filter` covers.
    Previewing {
        filter: DeliveryFilter,
    },
    /// The confirmation: what the service said a resend of `filter` would do.
    Confirming {
        filter: DeliveryFilter,
        preview: BulkResent,
    },
    /// Sent; about `expected` deliveries are being queued.
    Sending {
        expected: u64,
    },
    Done(BulkResent),
    Failed(String),
}

/// What the confirmation window asks for.
pub enum BulkAsk {
    /// Resend every delivery matching `filter`: about `expected` of them.
    Confirm {
        filter: DeliveryFilter,
        expected: u64,
    },
    Cancel,
}

/// Most webhooks the confirmation names one by one.
const NAMED_WEBHOOKS: usize = 5;

impl BulkResend {
    /// Whether a request is on its way, so no other bulk resend starts.
    pub fn busy(&self) -> bool {
        matches!(self, Self::Previewing { .. } | Self::Sending { .. })
    }

    /// The confirmation window, while confirming.
    pub fn confirm_window(&self, ctx: &egui::Context, remote: &Remote) -> Option<BulkAsk> {
        let Self::Confirming { filter, preview } = self else {
            return None;
        };
        let mut ask = None;
        let mut open = true;
        egui::Window::new("Resend all matching deliveries")
            .collapsible(false)
            .resizable(false)
            .open(&mut open)
            .anchor(egui::Align2::CENTER_CENTER, egui::Vec2::ZERO)
            .show(ctx, |ui| {
                ui.set_max_width(460.0);
                if preview.queued == 0 {
                    ui.label("No delivery matching the filter can be resent now.");
                } else {
                    ui.label(
                        RichText::new(format!(
                            "{} will be queued again now, each with a fresh retry cycle.",
                            deliveries(preview.queued)
                        ))
                        .strong(),
                    );
                    ui.add_space(4.0);
                    ui.label(format!(
                        "Webhooks: {}",
                        webhooks_named(&preview.queued_by_webhook, remote)
                    ));
                }
                if preview.skipped_total > 0 {
                    ui.label(
                        RichText::new(format!(
                            "{} will be skipped: {}.",
                            deliveries(preview.skipped_total),
                            skip_reasons(preview)
                        ))
                        .color(theme::WARNING),
                    );
                }
                ui.add_space(8.0);
                ui.horizontal(|ui| {
                    let label = RichText::new(format!("↻ Resend {}", preview.queued)).strong();
                    let button = egui::Button::new(label).fill(theme::FAILURE.gamma_multiply(0.35));
                    if ui.add_enabled(preview.queued > 0, button).clicked() {
                        ask = Some(BulkAsk::Confirm {
                            filter: filter.clone(),
                            expected: preview.queued,
                        });
                    }
                    if ui.button("Cancel").clicked() {
                        ask = Some(BulkAsk::Cancel);
                    }
                });
            });
        if !open {
            ask = Some(BulkAsk::Cancel);
        }
        ask
    }

    /// A spinner or progress while under way, then a summary.
    pub fn status_ui(&self, ui: &mut egui::Ui) {
        match self {
            Self::Previewing { .. } => {
                ui.spinner();
                ui.label("Counting the matching deliveries…");
            }
            Self::Confirming { .. } => {}
            Self::Sending { expected } => {
                ui.spinner();
                ui.label(format!("Queuing {} again…", deliveries(*expected)));
            }
            Self::Done(resent) if resent.skipped_total == 0 => {
                let text = format!("✔ All {} queued again", resent.queued);
                ui.label(RichText::new(text).color(theme::SUCCESS));
            }
            Self::Done(resent) => {
                let text = format!(
                    "{} queued again, {} skipped: {}",
                    resent.queued,
                    resent.skipped_total,
                    skip_reasons(resent)
                );
                ui.label(RichText::new(text).color(theme::WARNING));
            }
            Self::Failed(error) => {
                ui.label(RichText::new(format!("Resend failed: {error}")).color(theme::FAILURE));
            }
        }
    }
}

/// "Orders (240), Billing (10) and 3 more", the most first.
fn webhooks_named(by_webhook: &BTreeMap<String, u64>, remote: &Remote) -> String {
    let mut counts: Vec<(&String, &u64)> = by_webhook.iter().collect();
    counts.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
    let named: Vec<String> = counts
        .iter()
        .take(NAMED_WEBHOOKS)
        .map(|(id, n)| format!("{} ({n})", remote.webhook_name(id).unwrap_or(id)))
        .collect();
    match counts.len().saturating_sub(NAMED_WEBHOOKS) {
        0 => named.join(", "),
        more => format!("{} and {more} more", named.join(", ")),
    }
}

/// The reasons among the listed skips, in words: "2 in flight, 1 of an inactive webhook".
fn skip_reasons(resent: &BulkResent) -> String {
    let mut by_reason: BTreeMap<SkipReason, u64> = BTreeMap::new();
    for skipped in &resent.skipped {
        *by_reason.entry(skipped.reason).or_default() += 1;
    }
    let words = |reason: SkipReason| match reason {
        SkipReason::InFlight => "in flight",
        SkipReason::WebhookGone => "of a deleted webhook",
        SkipReason::WebhookInactive => "of an inactive webhook",
        SkipReason::NotFound => "no longer there",
    };
    let mut parts: Vec<String> = by_reason
        .into_iter()
        .map(|(reason, n)| format!("{n} {}", words(reason)))
        .collect();
    let listed = resent.skipped.len() as u64;
    if resent.skipped_total > listed {
        parts.push(format!("{} more", resent.skipped_total - listed));
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::SkippedDelivery;

    #[test]
    fn skip_reasons_are_counted_in_words() {
        let skip = |id: &str, reason| SkippedDelivery {
            id: id.to_owned(),
            reason,
        };
        let resent = BulkResent {
            queued: 3,
            skipped: vec![
                skip("a", SkipReason::InFlight),
                skip("b", SkipReason::WebhookInactive),
                skip("c", SkipReason::InFlight),
            ],
            skipped_total: 5,
            queued_by_webhook: BTreeMap::new(),
        };
        assert_eq!(
            skip_reasons(&resent),
            "2 in flight, 1 of an inactive webhook, 2 more"
        );
        assert_eq!(deliveries(1), "1 delivery");
        assert_eq!(deliveries(12), "12 deliveries");
    }
}
