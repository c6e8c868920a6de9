//! The panel, driven through its own widgets with egui_kittest, headless, against a real
//! embedded service (SQLite in a temp dir) and a keychain: the real Secret Service where
//! `HOOKPANEL_REQUIRE_KEYCHAIN` is set (CI), otherwise an in-memory store — this machine's
//! own keychain is never touched by a plain `cargo test`.

use std::time::{Duration, Instant};

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable as _;
use hookpanel::api::{DeliveryQuery, DeliveryStatus, EventIn, Webhook};
use hookpanel::client::Client;
use hookpanel::keychain::{Account, Keychain, LOCAL_PROFILE};
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
                "timed out waiting for {label:?} on screen"
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
                "timed out waiting for a label containing {part:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn click(&mut self, label: &str) {
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
    let url = receiver.url("/orders");
    panel.runtime.block_on(async {
        client
            .create_webhook(&hookpanel::api::WebhookIn {
                name: "Flaky receiver".to_owned(),
                url,
                events: vec!["order.created".to_owned()],
                kind: hookpanel::api::WebhookKind::Generic,
                description: None,
                owner: None,
            })
            .await
            .expect("created");
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
    panel.step_until_label("#1 · 400");

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
    // The remote: a second real service, as `hookpanel serve` would run it.
    let remote_dir = tempfile::tempdir().expect("temp dir");
    let encryption_key = hookpanel::crypto::generate_encryption_key().expect("random");
    let mut remote_config = crate::support::config(remote_dir.path(), &encryption_key);
    remote_config.admin_key = Some(zeroize::Zeroizing::new("hpk_remote_right_key".to_owned()));
    let remote = panel
        .runtime
        .block_on(hookpanel::server::start(remote_config))
        .expect("remote starts");
    let remote_url = remote.base_url();
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
    panel.type_into("Admin key", "hpk_remote_right_key");
    panel.click("Save and connect");
    panel.step_until("the remote to be managed", |app| {
        app.is_ready() && app.base_url() == Some(remote_url.as_str())
    });
    let stored = panel
        .keychain
        .get(&Account::admin_key(&profile))
        .expect("keychain readable")
        .map(|key| key.to_string());
    assert_eq!(stored.as_deref(), Some("hpk_remote_right_key"));
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
