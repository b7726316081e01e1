//! The views' dates and instants as a person reads them, in the municipality's time. The
//! views carry RFC 3339 and `YYYY-MM-DD` for the JSON API; the pages show German words.

use time::{OffsetDateTime, PrimitiveDateTime};
use videoamt_core::german;
use videoamt_core::tenant::Tenant;

use crate::http::citizen::service::parse_date;

/// An RFC 3339 instant in the municipality's local time.
fn local(tenant: &Tenant, rfc: &str) -> Option<PrimitiveDateTime> {
    OffsetDateTime::parse(rfc, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| tenant.local(t))
}

/// "Mittwoch, 02.12.2026, 08:30 Uhr"; "–" when there is none (an empty field).
pub(crate) fn moment(tenant: &Tenant, rfc: &str) -> String {
    local(tenant, rfc).map_or_else(|| "–".to_owned(), german::moment)
}

/// "08:30".
pub(crate) fn clock(tenant: &Tenant, rfc: &str) -> String {
    local(tenant, rfc).map_or_else(String::new, |t| german::clock(t.time()))
}

/// "2026-11-30" as "Montag, 30.11.2026".
pub(crate) fn day(date: &str) -> String {
    parse_date(date).map_or_else(|| date.to_owned(), german::day)
}

/// A file size as people read it: "830 Byte", "245 KB", "1,5 MB", "10 MB" (binary units, as
/// file managers show them).
pub(crate) fn bytes(n: u64) -> String {
    const KB: u64 = 1024;
    const MB: u64 = 1024 * KB;
    // Tenths, rounded half up, in integers: sizes are counts, never floats (and u128, so that
    // no setting overflows).
    let tenths = |unit: u64| (u128::from(n) * 10 + u128::from(unit / 2)) / u128::from(unit);
    match n {
        n if n < KB => format!("{n} Byte"),
        n if n < MB => format!("{} KB", (n + KB / 2) / KB),
        _ => match tenths(MB) {
            t if t % 10 == 0 => format!("{} MB", t / 10),
            t => format!("{},{} MB", t / 10, t % 10),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_sizes_read_in_german_units() {
        assert_eq!(bytes(830), "830 Byte");
        assert_eq!(bytes(250_000), "244 KB");
        assert_eq!(bytes(1024 * 1024 * 3 / 2), "1,5 MB");
        assert_eq!(bytes(10 * 1024 * 1024), "10 MB");
    }

    #[test]
    fn instants_read_in_the_municipalitys_time() {
        let tenants = videoamt_core::tenant::example_tenants().expect("examples are valid");
        let tenant = &tenants[0];
        assert_eq!(
            moment(tenant, "2026-12-02T07:30:00Z"),
            "Mittwoch, 02.12.2026, 08:30 Uhr"
        );
        assert_eq!(clock(tenant, "2026-12-02T08:30:00+01:00"), "08:30");
        assert_eq!(moment(tenant, ""), "–");
        assert_eq!(day("2026-11-30"), "Montag, 30.11.2026");
    }
}
