//! The desktop panel (eframe/egui).
//!
//! - [`app`]: the `eframe::App`, its state and the command/event loop.
//! - [`backend`]: background work — commands in, events out, never on the UI thread.
//! - [`commands`]: what the views ask for while drawing; [`remote`]: what they read of
//!   the service's data.
//! - [`connection`]: reaching the embedded service or a remote profile; [`profiles`] edits them.
//! - [`requests`]: each view's repeating request kept to one in flight, and how slow
//!   the service answers.
//! - one module per view: [`webhooks`], [`deliveries`], [`inbox`]; the secret-once modal in
//!   [`secret`]; shared [`widgets`] and [`theme`].
//! - [`notifications`]: desktop notifications when deliveries fail for good.

pub mod activity;
pub mod app;
pub mod backend;
pub mod commands;
pub mod connection;
pub mod deliveries;
pub mod inbox;
pub mod keys;
pub mod notifications;
pub mod profiles;
pub mod remote;
pub mod requests;
pub mod secret;
pub mod service_menu;
pub mod theme;
pub mod webhooks;
pub mod widgets;

pub use app::{App, Startup, Target, View};

/// Opens the panel window and runs until it is closed. `keychain`: a store chosen by the
/// user, or `None` for the platform's own.
pub fn run(
    keychain: Option<Result<crate::keychain::Keychain, crate::keychain::KeychainError>>,
) -> anyhow::Result<()> {
    use anyhow::Context as _;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("hookpanel-worker")
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let data_dir = crate::paths::project_dirs()
        .map(|dirs| dirs.data_dir().to_owned())
        .context("this platform has no data directory for Hookpanel")?;
    let handle = runtime.handle().clone();
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("Hookpanel")
            .with_inner_size([1280.0, 800.0])
            .with_min_inner_size([800.0, 500.0])
            .with_icon(icon()),
        ..Default::default()
    };
    eframe::run_native(
        "hookpanel",
        options,
        Box::new(move |cc| {
            Ok(Box::new(App::new(
                &cc.egui_ctx,
                handle,
                cc.storage,
                Startup { data_dir, keychain },
            )))
        }),
    )
    .map_err(|err| anyhow::anyhow!("the window could not open: {err}"))?;
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    Ok(())
}

/// The window icon, from `assets/icon.png`.
fn icon() -> egui::IconData {
    eframe::icon_data::from_png_bytes(include_bytes!("../../assets/icon.png")).unwrap_or_default()
}
