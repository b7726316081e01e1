//! CSV for the two exports (the DPO's retention report and the pilot statistics), written by
//! one writer: RFC 4180, every field quoted, CRLF, so reasons with commas stay one field.

use videoamt_projections::statistics::WeekRow;

use crate::app::retention::ReportRow;

/// One header and one line per row.
fn csv(header: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> String {
    let mut writer = csv::WriterBuilder::new()
        .quote_style(csv::QuoteStyle::Always)
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    let mut write = |record: &[&str]| {
        // Writing to a Vec cannot fail; a record of another length is a bug of this module.
        writer
            .write_record(record)
            .expect("records of the header's length into memory");
    };
    write(header);
    for row in rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        write(&cells);
    }
    let bytes = writer
        .into_inner()
        .expect("flushing into memory cannot fail");
    String::from_utf8(bytes).expect("CSV of strings is UTF-8")
}

const REPORT_COLUMNS: [&str; 14] = [
    "subject",
    "tenant",
    "state",
    "final_state",
    "final_at",
    "due",
    "blocked",
    "executed_at",
    "verified_at",
    "keys_destroyed",
    "blobs_deleted",
    "outbox_items_scrubbed",
    "checks",
    "failed_places",
];

/// The DPO's export.
pub(crate) fn retention_csv(rows: &[ReportRow]) -> String {
    csv(
        &REPORT_COLUMNS,
        rows.iter().map(|r| {
            [
                &r.subject,
                &r.tenant,
                r.state,
                &r.final_state,
                &r.final_at,
                &r.due,
                &r.blocked,
                &r.executed_at,
                &r.verified_at,
                &r.keys_destroyed,
                &r.blobs_deleted,
                &r.outbox_items_scrubbed,
                &r.checks,
                &r.failed_places,
            ]
            .map(str::to_owned)
            .to_vec()
        }),
    )
}

const STATISTICS_COLUMNS: [&str; 19] = [
    "tenant",
    "department",
    "week",
    "sessions",
    "completed",
    "aborted",
    "no_shows",
    "duration_median_minutes",
    "duration_p90_minutes",
    "lead_median_hours",
    "lead_p90_hours",
    "identity_check_share",
    "signature_share",
    "payment_share",
    "f1",
    "f2",
    "f3",
    "f4",
    "f5",
];

fn num(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.2}")).unwrap_or_default()
}

/// A week's values in column order, as both the CSV and the CLI's table show them; shares as
/// 0–1 with four decimals, feedback counts last.
pub(crate) fn statistics_cells(r: &WeekRow) -> Vec<String> {
    let share = |v: Option<f64>| v.map(|v| format!("{v:.4}")).unwrap_or_default();
    let mut cells = vec![
        r.tenant.clone(),
        r.department.clone(),
        r.week.clone(),
        r.sessions.to_string(),
        r.completed.to_string(),
        r.aborted.to_string(),
        r.no_shows.to_string(),
        num(r.duration_median_minutes),
        num(r.duration_p90_minutes),
        num(r.lead_median_hours),
        num(r.lead_p90_hours),
        share(r.identity_check_share),
        share(r.signature_share),
        share(r.payment_share),
    ];
    cells.extend(r.feedback.iter().map(u64::to_string));
    cells
}

/// The pilot statistics, one line per department and week.
pub(crate) fn statistics_csv(rows: &[WeekRow]) -> String {
    csv(&STATISTICS_COLUMNS, rows.iter().map(statistics_cells))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_with_quotes_commas_and_line_breaks_stay_one_field() {
        let out = csv(&["a", "b"], [vec!["x, \"y\"".into(), "1\n2".into()]]);
        assert_eq!(out, "\"a\",\"b\"\r\n\"x, \"\"y\"\"\",\"1\n2\"\r\n");
    }
}
