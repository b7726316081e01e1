//! Refusals of the workflow. Each has a German message the citizen or clerk can read; none
//! holds a technical error (those are `StoreError`s, elsewhere).

use crate::tenant::{DepartmentId, ServiceId, SignatureMethod};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    // --- accounts ---
    #[error("Dieses Konto gibt es bereits.")]
    AccountExists,
    #[error("Ein Konto der Sachbearbeitung braucht mindestens einen Bereich.")]
    ClerkWithoutDepartment,
    #[error("Nur Konten der Sachbearbeitung haben Bereiche.")]
    DepartmentsOnlyForClerks,
    #[error("Anmeldename oder Passwort sind falsch.")]
    LoginRefused,
    #[error(
        "Das Konto ist nach zu vielen Fehlversuchen vorübergehend gesperrt. Bitte versuchen Sie es in 15 Minuten erneut."
    )]
    AccountLocked,
    #[error("Dieses Konto gibt es nicht.")]
    UnknownAccount,
    #[error("Dieses Konto ist deaktiviert. Bitte wenden Sie sich an die Verwaltung Ihrer Kommune.")]
    AccountDisabled,
    #[error("Das Konto ist bereits deaktiviert.")]
    AlreadyDeactivated,
    #[error("Das Konto ist nicht deaktiviert.")]
    NotDeactivated,
    #[error("Das Konto ist nicht gesperrt. Seit der letzten Anmeldung gab es keine Fehlversuche.")]
    NotLocked,
    #[error(
        "Das ist das letzte aktive Konto der Verwaltung dieser Kommune. Bitte legen Sie zuerst ein weiteres Verwaltungskonto an, damit die Konten der Kommune verwaltet werden können."
    )]
    LastAdmin,
    #[error(
        "Dieses Konto wird über den Verzeichnisdienst der Kommune angemeldet: Passwort und Rolle werden dort verwaltet."
    )]
    DirectoryAccount,
    #[error(
        "Für diesen Anmeldenamen gibt es ein Konto mit Passwort. Bitte melden Sie sich mit Ihrem Passwort an oder wenden Sie sich an die Verwaltung Ihrer Kommune."
    )]
    LocalAccountExists,
    #[error("Das bisherige Passwort ist nicht richtig.")]
    WrongPassword,
    #[error(
        "Dieser Link zum Setzen des Passworts ist ungültig oder wurde bereits verwendet. Bitte bitten Sie die Verwaltung Ihrer Kommune um einen neuen Link."
    )]
    PasswordLinkInvalid,
    #[error(
        "Dieser Link zum Setzen des Passworts ist abgelaufen; er gilt 72 Stunden. Bitte bitten Sie die Verwaltung Ihrer Kommune um einen neuen Link."
    )]
    PasswordLinkExpired,
    // --- booking ---
    #[error("Bitte wählen Sie mindestens ein Anliegen.")]
    NoServices,
    #[error("Das Anliegen „{0}“ gibt es hier nicht.")]
    UnknownService(ServiceId),
    #[error("Den Bereich „{0}“ gibt es hier nicht.")]
    UnknownDepartment(DepartmentId),
    #[error("Das Anliegen „{0}“ gehört nicht zu diesem Bereich.")]
    ServiceOfOtherDepartment(ServiceId),
    #[error("Das Anliegen „{0}“ wird nicht per Video angeboten.")]
    NotOfferedOnline(ServiceId),
    #[error("Das Anliegen „{0}“ ist doppelt gewählt.")]
    DuplicateService(ServiceId),
    #[error("Die Anliegen „{0}“ und „{1}“ können nicht in einem Termin bearbeitet werden.")]
    NotCombinable(ServiceId, ServiceId),
    #[error("Dieser Bereich vergibt Videotermine nur auf Einladung durch die Sachbearbeitung.")]
    OnlineBookingNotOffered,
    #[error("Dieser Buchungsweg wird hier nicht angeboten.")]
    ChannelNotOffered,
    #[error("Der gewählte Zeitpunkt liegt in der Vergangenheit.")]
    SlotInPast,
    #[error("Der gewählte Zeitpunkt liegt außerhalb der Öffnungszeiten.")]
    OutsideOpeningHours,
    #[error("Dieser Termin ist leider gerade vergeben worden. Bitte wählen Sie einen anderen.")]
    SlotTaken,
    #[error("Diesen Termin gibt es bereits.")]
    AlreadyBooked,
    #[error("Der Zugangslink muss mindestens bis zum Ende des Termins gelten.")]
    AccessExpiresTooEarly,
    // --- appointment life cycle ---
    #[error("Diesen Termin gibt es nicht.")]
    UnknownAppointment,
    #[error("Der Termin ist bereits abgesagt.")]
    AlreadyCancelled,
    #[error("Der Termin hat bereits stattgefunden und kann nicht mehr geändert werden.")]
    AppointmentFinished,
    #[error("Der Termin hat noch nicht begonnen.")]
    NotYetStarted,
    // --- session ---
    #[error("Diese Videositzung gibt es nicht.")]
    UnknownSession,
    #[error("Für diesen Termin gibt es bereits eine Videositzung.")]
    SessionAlreadyOpen,
    #[error("Die Videositzung ist beendet.")]
    SessionEnded,
    #[error("Die Bürgerin oder der Bürger ist noch nicht im Warteraum.")]
    CitizenNotWaiting,
    #[error("Der Datenschutzhinweis wurde noch nicht bestätigt.")]
    PrivacyNoticeNotAccepted,
    #[error("Die Bürgerin oder der Bürger ist bereits im Raum.")]
    AlreadyAdmitted,
    #[error("Das ist erst nach dem Einlass aus dem Warteraum möglich.")]
    NotAdmitted,
    #[error("Sie wurden aus dieser Videositzung entfernt. Bitte wenden Sie sich an das Amt.")]
    RemovedFromSession,
    #[error("Für dieses Anliegen muss zuerst die Identität geprüft werden.")]
    IdentityNotVerified,
    #[error("Diese Ausweisart wird bei der Identitätsprüfung nicht angenommen.")]
    UnknownDocumentType,
    #[error("Dieses Sicherheitsmerkmal ist nicht bekannt.")]
    UnknownSecurityFeature,
    #[error(
        "Bitte prüfen Sie mindestens drei Sicherheitsmerkmale aus verschiedenen Kategorien (Hologramm/Kinegramm, Personalisierung, Material, Sicherheitsdruck)."
    )]
    TooFewSecurityFeatures,
    #[error("Für dieses Anliegen muss zuerst ein Formular unterschrieben werden.")]
    SignatureMissing,
    #[error("Dieses Dokument gibt es in der Sitzung nicht.")]
    UnknownDocument,
    #[error("Dieser Dateityp kann nicht hochgeladen werden. Erlaubt sind PDF, JPEG und PNG.")]
    MediaTypeNotAllowed,
    #[error("Die Prüfsumme muss aus 64 Hexadezimalziffern (0–9, a–f) bestehen.")]
    InvalidSha256,
    #[error("Die Bewertung muss zwischen 1 und 5 liegen.")]
    ScoreOutOfRange,
    #[error("Feedback wurde bereits abgegeben.")]
    FeedbackAlreadyGiven,
    #[error("Feedback ist erst nach dem Gespräch möglich.")]
    FeedbackBeforeEnd,
    // --- forms ---
    #[error("Dieses Formular gibt es nicht.")]
    UnknownForm,
    #[error("Diese Formularvorlage gibt es hier nicht.")]
    UnknownTemplate,
    #[error("Dieses Formular gibt es bereits.")]
    FormAlreadyStarted,
    #[error("Das Formular ist unterschrieben und gesperrt; Änderungen sind nicht mehr möglich.")]
    FormLocked,
    #[error("Das Feld „{0}“ gibt es in diesem Formular nicht.")]
    UnknownField(String),
    #[error("Der Wert für „{field}“ ist ungültig: {reason}")]
    InvalidFieldValue { field: String, reason: &'static str },
    #[error("Das Pflichtfeld „{0}“ ist noch leer.")]
    RequiredFieldEmpty(String),
    #[error("Diese Unterschriftsart wird hier nicht angeboten.")]
    SignatureMethodNotOffered(SignatureMethod),
    #[error("Es wurde keine Unterschrift mit diesem Verfahren angefordert.")]
    SignatureNotRequested,
    #[error("Für diese Unterschrift gibt es noch keine TAN. Bitte fordern Sie eine TAN an.")]
    NoTan,
    #[error("Die TAN ist abgelaufen (sie gilt 5 Minuten). Bitte fordern Sie eine neue TAN an.")]
    TanExpired,
    #[error("Diese TAN wurde bereits verwendet. Bitte fordern Sie eine neue TAN an.")]
    TanUsed,
    #[error(
        "Die TAN wurde 5-mal falsch eingegeben und ist gesperrt. Bitte fordern Sie eine neue TAN an."
    )]
    TanLocked,
    #[error("Die Unterschrift mit TAN braucht zuerst die richtige TAN.")]
    TanNotAccepted,
    #[error(
        "Das Formular wurde während des Unterschreibens geändert. Bitte prüfen Sie es und unterschreiben Sie erneut."
    )]
    FormChangedWhileSigning,
    // --- payment ---
    #[error("Für diesen Termin fallen keine Gebühren an.")]
    NothingToPay,
    #[error("Diese Zahlung gibt es bereits.")]
    PaymentAlreadyRequested,
    #[error("Diese Zahlung gibt es nicht.")]
    UnknownPayment,
    #[error("Diese Zahlungsart wird hier nicht angeboten.")]
    PaymentMethodNotOffered,
    #[error("Bitte wählen Sie zuerst eine Zahlungsart.")]
    PaymentMethodMissing,
    #[error("Die Zahlung ist noch nicht freigegeben.")]
    PaymentNotAuthorized,
    #[error("Die Zahlung wurde bereits eingezogen.")]
    AlreadyCaptured,
    #[error("Die Zahlung ist abgeschlossen und kann nicht mehr geändert werden.")]
    PaymentClosed,
    #[error("Es kann höchstens der eingezogene Betrag erstattet werden.")]
    RefundTooHigh,
    #[error(
        "Die Zahlung läuft bereits. Bitte schließen Sie sie auf der Seite des Zahlungsdienstes ab."
    )]
    PaymentInProgress,
    #[error("Diese Transaktion des Zahlungsdienstes gehört nicht zum laufenden Zahlungsversuch.")]
    UnknownPaymentTransaction,
    // --- subject ---
    #[error("Diese betroffene Person gibt es nicht.")]
    UnknownSubject,
    #[error("Die Löschung ist erst am {0} fällig.")]
    PurgeNotDue(String),
    #[error("Die Löschung ist nicht angesetzt.")]
    PurgeNotScheduled,
    #[error("Die Daten sind bereits gelöscht.")]
    AlreadyPurged,
    #[error("Die Löschung ist noch nicht ausgeführt.")]
    NotYetPurged,
}
