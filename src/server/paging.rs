//! Keyset pages, as the delivery history and the audit log are read: a page size, a
//! cursor that is the id of the last row of the previous page, and the next cursor.

use crate::validate::FieldError;

/// Rows on a page unless `limit` says otherwise.
pub const DEFAULT_PAGE: u32 = 100;
/// Most rows on a page.
pub const MAX_PAGE: u32 = 500;

/// The page size `limit` asks for, checked: 1 to [`MAX_PAGE`] `rows`, [`DEFAULT_PAGE`]
/// when not given.
pub fn limit(limit: Option<u32>, rows: &str) -> Result<u32, FieldError> {
    let limit = limit.unwrap_or(DEFAULT_PAGE);
    if (1..=MAX_PAGE).contains(&limit) {
        Ok(limit)
    } else {
        Err(FieldError::new(
            "limit",
            format!("a page holds 1 to {MAX_PAGE} {rows}"),
        ))
    }
}

/// Checks that `cursor`, when given, is an id of the rows paged: `prefix_` and a ULID.
pub fn cursor(cursor: Option<&str>, prefix: &str) -> Result<(), FieldError> {
    let valid = |cursor: &str| {
        cursor
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix('_'))
            .is_some_and(|ulid| ulid.len() == 26 && ulid.chars().all(|c| c.is_ascii_alphanumeric()))
    };
    if cursor.is_none_or(valid) {
        Ok(())
    } else {
        Err(FieldError::new(
            "cursor",
            "not a cursor: pass next_cursor from the previous page",
        ))
    }
}

/// Cuts `rows`, read with one more than `limit` to tell whether a next page exists, to
/// the page, and returns the next page's cursor: the id of its last row, when more
/// follow.
pub fn next_cursor<T>(rows: &mut Vec<T>, limit: u32, id: impl Fn(&T) -> &str) -> Option<String> {
    let limit = limit as usize;
    if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(|last| id(last).to_owned())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_is_an_id_of_the_rows_paged() {
        let ulid = "01M8V7B4FVFW6N7XPQ7XKC6KET";
        assert!(cursor(None, "dlv").is_ok());
        assert!(cursor(Some(&format!("dlv_{ulid}")), "dlv").is_ok());
        assert!(cursor(Some(&format!("aud_{ulid}")), "dlv").is_err());
        assert!(cursor(Some(&format!("dlv{ulid}")), "dlv").is_err());
        assert!(cursor(Some("dlv_short"), "dlv").is_err());
        assert!(cursor(Some(&format!("aud_{}-", &ulid[1..])), "aud").is_err());
    }

    #[test]
    fn a_page_is_cut_to_its_limit_and_names_the_next() {
        let mut rows = vec!["a", "b", "c"];
        assert_eq!(next_cursor(&mut rows, 2, |r| r), Some("b".to_owned()));
        assert_eq!(rows, ["a", "b"]);
        assert_eq!(next_cursor(&mut rows, 2, |r| r), None);
        assert_eq!(limit(None, "rows"), Ok(DEFAULT_PAGE));
        assert!(limit(Some(0), "rows").is_err());
        assert!(limit(Some(MAX_PAGE + 1), "rows").is_err());
    }
}
