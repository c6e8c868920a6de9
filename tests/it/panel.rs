//! The panel, driven through its own widgets with egui_kittest, headless, against a real
//! embedded service (SQLite in a temp dir) and a keychain: the real Secret Service where
//! `HOOKPANEL_REQUIRE_KEYCHAIN` is set (CI), otherwise an in-memory store — this machine's
//! own keychain is never touched by a plain `cargo test`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use egui::accesskit::Role;
use egui_kittest::Harness;
use egui_kittest::kittest::NodeT as _;
use egui_kittest::kittest::Queryable as _;
use hookpanel::api::{DeliveryQuery, DeliveryStatus, EventIn, Webhook};
use hookpanel::client::Client;
use hookpanel::keychain::{Account, Keychain, LOCAL_PROFILE};
use hookpanel::ui::app::Notifications;
use hookpanel::ui::{App, Startup, View};
use serde_json::json;

use crate::receiver::{Behaviour, Receiver};

struct Panel {
    harness: Harness<'static, App>,
    keychain: Keychain,
    runtime: tokio::runtime::Runtime,
    _data_dir: tempfile::TempDir,
}

fn keychain() -> Keychain {
    if std::env::var_os("HOOKPANEL_REQUIRE_KEYCHAIN").is_some() {
        let keychain = Keychain::platform().expect("the OS keychain CI provides");
        eprintln!("panel tests run against: {}", keychain.description());
        keychain
    } else {
        eprintln!(
            "panel tests run against: the in-memory store (CI runs them against gnome-keyring)"
        );
        Keychain::in_memory()
    }
}

impl Panel {
    fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let data_dir = tempfile::tempdir().expect("temp dir");
        let keychain = keychain();
        let ctx = egui::Context::default();
        let app = App::new(
            &ctx,
            runtime.handle().clone(),
            None,
            Startup {
                data_dir: data_dir.path().to_owned(),
                keychain: Some(Ok(keychain.clone())),
            },
        );
        let harness = Harness::builder()
            .with_size(egui::vec2(1280.0, 800.0))
            .build_ui_state(|ui, app: &mut App| app.frame_ui(ui), app);
        let mut panel = Self {
            harness,
            keychain,
            runtime,
            _data_dir: data_dir,
        };
        panel.step_until("the panel to connect", |app| app.is_ready());
        panel
    }

    /// Steps frames until `done` holds, for at most 20 s.
    fn step_until(&mut self, what: &str, mut done: impl FnMut(&App) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            self.harness.step();
            if done(self.harness.state()) {
                return;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Steps until a node labelled exactly `label` is on screen.
    fn step_until_label(&mut self, label: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            self.harness.step();
            if self.harness.query_by_label(label).is_some() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {label:?}; on screen: {}",
                self.labels()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn step_until_label_contains(&mut self, part: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            self.harness.step();
            if self
                .harness
                .query_all_by_label_contains(part)
                .next()
                .is_some()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for a label containing {part:?}; on screen: {}",
                self.labels()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Wheels down over the table until the last loaded row shows and the next page lands,
    /// which puts `label` on screen.
    fn scroll_until_label(&mut self, label: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.harness.query_by_label(label).is_none() {
            assert!(Instant::now() < deadline, "{}", self.labels());
            self.harness
                .event(egui::Event::PointerMoved(egui::pos2(640.0, 600.0)));
            self.harness.event(egui::Event::MouseWheel {
                unit: egui::MouseWheelUnit::Point,
                delta: egui::vec2(0.0, -3000.0),
                phase: egui::TouchPhase::Move,
                source: egui::MouseWheelSource::Unknown,
                modifiers: egui::Modifiers::NONE,
            });
            self.harness.step();
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every label on screen, for failure messages.
    fn labels(&self) -> String {
        self.harness
            .query_all_by(|node| node.label().is_some() || node.value().is_some())
            .filter_map(|node| {
                let node = node.accesskit_node();
                node.label()
                    .or(node.value())
                    .map(|text| format!("{text:?}"))
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Clicks the node labelled `label`, once it is on screen (windows take a frame).
    fn click(&mut self, label: &str) {
        self.step_until_label(label);
        self.harness.get_by_label(label).click();
        self.harness.step();
        self.harness.step();
    }

    fn type_into(&mut self, label: &str, text: &str) {
        self.harness.get_by_label(label).click();
        self.harness.step();
        self.harness.get_by_label(label).type_text(text);
        self.harness.step();
    }

    /// Steps until the node labelled `label` stands still: a modal is placed by its size
    /// in the frame before, so it settles a few frames after it opens.
    fn wait_until_still(&mut self, label: &str) {
        let mut rect = egui::Rect::NOTHING;
        for _ in 0..60 {
            let now = self.harness.get_by_label(label).rect();
            if now == rect {
                return;
            }
            rect = now;
            self.harness.step();
        }
    }

    /// Opens the combo box labelled `combo` and picks `option` in it.
    fn choose(&mut self, combo: &str, option: &str) {
        self.harness
            .get_by_role_and_label(Role::ComboBox, combo)
            .click();
        self.harness.step();
        self.harness.step();
        // The option, not a table cell showing the same text; scrolled into the popup's view.
        let option_node = |harness: &Harness<'static, App>| {
            harness
                .query_all_by_label(option)
                .find(|node| node.accesskit_node().role() != Role::Label)
                .map(|node| node.accesskit_node().id())
        };
        let Some(id) = option_node(&self.harness) else {
            panic!("no option {option:?} in {combo:?}: {}", self.labels());
        };
        self.harness.get_by(|node| node.id() == id).scroll_to_me();
        // Scrolling animates: wait until the option stands still.
        let mut rect = egui::Rect::NOTHING;
        let mut still = 0;
        for _ in 0..120 {
            self.harness.step();
            let now = self.harness.get_by(|node| node.id() == id).rect();
            still = if now == rect { still + 1 } else { 0 };
            if still == 5 {
                break;
            }
            rect = now;
        }
        self.harness.get_by(|node| node.id() == id).click();
        self.harness.step();
        self.harness.step();
    }

    /// Waits until the table holds exactly `rows` rows, all loaded.
    fn step_until_rows(&mut self, rows: usize) {
        self.step_until_label(&format!("{rows} rows · all loaded"));
    }

    /// Registers a webhook through the admin API, as another operator would.
    fn api_webhook(&self, name: &str, url: String, events: &[&str]) {
        let webhook = hookpanel::api::WebhookIn {
            name: name.to_owned(),
            url,
            events: events.iter().map(|e| (*e).to_owned()).collect(),
            kind: hookpanel::api::WebhookKind::Generic,
            description: None,
            owner: None,
            rate_limit: None,
        };
        self.runtime
            .block_on(self.client().create_webhook(&webhook))
            .expect("created");
    }

    /// Emits `count` order.created events through the admin API.
    fn emit_orders(&self, count: usize) {
        let client = self.client();
        self.runtime.block_on(async {
            for n in 0..count {
                let event = EventIn {
                    event_type: "order.created".to_owned(),
                    data: json!({"n": n}),
                    id: None,
                };
                client.emit(&event).await.expect("emitted");
            }
        });
    }

    fn webhook(&self, name: &str) -> Option<Webhook> {
        self.harness
            .state()
            .remote()
            .webhooks
            .as_ref()?
            .iter()
            .find(|w| w.name == name)
            .cloned()
    }

    fn stored_secret(&self, webhook_id: &str) -> Option<String> {
        self.keychain
            .get(&Account::webhook_secret(LOCAL_PROFILE, webhook_id))
            .expect("keychain readable")
            .map(|secret| secret.to_string())
    }

    /// The secret the open secret-once modal shows.
    fn shown_secret(&mut self) -> String {
        self.step_until_label("Copy");
        let secret = self
            .harness
            .get_by_label("Secret (shown once)")
            .value()
            .expect("the secret field has a value");
        assert!(secret.starts_with("whsec_"), "{secret}");
        secret
    }

    /// A client of the embedded service, with the admin key from the keychain.
    fn client(&self) -> Client {
        let admin_key = self.keychain.local_admin_key().expect("admin key");
        Client::new(
            self.harness.state().base_url().expect("connected"),
            admin_key,
        )
        .expect("client")
    }

    fn create_webhook(&mut self, name: &str, url: &str, event_label: &str) {
        self.click("+ New webhook");
        self.wait_until_still("Name");
        self.type_into("Name", name);
        self.type_into("URL", url);
        self.click(event_label);
        self.click("Create webhook");
    }
}

#[test]
fn create_rotate_toggle_and_delete_through_the_panel() {
    let mut panel = Panel::start();
    panel.step_until_label("No webhooks yet");
    panel.step_until("the event catalog", |app| {
        !app.remote().event_types.is_empty()
    });

    panel.create_webhook("Orders", "http://127.0.0.1:9/hooks", "order.created");
    let secret = panel.shown_secret();
    panel.step_until("the new webhook in the list", |app| {
        app.remote()
            .webhooks
            .as_ref()
            .is_some_and(|list| list.iter().any(|w| w.name == "Orders"))
    });
    let webhook = panel.webhook("Orders").expect("created");
    assert_eq!(webhook.events, ["order.created"]);
    assert_eq!(
        panel.stored_secret(&webhook.id).as_deref(),
        Some(secret.as_str()),
        "the keychain holds exactly the shown secret"
    );
    assert!(
        panel
            .harness
            .query_all_by_label_contains("Saved to the OS keychain")
            .next()
            .is_some()
    );

    panel.click("Close");
    assert!(
        panel.harness.query_by_label("Copy").is_none(),
        "the modal is closed"
    );
    assert!(
        panel.harness.query_by_value(&secret).is_none(),
        "the secret is nowhere in the UI"
    );
    assert!(
        panel
            .harness
            .query_all_by_label_contains(&secret)
            .next()
            .is_none(),
        "the secret is nowhere in the UI"
    );

    // The detail panel of the selected webhook: rotate.
    panel.step_until_label("Rotate secret…");
    panel.click("Rotate secret…");
    panel.step_until_label_contains("Grace period");
    panel.click("Rotate secret");
    let rotated = panel.shown_secret();
    assert_ne!(rotated, secret);
    assert_eq!(
        panel.stored_secret(&webhook.id).as_deref(),
        Some(rotated.as_str()),
        "rotation replaced the keychain entry"
    );
    assert!(
        panel
            .harness
            .query_all_by_label_contains("previous secret keeps signing")
            .next()
            .is_some()
    );
    panel.click("Close");
    assert!(panel.harness.query_by_value(&rotated).is_none());

    // Deactivate, then activate again.
    panel.click("Deactivate");
    panel.step_until("the webhook to be inactive", |app| {
        app.remote()
            .webhooks
            .as_ref()
            .is_some_and(|l| l.iter().any(|w| w.id == webhook.id && !w.is_active))
    });
    panel.step_until_label("Activate");
    panel.click("Activate");
    panel.step_until("the webhook to be active", |app| {
        app.remote()
            .webhooks
            .as_ref()
            .is_some_and(|l| l.iter().any(|w| w.id == webhook.id && w.is_active))
    });

    // Delete, behind a confirmation that names it.
    panel.step_until_label("Delete…");
    panel.click("Delete…");
    panel.step_until_label("Delete Orders?");
    panel.click("Delete Orders");
    panel.step_until("the webhook to be gone", |app| {
        app.remote()
            .webhooks
            .as_ref()
            .is_some_and(|l| l.iter().all(|w| w.id != webhook.id))
    });
    // The panel hears of the deletion only after the keychain entry is removed.
    assert_eq!(
        panel.stored_secret(&webhook.id),
        None,
        "the deleted webhook's secret left the keychain"
    );
}

#[test]
fn a_bad_url_shows_the_server_message_beside_the_url_field_and_keeps_the_form() {
    let mut panel = Panel::start();
    panel.step_until("the event catalog", |app| {
        !app.remote().event_types.is_empty()
    });
    panel.create_webhook(
        "Billing",
        "ftp://billing.example.com/in",
        "* — every event type",
    );
    panel.step_until_label_contains("the URL must be https");
    let error = panel.harness.get_by_label_contains("the URL must be https");
    let url_field = panel.harness.get_by_label("URL");
    let (error_rect, field_rect) = (error.rect(), url_field.rect());
    assert!(
        error_rect.top() >= field_rect.bottom() - 1.0
            && error_rect.top() - field_rect.bottom() < 30.0,
        "the message sits right under the URL field: {error_rect:?} vs {field_rect:?}"
    );
    assert_eq!(
        panel.harness.get_by_label("Name").value().as_deref(),
        Some("Billing"),
        "nothing typed is lost"
    );
    assert_eq!(
        panel.harness.get_by_label("URL").value().as_deref(),
        Some("ftp://billing.example.com/in")
    );
    assert!(panel.webhook("Billing").is_none());
}

#[test]
fn a_rate_limit_is_checked_beside_its_field_set_shown_and_lifted() {
    let mut panel = Panel::start();
    panel.step_until("the event catalog", |app| {
        !app.remote().event_types.is_empty()
    });
    panel.click("+ New webhook");
    panel.wait_until_still("Name");
    panel.type_into("Name", "Recovering");
    panel.type_into("URL", "http://127.0.0.1:9/hooks");
    panel.click("order.created");
    panel.type_into("Rate limit", "25000");
    panel.step_until_label_contains("25000 is not a rate limit");
    let error = panel
        .harness
        .get_by_label_contains("25000 is not a rate limit")
        .rect();
    let field = panel.harness.get_by_label("Rate limit").rect();
    assert!(
        error.top() >= field.bottom() - 1.0 && error.top() - field.bottom() < 30.0,
        "the message sits right under the field: {error:?} vs {field:?}"
    );
    // Nothing is sent while it stands.
    panel.click("Create webhook");
    assert!(panel.webhook("Recovering").is_none());
    panel.harness.get_by_label("Rate limit").click();
    panel.harness.step();
    panel.harness.key_press(egui::Key::End);
    for _ in 0..3 {
        panel.harness.key_press(egui::Key::Backspace);
        panel.harness.step();
    }
    assert_eq!(
        panel.harness.get_by_label("Rate limit").value().as_deref(),
        Some("25")
    );
    assert!(
        panel
            .harness
            .query_all_by_label_contains("is not a rate limit")
            .next()
            .is_none()
    );
    panel.click("Create webhook");
    panel.shown_secret();
    panel.click("Close");
    panel.step_until("the new webhook in the list", |app| {
        app.remote()
            .webhooks
            .as_ref()
            .is_some_and(|list| list.iter().any(|w| w.name == "Recovering"))
    });
    assert_eq!(
        panel.webhook("Recovering").and_then(|w| w.rate_limit),
        Some(25)
    );
    panel.step_until_label("25 deliveries per second at most");

    // Emptied, the field lifts the limit.
    panel.click("Edit");
    panel.step_until_label("Edit webhook");
    // The form's field, not the detail's row of the same name behind it.
    panel
        .harness
        .get_by_role_and_label(Role::TextInput, "Rate limit")
        .click();
    panel.harness.step();
    panel.harness.key_press(egui::Key::End);
    for _ in 0..2 {
        panel.harness.key_press(egui::Key::Backspace);
        panel.harness.step();
    }
    panel.click("Save");
    panel.step_until("the limit to be lifted", |app| {
        app.remote().webhooks.as_ref().is_some_and(|list| {
            list.iter()
                .any(|w| w.name == "Recovering" && w.rate_limit.is_none())
        })
    });
}

#[test]
fn a_secret_shows_its_age_and_its_predecessors_grace_can_be_ended() {
    let mut panel = Panel::start();
    panel.api_webhook("Billing", "http://127.0.0.1:9/billing".to_owned(), &["*"]);
    panel.step_until("the webhook in the list", |app| {
        app.remote()
            .webhooks
            .as_ref()
            .is_some_and(|list| list.iter().any(|w| w.name == "Billing"))
    });
    let id = panel.webhook("Billing").expect("listed").id;
    // A fresh secret's age in the list.
    panel.step_until_label("today");
    panel
        .runtime
        .block_on(panel.client().rotate_secret(&id, 3_600))
        .expect("rotated");
    panel.click("Billing");
    panel.step_until("the previous secret", |app| {
        app.remote().webhooks.as_ref().is_some_and(|list| {
            list.iter()
                .any(|w| w.id == id && w.previous_secrets.len() == 1)
        })
    });
    panel.step_until_label("issued under a minute ago");
    panel.step_until_label("Previous secret");
    panel.step_until_label_contains("minutes more");
    panel.click("End grace now…");
    panel.step_until_label_contains("End the grace period of Billing's previous secret now?");
    panel.click("End grace now");
    panel.step_until("the grace to end", |app| {
        app.remote().webhooks.as_ref().is_some_and(|list| {
            list.iter()
                .any(|w| w.id == id && w.previous_secrets.is_empty())
        })
    });
    panel.step_until_label("Previous secrets of Billing no longer sign");
    assert!(
        panel.harness.query_by_label("End grace now…").is_none(),
        "nothing left to end"
    );
    // Stored: the service has no previous secret left either.
    let stored = panel
        .runtime
        .block_on(panel.client().webhook(&id))
        .expect("read");
    assert!(stored.previous_secrets.is_empty());
}

#[test]
fn with_an_operator_key_the_panel_disables_what_the_key_may_not_do() {
    let mut panel = Panel::start();
    // A remote service whose admin gives the on-call person an operator key.
    let dir = tempfile::tempdir().expect("temp dir");
    let encryption_key = hookpanel::crypto::generate_encryption_key().expect("random");
    let mut config = crate::support::config(dir.path(), &encryption_key);
    let admin_key = "hpk_remote_admin_key_0123456789abcdefgh";
    config.admin_key = Some(zeroize::Zeroizing::new(admin_key.to_owned()));
    let remote = panel
        .runtime
        .block_on(hookpanel::server::start(config))
        .expect("remote starts");
    let remote_url = remote.base_url();
    let admin =
        Client::new(&remote_url, zeroize::Zeroizing::new(admin_key.to_owned())).expect("client");
    let webhook = hookpanel::api::WebhookIn {
        name: "Payments".to_owned(),
        url: "http://127.0.0.1:9/payments".to_owned(),
        events: vec!["*".to_owned()],
        kind: hookpanel::api::WebhookKind::Generic,
        description: None,
        owner: None,
        rate_limit: None,
    };
    panel
        .runtime
        .block_on(admin.create_webhook(&webhook))
        .expect("created");
    let operator: serde_json::Value = panel
        .runtime
        .block_on(async {
            reqwest::Client::new()
                .post(format!("{remote_url}/v1/admin/keys"))
                .bearer_auth(admin_key)
                .json(&json!({"name": "on-call", "role": "operator"}))
                .send()
                .await?
                .json()
                .await
        })
        .expect("operator key");
    let operator_key = operator["key"].as_str().expect("key").to_owned();

    let profile = format!("oncall-{}", hookpanel::store::new_id("p").to_lowercase());
    panel.click("Profiles…");
    panel.type_into("Profile name", &profile);
    panel.type_into("Base URL", &remote_url);
    panel.type_into("Admin key", &operator_key);
    panel.click("Save and connect");
    panel.step_until("the operator's key to be known", |app| {
        app.is_ready()
            && app.base_url() == Some(remote_url.as_str())
            && app
                .remote()
                .caller
                .as_ref()
                .is_some_and(|caller| caller.name == "on-call")
    });
    panel.step_until_label("Payments");
    panel.click("Payments");
    panel.step_until_label("Send test");
    let disabled = |panel: &Panel, label: &str| {
        panel
            .harness
            .get_by_label(label)
            .accesskit_node()
            .is_disabled()
    };
    for label in [
        "+ New webhook",
        "Edit",
        "Deactivate",
        "Rotate secret…",
        "Delete…",
    ] {
        assert!(disabled(&panel, label), "{label} is offered to an operator");
    }
    assert!(!disabled(&panel, "Send test"), "an operator sends tests");
    // What it may do still works.
    panel.click("Send test");
    panel.step_until_label_contains("Test event queued");
    // The hover says why.
    panel.harness.get_by_label("Delete…").hover();
    panel.step_until_label_contains(
        "Needs an admin key: this connection's key (on-call) is an operator's",
    );
    // The Keys view lists the keys and disables what only an admin may do.
    panel.click("Keys");
    panel.step_until_label("on-call");
    assert!(disabled(&panel, "Create key"), "an operator creates no key");
    assert!(
        panel
            .harness
            .query_all_by_label("Revoke…")
            .all(|node| node.accesskit_node().is_disabled()),
        "an operator revokes no key"
    );
    panel.click("Service");
    panel.step_until_label("Roll encryption key…");
    assert!(disabled(&panel, "Roll encryption key…"));
    panel
        .runtime
        .block_on(remote.shutdown())
        .expect("remote stops");
}

#[test]
fn a_test_endpoint_receives_a_verified_delivery() {
    let mut panel = Panel::start();
    panel.click("Create a test endpoint");
    panel.step_until("the inbox view", |app| {
        app.remote()
            .webhooks
            .as_ref()
            .is_some_and(|l| !l.is_empty())
    });
    panel.step_until_label("✔ signature verified");
    assert!(panel.harness.query_by_label("✖ not verified").is_none());
}

#[test]
fn a_failed_delivery_is_resent_from_the_failed_view_and_turns_succeeded() {
    let mut panel = Panel::start();
    let receiver = panel.runtime.block_on(Receiver::start());
    receiver.set("/orders", Behaviour::Status(400));
    let client = panel.client();
    panel.api_webhook(
        "Flaky receiver",
        receiver.url("/orders"),
        &["order.created"],
    );
    panel.runtime.block_on(async {
        client
            .emit(&EventIn {
                event_type: "order.created".to_owned(),
                data: json!({"order_id": "ord_1"}),
                id: Some("ord_1-created".to_owned()),
            })
            .await
            .expect("emitted");
    });
    panel.harness.state_mut().show_view(View::Failed);
    panel.step_until_label("✖ failed");
    panel.step_until_label_contains("the receiver answered 400");
    // The inspector shows the attempt, with the receiver's answer.
    panel.click("Flaky receiver");
    panel.step_until_label("Attempts (1)");
    panel.step_until_label_contains("#1 · 400 ·");

    receiver.set("/orders", Behaviour::Status(200));
    panel.click("↻ Resend");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        panel.harness.step();
        let succeeded = panel.runtime.block_on(client.deliveries(&DeliveryQuery {
            status: Some(DeliveryStatus::Succeeded),
            ..DeliveryQuery::default()
        }));
        if succeeded.is_ok_and(|page| page.items.len() == 1) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the resent delivery did not succeed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The failed view empties by itself, without a manual refresh.
    panel.step_until_label("No failed deliveries. All caught up.");
    panel.harness.state_mut().show_view(View::Deliveries);
    panel.step_until_label("✔ succeeded");
    assert_eq!(receiver.received("/orders").len(), 2);
}

#[test]
fn a_remote_profile_connects_with_its_admin_key_kept_in_the_keychain() {
    let mut panel = Panel::start();
    // The remote: a second real service, as `hookpanel serve` would run it for a team,
    // on PostgreSQL. Nothing in the panel depends on which database is behind the API.
    let remote_database = panel
        .runtime
        .block_on(crate::backend::PostgresDatabase::create());
    let encryption_key = hookpanel::crypto::generate_encryption_key().expect("random");
    let mut remote_config =
        crate::support::config_on(remote_database.url().to_owned(), &encryption_key);
    remote_config.admin_key = Some(zeroize::Zeroizing::new(
        "hpk_remote_right_key_0123456789abcdef".to_owned(),
    ));
    let remote = panel
        .runtime
        .block_on(hookpanel::server::start(remote_config))
        .expect("remote starts");
    let remote_url = remote.base_url();
    let created = panel.runtime.block_on(
        reqwest::Client::new()
            .post(format!("{remote_url}/v1/admin/webhooks"))
            .bearer_auth("hpk_remote_right_key_0123456789abcdef")
            .json(&serde_json::json!({
                "name": "Kept in PostgreSQL",
                "url": "https://pg.example.com/hooks",
                "events": ["*"],
            }))
            .send(),
    );
    assert_eq!(
        created.expect("sent").status(),
        reqwest::StatusCode::CREATED
    );
    let profile = format!("staging-{}", hookpanel::store::new_id("p").to_lowercase());

    // A wrong key is explained.
    panel.click("Profiles…");
    panel.type_into("Profile name", &profile);
    panel.type_into("Base URL", &remote_url);
    panel.type_into("Admin key", "hpk_wrong");
    panel.click("Save and connect");
    panel.step_until("the 401 to be explained", |app| {
        app.connection_error()
            .is_some_and(|e| e.contains("refused the admin key (401)"))
    });

    // The right key connects; it is in the keychain and nowhere in the persisted state.
    panel.click("Profiles…");
    panel.click("Edit");
    panel.type_into("Admin key", "hpk_remote_right_key_0123456789abcdef");
    panel.click("Save and connect");
    panel.step_until("the remote to be managed", |app| {
        app.is_ready() && app.base_url() == Some(remote_url.as_str())
    });
    panel.step_until_label("Kept in PostgreSQL");
    let stored = panel
        .keychain
        .get(&Account::admin_key(&profile))
        .expect("keychain readable")
        .map(|key| key.to_string());
    assert_eq!(
        stored.as_deref(),
        Some("hpk_remote_right_key_0123456789abcdef")
    );
    let persisted =
        serde_json::to_string(panel.harness.state().persisted_state()).expect("serialises");
    assert!(persisted.contains(&remote_url), "{persisted}");
    assert!(
        !persisted.contains("hpk_"),
        "an admin key reached the persisted state: {persisted}"
    );
    assert!(
        panel.harness.query_by_label("Test inbox").is_none(),
        "remote services host no inbox"
    );

    // A rename keeps the admin key: it moves in the keychain with the profile, and the
    // profile stays one.
    panel.click("Profiles…");
    panel.click("Edit");
    panel.type_into("Profile name", "-renamed");
    panel.click("Save and connect");
    // (The text goes in where the click put the cursor: the new name holds "-renamed".)
    panel.step_until("the renamed profile to connect", |app| {
        app.is_ready()
            && app
                .persisted_state()
                .active_profile
                .as_deref()
                .is_some_and(|name| name != profile && name.contains("-renamed"))
    });
    let renamed = panel
        .harness
        .state()
        .persisted_state()
        .active_profile
        .clone()
        .expect("a remote profile is active");
    panel.step_until_label("Kept in PostgreSQL");
    let moved = panel
        .keychain
        .get(&Account::admin_key(&renamed))
        .expect("keychain readable")
        .map(|key| key.to_string());
    assert_eq!(
        moved.as_deref(),
        Some("hpk_remote_right_key_0123456789abcdef")
    );
    assert_eq!(
        panel
            .keychain
            .get(&Account::admin_key(&profile))
            .expect("keychain readable"),
        None,
        "the old name's key is gone"
    );
    let names: Vec<&str> = panel
        .harness
        .state()
        .persisted_state()
        .profiles
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(names, [renamed.as_str()]);

    // An unreachable service is explained too.
    panel.click("Profiles…");
    panel.type_into("Profile name", "nowhere");
    panel.type_into("Base URL", "http://127.0.0.1:9");
    panel.type_into("Admin key", "hpk_whatever");
    panel.click("Save and connect");
    panel.step_until("the unreachable service to be explained", |app| {
        app.connection_error()
            .is_some_and(|e| e.contains("Cannot reach http://127.0.0.1:9"))
    });
    panel
        .runtime
        .block_on(remote.shutdown())
        .expect("remote stops");
}

#[test]
fn bulk_resend_of_every_failed_delivery_ends_with_all_delivered() {
    let mut panel = Panel::start();
    let receiver = panel.runtime.block_on(Receiver::start());
    receiver.set("/bulk", Behaviour::Status(422));
    let client = panel.client();
    panel.api_webhook("Bulk receiver", receiver.url("/bulk"), &["*"]);
    panel.emit_orders(3);
    panel.harness.state_mut().show_view(View::Failed);
    panel.step_until_label("Select all (3)");

    // The inspector opens on a click and closes with Esc.
    panel
        .harness
        .get_all_by_label("Bulk receiver")
        .next()
        .expect("a row")
        .click();
    panel.step_until_label("Attempts (1)");
    panel.harness.key_press(egui::Key::Escape);
    panel.harness.step();
    panel.harness.step();
    assert!(
        panel.harness.query_by_label("Attempts (1)").is_none(),
        "Esc closes the inspector"
    );

    receiver.set("/bulk", Behaviour::Status(204));
    panel.click("Select all (3)");
    panel.click("↻ Resend 3 selected");
    panel.step_until_label("✔ All 3 queued again");
    panel.step_until_label("No failed deliveries. All caught up.");
    // Resent deliveries leave the failed view as soon as they are queued again: wait
    // (bounded) for their attempts to be recorded.
    let succeeded = panel.runtime.block_on(crate::support::wait_for(
        "the three resent deliveries to succeed",
        Duration::from_secs(20),
        || async {
            let page = client
                .deliveries(&DeliveryQuery {
                    status: Some(DeliveryStatus::Succeeded),
                    ..DeliveryQuery::default()
                })
                .await
                .ok()?;
            (page.items.len() == 3).then_some(page)
        },
    ));
    assert_eq!(succeeded.items.len(), 3);
    assert_eq!(
        receiver.received("/bulk").len(),
        6,
        "each failed once, then arrived once"
    );
}

/// Four webhooks whose receivers answer differently, one delivery class each:
/// Orders 2xx (3 deliveries), Failing 4xx (2, failed), Flaky 5xx (1, retrying),
/// Dead: no answer (1, retrying).
struct Fleet {
    receiver: Receiver,
    client: Client,
}

fn fleet(panel: &mut Panel) -> Fleet {
    let receiver = panel.runtime.block_on(Receiver::start());
    receiver.set("/fails", Behaviour::Status(422));
    receiver.set("/flaky", Behaviour::Status(503));
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port");
    let client = panel.client();
    let hooks = [
        (
            "Orders hook",
            receiver.url("/ok"),
            vec!["order.created", "product.created"],
        ),
        (
            "Failing hook",
            receiver.url("/fails"),
            vec!["order.created"],
        ),
        (
            "Flaky hook",
            receiver.url("/flaky"),
            vec!["payment.received"],
        ),
        (
            "Dead hook",
            format!("http://{closed}/"),
            vec!["shipment.delivered"],
        ),
    ];
    let events = [
        ("order.created", "ord-1"),
        ("order.created", "ord-2"),
        ("product.created", "prod-1"),
        ("payment.received", "pay-1"),
        ("shipment.delivered", "ship-1"),
    ];
    for (name, url, events) in hooks {
        panel.api_webhook(name, url, &events);
    }
    panel.runtime.block_on(async {
        for (event_type, id) in events {
            client
                .emit(&EventIn {
                    event_type: event_type.to_owned(),
                    data: json!({"id": id}),
                    id: Some(id.to_owned()),
                })
                .await
                .expect("emitted");
        }
    });
    // Every delivery tried once.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let page = panel
            .runtime
            .block_on(client.deliveries(&DeliveryQuery::default()))
            .expect("listed");
        if page.items.len() == 7 && page.items.iter().all(|d| d.attempts > 0) {
            break;
        }
        assert!(Instant::now() < deadline, "deliveries not tried: {page:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    Fleet { receiver, client }
}

#[test]
fn each_filter_narrows_the_table_to_exactly_the_expected_rows() {
    let mut panel = Panel::start();
    let _fleet = fleet(&mut panel);
    panel.harness.state_mut().show_view(View::Deliveries);
    panel.step_until_rows(7);

    for (combo, option, rows) in [
        ("Status", "failed", 2),
        ("Status", "retrying", 2),
        ("Status", "any", 7),
        ("Webhook", "Orders hook", 3),
        ("Webhook", "Dead hook", 1),
        ("Webhook", "any", 7),
        ("Event type", "product.created", 1),
        ("Event type", "order.created", 4),
        ("Event type", "any", 7),
        ("HTTP code", "2xx", 3),
        ("HTTP code", "4xx", 2),
        ("HTTP code", "5xx", 1),
        ("HTTP code", "network error", 1),
        ("HTTP code", "any", 7),
    ] {
        panel.choose(combo, option);
        panel.step_until_rows(rows);
    }

    // Filters combine.
    panel.choose("Webhook", "Failing hook");
    panel.choose("Event type", "product.created");
    panel.step_until_label("No deliveries match the filter.");
    panel.click("Clear filters");
    panel.step_until_rows(7);

    // Time: a recent window keeps everything, a custom range in the past nothing, and a
    // bound that does not parse is explained beside its field and not sent.
    panel.choose("Time", "last hour");
    panel.step_until_rows(7);
    panel.choose("Time", "from … until …");
    panel.type_into("From", "2000-01-01");
    panel.type_into("Until", "2000-01-02");
    panel.harness.key_press(egui::Key::Tab);
    panel.step_until_label("No deliveries match the filter.");
    panel.type_into("Until", "x");
    panel.harness.key_press(egui::Key::Tab);
    panel.step_until_label("use 2026-11-22, 2026-11-22 14:30 or RFC 3339");
    panel.click("Clear filters");
    panel.step_until_rows(7);

    // The event id search, after Ctrl+F.
    panel
        .harness
        .key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::F);
    panel.harness.step();
    panel.harness.step();
    panel.harness.get_by_label("Search").type_text("ord-1");
    panel.harness.key_press(egui::Key::Enter);
    panel.step_until_rows(2);
}

#[test]
fn the_inspector_shows_every_attempt_in_order_and_the_keyboard_drives_it() {
    let mut panel = Panel::start();
    let fleet = fleet(&mut panel);
    // Two more refusals, then an acceptance: four attempts on one delivery.
    let failing = panel
        .runtime
        .block_on(fleet.client.deliveries(&DeliveryQuery {
            q: Some("ord-1".to_owned()),
            code: Some(hookpanel::api::CodeClass::ClientError),
            ..DeliveryQuery::default()
        }))
        .expect("listed")
        .items
        .remove(0);
    for (answer, attempts) in [(422, 2), (409, 3), (204, 4)] {
        fleet.receiver.set("/fails", Behaviour::Status(answer));
        panel
            .runtime
            .block_on(fleet.client.resend(&failing.id))
            .expect("resent");
        let deadline = Instant::now() + Duration::from_secs(20);
        while panel
            .runtime
            .block_on(fleet.client.delivery(&failing.id))
            .map(|d| {
                (
                    d.attempts.len(),
                    d.attempts.last().and_then(|a| a.status_code),
                )
            })
            .ok()
            != Some((attempts, Some(answer)))
        {
            assert!(
                Instant::now() < deadline,
                "attempt answered {answer} missing"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    panel.harness.state_mut().show_view(View::Deliveries);
    panel.step_until_rows(7);
    panel.type_into("Search", &failing.event_id);
    panel.harness.key_press(egui::Key::Enter);
    panel.step_until_rows(2);

    // Arrow down picks the first row, Enter inspects it; the two rows (one event, two
    // webhooks) share a millisecond, so either may be first. If it is the other
    // webhook's, the next arrow moves the open inspector along.
    panel.harness.key_press(egui::Key::Escape);
    panel.harness.step();
    panel.harness.key_press(egui::Key::ArrowDown);
    panel.harness.step();
    panel.harness.key_press(egui::Key::Enter);
    panel.step_until_label_contains("Attempts (");
    if panel
        .harness
        .query_all_by_label("Attempts (1)")
        .next()
        .is_some()
    {
        panel.harness.key_press(egui::Key::ArrowDown);
    }
    panel.step_until_label("Attempts (4)");
    let timeline: Vec<String> = panel
        .harness
        .query_all_by(|node| {
            node.label()
                .or(node.value())
                .is_some_and(|text| text.starts_with('#'))
        })
        .filter_map(|node| {
            let node = node.accesskit_node();
            node.label().or(node.value()).map(|text| text.to_string())
        })
        .collect();
    let heads: Vec<&str> = timeline
        .iter()
        .filter_map(|line| line.rsplitn(3, " · ").nth(2))
        .collect();
    assert_eq!(
        heads,
        ["#1 · 422", "#2 · 422", "#3 · 409", "#4 · 204"],
        "{timeline:?}"
    );
    panel.harness.key_press(egui::Key::Escape);
    panel.harness.step();
    panel.harness.step();
    assert!(panel.harness.query_by_label("Attempts (4)").is_none());
}

#[test]
fn failed_deliveries_are_recovered_per_webhook_and_exported() {
    let mut panel = Panel::start();
    let fleet = fleet(&mut panel);
    panel.harness.state_mut().show_view(View::Failed);
    panel.step_until_rows(2);

    // Export what the view shows to a file typed into the dialog.
    let out_dir = tempfile::tempdir().expect("temp dir");
    let path = out_dir.path().join("failed.csv");
    panel.click("Export…");
    panel.step_until_label("Export deliveries");
    panel.harness.get_by_label("File").click();
    panel.harness.step();
    panel
        .harness
        .key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    panel
        .harness
        .get_by_label("File")
        .type_text(&path.display().to_string());
    panel.harness.step();
    panel.click("Export");
    panel.step_until_label_contains("✔ Exported 2 deliveries");
    let mut reader = csv::Reader::from_path(&path).expect("the export exists");
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("row")).collect();
    assert_eq!(rows.len(), 2);
    assert!(
        rows.iter()
            .all(|row| &row[3] == "Failing hook" && &row[6] == "failed")
    );
    panel.click("Close");

    // Recover the failing webhook's deliveries once its receiver is fixed.
    fleet.receiver.set("/fails", Behaviour::Status(200));
    panel.choose("Webhook", "Failing hook");
    panel.step_until_rows(2);
    panel.click("Recover failed since…");
    panel.click("↻ Recover");
    panel.step_until_label_contains("Queued 2 failed deliveries of Failing hook again");
    panel.step_until_label("No failed deliveries match the filter.");
    assert_eq!(fleet.receiver.received("/fails").len(), 4);
}

#[test]
fn scrolling_to_the_end_loads_the_next_page() {
    let mut panel = Panel::start();
    let receiver = panel.runtime.block_on(Receiver::start());
    panel.api_webhook("Busy receiver", receiver.url("/ok"), &["order.created"]);
    panel.emit_orders(250);
    panel.harness.state_mut().show_view(View::Deliveries);
    panel.step_until_label("200 rows · more as you scroll");

    panel.scroll_until_label("250 rows · all loaded");
    assert!(panel.harness.query_by_label("Select all (250)").is_some());
}

/// "Resend all N matching" covers every delivery the filter matches, loaded or not, in
/// one request, after a confirmation that names how many and of which webhooks. N, and
/// the Failed tab's count, are the service's total, not the 200 rows loaded.
#[test]
fn resend_all_matching_covers_rows_not_loaded_after_naming_them() {
    let mut panel = Panel::start();
    let receiver = panel.runtime.block_on(Receiver::start());
    receiver.set("/refuses", Behaviour::Status(422));
    panel.api_webhook(
        "Refusing receiver",
        receiver.url("/refuses"),
        &["order.created"],
    );
    panel.emit_orders(250);
    panel.harness.state_mut().show_view(View::Failed);
    // Wait for every delivery to have failed: the first page shows 200 of them.
    let client = panel.client();
    let failed_count = |panel: &Panel| {
        panel
            .runtime
            .block_on(client.deliveries(&DeliveryQuery {
                status: Some(DeliveryStatus::Failed),
                limit: Some(500),
                ..DeliveryQuery::default()
            }))
            .map_or(0, |page| page.items.len())
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while failed_count(&panel) < 250 {
        assert!(Instant::now() < deadline, "250 failed deliveries");
        std::thread::sleep(Duration::from_millis(50));
    }
    panel.step_until_label("Select all (200+)");
    // 200 rows are loaded; the tab and the button count what the service counts.
    panel.step_until_label("↻ Resend all 250 matching…");
    panel.step_until_label("Failed deliveries (250)");
    receiver.set("/refuses", Behaviour::Status(204));
    panel.click("↻ Resend all 250 matching…");
    panel.step_until_label("↻ Resend 250");
    assert!(
        panel
            .harness
            .query_by_label(
                "250 deliveries will be queued again now, each with a fresh retry cycle."
            )
            .is_some(),
        "{}",
        panel.labels()
    );
    assert!(
        panel
            .harness
            .query_by_label("Webhooks: Refusing receiver (250)")
            .is_some(),
        "{}",
        panel.labels()
    );
    assert_eq!(
        failed_count(&panel),
        250,
        "the confirmation changes nothing"
    );
    panel.click("↻ Resend 250");
    panel.step_until_label("✔ All 250 queued again");
    panel.runtime.block_on(crate::support::wait_for(
        "the 250 resent deliveries to arrive",
        Duration::from_secs(30),
        || async { (receiver.received("/refuses").len() == 500).then_some(()) },
    ));
    panel.step_until_label("No failed deliveries. All caught up.");
}

/// A proxy that holds every request for `delay` before passing it to `upstream`, and
/// counts how many requests per path it holds at once.
struct SlowProxy {
    url: String,
    /// Per path: requests held now, and the most held at once.
    held: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, (usize, usize)>>>,
}

impl SlowProxy {
    fn start(runtime: &tokio::runtime::Runtime, upstream: String, delay: Duration) -> Self {
        use axum::body::Bytes;
        use axum::http::{HeaderMap, Method, StatusCode, Uri};
        let held = std::sync::Arc::new(std::sync::Mutex::new(std::collections::HashMap::<
            String,
            (usize, usize),
        >::new()));
        let counts = std::sync::Arc::clone(&held);
        let client = reqwest::Client::new();
        let forward = move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let (counts, client, upstream) = (counts.clone(), client.clone(), upstream.clone());
            async move {
                let path = uri.path().to_owned();
                {
                    let mut counts = counts.lock().expect("counts");
                    let entry = counts.entry(path.clone()).or_default();
                    entry.0 += 1;
                    entry.1 = entry.1.max(entry.0);
                }
                tokio::time::sleep(delay).await;
                let mut request = client
                    .request(method, format!("{upstream}{uri}"))
                    .body(body);
                for (name, value) in &headers {
                    if name != "host" {
                        request = request.header(name, value);
                    }
                }
                let answer = request.send().await;
                if let Some(entry) = counts.lock().expect("counts").get_mut(&path) {
                    entry.0 -= 1;
                }
                match answer {
                    Ok(answer) => {
                        let status = answer.status();
                        let content_type = answer.headers().get("content-type").cloned();
                        let body = answer.bytes().await.unwrap_or_default();
                        let mut response =
                            axum::response::Response::new(axum::body::Body::from(body));
                        *response.status_mut() = status;
                        if let Some(content_type) = content_type {
                            response.headers_mut().insert("content-type", content_type);
                        }
                        response
                    }
                    Err(_) => {
                        let mut response = axum::response::Response::default();
                        *response.status_mut() = StatusCode::BAD_GATEWAY;
                        response
                    }
                }
            }
        };
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        runtime.spawn(async move {
            let _ = axum::serve(listener, axum::Router::new().fallback(forward)).await;
        });
        Self { url, held }
    }

    /// The most requests to `path` held at once so far.
    fn most_at_once(&self, path: &str) -> usize {
        self.held
            .lock()
            .expect("counts")
            .get(path)
            .map_or(0, |(_, most)| *most)
    }
}

#[test]
fn a_slow_service_gets_one_request_per_view_at_a_time_and_the_panel_says_it_is_slow() {
    let mut panel = Panel::start();
    // The remote: a real service behind a proxy that answers every request after 2.5 s,
    // while views refresh every 3 s.
    let remote_dir = tempfile::tempdir().expect("temp dir");
    let encryption_key = hookpanel::crypto::generate_encryption_key().expect("random");
    let mut remote_config = crate::support::config(remote_dir.path(), &encryption_key);
    remote_config.admin_key = Some(zeroize::Zeroizing::new(
        "hpk_slow_remote_key_0123456789abcdefg".to_owned(),
    ));
    let remote = panel
        .runtime
        .block_on(hookpanel::server::start(remote_config))
        .expect("remote starts");
    let proxy = SlowProxy::start(
        &panel.runtime,
        remote.base_url(),
        Duration::from_millis(2_500),
    );
    let profile = format!("slow-{}", hookpanel::store::new_id("p").to_lowercase());
    panel.click("Profiles…");
    panel.type_into("Profile name", &profile);
    panel.type_into("Base URL", &proxy.url);
    panel.type_into("Admin key", "hpk_slow_remote_key_0123456789abcdefg");
    panel.click("Save and connect");
    panel.step_until("the slow remote to be managed", |app| {
        app.is_ready() && app.base_url() == Some(proxy.url.as_str())
    });
    // The deliveries view asks for its page, the inspector's delivery and the chart.
    panel.harness.state_mut().show_view(View::Deliveries);

    // Ten seconds of frames: three or four refresh ticks, each slower than the last
    // answer allows.
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        panel.harness.step();
        std::thread::sleep(Duration::from_millis(20));
    }
    panel.step_until_label_contains("service slow: ");
    for path in [
        "/v1/admin/webhooks",
        "/v1/admin/deliveries",
        "/v1/admin/stats",
    ] {
        assert_eq!(
            proxy.most_at_once(path),
            1,
            "{path}: one request at a time (0 would mean the view never asked)"
        );
    }
    panel
        .runtime
        .block_on(remote.shutdown())
        .expect("remote stops");
}

/// Serves `org.freedesktop.Notifications` on the session bus, as a desktop's notification
/// daemon does, and keeps each notification's summary and body.
struct NotificationServer {
    shown: Arc<Mutex<Vec<(String, String)>>>,
}

#[zbus::interface(name = "org.freedesktop.Notifications")]
impl NotificationServer {
    #[allow(clippy::too_many_arguments)]
    fn notify(
        &self,
        _app_name: String,
        _replaces_id: u32,
        _app_icon: String,
        summary: String,
        body: String,
        _actions: Vec<String>,
        _hints: HashMap<String, zbus::zvariant::OwnedValue>,
        _expire_timeout: i32,
    ) -> u32 {
        let mut shown = self.shown.lock().expect("lock");
        shown.push((summary, body));
        u32::try_from(shown.len()).unwrap_or(u32::MAX)
    }

    fn get_capabilities(&self) -> Vec<String> {
        vec!["body".to_owned()]
    }

    fn get_server_information(&self) -> (String, String, String, String) {
        (
            "hookpanel-test".to_owned(),
            "hookpanel".to_owned(),
            "1".to_owned(),
            "1.2".to_owned(),
        )
    }

    fn close_notification(&self, _id: u32) {}
}

impl Panel {
    /// Steps until the panel has seen `webhook` at `failed_total` failures.
    fn step_until_failed_total(&mut self, webhook: &str, failed_total: u64) {
        self.step_until(&format!("{webhook} at {failed_total} failures"), |app| {
            app.remote().webhooks.as_ref().is_some_and(|list| {
                list.iter()
                    .any(|w| w.name == webhook && w.failed_total == failed_total)
            })
        });
    }

    fn toggle_notifications(&mut self) {
        self.click("Settings");
        self.click("Notify me when deliveries fail");
        // Close the menu.
        self.harness.key_press(egui::Key::Escape);
        self.harness.step();
    }
}

/// Run by `failures_raise_one_desktop_notification_a_minute_on_the_session_bus` in a
/// private D-Bus session (`dbus-run-session`), where it serves the notification service
/// itself.
#[test]
#[ignore = "run in a private D-Bus session by failures_raise_one_desktop_notification_a_minute_on_the_session_bus"]
fn child_notifications_on_a_private_session_bus() {
    let shown = Arc::new(Mutex::new(Vec::new()));
    let _daemon = zbus::blocking::connection::Builder::session()
        .expect("a session bus")
        .name("org.freedesktop.Notifications")
        .expect("the name")
        .serve_at(
            "/org/freedesktop/Notifications",
            NotificationServer {
                shown: Arc::clone(&shown),
            },
        )
        .expect("served")
        .build()
        .expect("on the bus");
    let mut panel = Panel::start();
    let receiver = panel.runtime.block_on(Receiver::start());
    // A 4xx fails a delivery for good at its first attempt.
    receiver.set("/refuse", Behaviour::Status(422));
    panel.api_webhook(
        "Refusing receiver",
        receiver.url("/refuse"),
        &["order.created"],
    );
    panel.step_until_failed_total("Refusing receiver", 0);

    // Off in the settings: failures go by untold.
    panel.toggle_notifications();
    assert_eq!(
        panel.harness.state().persisted_state().notifications,
        Notifications::Off
    );
    panel.emit_orders(2);
    panel.step_until_failed_total("Refusing receiver", 2);
    for _ in 0..10 {
        panel.harness.step();
    }
    assert_eq!(*shown.lock().expect("lock"), [], "notifications are off");

    // On again: the next failures are told, once, with their count and webhook.
    panel.toggle_notifications();
    assert_eq!(
        panel.harness.state().persisted_state().notifications,
        Notifications::On
    );
    panel.emit_orders(3);
    panel.step_until_failed_total("Refusing receiver", 5);
    let deadline = Instant::now() + Duration::from_secs(10);
    while shown.lock().expect("lock").is_empty() && Instant::now() < deadline {
        panel.harness.step();
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        *shown.lock().expect("lock"),
        [(
            "3 deliveries failed for good".to_owned(),
            "Refusing receiver (3)".to_owned()
        )]
    );

    // Within the minute, another failure waits for the next one.
    panel.emit_orders(1);
    panel.step_until_failed_total("Refusing receiver", 6);
    for _ in 0..10 {
        panel.harness.step();
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        shown.lock().expect("lock").len(),
        1,
        "one notification a minute"
    );
    println!("notifications: ok");
}

#[test]
fn failures_raise_one_desktop_notification_a_minute_on_the_session_bus() {
    if std::process::Command::new("dbus-run-session")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var_os("HOOKPANEL_REQUIRE_KEYCHAIN").is_none(),
            "HOOKPANEL_REQUIRE_KEYCHAIN is set but dbus-run-session is not installed"
        );
        eprintln!(
            "notification test: NOT run here — dbus-run-session is not installed; .ci/run installs it"
        );
        return;
    }
    // The child's private bus has no Secret Service, and the keychain is not what this
    // test is about: the child's panel keeps its keys in memory.
    let output = std::process::Command::new("dbus-run-session")
        .env_remove("HOOKPANEL_REQUIRE_KEYCHAIN")
        .arg("--")
        .arg(std::env::current_exe().expect("test binary"))
        .args([
            "--ignored",
            "--exact",
            "panel::child_notifications_on_a_private_session_bus",
            "--nocapture",
        ])
        .output()
        .expect("dbus-run-session runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("notifications: ok"),
        "the child test did not run: {stdout}"
    );
}

/// The Keys view: a key created is shown once and kept for a profile on request; its
/// last use shows; revoking it after a confirmation refuses it at once. The last admin
/// key cannot be revoked.
#[test]
fn the_keys_view_creates_a_key_shown_once_keeps_it_for_a_profile_and_revokes_it() {
    let mut panel = Panel::start();
    let local_url = panel
        .harness
        .state()
        .base_url()
        .expect("connected")
        .to_owned();
    let admin_key = panel.keychain.local_admin_key().expect("admin key");
    // A profile to keep the new key for: this same service, reached as a remote.
    let profile = format!("team-{}", hookpanel::store::new_id("p").to_lowercase());
    panel.click("Profiles…");
    panel.type_into("Profile name", &profile);
    panel.type_into("Base URL", &local_url);
    panel.type_into("Admin key", &admin_key);
    panel.click("Save and connect");
    panel.step_until("the profile to connect", |app| {
        app.is_ready() && app.remote().caller.is_some()
    });

    panel.click("Keys");
    panel.step_until_label("bootstrap");
    panel.type_into("New key for", "on-call");
    panel.choose("Role", "operator");
    panel.click("Create key");
    panel.step_until_label("Admin key on-call (operator)");
    panel.step_until_label("Copy");
    let shown = panel
        .harness
        .get_by_label("Key (shown once)")
        .value()
        .expect("the key field has a value");
    assert!(shown.starts_with("hpk_"), "{shown}");
    assert!(
        panel
            .harness
            .get_by_label("Close")
            .accesskit_node()
            .is_disabled(),
        "not kept anywhere yet: closing needs the acknowledgement"
    );
    panel.click("Keep");
    panel.step_until_label_contains("Kept in the OS keychain as the admin key of profile");
    let kept = panel
        .keychain
        .get(&Account::admin_key(&profile))
        .expect("keychain readable")
        .map(|key| key.to_string());
    assert_eq!(kept.as_deref(), Some(shown.as_str()));
    panel.click("Close");
    assert!(
        panel.harness.query_by_label("Key (shown once)").is_none(),
        "closed for good"
    );
    let persisted =
        serde_json::to_string(panel.harness.state().persisted_state()).expect("serialises");
    assert!(!persisted.contains(&shown), "{persisted}");

    // Listed, never used; then used once through the API.
    panel.step_until_label("on-call");
    panel.step_until_label("never");
    let on_call = Client::new(&local_url, zeroize::Zeroizing::new(shown.clone())).expect("client");
    let me = panel
        .runtime
        .block_on(on_call.whoami())
        .expect("the key works");
    assert_eq!(me.name, "on-call");
    panel.step_until_label("under a minute ago");

    // The last admin key's revoke is disabled; the operator's goes after a confirmation.
    let revoke_buttons = || {
        panel
            .harness
            .query_all_by_label("Revoke…")
            .map(|node| node.accesskit_node().is_disabled())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        revoke_buttons(),
        [true, false],
        "bootstrap first, then on-call"
    );
    let enabled = panel
        .harness
        .query_all_by_label("Revoke…")
        .find(|node| !node.accesskit_node().is_disabled())
        .expect("on-call's")
        .accesskit_node()
        .id();
    panel.harness.get_by(|node| node.id() == enabled).click();
    panel.harness.step();
    panel.click("Revoke on-call");
    panel.step_until_label("Revoked the key on-call");
    let deadline = Instant::now() + Duration::from_secs(20);
    while panel.harness.query_by_label("on-call").is_some() {
        assert!(Instant::now() < deadline, "{}", panel.labels());
        panel.harness.step();
        std::thread::sleep(Duration::from_millis(20));
    }
    let refused = panel.runtime.block_on(on_call.whoami());
    assert!(
        matches!(
            refused,
            Err(hookpanel::client::ClientError::Unauthorized { .. })
        ),
        "{refused:?}"
    );
}

/// The Activity view: every change newest first, under the name of the key that made
/// it; filtered by what; paging on as it is scrolled; a target links to its webhook.
#[test]
fn the_activity_view_lists_changes_newest_first_filters_pages_and_links() {
    let mut panel = Panel::start();
    panel.api_webhook("Billing", "http://127.0.0.1:9/billing".to_owned(), &["*"]);
    let id = panel
        .runtime
        .block_on(panel.client().webhooks())
        .expect("listed")
        .into_iter()
        .find(|w| w.name == "Billing")
        .expect("created")
        .id;
    panel
        .runtime
        .block_on(panel.client().rotate_secret(&id, 60))
        .expect("rotated");
    panel.click("Activity");
    panel.step_until_label("webhook.rotate_secret");
    let top = |panel: &Panel, label: &str| panel.harness.get_by_label(label).rect().top();
    assert!(
        top(&panel, "webhook.rotate_secret") < top(&panel, "webhook.create"),
        "newest first"
    );
    panel.step_until_label("2 entries, newest first");
    assert!(
        panel.harness.query_all_by_label("bootstrap").count() >= 2,
        "the actor"
    );

    // Filtered by what.
    panel.choose("What", "webhook.create");
    panel.step_until_label("1 entries, newest first");
    assert!(
        panel
            .harness
            .query_by_label("webhook.rotate_secret")
            .is_none()
    );
    panel.click("Clear");
    panel.step_until_label("2 entries, newest first");

    // Many more: the first page, then the rest on scrolling.
    panel.runtime.block_on(async {
        let client = panel.client();
        for n in 0..250 {
            let patch = hookpanel::api::WebhookPatch {
                description: Some(format!("revision {n}")),
                ..Default::default()
            };
            client.update_webhook(&id, &patch).await.expect("updated");
        }
    });
    panel.step_until_label("200 entries shown, newest first; older ones load as you scroll");
    panel.scroll_until_label("252 entries, newest first");
    // An entry links to the webhook it changed.
    let link = panel
        .harness
        .query_all_by(|node| {
            node.label().as_deref() == Some("Billing") && node.role() == Role::Link
        })
        .next()
        .expect("a link to Billing")
        .accesskit_node()
        .id();
    panel.harness.get_by(|node| node.id() == link).click();
    panel.harness.step();
    panel.step_until("the webhooks view", |app| {
        app.persisted_state().view == View::Webhooks
    });
    panel.step_until_label_contains("issued");
}

/// Service ▾ → "Roll encryption key…": the embedded service restarts with a new key,
/// re-seals every secret with it, and the old key leaves the keychain once none is left
/// under it; the webhooks keep signing with the secrets they had.
#[test]
fn rolling_the_local_encryption_key_reseals_and_forgets_the_old_key() {
    let mut panel = Panel::start();
    let receiver = panel.runtime.block_on(Receiver::start());
    panel.api_webhook("Rolled", receiver.url("/rolled"), &["order.created"]);
    let id = panel
        .runtime
        .block_on(panel.client().webhooks())
        .expect("listed")
        .into_iter()
        .find(|w| w.name == "Rolled")
        .expect("created")
        .id;
    // The secret as shown once, from the webhook's create answer kept by the test.
    let secret = panel
        .runtime
        .block_on(panel.client().rotate_secret(&id, 0))
        .expect("rotated")
        .secret;
    let old_key = panel.keychain.local_encryption_key().expect("key");
    let old_url = panel
        .harness
        .state()
        .base_url()
        .expect("connected")
        .to_owned();

    panel.click("Service");
    panel.step_until_label_contains("Secrets are sealed with key");
    panel.click("Roll encryption key…");
    panel.click("Roll the key");
    panel.step_until("the service to restart", |app| {
        app.is_ready() && app.base_url().is_some_and(|url| url != old_url)
    });
    panel.step_until_label_contains("Rolled the encryption key");
    let previous = Account::LocalPreviousEncryptionKey;
    let deadline = Instant::now() + Duration::from_secs(20);
    while panel.keychain.get(&previous).expect("readable").is_some() {
        assert!(
            Instant::now() < deadline,
            "the old key is still in the keychain"
        );
        panel.harness.step();
        std::thread::sleep(Duration::from_millis(50));
    }
    let new_key = panel.keychain.local_encryption_key().expect("key");
    assert_ne!(*new_key, *old_key);
    let client = panel.client();
    let status = panel
        .runtime
        .block_on(client.encryption_key())
        .expect("status");
    assert_eq!(
        status.key_id,
        hookpanel::crypto::SecretCipher::from_base64_key(&new_key)
            .expect("key")
            .key_id()
    );
    assert_eq!(status.secrets_left_to_reseal, 0);

    let event = EventIn {
        event_type: "order.created".to_owned(),
        data: json!({"after": "the roll"}),
        id: None,
    };
    panel
        .runtime
        .block_on(client.emit(&event))
        .expect("emitted");
    let deadline = Instant::now() + Duration::from_secs(20);
    let request = loop {
        if let Some(request) = receiver.received("/rolled").pop() {
            break request;
        }
        assert!(
            Instant::now() < deadline,
            "nothing delivered after the roll"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        hookpanel::signing::verify(&secret, &request.headers, &request.body, chrono::Utc::now())
            .is_ok(),
        "the webhook signs with the secret it had"
    );
}

/// Payload search in the panel: an order id typed into the search box lists the one
/// delivery that carried it, and the inspector shows the field it was found in.
#[test]
fn an_order_id_typed_into_the_search_box_finds_its_one_delivery() {
    let mut panel = Panel::start();
    let receiver = panel.runtime.block_on(Receiver::start());
    panel.api_webhook("Orders", receiver.url("/ok"), &["order.created"]);
    let client = panel.client();
    panel.runtime.block_on(async {
        for n in 1040..1050 {
            let event = EventIn {
                event_type: "order.created".to_owned(),
                data: json!({"order_id": format!("ord_{n}"),
                             "customer": {"email": format!("c{n}@example.com")}}),
                id: None,
            };
            client.emit(&event).await.expect("emitted");
        }
    });
    panel.harness.state_mut().show_view(View::Deliveries);
    panel.step_until_rows(10);
    // No Enter: the results come once the typing pauses.
    panel.type_into("Search", "ord_1042");
    panel.step_until_rows(1);

    panel.harness.key_press(egui::Key::Escape);
    panel.harness.step();
    panel.harness.key_press(egui::Key::ArrowDown);
    panel.harness.step();
    panel.harness.key_press(egui::Key::Enter);
    panel.step_until_label("Found by the search in");
    panel.step_until_label("order_id");
    assert!(
        panel.harness.query_all_by_label("ord_1042").count() >= 1,
        "the matched value shows: {}",
        panel.labels()
    );
    assert!(
        panel.harness.query_by_label("customer.email").is_none(),
        "only the field that matched"
    );
}
