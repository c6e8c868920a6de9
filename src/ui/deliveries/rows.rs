//! The deliveries a table holds: pages merged as they arrive (newest first from the
//! service), and the order they are shown in when the user sorts by a column.

use std::cmp::Ordering;

use crate::api::{Delivery, DeliveryList};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortColumn {
    Time,
    Status,
    Webhook,
    Event,
    Code,
    Attempts,
    Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sort {
    pub column: SortColumn,
    pub descending: bool,
}

impl Default for Sort {
    /// Newest first, as the service pages them.
    fn default() -> Self {
        Self {
            column: SortColumn::Time,
            descending: true,
        }
    }
}

impl Sort {
    /// The sort after a click on `column`'s header: the same column flips direction, a new
    /// one starts descending (newest, slowest, most attempts first).
    pub fn clicked(self, column: SortColumn) -> Self {
        if self.column == column {
            Self {
                column,
                descending: !self.descending,
            }
        } else {
            Self {
                column,
                descending: true,
            }
        }
    }
}

/// What a fresh newest page did to the rows.
#[derive(Debug, PartialEq, Eq)]
pub enum Merged {
    /// This many rows are new above the previous newest one.
    Added(usize),
    /// It did not reach the loaded rows: they were replaced by the page.
    Restarted,
}

#[derive(Default)]
pub struct Rows {
    /// Newest first (by id, which grows with time).
    items: Vec<Delivery>,
    /// Display position → index into `items`.
    order: Vec<usize>,
    sort: Sort,
    next_cursor: Option<String>,
    /// What the service counted for the filter on its latest first page: how many match,
    /// across every page, and whether that is its cap rather than the count.
    total: Option<(u64, bool)>,
}

impl Rows {
    /// How many deliveries match, as the service counts them: "3 041", or "10 000+" past
    /// its cap; before it has said, the loaded rows, with "+" while more pages exist.
    pub fn total_text(&self) -> String {
        match self.total {
            Some((count, false)) => count.to_string(),
            Some((count, true)) => format!("{count}+"),
            None if self.next_cursor.is_some() => format!("{}+", self.items.len()),
            None => self.items.len().to_string(),
        }
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The row shown at display position `index`.
    pub fn get(&self, index: usize) -> Option<&Delivery> {
        self.order.get(index).and_then(|&i| self.items.get(i))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Delivery> {
        self.order.iter().map(|&i| &self.items[i])
    }

    pub fn next_cursor(&self) -> Option<&str> {
        self.next_cursor.as_deref()
    }

    pub fn sort(&self) -> Sort {
        self.sort
    }

    pub fn is_default_order(&self) -> bool {
        self.sort == Sort::default()
    }

    /// Replaces every row with a first page (after a filter change).
    pub fn replace(&mut self, page: DeliveryList, name_of: impl Fn(&str) -> String) {
        self.total = page.total.map(|count| (count, page.total_capped));
        self.items = page.items;
        self.next_cursor = page.next_cursor;
        self.resort(name_of);
    }

    /// Merges a fresh newest page: it covers every id from its last row up, so rows in
    /// that range that it lacks no longer match and go; older rows stay as they are.
    pub fn merge_newest(&mut self, page: DeliveryList, name_of: impl Fn(&str) -> String) -> Merged {
        if let Some(count) = page.total {
            self.total = Some((count, page.total_capped));
        }
        let added_on_top = match self.items.first() {
            Some(first) => page.items.iter().take_while(|d| d.id > first.id).count(),
            None => page.items.len(),
        };
        // More new rows than a page: the page does not reach the rows already loaded, and
        // keeping them would leave a gap. Start over from this page.
        let reaches_loaded = self.items.first().is_none_or(|first| {
            page.items
                .last()
                .is_some_and(|oldest_in_page| oldest_in_page.id <= first.id)
        });
        match (page.next_cursor, page.items.last().map(|d| d.id.clone())) {
            (Some(cursor), Some(_)) if !reaches_loaded => {
                self.items = page.items;
                self.next_cursor = Some(cursor);
                self.resort(name_of);
                return Merged::Restarted;
            }
            (Some(cursor), Some(boundary)) => {
                let older: Vec<Delivery> = std::mem::take(&mut self.items)
                    .into_iter()
                    .filter(|d| d.id < boundary)
                    .collect();
                if older.is_empty() {
                    self.next_cursor = Some(cursor);
                }
                self.items = page.items;
                self.items.extend(older);
            }
            // The page holds every matching row.
            _ => {
                self.items = page.items;
                self.next_cursor = None;
            }
        }
        self.resort(name_of);
        Merged::Added(added_on_top)
    }

    /// Appends the page after the current last row.
    pub fn append(&mut self, page: DeliveryList, name_of: impl Fn(&str) -> String) {
        let last = self.items.last().map(|d| d.id.clone());
        self.items.extend(
            page.items
                .into_iter()
                .filter(|d| last.as_ref().is_none_or(|last| d.id < *last)),
        );
        self.next_cursor = page.next_cursor;
        self.resort(name_of);
    }

    /// Puts a fresher copy of one row in place.
    pub fn update(&mut self, delivery: &Delivery) -> bool {
        match self.items.iter_mut().find(|d| d.id == delivery.id) {
            Some(row) => {
                *row = delivery.clone();
                true
            }
            None => false,
        }
    }

    pub fn set_sort(&mut self, sort: Sort, name_of: impl Fn(&str) -> String) {
        self.sort = sort;
        self.resort(name_of);
    }

    fn resort(&mut self, name_of: impl Fn(&str) -> String) {
        self.order = (0..self.items.len()).collect();
        if self.is_default_order() {
            return;
        }
        let items = &self.items;
        let column = self.sort.column;
        let key = |a: &Delivery, b: &Delivery| -> Ordering {
            match column {
                SortColumn::Time => a.id.cmp(&b.id),
                SortColumn::Status => a.status.as_str().cmp(b.status.as_str()),
                SortColumn::Webhook => name_of(&a.webhook_id).cmp(&name_of(&b.webhook_id)),
                SortColumn::Event => a.event_type.cmp(&b.event_type),
                SortColumn::Code => a.status_code.cmp(&b.status_code),
                SortColumn::Attempts => a.attempts.cmp(&b.attempts),
                SortColumn::Duration => a.last_duration_ms.cmp(&b.last_duration_ms),
            }
        };
        let descending = self.sort.descending;
        // Stable: ties keep newest first.
        self.order.sort_by(|&a, &b| {
            let ordering = key(&items[a], &items[b]);
            if descending {
                ordering.reverse()
            } else {
                ordering
            }
            .then(a.cmp(&b))
        });
    }

    #[cfg(test)]
    fn ids(&self) -> Vec<&str> {
        self.iter().map(|d| d.id.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::api::DeliveryStatus;

    fn row(id: &str, attempts: u32) -> Delivery {
        Delivery {
            id: id.to_owned(),
            webhook_id: "wh".to_owned(),
            event_id: "evt".to_owned(),
            event_type: "order.created".to_owned(),
            status: DeliveryStatus::Failed,
            status_code: None,
            success: false,
            attempts,
            created_at: Utc::now(),
            last_attempt_at: None,
            last_duration_ms: None,
            next_attempt_at: None,
            last_error: None,
        }
    }

    fn page(ids: &[&str], next: Option<&str>) -> DeliveryList {
        DeliveryList {
            items: ids.iter().map(|id| row(id, 1)).collect(),
            next_cursor: next.map(str::to_owned),
            total: None,
            total_capped: false,
        }
    }

    fn name(id: &str) -> String {
        id.to_owned()
    }

    #[test]
    fn a_fresh_newest_page_merges_above_older_loaded_rows() {
        let mut rows = Rows::default();
        rows.replace(page(&["d6", "d5", "d4"], Some("d4")), name);
        rows.append(page(&["d3", "d2"], Some("d2")), name);
        // d8, d7 arrived; d5 no longer matches the filter.
        let merged = rows.merge_newest(page(&["d8", "d7", "d6", "d4"], Some("d4")), name);
        assert_eq!(merged, Merged::Added(2));
        assert_eq!(rows.ids(), ["d8", "d7", "d6", "d4", "d3", "d2"]);
        assert_eq!(
            rows.next_cursor(),
            Some("d2"),
            "the loaded tail's cursor stays"
        );

        // A page with no cursor holds everything that matches.
        rows.merge_newest(page(&["d8", "d3"], None), name);
        assert_eq!(rows.ids(), ["d8", "d3"]);
        assert_eq!(rows.next_cursor(), None);
    }

    #[test]
    fn more_new_rows_than_a_page_start_over_rather_than_leave_a_gap() {
        let mut rows = Rows::default();
        rows.replace(page(&["d3", "d2", "d1"], None), name);
        // d9..d4 arrived; the newest page of two holds d9, d8 only.
        let merged = rows.merge_newest(page(&["d9", "d8"], Some("d8")), name);
        assert_eq!(merged, Merged::Restarted);
        assert_eq!(rows.ids(), ["d9", "d8"]);
        assert_eq!(rows.next_cursor(), Some("d8"));
    }

    #[test]
    fn the_total_is_the_services_count_not_the_loaded_rows() {
        let mut rows = Rows::default();
        assert_eq!(rows.total_text(), "0");
        rows.replace(page(&["d3", "d2"], Some("d2")), name);
        assert_eq!(
            rows.total_text(),
            "2+",
            "before the service counted: the loaded rows"
        );
        let mut counted = page(&["d3", "d2"], Some("d2"));
        counted.total = Some(3041);
        rows.replace(counted, name);
        assert_eq!(rows.total_text(), "3041");
        let mut capped = page(&["d4", "d3"], Some("d3"));
        capped.total = Some(10_000);
        capped.total_capped = true;
        rows.merge_newest(capped, name);
        assert_eq!(rows.total_text(), "10000+");
        // A later page carries no total: the count stays.
        rows.append(page(&["d1"], None), name);
        assert_eq!(rows.total_text(), "10000+");
    }

    #[test]
    fn sorting_orders_the_display_and_keeps_ties_newest_first() {
        let mut rows = Rows::default();
        rows.replace(
            DeliveryList {
                items: vec![row("d4", 1), row("d3", 5), row("d2", 1), row("d1", 3)],
                next_cursor: None,
                total: None,
                total_capped: false,
            },
            name,
        );
        let by_attempts = Sort::default().clicked(SortColumn::Attempts);
        rows.set_sort(by_attempts, name);
        assert_eq!(rows.ids(), ["d3", "d1", "d4", "d2"]);
        rows.set_sort(by_attempts.clicked(SortColumn::Attempts), name);
        assert_eq!(rows.ids(), ["d4", "d2", "d1", "d3"]);
        rows.append(page(&["d0"], None), name);
        assert_eq!(rows.ids(), ["d4", "d2", "d0", "d1", "d3"]);
    }
}
