//! How dates, times and weekdays read in German, for every page, mail and audit record: one
//! table of weekday names and one way to write a day and a time. Money reads through
//! [`crate::tenant::Cents`]'s `Display`. Times here are already local (the municipality's,
//! see [`crate::tenant::Tenant::local`]).

use time::{Date, PrimitiveDateTime, Time, Weekday};

/// Monday first, as [`Weekday::number_days_from_monday`] counts.
const WEEKDAYS: [&str; 7] = [
    "Montag",
    "Dienstag",
    "Mittwoch",
    "Donnerstag",
    "Freitag",
    "Samstag",
    "Sonntag",
];

/// "Mittwoch".
pub fn weekday(day: Weekday) -> &'static str {
    WEEKDAYS[usize::from(day.number_days_from_monday())]
}

/// The weekday whose name starts with `abbreviation` ("mo", "di", … "so"; the tenant files'
/// opening hours use these).
pub fn weekday_from_abbreviation(abbreviation: &str) -> Option<Weekday> {
    let mut day = Weekday::Monday;
    for name in WEEKDAYS {
        if name[..2].to_ascii_lowercase() == abbreviation {
            return Some(day);
        }
        day = day.next();
    }
    None
}

/// "02.12.2026".
pub fn date(d: Date) -> String {
    format!("{:02}.{:02}.{}", d.day(), u8::from(d.month()), d.year())
}

/// "Mittwoch, 02.12.2026".
pub fn day(d: Date) -> String {
    format!("{}, {}", weekday(d.weekday()), date(d))
}

/// "08:30".
pub fn clock(t: Time) -> String {
    format!("{:02}:{:02}", t.hour(), t.minute())
}

/// "Mittwoch, 02.12.2026, 08:30 Uhr".
pub fn moment(t: PrimitiveDateTime) -> String {
    format!("{}, {} Uhr", day(t.date()), clock(t.time()))
}

/// "Dienstag, 24.11.2026, 09:00–09:30 Uhr" (the end's day is the start's).
pub fn span(start: PrimitiveDateTime, end: PrimitiveDateTime) -> String {
    format!(
        "{}, {}–{} Uhr",
        day(start.date()),
        clock(start.time()),
        clock(end.time())
    )
}

/// Minute `minute` of a day as a time ("08:30" for 510); `None` past the day's end.
pub fn minute_of_day(minute: u16) -> Option<Time> {
    Time::from_hms((minute / 60).try_into().ok()?, (minute % 60) as u8, 0).ok()
}

/// A pre-call check's result as the clerk and the auditor read it: "Technik-Check bestanden
/// (Upload 24,0 Mbit/s)". The upload comes in kbit/s and reads in Mbit/s with one decimal.
pub fn pre_call_check(passed: bool, upload_kbit_s: u32) -> String {
    format!(
        "Technik-Check {} (Upload {},{} Mbit/s)",
        if passed {
            "bestanden"
        } else {
            "nicht bestanden"
        },
        upload_kbit_s / 1000,
        upload_kbit_s % 1000 / 100
    )
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn a_moment_reads_with_weekday_date_and_time() {
        let t = datetime!(2026-12-02 08:30);
        assert_eq!(moment(t), "Mittwoch, 02.12.2026, 08:30 Uhr");
        assert_eq!(
            span(t, datetime!(2026-12-02 09:05)),
            "Mittwoch, 02.12.2026, 08:30–09:05 Uhr"
        );
        assert_eq!(day(t.date()), "Mittwoch, 02.12.2026");
        assert_eq!(minute_of_day(510).map(clock).as_deref(), Some("08:30"));
        assert_eq!(minute_of_day(24 * 60), None);
    }

    #[test]
    fn every_weekday_has_one_name_and_abbreviation() {
        let mut day = Weekday::Monday;
        for abbreviation in ["mo", "di", "mi", "do", "fr", "sa", "so"] {
            assert_eq!(weekday_from_abbreviation(abbreviation), Some(day));
            day = day.next();
        }
        assert_eq!(weekday(Weekday::Sunday), "Sonntag");
        assert_eq!(weekday_from_abbreviation("mon"), None);
        assert_eq!(weekday_from_abbreviation("Mo"), None);
    }

    #[test]
    fn a_pre_call_check_reads_with_its_upload_in_mbit() {
        assert_eq!(
            pre_call_check(true, 24_050),
            "Technik-Check bestanden (Upload 24,0 Mbit/s)"
        );
        assert_eq!(
            pre_call_check(false, 1_980),
            "Technik-Check nicht bestanden (Upload 1,9 Mbit/s)"
        );
    }
}
