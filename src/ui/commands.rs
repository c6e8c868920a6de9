//! What the views ask for while they draw: collected during a frame and sent to the
//! background once it is drawn (see `backend`), so drawing never waits.

use super::backend::Command;

/// Commands the views collected while drawing, run after the frame.
#[derive(Default)]
pub struct Commands(Vec<Command>);

impl Commands {
    pub fn send(&mut self, command: Command) {
        self.0.push(command);
    }
}

impl IntoIterator for Commands {
    type Item = Command;
    type IntoIter = std::vec::IntoIter<Command>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}
