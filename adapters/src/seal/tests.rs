//! The sealed PDF checked by the standard tools: `pdfsig` and `pdftotext` (Debian
//! `poppler-utils`) and `qpdf`, which `scripts/test` installs. `pdfsig` exits 0 even when the
//! digest does not match, so every check reads its output.

use std::path::{Path, PathBuf};
use std::process::Command;

use lopdf::content::Content;
use time::macros::datetime;
use videoamt_core::event::TenantId;
use videoamt_core::seal::{
    FormDocument, FormSealer as _, SealError, SignatureEvidence, StrokePoint,
};

use super::{PadesSealer, SealConfig};

fn form(fields: Vec<(&str, &str)>, evidence: SignatureEvidence) -> FormDocument {
    FormDocument {
        tenant: TenantId::parse("ettlingen").expect("valid"),
        municipality: "Stadt Ettlingen".into(),
        service: "Meldebescheinigung beantragen".into(),
        title: "Antrag auf eine Meldebescheinigung".into(),
        fields: fields
            .into_iter()
            .map(|(l, v)| (l.to_owned(), v.to_owned()))
            .collect(),
        signed_at: datetime!(2026-12-02 08:30:15 +01:00),
        signature_method: "Hidden-TAN".into(),
        evidence,
    }
}

fn tan() -> SignatureEvidence {
    SignatureEvidence::Tan {
        line: "Unterschrieben mit Hidden-TAN am 02.12.2026 um 08:30:15 Uhr".into(),
    }
}

fn meldebescheinigung() -> FormDocument {
    form(
        vec![
            ("Familienname", "Müßig"),
            ("Vornamen", "Jürgen Özgür"),
            ("Anschrift", "Müßig Straße 5\n76275 Ettlingen"),
            ("Zweck", "Vorlage beim Arbeitgeber"),
        ],
        tan(),
    )
}

/// The test's own folder: the demo identity and the PDFs it hands to the tools.
struct Bench {
    dir: tempfile::TempDir,
    sealer: PadesSealer,
}

impl Bench {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let sealer = PadesSealer::new(SealConfig::demo(dir.path().join("seal")));
        Self { dir, sealer }
    }

    fn seal(&self, doc: &FormDocument) -> Vec<u8> {
        let sealed = self.sealer.render_and_seal(doc).expect("sealed");
        let digest: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(&sealed.pdf).into();
        assert_eq!(sealed.sha256, digest, "the hash is of the final bytes");
        sealed.pdf
    }

    fn write(&self, name: &str, pdf: &[u8]) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, pdf).expect("write the PDF");
        path
    }
}

/// Runs a tool and returns stdout and stderr together, with its exit status.
fn run(program: &str, args: &[&str], file: &Path) -> (bool, String) {
    let output = Command::new(program)
        .args(args)
        .arg(file)
        .output()
        .unwrap_or_else(|e| {
            panic!("{program}: {e}; install poppler-utils and qpdf (scripts/test does)")
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

fn pdfsig(file: &Path) -> String {
    run("pdfsig", &[], file).1
}

fn qpdf_check(file: &Path) {
    let (ok, text) = run("qpdf", &["--check"], file);
    assert!(ok, "qpdf --check failed:\n{text}");
    assert!(
        text.contains("No syntax or stream encoding errors found"),
        "{text}"
    );
}

fn pdftotext(file: &Path) -> String {
    let (ok, text) = run("pdftotext", &["-layout", "-enc", "UTF-8"], file);
    assert!(ok, "pdftotext failed: {text}");
    let txt = file.with_extension("txt");
    std::fs::read_to_string(&txt).expect("pdftotext wrote its text")
}

/// The four numbers of the seal's `/ByteRange`.
fn byte_range(pdf: &[u8]) -> [usize; 4] {
    let doc = lopdf::Document::load_mem(pdf).expect("parses");
    let signature = doc
        .objects
        .values()
        .find_map(|o| {
            let dict = o.as_dict().ok()?;
            (dict.get(b"Type").ok()?.as_name().ok()? == b"Sig").then_some(dict)
        })
        .expect("a signature dictionary");
    let range: Vec<usize> = signature
        .get(b"ByteRange")
        .and_then(lopdf::Object::as_array)
        .expect("a byte range")
        .iter()
        .map(|n| usize::try_from(n.as_i64().expect("integer")).expect("positive"))
        .collect();
    range.try_into().expect("four numbers")
}

#[test]
fn pdfsig_reports_the_seal_valid_over_the_whole_file_and_qpdf_passes() {
    let bench = Bench::new();
    let pdf = bench.seal(&meldebescheinigung());
    let file = bench.write("form.pdf", &pdf);

    let report = pdfsig(&file);
    assert!(report.contains("Signature is Valid."), "{report}");
    assert!(report.contains("Total document signed"), "{report}");
    assert!(report.contains("Demo-Siegel Stadt Ettlingen"), "{report}");
    assert!(report.contains("ETSI.CAdES.detached"), "{report}");
    let range = byte_range(&pdf);
    assert_eq!(range[0], 0);
    assert_eq!(
        range[2] + range[3],
        pdf.len(),
        "the range ends at the file's end"
    );
    assert_eq!(pdf[range[1]], b'<');
    assert_eq!(pdf[range[2] - 1], b'>');
    qpdf_check(&file);
}

#[test]
fn one_flipped_byte_in_either_signed_range_breaks_the_seal() {
    let bench = Bench::new();
    let pdf = bench.seal(&meldebescheinigung());
    let [_, first_end, second_start, _] = byte_range(&pdf);
    let sealed = bench.write("sealed.pdf", &pdf);
    assert!(pdfsig(&sealed).contains("Signature is Valid."));

    // In the first range: a byte of the header's binary comment, which no reader looks at.
    // In the second: the seal's /Reason text, which follows /Contents, and a byte in the
    // middle of the first page's compressed content.
    assert!(pdf.starts_with(b"%PDF-1.7\n%"));
    let comment = 10;
    assert!(comment < first_end);
    let reason = second_start
        + super::pades::find(&pdf[second_start..], b"Elektronisches").expect("the /Reason");
    let content = {
        let parsed = lopdf::Document::load_mem(&pdf).expect("parses");
        let page = *parsed.get_pages().values().next().expect("a page");
        let id = parsed.get_page_contents(page)[0];
        let Some(lopdf::xref::XrefEntry::Normal { offset, .. }) = parsed.reference_table.get(id.0)
        else {
            panic!("the content stream is in the xref");
        };
        let object = &pdf[*offset as usize..];
        let data = super::pades::find(object, b"stream\n").expect("stream") + 7;
        let length = super::pades::find(&object[data..], b"endstream").expect("endstream");
        *offset as usize + data + length / 2
    };
    assert!(content > second_start);
    for (name, at) in [
        ("comment.pdf", comment),
        ("reason.pdf", reason),
        ("content.pdf", content),
    ] {
        let mut tampered = pdf.clone();
        tampered[at] ^= 0x01;
        let file = bench.write(name, &tampered);
        let report = pdfsig(&file);
        assert!(report.contains("Digest Mismatch."), "{name}: {report}");
        assert!(!report.contains("Signature is Valid."), "{name}: {report}");
    }
}

#[test]
fn the_text_holds_the_municipality_the_service_the_values_and_the_time() {
    let bench = Bench::new();
    let pdf = bench.seal(&meldebescheinigung());
    let text = pdftotext(&bench.write("form.pdf", &pdf));
    for expected in [
        "Stadt Ettlingen",
        "Meldebescheinigung beantragen",
        "Antrag auf eine Meldebescheinigung",
        "Familienname",
        "Müßig",
        "Jürgen Özgür",
        "Müßig Straße 5",
        "76275 Ettlingen",
        "Mittwoch, 02.12.2026, 08:30:15 Uhr (UTC+01:00)",
        "Hidden-TAN",
        "Unterschrieben mit Hidden-TAN am 02.12.2026 um 08:30:15 Uhr",
        "elektronische Siegel von Stadt Ettlingen",
        "Seite 1 von 1",
    ] {
        assert!(text.contains(expected), "{expected:?} missing in:\n{text}");
    }
}

#[test]
fn parentheses_and_backslashes_in_values_stay_text() {
    let bench = Bench::new();
    let nasty = r"a) (b \) c\ d) ET BT (e) Tj \\ ( f";
    let doc = form(vec![("Bemerkung (optional)", nasty)], tan());
    let pdf = bench.seal(&doc);
    let file = bench.write("nasty.pdf", &pdf);
    qpdf_check(&file);
    assert!(pdfsig(&file).contains("Signature is Valid."));
    let text = pdftotext(&file);
    assert!(text.contains(nasty), "{nasty:?} missing in:\n{text}");
    assert!(text.contains("Bemerkung (optional)"), "{text}");
}

/// Names as they are written in German towns, beyond Windows-1252.
const NAMES: [&str; 9] = [
    "Şahin Yıldız",
    "Ağaoğlu",
    "Łukasz Żółć",
    "Ñoño",
    "Řehoř Čapek",
    "Ștefan Țurcanu",
    "Иван Петров",
    "Ελένη Παπαδοπούλου",
    "Petrov Петров",
];

#[test]
fn names_beyond_windows_1252_show_and_extract_exactly() {
    let bench = Bench::new();
    let mut fields: Vec<(&str, &str)> = NAMES.iter().map(|name| ("Name", *name)).collect();
    // Characters the font lacks are drawn as its .notdef box and still extract.
    fields.push(("Gruß", "Grüße 🙂 漢字"));
    let mut doc = form(fields, tan());
    doc.title = "Antrag für Ελένη Иванова".into();
    let pdf = bench.seal(&doc);
    let file = bench.write("names.pdf", &pdf);
    qpdf_check(&file);
    let report = pdfsig(&file);
    assert!(report.contains("Signature is Valid."), "{report}");
    let text = pdftotext(&file);
    for expected in NAMES
        .into_iter()
        .chain(["Grüße 🙂 漢字", "Antrag für Ελένη Иванова"])
    {
        assert!(text.contains(expected), "{expected:?} missing in:\n{text}");
    }
    assert!(!text.contains('?'), "no replaced character:\n{text}");
    let fonts = run("pdffonts", &[], &file).1;
    assert_eq!(fonts.matches("CID TrueType").count(), 2, "{fonts}");
    assert_eq!(
        fonts.matches(" yes yes yes ").count(),
        2,
        "embedded, subset, ToUnicode: {fonts}"
    );
}

#[test]
fn codes_that_are_a_line_break_or_a_parenthesis_in_a_string_survive() {
    // 128 distinct letters: their CIDs 0x0001–0x0080 take every byte value a literal string
    // must escape (CR, LF, the parentheses, the backslash) as their low byte.
    let letters: String = ('\u{100}'..='\u{17F}').collect();
    let bench = Bench::new();
    let file = bench.write(
        "letters.pdf",
        &bench.seal(&form(vec![("A", &letters)], tan())),
    );
    qpdf_check(&file);
    assert!(pdfsig(&file).contains("Signature is Valid."));
    let text: String = pdftotext(&file).split_whitespace().collect();
    assert!(text.contains(&letters), "{letters} missing in:\n{text}");
}

/// The words `pdftotext -bbox` finds, with their left and right edges in points.
fn words(file: &Path) -> Vec<(String, f32, f32)> {
    let html = file.with_extension("html");
    let (ok, out) = run("pdftotext", &["-bbox", "-enc", "UTF-8"], file);
    assert!(ok, "pdftotext -bbox: {out}");
    let html = std::fs::read_to_string(&html).expect("pdftotext wrote the boxes");
    let number = |line: &str, key: &str| -> f32 {
        let at = line.find(key).expect("the attribute") + key.len();
        let end = line[at..].find('"').expect("its end");
        line[at..at + end].parse().expect("a number")
    };
    html.lines()
        .filter(|l| l.trim_start().starts_with("<word "))
        .map(|l| {
            let word =
                &l[l.find('>').expect("the tag's end") + 1..l.rfind("</word>").expect("end")];
            (word.to_owned(), number(l, "xMin=\""), number(l, "xMax=\""))
        })
        .collect()
}

#[test]
fn a_long_value_of_such_names_wraps_inside_the_margins() {
    let bench = Bench::new();
    let long = format!("{}, ", NAMES.join(", ")).repeat(4);
    let doc = form(vec![("Mitantragstellende", &long)], tan());
    let pdf = bench.seal(&doc);
    let file = bench.write("long-names.pdf", &pdf);
    qpdf_check(&file);
    assert!(pdfsig(&file).contains("Signature is Valid."));
    let words = words(&file);
    // 2 cm margins on A4, with a hundredth of a point for the rounding of positions.
    let (left, right) = (56.69 - 0.01, 595.28 - 56.69 + 0.01);
    for (word, x_min, x_max) in &words {
        assert!(
            *x_min >= left && *x_max <= right,
            "{word:?} at {x_min}–{x_max}"
        );
    }
    let copies = words.iter().filter(|(w, ..)| w == "Şahin").count();
    assert_eq!(copies, 4, "every copy of the first name is there");
    let widest = words.iter().map(|w| w.2).fold(0.0, f32::max);
    assert!(
        widest > right - 40.0,
        "the value fills its column: {widest}"
    );
    let text = pdftotext(&file);
    assert!(text.contains("Ελένη"), "{text}");
}

#[test]
fn touchpad_strokes_are_drawn_as_paths_inside_the_box() {
    let bench = Bench::new();
    let point = |x: f32, y: f32, t_ms: u32| StrokePoint { x, y, t_ms };
    let strokes = vec![
        vec![
            point(10.0, 80.0, 0),
            point(60.0, 20.0, 16),
            point(110.0, 80.0, 33),
        ],
        vec![point(150.0, 50.0, 400)],
        vec![
            point(200.0, 20.0, 700),
            point(f32::NAN, 3.0, 716),
            point(900.0, -5.0, 733),
        ],
    ];
    let mut doc = form(
        vec![("Name", "Erika Mustermann")],
        SignatureEvidence::Touchpad {
            strokes,
            width: 300,
            height: 100,
        },
    );
    doc.signature_method = "Unterschrift auf dem Touchpad".into();
    let pdf = bench.seal(&doc);
    let file = bench.write("touchpad.pdf", &pdf);
    qpdf_check(&file);
    assert!(pdfsig(&file).contains("Signature is Valid."));
    assert!(pdftotext(&file).contains("3 Striche, 7 Punkte, 0,7 s"));

    let parsed = lopdf::Document::load_mem(&pdf).expect("parses");
    let page = *parsed.get_pages().values().last().expect("a page");
    let content = Content::decode(&parsed.get_page_content(page)).expect("decodes");
    // The box (`re`) and the strokes after it, up to the graphics state's restore.
    let start = content
        .operations
        .iter()
        .position(|o| o.operator == "re")
        .expect("the signature box");
    let end = start
        + content.operations[start..]
            .iter()
            .position(|o| o.operator == "Q")
            .expect("the end of the drawing");
    let drawing = &content.operations[start..end];
    let number = |o: &lopdf::Object| o.as_float().expect("a number");
    let [x, y, w, h]: [f32; 4] = drawing[0]
        .operands
        .iter()
        .map(number)
        .collect::<Vec<_>>()
        .try_into()
        .expect("four numbers");
    assert!(
        (w / h - 3.0).abs() < 0.01,
        "the canvas's aspect ratio: {w} × {h}"
    );
    let count = |op: &str| drawing.iter().filter(|o| o.operator == op).count();
    // The first stroke's 3 points; the tap as a zero-length line; the third stroke without
    // its NaN point, its runaway point clamped to the box.
    assert_eq!(count("m"), 3);
    assert_eq!(count("l"), 2 + 1 + 1);
    assert_eq!(count("S"), 1 + 3, "the box's border and one per stroke");
    let points: Vec<(f32, f32)> = drawing
        .iter()
        .filter(|o| o.operator == "m" || o.operator == "l")
        .map(|o| (number(&o.operands[0]), number(&o.operands[1])))
        .collect();
    for &(px, py) in &points {
        assert!(
            px >= x - 0.01 && px <= x + w + 0.01 && py >= y - 0.01 && py <= y + h + 0.01,
            "({px}, {py}) outside the box"
        );
    }
    // The first point: 10/300 of the way across, 80/100 of the way down.
    let (fx, fy) = points[0];
    assert!((fx - (x + w / 30.0)).abs() < 0.02, "{fx}");
    assert!((fy - (y + h * 0.2)).abs() < 0.02, "{fy}");
    // The runaway point sits on the box's top right corner.
    let (rx, ry) = points[points.len() - 1];
    assert!(
        (rx - (x + w)).abs() < 0.02 && (ry - (y + h)).abs() < 0.02,
        "{rx}, {ry}"
    );
}

#[test]
fn many_fields_continue_on_further_pages() {
    let bench = Bench::new();
    let long = "Sehr lange Angabe mit vielen Wörtern, die umbrochen werden muss. ".repeat(8);
    let fields: Vec<(String, String)> = (1..=60)
        .map(|i| (format!("Feld {i}"), format!("Wert {i}: {long}")))
        .collect();
    let mut doc = meldebescheinigung();
    doc.fields = fields;
    let page_long: String = (1..=120).map(|i| format!("Zeile {i}\n")).collect();
    doc.fields.insert(3, ("Anlage".into(), page_long));
    let pdf = bench.seal(&doc);
    let file = bench.write("long.pdf", &pdf);
    qpdf_check(&file);
    let report = pdfsig(&file);
    assert!(report.contains("Signature is Valid."), "{report}");
    let parsed = lopdf::Document::load_mem(&pdf).expect("parses");
    let pages = parsed.get_pages().len();
    assert!(pages >= 5, "{pages} pages");
    let text = pdftotext(&file);
    assert!(
        text.contains(&format!("Seite {pages} von {pages}")),
        "{text}"
    );
    assert!(text.contains("Feld 60"), "the last field is there");
    assert!(text.contains("(Fortsetzung)"), "continued pages say so");
    assert!(text.contains("Wert 1: Sehr lange"), "{text}");
    assert!(
        text.contains("Zeile 1\n") && text.contains("Zeile 120"),
        "a field longer than a page"
    );
}

#[test]
fn the_demo_identity_is_made_once_per_municipality() {
    let bench = Bench::new();
    let first = bench.seal(&meldebescheinigung());
    // A new sealer on the same folder (a restart) seals with the same certificate.
    let again = PadesSealer::new(SealConfig::demo(bench.dir.path().join("seal")));
    let doc = meldebescheinigung();
    let a = bench.sealer.identity(&doc.tenant, "x").expect("kept");
    let b = again.identity(&doc.tenant, "x").expect("read back");
    assert_eq!(a.certificate(), b.certificate());
    let mut stuttgart = meldebescheinigung();
    stuttgart.tenant = TenantId::parse("stuttgart").expect("valid");
    stuttgart.municipality = "Landeshauptstadt Stuttgart".into();
    let other = bench.seal(&stuttgart);
    let report = pdfsig(&bench.write("stuttgart.pdf", &other));
    assert!(
        report.contains("Demo-Siegel Landeshauptstadt Stuttgart"),
        "{report}"
    );
    assert!(report.contains("Signature is Valid."), "{report}");
    assert_ne!(first, other);
    let files: Vec<String> = std::fs::read_dir(bench.dir.path().join("seal"))
        .expect("the demo folder")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        files.len(),
        4,
        "a key and a certificate per municipality: {files:?}"
    );
}

#[test]
fn a_municipality_without_a_seal_cannot_sign() {
    let sealer = PadesSealer::new(SealConfig::default());
    let refused = sealer.render_and_seal(&meldebescheinigung());
    assert!(
        matches!(refused, Err(SealError::Identity(_))),
        "{refused:?}"
    );
}

/// A key and a chain as an operator would put them into the folder of configured seals: made
/// here as a demo identity for another name, so that its certificate is told apart.
fn configured(dir: &Path, tenant: &TenantId, name: &str) -> super::SealFiles {
    let made = tempfile::tempdir().expect("tempdir");
    super::SealIdentity::demo(made.path(), tenant, name).expect("made");
    std::fs::create_dir_all(dir).expect("the folder");
    let files = super::SealFiles::in_dir(dir, tenant);
    let from = |ext: &str| made.path().join(format!("{}.{ext}", tenant.as_str()));
    // `copy` keeps the key file's mode 0600.
    std::fs::copy(from("key.pem"), &files.key).expect("the key");
    std::fs::copy(from("crt.pem"), &files.chain).expect("the chain");
    files
}

#[test]
fn a_municipality_with_files_in_the_folder_seals_with_them_the_others_with_the_demo() {
    let bench = Bench::new();
    let folder = bench.dir.path().join("siegel");
    let doc = meldebescheinigung();
    configured(&folder, &doc.tenant, "Siegeltest Ettlingen");
    let sealer = PadesSealer::new(SealConfig {
        dir: Some(folder),
        demo_dir: Some(bench.dir.path().join("seal")),
    });
    let identity = sealer
        .identity(&doc.tenant, &doc.municipality)
        .expect("configured");
    assert!(!identity.is_demo());
    let pdf = sealer.render_and_seal(&doc).expect("sealed").pdf;
    let report = pdfsig(&bench.write("configured.pdf", &pdf));
    assert!(report.contains("Signature is Valid."), "{report}");
    assert!(
        report.contains("Common Name: Demo-Siegel Siegeltest Ettlingen"),
        "{report}"
    );

    let mut stuttgart = meldebescheinigung();
    stuttgart.tenant = TenantId::parse("stuttgart").expect("valid");
    stuttgart.municipality = "Landeshauptstadt Stuttgart".into();
    let pdf = sealer.render_and_seal(&stuttgart).expect("sealed").pdf;
    let report = pdfsig(&bench.write("demo.pdf", &pdf));
    assert!(
        report.contains("Common Name: Demo-Siegel Landeshauptstadt Stuttgart"),
        "{report}"
    );
    assert!(
        !bench.dir.path().join("seal/ettlingen.key.pem").exists(),
        "no demo identity for a configured municipality"
    );
}

#[test]
fn a_broken_configured_seal_is_refused_naming_its_file() {
    let bench = Bench::new();
    let folder = bench.dir.path().join("siegel");
    let tenant = TenantId::parse("ettlingen").expect("valid");
    let files = configured(&folder, &tenant, "Siegeltest Ettlingen");
    let sealer = || {
        PadesSealer::new(SealConfig {
            dir: Some(folder.clone()),
            demo_dir: Some(bench.dir.path().join("seal")),
        })
    };
    let refused = |sealer: PadesSealer| match sealer.identity(&tenant, "Stadt Ettlingen") {
        Err(SealError::Identity(message)) => message,
        other => panic!("refused, not {other:?}"),
    };

    // A key that is no key.
    std::fs::write(&files.key, "-----BEGIN PRIVATE KEY-----\nkaputt\n").expect("write");
    let message = refused(sealer());
    assert!(
        message.contains(&files.key.display().to_string()) && message.contains("PKCS#8"),
        "{message}"
    );
    // A sound key without its chain.
    configured(&folder, &tenant, "Siegeltest Ettlingen");
    std::fs::remove_file(&files.chain).expect("remove");
    let message = refused(sealer());
    assert!(
        message.contains(&files.chain.display().to_string()),
        "{message}"
    );
    // A folder that is not there is no reason to seal with a demo identity.
    let missing = PadesSealer::new(SealConfig {
        dir: Some(bench.dir.path().join("fehlt")),
        demo_dir: Some(bench.dir.path().join("seal")),
    });
    assert!(refused(missing).contains("fehlt"));
    assert!(!bench.dir.path().join("seal").exists(), "no demo made");
}
