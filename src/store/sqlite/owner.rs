//! A SQLite database has one owner: the process that holds an OS lock on the file beside
//! it (`<database>-owner`) from start to exit. A second `hookpanel serve`, or a second
//! panel, on the same file is refused before it writes anything: two processes on one
//! file would both send the same deliveries, and each would keep signing with secrets the
//! other had rotated away. The lock is the kernel's (`flock`), so it ends with the process
//! however it ends; the file itself stays, holding the last owner's process id for the
//! message a refused process gives.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};

use super::StoreError;

/// The lock held on a database, released when dropped.
#[derive(Debug)]
pub(super) struct Owner {
    _file: File,
}

/// Where the owner's lock lives for the database at `database`.
fn lock_path(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push("-owner");
    PathBuf::from(name)
}

/// Takes the database at `database` for this process, or says who has it.
pub(super) fn claim(database: &Path) -> Result<Owner, StoreError> {
    let path = lock_path(database);
    let unavailable =
        |err: std::io::Error| StoreError::Unavailable(std::sync::Arc::new(sqlx::Error::Io(err)));
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(unavailable)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            return Err(StoreError::InUse {
                database: database.to_owned(),
                holder: holder.trim().parse().ok(),
            });
        }
        Err(TryLockError::Error(err)) => return Err(unavailable(err)),
    }
    file.set_len(0).map_err(unavailable)?;
    file.rewind().map_err(unavailable)?;
    write!(file, "{}", std::process::id()).map_err(unavailable)?;
    Ok(Owner { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_claim_is_refused_with_the_owner_named_until_the_first_lets_go() {
        let dir = tempfile::tempdir().expect("temp dir");
        let database = dir.path().join("store.db");
        let first = claim(&database).expect("the first claim");
        match claim(&database) {
            Err(StoreError::InUse {
                database: named,
                holder,
            }) => {
                assert_eq!(named, database);
                assert_eq!(holder, Some(std::process::id()));
            }
            other => panic!("expected InUse, got {other:?}"),
        }
        drop(first);
        claim(&database).expect("free again once the owner lets go");
    }
}
