//! Tenant configuration: one TOML file per municipality, parsed into checked types.
//!
//! Everything that differs between municipalities is data here, not code: retention, time
//! zone, departments and their opening hours and capacity, services with fees and required
//! documents, clerks, payment and signature methods, form templates. A file that breaks a rule
//! is refused with its name, the line and what is wrong.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Range;

use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime, PrimitiveDateTime, Time, Weekday};
use time_tz::{OffsetDateTimeExt, OffsetResult, PrimitiveDateTimeExt, Tz};
use toml::Spanned;

use crate::directory::{ClientSecret, DirectorySignOn, RoleGrant};
use crate::domain::account::StaffRole;
use crate::event::TenantId;

/// Money in euro cents. Never a float.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Cents(pub u64);

impl Cents {
    pub fn checked_add(self, other: Cents) -> Option<Cents> {
        self.0.checked_add(other.0).map(Cents)
    }
}

impl fmt::Display for Cents {
    /// German notation: `37,80 €`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{},{:02} €", self.0 / 100, self.0 % 100)
    }
}

macro_rules! slug_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_owned())
            }
        }
    };
}

slug_id!(
    /// A department (`Fachbereich`), e.g. `buergerbuero`.
    DepartmentId
);
slug_id!(
    /// A service (`Dienstleistung`, the citizen's `Anliegen`), e.g. `personalausweis`.
    ServiceId
);
slug_id!(
    /// A clerk's account (`Sachbearbeiter`), e.g. `m.mueller`.
    ClerkId
);
slug_id!(
    /// A form template, e.g. `antrag-personalausweis`.
    FormTemplateId
);
slug_id!(
    /// A payment method a tenant offers, e.g. `kreditkarte`.
    PaymentMethodId
);

/// How an appointment comes about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BookingChannel {
    /// The citizen books on the web.
    Online,
    /// A clerk books after contact by phone or mail and the citizen gets the mail (Stuttgart).
    ClerkInvitation,
}

/// How a citizen signs a form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignatureMethod {
    Touchpad,
    HiddenTan,
    HandyTan,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Support {
    pub phone: String,
    pub hours: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentMethod {
    pub id: PaymentMethodId,
    pub label: String,
}

/// One opening window on one weekday, in the tenant's local time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpeningWindow {
    pub weekday: Weekday,
    pub from: Time,
    pub to: Time,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Department {
    pub id: DepartmentId,
    pub name: String,
    pub slot_minutes: u16,
    /// How many appointments may share one slot (parallel clerks).
    pub capacity: u16,
    pub hours: Vec<OpeningWindow>,
    /// Citizens may book online here; otherwise only a clerk's invitation books.
    pub online_booking: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub id: ServiceId,
    pub department: DepartmentId,
    pub name: String,
    pub duration_minutes: u16,
    pub fee: Cents,
    pub documents: Vec<String>,
    pub identity_check: bool,
    pub signature: bool,
    pub combinable_with: BTreeSet<ServiceId>,
    pub online: bool,
    pub on_site: bool,
    /// The specialised procedure (`Fachverfahren`) a completed case must be handed over to
    /// before its data may be purged; `None` if nothing is kept.
    pub case_system: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clerk {
    pub id: ClerkId,
    pub name: String,
    pub departments: BTreeSet<DepartmentId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum FieldKind {
    Text { max_length: usize },
    Date,
    Email,
    Number { min: i64, max: i64 },
    Choice { options: Vec<String> },
    Checkbox,
}

impl FieldKind {
    /// A date field's value as it is entered and stored: `JJJJ-MM-TT`, the form of an HTML
    /// date input.
    pub fn parse_date(value: &str) -> Option<Date> {
        Date::parse(
            value,
            time::macros::format_description!("[year]-[month]-[day]"),
        )
        .ok()
    }

    /// `value` as the signed document prints it: a date the German way ("14.03.1971"),
    /// anything else as entered. The stored value does not change.
    pub fn printed(&self, value: &str) -> String {
        match (self, Self::parse_date(value)) {
            (Self::Date, Some(date)) => crate::german::date(date),
            _ => value.to_owned(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldDefinition {
    pub id: String,
    pub label: String,
    pub kind: FieldKind,
    pub required: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormTemplate {
    pub id: FormTemplateId,
    pub service: ServiceId,
    pub title: String,
    pub fields: Vec<FieldDefinition>,
    /// The methods this form may be signed with: a subset of the tenant's, all of them unless
    /// the form's `signature_methods` names fewer.
    pub signature_methods: BTreeSet<SignatureMethod>,
}

impl FormTemplate {
    pub fn field(&self, id: &str) -> Option<&FieldDefinition> {
        self.fields.iter().find(|f| f.id == id)
    }
}

/// One municipality's configuration, checked.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    pub time_zone: &'static Tz,
    pub time_zone_name: String,
    pub retention_months: u32,
    pub support: Support,
    pub min_upload_mbit: u32,
    pub booking_channels: BTreeSet<BookingChannel>,
    pub payment_methods: Vec<PaymentMethod>,
    pub signature_methods: BTreeSet<SignatureMethod>,
    pub departments: BTreeMap<DepartmentId, Department>,
    pub services: BTreeMap<ServiceId, Service>,
    pub clerks: BTreeMap<ClerkId, Clerk>,
    pub forms: BTreeMap<FormTemplateId, FormTemplate>,
    /// Staff sign-on through the municipality's directory (`[oidc]`), besides passwords.
    pub oidc: Option<DirectorySignOn>,
}

/// A refused configuration file: where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

impl Tenant {
    /// Parses and checks one tenant file. `file` names it in errors.
    pub fn from_toml(file: &str, text: &str) -> Result<Self, ConfigError> {
        let at = |span: Range<usize>, message: String| ConfigError {
            file: file.to_owned(),
            line: line_of(text, span.start),
            message,
        };
        let raw: RawTenant = toml::from_str(text)
            .map_err(|e| at(e.span().unwrap_or(0..0), e.message().to_owned()))?;
        raw.check().map_err(|(span, message)| at(span, message))
    }

    pub fn department(&self, id: &DepartmentId) -> Option<&Department> {
        self.departments.get(id)
    }

    pub fn service(&self, id: &ServiceId) -> Option<&Service> {
        self.services.get(id)
    }

    /// The documents to have ready for `services`, each once, in alphabetical order (as the
    /// mails, the booking pages and the clerk's screens list them).
    pub fn documents_to_bring(&self, services: &[ServiceId]) -> Vec<String> {
        let mut documents: Vec<String> = services
            .iter()
            .filter_map(|s| self.service(s))
            .flat_map(|s| s.documents.iter().cloned())
            .collect();
        documents.sort_unstable();
        documents.dedup();
        documents
    }

    /// The local wall-clock time of an instant in the tenant's time zone.
    /// The same instant with the municipality's UTC offset at that moment, for display.
    pub fn zoned(&self, instant: OffsetDateTime) -> OffsetDateTime {
        instant.to_timezone(self.time_zone)
    }

    pub fn local(&self, instant: OffsetDateTime) -> PrimitiveDateTime {
        let local = instant.to_timezone(self.time_zone);
        PrimitiveDateTime::new(local.date(), local.time())
    }

    /// The instant of a local wall-clock time. In the autumn hour that occurs twice the earlier
    /// one is taken; a time skipped in spring is moved forward by the gap.
    pub fn instant(&self, local: PrimitiveDateTime) -> OffsetDateTime {
        match local.assume_timezone(self.time_zone) {
            OffsetResult::Some(t) | OffsetResult::Ambiguous(t, _) => t,
            OffsetResult::None => {
                // Spring forward: the wall clock jumps one hour, so does the appointment.
                let later = local + time::Duration::HOUR;
                match later.assume_timezone(self.time_zone) {
                    OffsetResult::Some(t) | OffsetResult::Ambiguous(t, _) => t,
                    OffsetResult::None => local.assume_utc(),
                }
            }
        }
    }

    /// `months` calendar months after `instant`, in the tenant's time zone: the same local
    /// time of day, and the last day of the month where the day does not exist
    /// (31 August + 6 months = 28 or 29 February).
    pub fn add_months(&self, instant: OffsetDateTime, months: u32) -> OffsetDateTime {
        let local = self.local(instant);
        self.instant(PrimitiveDateTime::new(
            add_calendar_months(local.date(), months),
            local.time(),
        ))
    }
}

/// Calendar-month arithmetic with the day clamped to the month's last day.
pub fn add_calendar_months(date: Date, months: u32) -> Date {
    let zero_based = i64::from(date.month() as u8 - 1) + i64::from(months);
    let year = date.year() + i32::try_from(zero_based / 12).unwrap_or(0);
    let month = time::Month::try_from(u8::try_from(zero_based % 12 + 1).unwrap_or(1))
        .unwrap_or(time::Month::January);
    let last = month.length(year);
    Date::from_calendar_date(year, month, date.day().min(last)).unwrap_or(date)
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map_or(1, |before| before.matches('\n').count() + 1)
}

// ---- the file as written -------------------------------------------------------------------

type Problem = (Range<usize>, String);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTenant {
    id: Spanned<String>,
    name: String,
    time_zone: Spanned<String>,
    retention_months: Spanned<i64>,
    min_upload_mbit: Spanned<i64>,
    support: RawSupport,
    booking_channels: Spanned<Vec<BookingChannel>>,
    payment_methods: Vec<RawPaymentMethod>,
    signature_methods: Spanned<Vec<SignatureMethod>>,
    #[serde(default)]
    departments: Vec<RawDepartment>,
    #[serde(default)]
    services: Vec<RawService>,
    #[serde(default)]
    clerks: Vec<RawClerk>,
    #[serde(default)]
    forms: Vec<RawForm>,
    #[serde(default)]
    oidc: Option<Spanned<RawOidc>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOidc {
    issuer: Spanned<String>,
    client_id: Spanned<String>,
    client_secret: Option<String>,
    client_secret_env: Option<Spanned<String>>,
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    login_claim: Option<String>,
    #[serde(default)]
    groups_claim: Option<String>,
    #[serde(default)]
    scopes: Option<Vec<String>>,
    grants: Spanned<Vec<Spanned<RawGrant>>>,
    /// The municipality's own CA (PEM) for an `https://` provider behind an internal PKI.
    #[serde(default)]
    ca_file: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGrant {
    group: String,
    role: String,
    #[serde(default)]
    departments: Vec<String>,
}

impl RawOidc {
    fn check(
        self,
        span: Range<usize>,
        departments: &BTreeMap<DepartmentId, Department>,
    ) -> Result<DirectorySignOn, Problem> {
        // Kept as given: discovery insists that the provider names itself exactly so.
        let issuer = self.issuer.get_ref().clone();
        let loopback = ["http://127.0.0.1", "http://localhost", "http://[::1]"]
            .iter()
            .any(|host| {
                issuer
                    .strip_prefix(host)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with([':', '/']))
            });
        let https = issuer.len() > "https://".len() && issuer.starts_with("https://");
        if !(https || loopback) {
            return Err((
                self.issuer.span(),
                format!(
                    "oidc issuer {issuer:?} must be an https:// URL (plain http only on loopback)"
                ),
            ));
        }
        // Only the path: whether the file holds certificates is `serve`'s to check (no IO here).
        let ca_file = match self.ca_file {
            None => None,
            Some(file) => {
                let path = file.get_ref();
                if !std::path::Path::new(path).is_absolute() {
                    return Err((
                        file.span(),
                        format!("oidc ca_file {path:?} must be an absolute path"),
                    ));
                }
                if !https {
                    return Err((file.span(), "oidc ca_file needs an https:// issuer".into()));
                }
                Some(file.into_inner())
            }
        };
        if self.client_id.get_ref().trim().is_empty() {
            return Err((
                self.client_id.span(),
                "oidc client_id must not be empty".into(),
            ));
        }
        let client_secret = match (self.client_secret, self.client_secret_env) {
            (Some(value), None) if !value.is_empty() => ClientSecret::Value(value),
            (None, Some(env)) if !env.get_ref().is_empty() => ClientSecret::Env(env.into_inner()),
            _ => {
                return Err((
                    span,
                    "oidc needs exactly one of client_secret and client_secret_env".into(),
                ));
            }
        };
        let mut grants = Vec::new();
        for g in self.grants.get_ref() {
            let raw = g.get_ref();
            let role = StaffRole::parse(&raw.role).ok_or_else(|| {
                (
                    g.span(),
                    format!(
                        "unknown role {:?}; use clerk, auditor, dpo or admin",
                        raw.role
                    ),
                )
            })?;
            if raw.group.is_empty() {
                return Err((g.span(), "a grant needs its group".into()));
            }
            let mut ids = Vec::new();
            for d in &raw.departments {
                let id = DepartmentId::from(d.as_str());
                if !departments.contains_key(&id) {
                    return Err((g.span(), format!("unknown department {d}")));
                }
                ids.push(id);
            }
            match (role, ids.is_empty()) {
                (StaffRole::Clerk, true) => {
                    return Err((g.span(), "a clerk's grant names its departments".into()));
                }
                (StaffRole::Clerk, false) => {}
                (_, false) => {
                    return Err((g.span(), "only a clerk's grant names departments".into()));
                }
                (_, true) => {}
            }
            grants.push(RoleGrant {
                group: raw.group.clone(),
                role,
                departments: ids,
            });
        }
        if grants.is_empty() {
            return Err((
                self.grants.span(),
                "oidc needs at least one grant: nobody would be let in".into(),
            ));
        }
        Ok(DirectorySignOn {
            issuer,
            client_id: self.client_id.into_inner(),
            client_secret,
            label: self
                .label
                .unwrap_or_else(|| "Mit dem Dienstkonto anmelden".to_owned()),
            login_claim: self
                .login_claim
                .unwrap_or_else(|| "preferred_username".to_owned()),
            groups_claim: self.groups_claim.unwrap_or_else(|| "groups".to_owned()),
            scopes: self
                .scopes
                .unwrap_or_else(|| vec!["profile".to_owned(), "groups".to_owned()]),
            grants,
            ca_file,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSupport {
    phone: String,
    hours: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPaymentMethod {
    id: Spanned<String>,
    label: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDepartment {
    id: Spanned<String>,
    name: String,
    slot_minutes: Spanned<i64>,
    capacity: Spanned<i64>,
    hours: Vec<Spanned<RawHours>>,
    #[serde(default = "yes")]
    online_booking: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHours {
    days: Vec<String>,
    from: String,
    to: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    id: Spanned<String>,
    department: Spanned<String>,
    name: String,
    duration_minutes: Spanned<i64>,
    fee_cents: Spanned<i64>,
    #[serde(default)]
    documents: Vec<String>,
    #[serde(default)]
    identity_check: bool,
    #[serde(default)]
    signature: bool,
    #[serde(default)]
    combinable_with: Vec<Spanned<String>>,
    #[serde(default = "yes")]
    online: bool,
    #[serde(default)]
    on_site: bool,
    #[serde(default)]
    case_system: Option<String>,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClerk {
    id: Spanned<String>,
    name: String,
    departments: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawForm {
    id: Spanned<String>,
    service: Spanned<String>,
    title: String,
    fields: Vec<Spanned<RawField>>,
    #[serde(default)]
    signature_methods: Option<Spanned<Vec<SignatureMethod>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawField {
    id: String,
    label: String,
    #[serde(rename = "type")]
    kind: String,
    max_length: Option<usize>,
    min: Option<i64>,
    max: Option<i64>,
    options: Option<Vec<String>>,
    #[serde(default)]
    required: bool,
}

impl RawField {
    fn kind(&self) -> Result<FieldKind, String> {
        Ok(match self.kind.as_str() {
            "text" => FieldKind::Text {
                max_length: self.max_length.unwrap_or(200),
            },
            "date" => FieldKind::Date,
            "email" => FieldKind::Email,
            "number" => FieldKind::Number {
                min: self.min.unwrap_or(i64::MIN),
                max: self.max.unwrap_or(i64::MAX),
            },
            "choice" => FieldKind::Choice {
                options: self.options.clone().unwrap_or_default(),
            },
            "checkbox" => FieldKind::Checkbox,
            other => {
                return Err(format!(
                    "field {}: unknown type {other:?}; use text, date, email, number, choice or \
                     checkbox",
                    self.id
                ));
            }
        })
    }
}

fn slug(s: &Spanned<String>, what: &str) -> Result<String, Problem> {
    let v = s.get_ref();
    let ok = !v.is_empty()
        && v.len() <= 48
        && v.starts_with(|c: char| c.is_ascii_lowercase())
        && v.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.' | '_'));
    if ok {
        Ok(v.clone())
    } else {
        Err((
            s.span(),
            format!("{what} id {v:?} must be a lowercase slug (a-z, 0-9, '-', '.', '_')"),
        ))
    }
}

fn positive(v: &Spanned<i64>, what: &str, max: i64) -> Result<i64, Problem> {
    let n = *v.get_ref();
    if n < 1 {
        Err((v.span(), format!("{what} must be at least 1, not {n}")))
    } else if n > max {
        Err((v.span(), format!("{what} must be at most {max}, not {n}")))
    } else {
        Ok(n)
    }
}

fn clock(s: &str) -> Option<Time> {
    let (h, m) = s.split_once(':')?;
    Time::from_hms(h.parse().ok()?, m.parse().ok()?, 0).ok()
}

fn to_u16(n: i64) -> u16 {
    // Callers bound n with `positive(…, max)` where max fits.
    u16::try_from(n).unwrap_or(u16::MAX)
}

impl RawTenant {
    fn check(self) -> Result<Tenant, Problem> {
        let id = TenantId::parse(self.id.get_ref()).map_err(|e| (self.id.span(), e.to_string()))?;
        let time_zone =
            time_tz::timezones::get_by_name(self.time_zone.get_ref()).ok_or_else(|| {
                (
                    self.time_zone.span(),
                    format!("unknown time zone {:?}", self.time_zone.get_ref()),
                )
            })?;
        let retention_months = positive(&self.retention_months, "retention_months", 120)?;
        let min_upload_mbit = positive(&self.min_upload_mbit, "min_upload_mbit", 1_000)?;
        if self.booking_channels.get_ref().is_empty() {
            return Err((
                self.booking_channels.span(),
                "booking_channels must not be empty".into(),
            ));
        }
        if self.signature_methods.get_ref().is_empty() {
            return Err((
                self.signature_methods.span(),
                "signature_methods must not be empty".into(),
            ));
        }

        let tenant_signature_methods: BTreeSet<SignatureMethod> =
            self.signature_methods.get_ref().iter().copied().collect();

        let mut payment_methods = Vec::new();
        for p in &self.payment_methods {
            let pid = PaymentMethodId(slug(&p.id, "payment method")?);
            if payment_methods.iter().any(|m: &PaymentMethod| m.id == pid) {
                return Err((p.id.span(), format!("payment method {pid} is listed twice")));
            }
            payment_methods.push(PaymentMethod {
                id: pid,
                label: p.label.clone(),
            });
        }

        let mut departments = BTreeMap::new();
        for d in self.departments {
            let did = DepartmentId(slug(&d.id, "department")?);
            let slot_minutes = to_u16(positive(&d.slot_minutes, "slot_minutes", 480)?);
            let capacity = to_u16(positive(&d.capacity, "capacity", 1_000)?);
            let mut hours: Vec<OpeningWindow> = Vec::new();
            for h in &d.hours {
                let span = h.span();
                let raw = h.get_ref();
                let (Some(from), Some(to)) = (clock(&raw.from), clock(&raw.to)) else {
                    return Err((span, "opening hours need from/to as HH:MM".into()));
                };
                if from >= to {
                    return Err((
                        span,
                        format!(
                            "opening hours end ({}) before they start ({})",
                            raw.to, raw.from
                        ),
                    ));
                }
                if raw.days.is_empty() {
                    return Err((span, "opening hours need at least one day".into()));
                }
                for day in &raw.days {
                    let weekday =
                        crate::german::weekday_from_abbreviation(day).ok_or_else(|| {
                            (
                                span.clone(),
                                format!("unknown day {day:?}; use mo, di, mi, do, fr, sa, so"),
                            )
                        })?;
                    if let Some(other) = hours
                        .iter()
                        .find(|o| o.weekday == weekday && o.from < to && from < o.to)
                    {
                        return Err((
                            span,
                            format!(
                                "opening hours overlap on {day}: {}–{} and {}–{}",
                                raw.from,
                                raw.to,
                                hhmm(other.from),
                                hhmm(other.to)
                            ),
                        ));
                    }
                    hours.push(OpeningWindow { weekday, from, to });
                }
            }
            let dept = Department {
                id: did.clone(),
                name: d.name,
                slot_minutes,
                capacity,
                hours,
                online_booking: d.online_booking,
            };
            if departments.insert(did.clone(), dept).is_some() {
                return Err((d.id.span(), format!("department {did} is defined twice")));
            }
        }

        let known_services: BTreeSet<String> = self
            .services
            .iter()
            .map(|s| s.id.get_ref().clone())
            .collect();
        let mut services = BTreeMap::new();
        for s in self.services {
            let sid = ServiceId(slug(&s.id, "service")?);
            let department = DepartmentId(s.department.get_ref().clone());
            if !departments.contains_key(&department) {
                return Err((
                    s.department.span(),
                    format!("unknown department {department}"),
                ));
            }
            let fee = *s.fee_cents.get_ref();
            let fee = u64::try_from(fee).map_err(|_| {
                (
                    s.fee_cents.span(),
                    format!("fee_cents must not be negative, not {fee}"),
                )
            })?;
            let mut combinable_with = BTreeSet::new();
            for other in &s.combinable_with {
                if !known_services.contains(other.get_ref()) {
                    return Err((other.span(), format!("unknown service {}", other.get_ref())));
                }
                combinable_with.insert(ServiceId(other.get_ref().clone()));
            }
            if !s.online && !s.on_site {
                return Err((
                    s.id.span(),
                    format!("service {sid} is offered neither online nor on site"),
                ));
            }
            let service = Service {
                id: sid.clone(),
                department,
                name: s.name,
                duration_minutes: to_u16(positive(&s.duration_minutes, "duration_minutes", 480)?),
                fee: Cents(fee),
                documents: s.documents,
                identity_check: s.identity_check,
                signature: s.signature,
                combinable_with,
                online: s.online,
                on_site: s.on_site,
                case_system: s.case_system.clone(),
            };
            if services.insert(sid.clone(), service).is_some() {
                return Err((s.id.span(), format!("service {sid} is defined twice")));
            }
        }

        let mut clerks = BTreeMap::new();
        for c in self.clerks {
            let cid = ClerkId(slug(&c.id, "clerk")?);
            let mut of = BTreeSet::new();
            for d in &c.departments {
                let did = DepartmentId(d.get_ref().clone());
                if !departments.contains_key(&did) {
                    return Err((d.span(), format!("unknown department {did}")));
                }
                of.insert(did);
            }
            if clerks
                .insert(
                    cid.clone(),
                    Clerk {
                        id: cid.clone(),
                        name: c.name,
                        departments: of,
                    },
                )
                .is_some()
            {
                return Err((c.id.span(), format!("clerk {cid} is defined twice")));
            }
        }

        let mut forms = BTreeMap::new();
        for f in self.forms {
            let fid = FormTemplateId(slug(&f.id, "form")?);
            let service = ServiceId(f.service.get_ref().clone());
            if !services.contains_key(&service) {
                return Err((f.service.span(), format!("unknown service {service}")));
            }
            let mut fields: Vec<FieldDefinition> = Vec::new();
            for field in f.fields {
                let span = field.span();
                let raw = field.into_inner();
                let kind = raw.kind().map_err(|m| (span.clone(), m))?;
                if fields.iter().any(|x| x.id == raw.id) {
                    return Err((span, format!("field {} is defined twice", raw.id)));
                }
                if let FieldKind::Choice { options } = &kind
                    && options.is_empty()
                {
                    return Err((span, format!("choice field {} has no options", raw.id)));
                }
                if let FieldKind::Number { min, max } = kind
                    && min > max
                {
                    return Err((
                        span,
                        format!("number field {}: min {min} > max {max}", raw.id),
                    ));
                }
                fields.push(FieldDefinition {
                    id: raw.id,
                    label: raw.label,
                    kind,
                    required: raw.required,
                });
            }
            let signature_methods = match &f.signature_methods {
                None => tenant_signature_methods.clone(),
                Some(listed) => {
                    if listed.get_ref().is_empty() {
                        return Err((
                            listed.span(),
                            format!(
                                "form {fid}: signature_methods must not be empty; leave it out \
                                 to allow the tenant's"
                            ),
                        ));
                    }
                    if let Some(missing) = listed
                        .get_ref()
                        .iter()
                        .find(|m| !tenant_signature_methods.contains(m))
                    {
                        return Err((
                            listed.span(),
                            format!(
                                "form {fid}: signature method {} is not offered by the tenant \
                                 (signature_methods = [{}])",
                                method_name(*missing),
                                tenant_signature_methods
                                    .iter()
                                    .map(|m| method_name(*m))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        ));
                    }
                    listed.get_ref().iter().copied().collect()
                }
            };
            let template = FormTemplate {
                id: fid.clone(),
                service,
                title: f.title,
                fields,
                signature_methods,
            };
            if forms.insert(fid.clone(), template).is_some() {
                return Err((f.id.span(), format!("form {fid} is defined twice")));
            }
        }

        let oidc = match self.oidc {
            Some(raw) => {
                let span = raw.span();
                Some(raw.into_inner().check(span, &departments)?)
            }
            None => None,
        };

        Ok(Tenant {
            id,
            name: self.name,
            time_zone,
            time_zone_name: self.time_zone.into_inner(),
            retention_months: u32::try_from(retention_months).unwrap_or(1),
            support: Support {
                phone: self.support.phone,
                hours: self.support.hours,
            },
            min_upload_mbit: u32::try_from(min_upload_mbit).unwrap_or(1),
            booking_channels: self.booking_channels.into_inner().into_iter().collect(),
            payment_methods,
            signature_methods: tenant_signature_methods,
            departments,
            services,
            clerks,
            forms,
            oidc,
        })
    }
}

/// A signature method as the file spells it.
fn method_name(method: SignatureMethod) -> &'static str {
    match method {
        SignatureMethod::Touchpad => "touchpad",
        SignatureMethod::HiddenTan => "hidden_tan",
        SignatureMethod::HandyTan => "handy_tan",
    }
}

fn hhmm(t: Time) -> String {
    format!("{:02}:{:02}", t.hour(), t.minute())
}

/// The example tenants shipped with the product, as (file name, text).
pub const EXAMPLE_TENANTS: [(&str, &str); 2] = [
    (
        "tenants/ettlingen.toml",
        include_str!("../../tenants/ettlingen.toml"),
    ),
    (
        "tenants/stuttgart.toml",
        include_str!("../../tenants/stuttgart.toml"),
    ),
];

/// The example tenants, parsed. They ship inside the binary, so an error here is a bug in the
/// shipped files, which the tests below rule out.
pub fn example_tenants() -> Result<Vec<Tenant>, ConfigError> {
    EXAMPLE_TENANTS
        .iter()
        .map(|(file, text)| Tenant::from_toml(file, text))
        .collect()
}

#[cfg(test)]
mod tests {
    use time::macros::{date, datetime};

    use super::*;

    fn example(name: &str) -> Tenant {
        let (file, text) = EXAMPLE_TENANTS
            .iter()
            .find(|(f, _)| f.contains(name))
            .expect("example tenant exists");
        Tenant::from_toml(file, text).expect("example tenant is valid")
    }

    #[test]
    fn cents_read_as_euro_with_a_comma() {
        assert_eq!(Cents(3700).to_string(), "37,00 €");
        assert_eq!(Cents(5).to_string(), "0,05 €");
    }

    #[test]
    fn documents_to_bring_are_listed_once_in_order() {
        let t = example("ettlingen");
        let services = [
            ServiceId::from("reisepass"),
            ServiceId::from("personalausweis"),
        ];
        assert_eq!(
            t.documents_to_bring(&services),
            [
                "Biometrisches Lichtbild (digital)",
                "Bisheriger Personalausweis oder Reisepass",
                "Bisheriger Reisepass oder Personalausweis",
            ]
        );
        assert!(
            t.documents_to_bring(&[ServiceId::from("unbekannt")])
                .is_empty()
        );
    }

    #[test]
    fn example_tenants_parse_with_their_retention() {
        let ettlingen = example("ettlingen");
        assert_eq!(ettlingen.retention_months, 3);
        assert_eq!(ettlingen.min_upload_mbit, 10);
        for d in [
            "buergerbuero",
            "strassenverkehrsbehoerde",
            "waffenbehoerde",
            "gewerbebehoerde",
            "gaststaettenbehoerde",
            "wohngeldbehoerde",
            "soziale-leistungen",
        ] {
            assert!(
                ettlingen.departments.contains_key(&DepartmentId::from(d)),
                "{d}"
            );
        }
        assert!(
            !ettlingen
                .payment_methods
                .iter()
                .any(|p| p.id.as_str() == "giropay")
        );
        let stuttgart = example("stuttgart");
        assert_eq!(stuttgart.retention_months, 6);
        assert_eq!(stuttgart.min_upload_mbit, 2);
        assert_eq!(stuttgart.support.phone, "115");
        assert!(
            stuttgart
                .booking_channels
                .contains(&BookingChannel::ClerkInvitation)
        );
        assert_eq!(stuttgart.departments.len(), 8);
        assert!(!stuttgart.departments[&DepartmentId::from("jobcenter")].online_booking);
        assert!(stuttgart.departments[&DepartmentId::from("ordnung-waffen")].online_booking);
    }

    fn refused(text: &str) -> ConfigError {
        Tenant::from_toml("test.toml", text).expect_err("must be refused")
    }

    const MINIMAL: &str = r#"
id = "testheim"
name = "Testheim"
time_zone = "Europe/Berlin"
retention_months = 3
min_upload_mbit = 2
booking_channels = ["online"]
signature_methods = ["touchpad"]
payment_methods = [{ id = "kreditkarte", label = "Kreditkarte" }]
support = { phone = "115", hours = "Mo–Fr 8–18 Uhr" }

[[departments]]
id = "amt"
name = "Amt"
slot_minutes = 15
capacity = 1
hours = [{ days = ["mo"], from = "08:00", to = "12:00" }]

[[services]]
id = "a"
department = "amt"
name = "A"
duration_minutes = 15
fee_cents = 100
"#;

    #[test]
    fn the_minimal_file_is_accepted() {
        let t = Tenant::from_toml("test.toml", MINIMAL).expect("valid");
        assert_eq!(t.services[&ServiceId::from("a")].fee, Cents(100));
    }

    /// Appended to MINIMAL, the `[oidc]` table starts on line 26.
    const OIDC: &str = r#"
[oidc]
issuer = "https://login.testheim.de/realms/rathaus"
client_id = "videoamt"
client_secret_env = "VIDEOAMT_OIDC_SECRET_TESTHEIM"
grants = [
  { group = "va-admin", role = "admin" },
  { group = "va-amt", role = "clerk", departments = ["amt"] },
]
"#;

    #[test]
    fn a_directory_sign_on_is_read_with_its_grants_and_defaults() {
        let t = Tenant::from_toml("test.toml", &format!("{MINIMAL}{OIDC}")).expect("valid");
        let o = t.oidc.expect("an [oidc] table");
        assert_eq!(o.issuer, "https://login.testheim.de/realms/rathaus");
        assert_eq!(
            o.client_secret,
            ClientSecret::Env("VIDEOAMT_OIDC_SECRET_TESTHEIM".into())
        );
        assert_eq!(
            (o.login_claim.as_str(), o.groups_claim.as_str()),
            ("preferred_username", "groups")
        );
        assert_eq!(o.label, "Mit dem Dienstkonto anmelden");
        assert_eq!(o.grants.len(), 2);
        assert_eq!(
            o.grant(&["va-amt".to_owned()]),
            Some((StaffRole::Clerk, vec![DepartmentId::from("amt")]))
        );
        assert!(
            Tenant::from_toml("test.toml", MINIMAL)
                .expect("valid")
                .oidc
                .is_none()
        );
        // Plain http only on loopback, where the tests' provider runs.
        let local = OIDC.replace(
            "https://login.testheim.de/realms/rathaus",
            "http://127.0.0.1:4011",
        );
        assert!(Tenant::from_toml("test.toml", &format!("{MINIMAL}{local}")).is_ok());
    }

    #[test]
    fn a_directory_sign_on_may_name_the_municipalitys_own_ca() {
        assert_eq!(
            Tenant::from_toml("test.toml", &format!("{MINIMAL}{OIDC}"))
                .expect("valid")
                .oidc
                .expect("an [oidc] table")
                .ca_file,
            None
        );
        let with_ca = |line: &str| {
            format!(
                "{MINIMAL}{}",
                OIDC.replace("grants = [", &format!("{line}\ngrants = ["))
            )
        };
        let t = Tenant::from_toml(
            "test.toml",
            &with_ca("ca_file = \"/etc/videoamt/rathaus-ca.pem\""),
        )
        .expect("valid");
        assert_eq!(
            t.oidc.expect("an [oidc] table").ca_file.as_deref(),
            Some("/etc/videoamt/rathaus-ca.pem")
        );
        // The path as written, on its line; no file is read here.
        let e = refused(&with_ca("ca_file = \"rathaus-ca.pem\""));
        assert_eq!(
            (e.line, e.message.as_str()),
            (
                30,
                "oidc ca_file \"rathaus-ca.pem\" must be an absolute path"
            )
        );
        let local = with_ca("ca_file = \"/etc/videoamt/rathaus-ca.pem\"").replace(
            "https://login.testheim.de/realms/rathaus",
            "http://127.0.0.1:4011",
        );
        let e = refused(&local);
        assert_eq!(
            (e.line, e.message.as_str()),
            (30, "oidc ca_file needs an https:// issuer")
        );
        let e = refused(&with_ca("ca_file = [\"/etc/a.pem\"]"));
        assert_eq!(e.line, 30, "{e}");
    }

    #[test]
    fn a_directory_sign_on_is_refused_with_the_line_of_what_is_wrong() {
        let oidc = |from: &str, to: &str| refused(&format!("{MINIMAL}{}", OIDC.replace(from, to)));
        let e = oidc(
            "https://login.testheim.de/realms/rathaus",
            "http://login.testheim.de",
        );
        assert_eq!(
            (e.line, e.message.as_str()),
            (
                27,
                "oidc issuer \"http://login.testheim.de\" must be an https:// URL (plain http only on loopback)"
            )
        );
        let e = oidc("role = \"admin\"", "role = \"chef\"");
        assert_eq!(
            (e.line, e.message.as_str()),
            (
                31,
                "unknown role \"chef\"; use clerk, auditor, dpo or admin"
            )
        );
        let e = oidc("[\"amt\"]", "[\"nirgends\"]");
        assert_eq!(
            (e.line, e.message.as_str()),
            (32, "unknown department nirgends")
        );
        let e = oidc(", departments = [\"amt\"]", "");
        assert_eq!(
            (e.line, e.message.as_str()),
            (32, "a clerk's grant names its departments")
        );
        let e = oidc(
            "role = \"admin\" }",
            "role = \"admin\", departments = [\"amt\"] }",
        );
        assert_eq!(
            (e.line, e.message.as_str()),
            (31, "only a clerk's grant names departments")
        );
        let e = oidc(
            "client_secret_env = \"VIDEOAMT_OIDC_SECRET_TESTHEIM\"",
            "client_secret_env = \"X\"\nclient_secret = \"y\"",
        );
        assert_eq!(
            (e.line, e.message.as_str()),
            (
                26,
                "oidc needs exactly one of client_secret and client_secret_env"
            )
        );
        let none = OIDC
            .split("grants = [")
            .next()
            .expect("the head")
            .to_owned()
            + "grants = []\n";
        let e = refused(&format!("{MINIMAL}{none}"));
        assert_eq!(
            (e.line, e.message.as_str()),
            (30, "oidc needs at least one grant: nobody would be let in")
        );
    }

    #[test]
    fn errors_name_file_line_and_rule() {
        let e = refused(&MINIMAL.replace("department = \"amt\"", "department = \"nirgends\""));
        assert_eq!((e.file.as_str(), e.line), ("test.toml", 21));
        assert_eq!(e.message, "unknown department nirgends");
        assert_eq!(e.to_string(), "test.toml:21: unknown department nirgends");

        let e = refused(&format!("{MINIMAL}combinable_with = [\"b\"]\n"));
        assert_eq!((e.line, e.message.as_str()), (25, "unknown service b"));

        let e = refused(&MINIMAL.replace("capacity = 1", "capacity = 0"));
        assert_eq!(
            (e.line, e.message.as_str()),
            (16, "capacity must be at least 1, not 0")
        );

        let e = refused(&MINIMAL.replace("fee_cents = 100", "fee_cents = -5"));
        assert_eq!(
            (e.line, e.message.as_str()),
            (24, "fee_cents must not be negative, not -5")
        );

        let e = refused(&MINIMAL.replace("retention_months = 3", "retention_months = 0"));
        assert_eq!(
            (e.line, e.message.as_str()),
            (5, "retention_months must be at least 1, not 0")
        );

        let e = refused(&MINIMAL.replace(
            r#"hours = [{ days = ["mo"], from = "08:00", to = "12:00" }]"#,
            "hours = [\n  { days = [\"mo\"], from = \"08:00\", to = \"12:00\" },\n  { days = [\"mo\", \"di\"], from = \"11:00\", to = \"13:00\" },\n]",
        ));
        assert_eq!(e.line, 19);
        assert_eq!(
            e.message,
            "opening hours overlap on mo: 11:00–13:00 and 08:00–12:00"
        );

        let e = refused(&MINIMAL.replace(
            "time_zone = \"Europe/Berlin\"",
            "time_zone = \"Mars/Olympus\"",
        ));
        assert_eq!(
            (e.line, e.message.as_str()),
            (4, "unknown time zone \"Mars/Olympus\"")
        );

        let e = refused(&MINIMAL.replace(
            "min_upload_mbit = 2",
            "min_upload_mbit = 2\ncolour = \"blau\"",
        ));
        assert_eq!(e.line, 7);
        assert!(
            e.message.contains("unknown field `colour`"),
            "{}",
            e.message
        );

        let e = refused(&MINIMAL.replace(
            "signature_methods = [\"touchpad\"]",
            "signature_methods = [\"fax\"]",
        ));
        assert_eq!(e.line, 8);
        assert!(e.message.contains("unknown variant `fax`"), "{}", e.message);
    }

    const FORM: &str = r#"
[[forms]]
id = "antrag-a"
service = "a"
title = "Antrag A"
signature_methods = ["touchpad", "hidden_tan"]
fields = [{ id = "name", label = "Name", type = "text" }]
"#;

    #[test]
    fn a_form_allows_a_subset_of_the_tenants_signature_methods() {
        let both = MINIMAL.replace(
            "signature_methods = [\"touchpad\"]",
            "signature_methods = [\"touchpad\", \"hidden_tan\", \"handy_tan\"]",
        );
        let t = Tenant::from_toml("test.toml", &format!("{both}{FORM}")).expect("valid");
        assert_eq!(
            t.forms[&FormTemplateId::from("antrag-a")].signature_methods,
            BTreeSet::from([SignatureMethod::Touchpad, SignatureMethod::HiddenTan])
        );
        // Without a list of its own, a form allows what the tenant offers.
        let t = Tenant::from_toml(
            "test.toml",
            &format!(
                "{both}{}",
                FORM.replace("signature_methods = [\"touchpad\", \"hidden_tan\"]\n", "")
            ),
        )
        .expect("valid");
        assert_eq!(
            t.forms[&FormTemplateId::from("antrag-a")].signature_methods,
            t.signature_methods
        );
    }

    #[test]
    fn a_form_may_not_allow_a_method_the_tenant_does_not_offer() {
        let e = refused(&format!("{MINIMAL}{FORM}"));
        assert_eq!(e.line, 30);
        assert_eq!(
            e.message,
            "form antrag-a: signature method hidden_tan is not offered by the tenant \
             (signature_methods = [touchpad])"
        );
        let e = refused(&format!(
            "{MINIMAL}{}",
            FORM.replace("[\"touchpad\", \"hidden_tan\"]", "[]")
        ));
        assert_eq!(e.line, 30);
        assert_eq!(
            e.message,
            "form antrag-a: signature_methods must not be empty; leave it out to allow the \
             tenant's"
        );
    }

    #[test]
    fn every_online_service_of_the_examples_has_a_form_template() {
        for t in [example("ettlingen"), example("stuttgart")] {
            for s in t.services.values().filter(|s| s.online) {
                assert!(
                    t.forms.values().any(|f| f.service == s.id),
                    "{}: the online service {} has no form template",
                    t.id,
                    s.id
                );
            }
            for f in t.forms.values() {
                assert!(
                    t.services.contains_key(&f.service),
                    "{}: form {} names the unknown service {}",
                    t.id,
                    f.id,
                    f.service
                );
                assert!(
                    (4..=12).contains(&f.fields.len()),
                    "{}: form {} has {} fields",
                    t.id,
                    f.id,
                    f.fields.len()
                );
                assert!(f.fields.iter().any(|d| d.required), "{}", f.id);
                assert!(f.signature_methods.is_subset(&t.signature_methods));
            }
            // The audit names a changed field by its id across the tenant's templates, so one
            // id has one label.
            let mut labels: BTreeMap<&str, (&FormTemplateId, &str)> = BTreeMap::new();
            for f in t.forms.values() {
                for d in &f.fields {
                    let (first, label) = *labels.entry(&d.id).or_insert((&f.id, &d.label));
                    assert_eq!(
                        label, d.label,
                        "{}: field {} is labelled differently in {first} and {}",
                        t.id, d.id, f.id
                    );
                }
            }
            // Weapons law: a handwritten signature or a TAN on the phone, never Hidden-TAN.
            let weapons = &t.forms[&FormTemplateId::from("antrag-waffenbesitzkarte")];
            assert_eq!(
                weapons.signature_methods,
                BTreeSet::from([SignatureMethod::Touchpad, SignatureMethod::HandyTan]),
                "{}",
                t.id.as_str()
            );
        }
    }

    #[test]
    fn months_are_calendar_months_with_month_end_clamped() {
        assert_eq!(
            add_calendar_months(date!(2026 - 08 - 31), 6),
            date!(2027 - 02 - 28)
        );
        assert_eq!(
            add_calendar_months(date!(2027 - 08 - 31), 6),
            date!(2028 - 02 - 29)
        );
        assert_eq!(
            add_calendar_months(date!(2026 - 11 - 30), 3),
            date!(2027 - 02 - 28)
        );
        assert_eq!(
            add_calendar_months(date!(2026 - 01 - 15), 12),
            date!(2027 - 01 - 15)
        );
        assert_eq!(
            add_calendar_months(date!(2026 - 10 - 31), 3),
            date!(2027 - 01 - 31)
        );
    }

    #[test]
    fn a_date_prints_the_german_way_and_everything_else_as_entered() {
        assert_eq!(FieldKind::Date.printed("1971-03-14"), "14.03.1971");
        assert_eq!(FieldKind::Date.printed(""), "");
        assert_eq!(FieldKind::Date.printed("14.03.1971"), "14.03.1971");
        let text = FieldKind::Text { max_length: 20 };
        assert_eq!(text.printed("1971-03-14"), "1971-03-14");
        assert_eq!(FieldKind::Checkbox.printed("ja"), "ja");
        assert_eq!(FieldKind::parse_date("1971-02-30"), None);
    }

    #[test]
    fn add_months_keeps_the_local_time_across_daylight_saving() {
        let stuttgart = example("stuttgart");
        // 31 August 2026, 14:30 in Berlin (CEST, UTC+2) + 6 months = 28 February 2027, 14:30
        // in Berlin (CET, UTC+1).
        let end = datetime!(2026-08-31 12:30 UTC);
        assert_eq!(
            stuttgart.add_months(end, 6),
            datetime!(2027-02-28 13:30 UTC)
        );
    }
}
