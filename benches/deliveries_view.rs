//! CPU time per frame of the deliveries view with 100 000 rows loaded, scrolling, in a
//! headless egui context (layout and tessellation; no GPU). Prints median, p99 and max.
//!
//! cargo bench --bench deliveries_view

use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use egui::{Event, Modifiers, MouseWheelSource, MouseWheelUnit, RawInput, TouchPhase, pos2, vec2};
use hookpanel::api::{Delivery, DeliveryList, DeliveryStatus, Webhook, WebhookHealth, WebhookKind};
use hookpanel::ui::backend::PageRequest;
use hookpanel::ui::commands::Commands;
use hookpanel::ui::deliveries::DeliveriesView;
use hookpanel::ui::remote::Remote;

const ROWS: usize = 100_000;
const WARMUP_FRAMES: usize = 30;
const MEASURED_FRAMES: usize = 1_000;

fn deliveries() -> Vec<Delivery> {
    let now = Utc::now();
    (0..ROWS)
        .map(|n| {
            let status = match n % 10 {
                0 => DeliveryStatus::Failed,
                1 => DeliveryStatus::Retrying,
                _ => DeliveryStatus::Succeeded,
            };
            let failed = status != DeliveryStatus::Succeeded;
            Delivery {
                id: format!("dlv_{n:026}"),
                webhook_id: format!("wh_{:026}", n % 20),
                event_id: format!("msg_{n:026}"),
                event_type: ["order.created", "payment.received", "shipment.delivered"][n % 3]
                    .to_owned(),
                status,
                status_code: Some(if failed { 503 } else { 200 }),
                success: !failed,
                attempts: if failed { 3 } else { 1 },
                created_at: now - TimeDelta::seconds(i64::try_from(n).unwrap_or(0)),
                last_attempt_at: Some(now),
                last_duration_ms: Some(u64::try_from(n % 900).unwrap_or(0)),
                next_attempt_at: None,
                last_error: failed
                    .then(|| "the receiver answered 503 Service Unavailable".to_owned()),
            }
        })
        .collect()
}

/// Twenty webhooks, so the webhook column shows names as it does in use.
fn remote() -> Remote {
    let now = Utc::now();
    let webhooks = (0..20)
        .map(|n| Webhook {
            id: format!("wh_{n:026}"),
            name: format!("Receiver {n} (production)"),
            url: format!("https://hooks{n}.example.com/in"),
            events: vec!["*".to_owned()],
            kind: WebhookKind::Generic,
            description: None,
            owner: None,
            is_active: true,
            rate_limit: None,
            disabled_reason: None,
            secret_hint: "abcd".to_owned(),
            secret_created_at: now,
            previous_secrets: Vec::new(),
            created_at: now,
            updated_at: now,
            success_24h: 0,
            failed_24h: 0,
            failed_total: 0,
            last_delivery_at: None,
            last_status_code: None,
            last_success_at: None,
            failing_since: None,
            last_error: None,
            pending: 0,
            retrying: 0,
            oldest_due_at: None,
            health: WebhookHealth::Healthy,
        })
        .collect();
    Remote {
        webhooks: Some(webhooks),
        ..Remote::default()
    }
}

fn input(frame: usize, start: Instant) -> RawInput {
    RawInput {
        screen_rect: Some(egui::Rect::from_min_size(
            pos2(0.0, 0.0),
            vec2(1280.0, 800.0),
        )),
        time: Some(start.elapsed().as_secs_f64()),
        events: vec![
            Event::PointerMoved(pos2(640.0, 400.0)),
            Event::MouseWheel {
                unit: MouseWheelUnit::Point,
                // Down steadily, back up now and then, like an operator looking for a row.
                delta: vec2(0.0, if frame % 200 < 170 { -60.0 } else { 120.0 }),
                phase: TouchPhase::Move,
                source: MouseWheelSource::Unknown,
                modifiers: Modifiers::NONE,
            },
        ],
        ..RawInput::default()
    }
}

fn main() {
    let ctx = egui::Context::default();
    let remote = remote();
    let mut view = DeliveriesView::all();
    let mut commands = Commands::default();
    let first_page = PageRequest {
        generation: 0,
        more: false,
    };
    let loaded = view.loaded(
        first_page,
        Ok(DeliveryList {
            items: deliveries(),
            next_cursor: None,
            total: None,
            total_capped: false,
        }),
        &remote,
    );
    assert!(loaded.is_ok());
    let start = Instant::now();
    let mut frame_times: Vec<Duration> = Vec::with_capacity(MEASURED_FRAMES);
    let mut shown_vertices = 0;
    for frame in 0..WARMUP_FRAMES + MEASURED_FRAMES {
        let raw = input(frame, start);
        let began = Instant::now();
        let output = ctx.run_ui(raw, |ui| view.ui(ui, &remote, &mut commands));
        let primitives = ctx.tessellate(output.shapes, output.pixels_per_point);
        let took = began.elapsed();
        if frame >= WARMUP_FRAMES {
            frame_times.push(took);
            shown_vertices = primitives
                .iter()
                .map(|p| match &p.primitive {
                    egui::epaint::Primitive::Mesh(mesh) => mesh.vertices.len(),
                    egui::epaint::Primitive::Callback(_) => 0,
                })
                .sum();
        }
    }
    frame_times.sort_unstable();
    let at = |q: f64| {
        let index = ((frame_times.len() as f64 - 1.0) * q).round() as usize;
        frame_times[index].as_secs_f64() * 1000.0
    };
    println!("deliveries view, {ROWS} rows loaded, 1280×800, scrolling every frame");
    println!("frames measured: {}", frame_times.len());
    println!("median: {:.3} ms", at(0.5));
    println!("p99:    {:.3} ms", at(0.99));
    println!("max:    {:.3} ms", at(1.0));
    println!("vertices in the last frame: {shown_vertices}");
    println!(
        "scrolled to: {:.0} px (≈ row {:.0})",
        view.scroll_offset(),
        view.scroll_offset() / 32.0
    );
}
