//! The German mails of an appointment and their calendar entries (RFC 5545).

use time::OffsetDateTime;
use videoamt_core::domain::events::{AppointmentBooked, MailKind};
use videoamt_core::german;
use videoamt_core::tenant::{Cents, Tenant};

/// What a mail says, besides whom it goes to.
#[derive(Debug, Clone)]
pub(crate) struct Rendered {
    pub subject: String,
    pub text: String,
    pub calendar: Option<String>,
}

/// "Dienstag, 24.11.2026, 09:00–09:30 Uhr" in the municipality's time.
fn when(tenant: &Tenant, start: OffsetDateTime, end: OffsetDateTime) -> String {
    german::span(tenant.local(start), tenant.local(end))
}

/// The facts every mail of an appointment draws on.
#[derive(Debug, Clone)]
pub(crate) struct Appointment<'a> {
    pub tenant: &'a Tenant,
    pub booking: &'a AppointmentBooked,
    pub name: &'a str,
    /// The citizen's page (`…/termin/{token}`).
    pub link: String,
    /// Bumped with every change of the appointment, for calendar clients.
    pub sequence: u32,
    pub now: OffsetDateTime,
}

impl Appointment<'_> {
    /// The department's name as booked.
    fn department(&self) -> String {
        match &self.booking.terms {
            Some(terms) => terms.department_name.clone(),
            None => self
                .tenant
                .department(&self.booking.department)
                .map(|d| d.name.clone())
                .unwrap_or_default(),
        }
    }

    fn support(&self) -> String {
        format!(
            "Fragen zur Technik oder zum Termin beantwortet die Hotline unter {} ({}).",
            self.tenant.support.phone, self.tenant.support.hours
        )
    }

    fn requirements(&self) -> String {
        format!(
            "Technische Voraussetzungen:\n\
             - ein Computer, Tablet oder Smartphone mit Kamera und Mikrofon\n\
             - ein aktueller Browser (Chrome, Edge, Firefox oder Safari), keine Installation nötig\n\
             - eine Internetverbindung mit mindestens {} Mbit/s im Upload\n\
             - ein ruhiger Ort, an dem Sie ungestört sprechen können",
            self.tenant.min_upload_mbit
        )
    }

    fn overview(&self) -> String {
        // Names and fees as booked: a fee changed since applies to new bookings only.
        let names = self.booking.service_names(self.tenant);
        let fees = self
            .booking
            .fees(self.tenant)
            .map_or(Cents(0), |(_, total)| total);
        format!(
            "  Termin:   {}\n  Kommune:  {}\n  Bereich:  {}\n  Anliegen: {}\n  Gebühren: {}",
            when(self.tenant, self.booking.start, self.booking.end),
            self.tenant.name,
            self.department(),
            names.join("; "),
            if fees == Cents(0) {
                "keine".to_owned()
            } else {
                format!("{fees} (Zahlung online während des Termins)")
            }
        )
    }

    fn documents(&self) -> String {
        let docs = self.tenant.documents_to_bring(&self.booking.services);
        if docs.is_empty() {
            return "Unterlagen: Sie brauchen keine Unterlagen bereitzuhalten.".into();
        }
        let lines: Vec<String> = docs.iter().map(|d| format!("- {d}")).collect();
        format!("Bitte halten Sie bereit:\n{}", lines.join("\n"))
    }

    /// A letter: greeting, `intro`, the overview, `actions`, then (unless cancelled) the
    /// documents and requirements, and the footer.
    fn letter(&self, intro: &str, actions: &str, details: bool) -> String {
        let details = if details {
            format!("{}\n\n{}\n\n", self.documents(), self.requirements())
        } else {
            String::new()
        };
        format!(
            "Guten Tag {name},\n\n{intro}\n\n{overview}\n\n{actions}\n\n{details}\
             {support}\n\nMit freundlichen Grüßen\n{tenant}\n\nDiese E-Mail wurde automatisch \
             erstellt. Bitte antworten Sie nicht auf diese E-Mail.\n",
            name = self.name,
            overview = self.overview(),
            support = self.support(),
            tenant = self.tenant.name,
        )
    }

    pub(crate) fn render(&self, kind: MailKind) -> Rendered {
        let date = when(self.tenant, self.booking.start, self.booking.end);
        let link = &self.link;
        match kind {
            MailKind::Confirmation => Rendered {
                subject: format!("Ihr Videotermin: {date}"),
                text: self.letter(
                    "vielen Dank für Ihre Buchung. Ihr Videotermin:",
                    &format!(
                        "Bitte bestätigen Sie den Termin über Ihre Terminseite. Dort treten Sie \
                         zum Termin auch der Videoberatung bei:\n{link}\n\n\
                         Technik vor dem Termin prüfen (Browser, Kamera, Mikrofon, \
                         Internetverbindung):\n{link}/technik\n\n\
                         Termin absagen:\n{link}/absagen\n\n\
                         Termin verlegen:\n{link}/verlegen\n\n\
                         Der Link ist persönlich; bitte geben Sie ihn nicht weiter. Im Anhang \
                         finden Sie den Termin für Ihren Kalender."
                    ),
                    true,
                ),
                calendar: Some(self.calendar(false)),
            },
            MailKind::Reminder => Rendered {
                subject: format!("Erinnerung an Ihren Videotermin: {date}"),
                text: self.letter(
                    "wir erinnern Sie an Ihren Videotermin:",
                    &format!(
                        "Zum Termin treten Sie hier bei:\n{link}\n\n\
                         Falls Sie nicht teilnehmen können, sagen Sie bitte ab:\n{link}/absagen"
                    ),
                    true,
                ),
                calendar: Some(self.calendar(false)),
            },
            MailKind::Cancellation => Rendered {
                subject: format!("Ihr Videotermin wurde abgesagt: {date}"),
                text: self.letter(
                    "Ihr Videotermin wurde abgesagt:",
                    &format!(
                        "Einen neuen Termin können Sie jederzeit online buchen:\n{}/",
                        link.split("/termin/").next().unwrap_or_default()
                    ),
                    false,
                ),
                calendar: Some(self.calendar(true)),
            },
        }
    }

    /// The calendar object: one event in the municipality's zone with its VTIMEZONE, or (for
    /// a zone without the EU daylight-saving rule, which no example tenant has) in UTC.
    pub(crate) fn calendar(&self, cancelled: bool) -> String {
        let tz = &self.tenant.time_zone_name;
        let eu_rule = [
            "Europe/Berlin",
            "Europe/Vienna",
            "Europe/Zurich",
            "Europe/Luxembourg",
        ]
        .contains(&tz.as_str());
        let stamp = |t: OffsetDateTime| {
            let u = t.to_offset(time::UtcOffset::UTC);
            format!(
                "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
                u.year(),
                u8::from(u.month()),
                u.day(),
                u.hour(),
                u.minute(),
                u.second()
            )
        };
        let at = |name: &str, t: OffsetDateTime| {
            if eu_rule {
                let l = self.tenant.local(t);
                format!(
                    "{name};TZID={tz}:{:04}{:02}{:02}T{:02}{:02}{:02}",
                    l.year(),
                    u8::from(l.month()),
                    l.day(),
                    l.hour(),
                    l.minute(),
                    l.second()
                )
            } else {
                format!("{name}:{}", stamp(t))
            }
        };
        let mut lines: Vec<String> = vec![
            "BEGIN:VCALENDAR".into(),
            "VERSION:2.0".into(),
            "PRODID:-//videoamt//Videoberatung//DE".into(),
            "CALSCALE:GREGORIAN".into(),
            format!("METHOD:{}", if cancelled { "CANCEL" } else { "PUBLISH" }),
        ];
        if eu_rule {
            lines.extend(
                [
                    "BEGIN:VTIMEZONE",
                    &format!("TZID:{tz}"),
                    "BEGIN:DAYLIGHT",
                    "TZOFFSETFROM:+0100",
                    "TZOFFSETTO:+0200",
                    "TZNAME:CEST",
                    "DTSTART:19700329T020000",
                    "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU",
                    "END:DAYLIGHT",
                    "BEGIN:STANDARD",
                    "TZOFFSETFROM:+0200",
                    "TZOFFSETTO:+0100",
                    "TZNAME:CET",
                    "DTSTART:19701025T030000",
                    "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU",
                    "END:STANDARD",
                    "END:VTIMEZONE",
                ]
                .map(str::to_owned),
            );
        }
        lines.extend([
            "BEGIN:VEVENT".into(),
            format!("UID:{}@videoamt", self.booking.appointment),
            format!("DTSTAMP:{}", stamp(self.now)),
            format!("SEQUENCE:{}", self.sequence),
            at("DTSTART", self.booking.start),
            at("DTEND", self.booking.end),
            format!(
                "SUMMARY:{}",
                escape(&format!(
                    "Videotermin {} – {}",
                    self.tenant.name,
                    self.department()
                ))
            ),
            format!(
                "DESCRIPTION:{}",
                escape(&format!(
                    "Zum Termin beitreten: {}\n{}",
                    self.link,
                    self.support()
                ))
            ),
            format!("URL:{}", self.link),
            "LOCATION:Online (Videoberatung)".into(),
            format!(
                "STATUS:{}",
                if cancelled { "CANCELLED" } else { "CONFIRMED" }
            ),
            "END:VEVENT".into(),
            "END:VCALENDAR".into(),
        ]);
        lines.iter().map(|l| fold(l)).collect::<String>()
    }
}

/// TEXT escaping of RFC 5545 (backslash, semicolon, comma, newline).
fn escape(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace(';', "\\;")
        .replace(',', "\\,")
        .replace('\n', "\\n")
}

/// A content line folded at 75 octets (never inside a UTF-8 character), CRLF-terminated.
fn fold(line: &str) -> String {
    let mut out = String::new();
    let mut width = 0;
    for c in line.chars() {
        let len = c.len_utf8();
        if width + len > 75 {
            out.push_str("\r\n ");
            width = 1;
        }
        out.push(c);
        width += len;
    }
    out.push_str("\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_are_folded_at_75_octets_without_splitting_characters() {
        let line = format!("DESCRIPTION:{}", "ä".repeat(100));
        let folded = fold(&line);
        for part in folded.split("\r\n").filter(|p| !p.is_empty()) {
            assert!(part.len() <= 75, "{part}");
        }
        let unfolded = folded.replace("\r\n ", "");
        assert_eq!(unfolded, format!("{line}\r\n"));
    }

    #[test]
    fn text_values_are_escaped() {
        assert_eq!(escape("a;b,c\\d\ne"), "a\\;b\\,c\\\\d\\ne");
    }

    #[test]
    fn the_overview_shows_local_times_and_fees_in_euro() {
        use videoamt_core::domain::events::{AppointmentBooked, Contact};
        use videoamt_core::domain::{AppointmentId, Personal, SubjectId};
        use videoamt_core::tenant::{BookingChannel, example_tenants};
        let tenants = example_tenants().expect("examples are valid");
        let tenant = tenants
            .iter()
            .find(|t| t.id.as_str() == "ettlingen")
            .expect("Ettlingen");
        let start = time::macros::datetime!(2026-11-24 08:00 UTC);
        let booking = AppointmentBooked {
            appointment: AppointmentId(uuid::Uuid::from_u128(1)),
            subject: SubjectId(uuid::Uuid::from_u128(2)),
            department: "buergerbuero".into(),
            services: vec!["personalausweis".into()],
            start,
            end: start + time::Duration::minutes(15),
            channel: BookingChannel::Online,
            invited_by: None,
            contact: Contact {
                name: Personal::plain("Erika Mustermann"),
                email: Personal::plain("erika@example.org"),
                phone: None,
            },
            terms: videoamt_core::domain::events::BookingTerms::of(
                tenant,
                &"buergerbuero".into(),
                &["personalausweis".into()],
            )
            .map(Box::new),
        };
        let mail = Appointment {
            tenant,
            booking: &booking,
            name: "Erika Mustermann",
            link: "http://amt.test/termin/t".into(),
            sequence: 0,
            now: start,
        }
        .render(MailKind::Confirmation);
        assert_eq!(
            mail.subject,
            "Ihr Videotermin: Dienstag, 24.11.2026, 09:00–09:15 Uhr"
        );
        assert!(
            mail.text
                .contains("Gebühren: 37,00 € (Zahlung online während des Termins)"),
            "{}",
            mail.text
        );
    }
}
