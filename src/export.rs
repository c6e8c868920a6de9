//! Deliveries exported to a file, as CSV (for spreadsheets) or JSON (the API's own shape).
//!
//! The file is written beside its final path and renamed into place, so a failed export
//! never leaves half a file under the name the user chose.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::api::Delivery;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExportFormat {
    #[default]
    Csv,
    Json,
}

impl ExportFormat {
    pub const ALL: [Self; 2] = [Self::Csv, Self::Json];

    pub fn extension(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Json => "json",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Csv => "CSV",
            Self::Json => "JSON",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot encode the deliveries: {0}")]
    Encode(String),
}

/// The CSV columns, in order.
pub const CSV_HEADER: [&str; 13] = [
    "delivery_id",
    "created_at",
    "webhook_id",
    "webhook_name",
    "event_id",
    "event_type",
    "status",
    "status_code",
    "attempts",
    "last_attempt_at",
    "last_duration_ms",
    "next_attempt_at",
    "last_error",
];

/// Writes `deliveries` to `path`; `webhook_names` fills the CSV's name column.
pub fn write(
    path: &Path,
    format: ExportFormat,
    deliveries: &[Delivery],
    webhook_names: &HashMap<String, String>,
) -> Result<(), ExportError> {
    let io = |source| ExportError::Io {
        path: path.to_owned(),
        source,
    };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut file = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
    match format {
        ExportFormat::Csv => write_csv(file.as_file_mut(), deliveries, webhook_names)?,
        ExportFormat::Json => serde_json::to_writer_pretty(file.as_file_mut(), deliveries)
            .map_err(|err| ExportError::Encode(err.to_string()))?,
    }
    file.as_file_mut().flush().map_err(io)?;
    file.persist(path).map_err(|err| io(err.error))?;
    Ok(())
}

fn write_csv(
    out: &mut impl Write,
    deliveries: &[Delivery],
    webhook_names: &HashMap<String, String>,
) -> Result<(), ExportError> {
    let encode = |err: csv::Error| ExportError::Encode(err.to_string());
    let mut writer = csv::Writer::from_writer(out);
    writer.write_record(CSV_HEADER).map_err(encode)?;
    let time =
        |t: Option<chrono::DateTime<chrono::Utc>>| t.map(|t| t.to_rfc3339()).unwrap_or_default();
    for d in deliveries {
        let name = webhook_names.get(&d.webhook_id).map_or("", String::as_str);
        writer
            .write_record([
                d.id.clone(),
                d.created_at.to_rfc3339(),
                d.webhook_id.clone(),
                spreadsheet_safe(name),
                d.event_id.clone(),
                d.event_type.clone(),
                d.status.as_str().to_owned(),
                d.status_code.map(|c| c.to_string()).unwrap_or_default(),
                d.attempts.to_string(),
                time(d.last_attempt_at),
                d.last_duration_ms
                    .map(|ms| ms.to_string())
                    .unwrap_or_default(),
                time(d.next_attempt_at),
                spreadsheet_safe(d.last_error.as_deref().unwrap_or_default()),
            ])
            .map_err(encode)?;
    }
    writer
        .flush()
        .map_err(|err| ExportError::Encode(err.to_string()))?;
    Ok(())
}

/// Text that came from users or peers (names, receivers' error text) could start like a
/// spreadsheet formula; a leading apostrophe keeps spreadsheets from evaluating it.
fn spreadsheet_safe(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::api::DeliveryStatus;

    fn delivery(id: &str, error: Option<&str>) -> Delivery {
        Delivery {
            id: id.to_owned(),
            webhook_id: "wh_1".to_owned(),
            event_id: format!("evt_{id}"),
            event_type: "order.created".to_owned(),
            status: DeliveryStatus::Failed,
            status_code: Some(500),
            success: false,
            attempts: 3,
            created_at: Utc::now(),
            last_attempt_at: Some(Utc::now()),
            last_duration_ms: Some(12),
            next_attempt_at: None,
            last_error: error.map(str::to_owned),
        }
    }

    #[test]
    fn csv_has_a_header_a_row_per_delivery_and_defuses_formulas() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out.csv");
        let names = HashMap::from([("wh_1".to_owned(), "Orders, EU".to_owned())]);
        let rows = [
            delivery("d1", Some("=HYPERLINK(\"x\")")),
            delivery("d2", Some("line one\nline \"two\"")),
        ];
        write(&path, ExportFormat::Csv, &rows, &names).expect("written");
        let mut reader = csv::Reader::from_path(&path).expect("readable");
        assert_eq!(
            reader.headers().expect("header").iter().collect::<Vec<_>>(),
            CSV_HEADER
        );
        let records: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("row")).collect();
        assert_eq!(records.len(), 2);
        assert_eq!(&records[0][0], "d1");
        assert_eq!(&records[0][3], "Orders, EU");
        assert_eq!(&records[0][7], "500");
        assert_eq!(&records[0][12], "'=HYPERLINK(\"x\")");
        assert_eq!(&records[1][12], "line one\nline \"two\"");
    }

    #[test]
    fn json_round_trips_and_a_failed_write_leaves_no_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out.json");
        let rows = [delivery("d1", None)];
        write(&path, ExportFormat::Json, &rows, &HashMap::new()).expect("written");
        let text = std::fs::read_to_string(&path).expect("read");
        let back: Vec<Delivery> = serde_json::from_str(&text).expect("json");
        assert_eq!(back, rows);

        let missing = dir.path().join("no such dir").join("out.json");
        let err =
            write(&missing, ExportFormat::Json, &rows, &HashMap::new()).expect_err("no directory");
        assert!(err.to_string().contains("no such dir"), "{err}");
        assert!(!missing.exists());
    }
}
