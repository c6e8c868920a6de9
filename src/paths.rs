//! Where Hookpanel keeps files on this machine.

use std::path::PathBuf;

/// The platform's directories for Hookpanel (on Linux `~/.local/share/hookpanel` and
/// `~/.config/hookpanel`), from `directories`.
pub fn project_dirs() -> Option<directories::ProjectDirs> {
    directories::ProjectDirs::from("", "", "hookpanel")
}

/// Every directory Hookpanel itself may write: data and config.
pub fn app_dirs() -> Vec<PathBuf> {
    project_dirs()
        .map(|dirs| vec![dirs.data_dir().to_owned(), dirs.config_dir().to_owned()])
        .unwrap_or_default()
}
