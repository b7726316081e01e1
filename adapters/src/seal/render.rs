//! The form as A4 pages: header, the fields as a two-column list, the signing time and method,
//! the signature evidence, a page footer. Text is Helvetica with WinAnsiEncoding, so German
//! letters show without an embedded font; a character the encoding lacks shows as `?`. Every
//! text reaches the page as a PDF string object (lopdf escapes parentheses and backslashes),
//! never spliced into an operator.

use encoding_rs::{EncoderResult, WINDOWS_1252};
use lopdf::content::{Content, Operation};
use lopdf::{Dictionary, Document, Object, ObjectId, Stream, StringFormat, dictionary};
use time::OffsetDateTime;
use videoamt_core::german;
use videoamt_core::seal::{FormDocument, SealError, SignatureEvidence, StrokePoint};

use super::metrics;

const PAGE_WIDTH: f32 = 595.28;
const PAGE_HEIGHT: f32 = 841.89;
const MARGIN: f32 = 56.69; // 2 cm
const CONTENT_WIDTH: f32 = PAGE_WIDTH - 2.0 * MARGIN;
const TOP: f32 = PAGE_HEIGHT - MARGIN;
/// The lowest baseline of body text; the footer sits below it.
const BOTTOM: f32 = MARGIN + 24.0;
/// The space a continued page's header line takes above the body.
const CONTINUATION: f32 = 24.0;
const LABEL_WIDTH: f32 = 170.0;
const COLUMN_GAP: f32 = 12.0;
const VALUE_X: f32 = MARGIN + LABEL_WIDTH + COLUMN_GAP;
const VALUE_WIDTH: f32 = CONTENT_WIDTH - LABEL_WIDTH - COLUMN_GAP;
const BODY: f32 = 10.0;
const LEADING: f32 = 13.0;
/// The signature box: at most this wide and high, with the canvas's aspect ratio.
const SIGNATURE_WIDTH: f32 = 260.0;
const SIGNATURE_HEIGHT: f32 = 110.0;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Font {
    Regular,
    Bold,
}

impl Font {
    fn resource(self) -> &'static str {
        match self {
            Self::Regular => "F1",
            Self::Bold => "F2",
        }
    }

    fn widths(self) -> &'static [u16; 256] {
        match self {
            Self::Regular => &metrics::HELVETICA,
            Self::Bold => &metrics::HELVETICA_BOLD,
        }
    }

    fn width(self, text: &[u8], size: f32) -> f32 {
        let units: u32 = text
            .iter()
            .map(|&b| u32::from(self.widths()[usize::from(b)]))
            .sum();
        units as f32 * size / 1000.0
    }
}

/// A number as it goes into a content stream: two decimals are finer than a printer's dot.
fn num(value: f32) -> Object {
    Object::Real((value * 100.0).round() / 100.0)
}

/// `text` in WinAnsiEncoding: line breaks kept as `\n`, tabs as spaces, other control
/// characters dropped, and `?` for a character the encoding lacks.
pub(super) fn win_ansi(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut encoder = WINDOWS_1252.new_encoder();
    let mut buf = [0u8; 8];
    for c in text.replace("\r\n", "\n").chars() {
        match c {
            '\n' => out.push(b'\n'),
            '\t' => out.push(b' '),
            c if c.is_control() => {}
            c => {
                let mut one = [0u8; 4];
                let (result, _, written) = encoder.encode_from_utf8_without_replacement(
                    c.encode_utf8(&mut one),
                    &mut buf,
                    false,
                );
                match result {
                    EncoderResult::InputEmpty if written > 0 => out.extend(&buf[..written]),
                    _ => out.push(b'?'),
                }
            }
        }
    }
    out
}

/// Greedy line breaking at spaces; a word wider than the line is broken where it must be.
/// Each `\n` starts a new line; an empty text is one empty line.
fn wrap(text: &[u8], font: Font, size: f32, width: f32) -> Vec<Vec<u8>> {
    // A thousandth of a point of slack, so that a line exactly as wide as the column fits
    // whatever the order of the float sums.
    let fits = |line: &[u8]| font.width(line, size) <= width + 0.001;
    let mut lines = Vec::new();
    for paragraph in text.split(|&b| b == b'\n') {
        let mut line: Vec<u8> = Vec::new();
        for word in paragraph.split(|&b| b == b' ').filter(|w| !w.is_empty()) {
            let mut candidate = line.clone();
            if !candidate.is_empty() {
                candidate.push(b' ');
            }
            candidate.extend_from_slice(word);
            if fits(&candidate) {
                line = candidate;
                continue;
            }
            if !line.is_empty() {
                lines.push(std::mem::take(&mut line));
            }
            for &byte in word {
                line.push(byte);
                if line.len() > 1 && !fits(&line) {
                    line.pop();
                    lines.push(std::mem::replace(&mut line, vec![byte]));
                }
            }
        }
        lines.push(line);
    }
    lines
}

/// Pages of content operations, filled from the top; a new page starts when the next block
/// does not fit.
struct Layout {
    pages: Vec<Vec<Operation>>,
    /// The baseline of the next line on the current page.
    y: f32,
    continuation: Vec<u8>,
}

impl Layout {
    fn new(continuation: Vec<u8>) -> Self {
        Self {
            pages: vec![Vec::new()],
            y: TOP,
            continuation,
        }
    }

    fn ops(&mut self) -> &mut Vec<Operation> {
        self.pages
            .last_mut()
            .expect("a layout has a page from the start")
    }

    /// Starts a new page unless `height` more fits on this one.
    fn reserve(&mut self, height: f32) {
        if self.y - height < BOTTOM && self.y < TOP {
            self.pages.push(Vec::new());
            self.y = TOP;
            let continuation = self.continuation.clone();
            self.text_at(Font::Regular, 8.0, MARGIN, self.y, &continuation, 0.4);
            self.y -= CONTINUATION;
        }
    }

    fn text_at(&mut self, font: Font, size: f32, x: f32, y: f32, text: &[u8], gray: f32) {
        self.ops().extend(text_ops(font, size, x, y, text, gray));
    }

    /// A wrapped paragraph across the full width, `after` points of space below it.
    fn paragraph(&mut self, font: Font, size: f32, text: &str, after: f32) {
        let leading = size * 1.3;
        for line in wrap(&win_ansi(text), font, size, CONTENT_WIDTH) {
            self.reserve(leading);
            self.text_at(font, size, MARGIN, self.y, &line, 0.0);
            self.y -= leading;
        }
        self.y -= after;
    }

    fn rule(&mut self) {
        let y = self.y + LEADING * 0.4;
        self.ops().extend([
            Operation::new("q", vec![]),
            Operation::new("G", vec![num(0.6)]),
            Operation::new("w", vec![num(0.5)]),
            Operation::new("m", vec![num(MARGIN), num(y)]),
            Operation::new("l", vec![num(PAGE_WIDTH - MARGIN), num(y)]),
            Operation::new("S", vec![]),
            Operation::new("Q", vec![]),
        ]);
        self.y -= LEADING * 0.6;
    }

    /// One field: the label in bold on the left, the value on the right, both wrapped. A field
    /// that fits on a page is kept together; a longer one continues on the next.
    fn field(&mut self, label: &str, value: &str) {
        let labels = wrap(&win_ansi(label), Font::Bold, BODY, LABEL_WIDTH);
        let value = if value.trim().is_empty() {
            "—"
        } else {
            value
        };
        let values = wrap(&win_ansi(value), Font::Regular, BODY, VALUE_WIDTH);
        let rows = labels.len().max(values.len());
        let height = rows as f32 * LEADING;
        if height <= TOP - BOTTOM - CONTINUATION {
            self.reserve(height);
        }
        for row in 0..rows {
            self.reserve(LEADING);
            if let Some(line) = labels.get(row) {
                self.text_at(Font::Bold, BODY, MARGIN, self.y, line, 0.0);
            }
            if let Some(line) = values.get(row) {
                self.text_at(Font::Regular, BODY, VALUE_X, self.y, line, 0.0);
            }
            self.y -= LEADING;
        }
        self.y -= 4.0;
    }

    /// The strokes in a box, scaled into it with the canvas's aspect ratio; y grows downwards
    /// on the canvas and upwards on the page.
    fn touchpad(&mut self, strokes: &[Vec<StrokePoint>], width: u32, height: u32) {
        let (canvas_w, canvas_h) = (width.max(1) as f32, height.max(1) as f32);
        let scale = (SIGNATURE_WIDTH / canvas_w).min(SIGNATURE_HEIGHT / canvas_h);
        let (box_w, box_h) = (canvas_w * scale, canvas_h * scale);
        self.reserve(box_h + LEADING);
        let (left, top) = (MARGIN, self.y + LEADING * 0.6);
        let bottom = top - box_h;
        let ops = self.ops();
        ops.extend([
            Operation::new("q", vec![]),
            Operation::new("G", vec![num(0.6)]),
            Operation::new("w", vec![num(0.5)]),
            Operation::new("re", vec![num(left), num(bottom), num(box_w), num(box_h)]),
            Operation::new("S", vec![]),
            Operation::new("RG", vec![num(0.05), num(0.1), num(0.4)]),
            Operation::new("w", vec![num(1.4)]),
            Operation::new("J", vec![1.into()]),
            Operation::new("j", vec![1.into()]),
        ]);
        for stroke in strokes {
            let mut points = stroke
                .iter()
                .filter(|p| p.x.is_finite() && p.y.is_finite())
                .map(|p| {
                    (
                        left + p.x.clamp(0.0, canvas_w) * scale,
                        top - p.y.clamp(0.0, canvas_h) * scale,
                    )
                });
            let Some((x0, y0)) = points.next() else {
                continue;
            };
            ops.push(Operation::new("m", vec![num(x0), num(y0)]));
            let mut drawn = false;
            for (x, y) in points {
                ops.push(Operation::new("l", vec![num(x), num(y)]));
                drawn = true;
            }
            if !drawn {
                // A tap: a zero-length line with round caps is a dot.
                ops.push(Operation::new("l", vec![num(x0), num(y0)]));
            }
            ops.push(Operation::new("S", vec![]));
        }
        ops.push(Operation::new("Q", vec![]));
        self.y = bottom - LEADING;
    }

    /// "Seite 1 von 2" on every page, with the municipality on the left when both fit.
    fn footers(&mut self, municipality: &str) {
        let total = self.pages.len();
        let name = win_ansi(municipality);
        for (index, page) in self.pages.iter_mut().enumerate() {
            let number = win_ansi(&format!("Seite {} von {}", index + 1, total));
            let number_width = Font::Regular.width(&number, 8.0);
            if Font::Regular.width(&name, 8.0) + number_width + 24.0 < CONTENT_WIDTH {
                page.extend(text_ops(Font::Regular, 8.0, MARGIN, MARGIN, &name, 0.4));
            }
            let x = PAGE_WIDTH - MARGIN - number_width;
            page.extend(text_ops(Font::Regular, 8.0, x, MARGIN, &number, 0.4));
        }
    }
}

/// One line of text at (`x`, `y`) in `gray` (0 black, 1 white). The text goes in as a string
/// object, which lopdf escapes.
fn text_ops(font: Font, size: f32, x: f32, y: f32, text: &[u8], gray: f32) -> [Operation; 6] {
    [
        Operation::new("BT", vec![]),
        Operation::new("g", vec![num(gray)]),
        Operation::new("Tf", vec![font.resource().into(), num(size)]),
        Operation::new("Td", vec![num(x), num(y)]),
        Operation::new(
            "Tj",
            vec![Object::String(text.to_vec(), StringFormat::Literal)],
        ),
        Operation::new("ET", vec![]),
    ]
}

/// "Mittwoch, 02.12.2026, 08:30:15 Uhr (UTC+01:00)".
pub(super) fn signing_time(at: OffsetDateTime) -> String {
    let (hours, minutes, _) = at.offset().as_hms();
    format!(
        "{}, {:02}:{:02}:{:02} Uhr (UTC{}{:02}:{:02})",
        german::day(at.date()),
        at.hour(),
        at.minute(),
        at.second(),
        if at.offset().is_negative() { '-' } else { '+' },
        hours.unsigned_abs(),
        minutes.unsigned_abs(),
    )
}

/// The rendered document and where the seal goes: `signature` is the id reserved for the
/// signature dictionary, which the caller fills in before saving.
pub(super) struct Rendered {
    pub(super) doc: Document,
    pub(super) signature: ObjectId,
}

pub(super) fn render(form: &FormDocument, signature_dict: Object) -> Result<Rendered, SealError> {
    let mut layout = Layout::new(win_ansi(&format!(
        "{} – {} (Fortsetzung)",
        form.municipality, form.title
    )));
    layout.paragraph(Font::Bold, 16.0, &form.municipality, 2.0);
    layout.paragraph(Font::Regular, 11.0, &form.service, 10.0);
    layout.paragraph(Font::Bold, 14.0, &form.title, 4.0);
    layout.rule();
    layout.y -= 6.0;
    for (label, value) in &form.fields {
        layout.field(label, value);
    }
    layout.y -= 10.0;
    layout.reserve(LEADING * 4.0);
    layout.rule();
    layout.paragraph(Font::Bold, 12.0, "Unterschrift", 4.0);
    layout.field("Unterschrieben am", &signing_time(form.signed_at));
    layout.field("Art der Unterschrift", &form.signature_method);
    layout.y -= 6.0;
    match &form.evidence {
        SignatureEvidence::Touchpad {
            strokes,
            width,
            height,
        } => {
            layout.touchpad(strokes, *width, *height);
            let points: usize = strokes.iter().map(Vec::len).sum();
            let duration = strokes.iter().flatten().map(|p| p.t_ms).max().unwrap_or(0);
            layout.paragraph(
                Font::Regular,
                8.0,
                &format!(
                    "Auf dem Touchpad gezeichnet: {} Striche, {} Punkte, {},{} s",
                    strokes.len(),
                    points,
                    duration / 1000,
                    duration % 1000 / 100
                ),
                8.0,
            );
        }
        SignatureEvidence::Tan { line } => layout.paragraph(Font::Regular, BODY, line, 8.0),
    }
    layout.paragraph(
        Font::Regular,
        8.0,
        &format!(
            "Dieses Dokument trägt das elektronische Siegel von {}. Jede spätere Änderung an \
             der Datei macht das Siegel ungültig; PDF-Programme zeigen das Siegel in der \
             Signaturanzeige.",
            form.municipality
        ),
        0.0,
    );
    layout.footers(&form.municipality);
    assemble(form, layout.pages, signature_dict)
}

fn assemble(
    form: &FormDocument,
    pages: Vec<Vec<Operation>>,
    signature_dict: Object,
) -> Result<Rendered, SealError> {
    let render = |e: lopdf::Error| SealError::Render(e.to_string());
    let mut doc = Document::with_version("1.7");
    doc.reference_table.cross_reference_type = lopdf::xref::XrefType::CrossReferenceTable;
    let font = |base: &str| {
        dictionary! {
            "Type" => "Font",
            "Subtype" => "Type1",
            "BaseFont" => base.to_owned(),
            "Encoding" => "WinAnsiEncoding",
        }
    };
    let regular = doc.add_object(font("Helvetica"));
    let bold = doc.add_object(font("Helvetica-Bold"));
    let resources = doc.add_object(dictionary! {
        "Font" => dictionary! { "F1" => regular, "F2" => bold },
    });
    let pages_id = doc.new_object_id();
    let signature = doc.add_object(signature_dict);
    let widget = doc.new_object_id();
    let page_count = pages.len();
    let mut kids = Vec::with_capacity(page_count);
    let mut last_page = None;
    for (index, operations) in pages.into_iter().enumerate() {
        let content = Content { operations }.encode().map_err(render)?;
        let mut stream = Stream::new(Dictionary::new(), content);
        stream.compress().map_err(render)?;
        let content_id = doc.add_object(stream);
        let mut page = dictionary! {
            "Type" => "Page",
            "Parent" => pages_id,
            "MediaBox" => vec![0.into(), 0.into(), num(PAGE_WIDTH), num(PAGE_HEIGHT)],
            "Resources" => resources,
            "Contents" => content_id,
        };
        if index + 1 == page_count {
            page.set("Annots", vec![Object::Reference(widget)]);
        }
        let page_id = doc.add_object(page);
        kids.push(Object::Reference(page_id));
        last_page = Some(page_id);
    }
    let last_page = last_page.ok_or_else(|| SealError::Render("no page".into()))?;
    // An invisible widget on the last page: the seal shows in the viewer's signature panel.
    doc.set_object(
        widget,
        dictionary! {
            "Type" => "Annot",
            "Subtype" => "Widget",
            "FT" => "Sig",
            "T" => Object::string_literal("Siegel"),
            "V" => signature,
            "Rect" => vec![0.into(), 0.into(), 0.into(), 0.into()],
            "F" => 132, // Print and Locked
            "P" => last_page,
        },
    );
    doc.set_object(
        pages_id,
        dictionary! {
            "Type" => "Pages",
            "Kids" => kids,
            "Count" => page_count as i64,
        },
    );
    let catalog = doc.add_object(dictionary! {
        "Type" => "Catalog",
        "Pages" => pages_id,
        // SignaturesExist | AppendOnly.
        "AcroForm" => dictionary! { "Fields" => vec![widget.into()], "SigFlags" => 3 },
    });
    let info = doc.add_object(dictionary! {
        "Title" => lopdf::text_string(&form.title),
        "Author" => lopdf::text_string(&form.municipality),
        "Producer" => Object::string_literal("videoamt"),
        "CreationDate" => Object::string_literal(super::pades::pdf_date(form.signed_at)),
    });
    let mut id = [0u8; 16];
    getrandom::fill(&mut id).map_err(|e| SealError::Render(format!("no randomness: {e}")))?;
    doc.trailer.set("Root", catalog);
    doc.trailer.set("Info", info);
    doc.trailer.set(
        "ID",
        vec![
            Object::String(id.to_vec(), StringFormat::Hexadecimal),
            Object::String(id.to_vec(), StringFormat::Hexadecimal),
        ],
    );
    Ok(Rendered { doc, signature })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn german_letters_are_one_byte_each_and_the_rest_is_a_question_mark() {
        assert_eq!(win_ansi("Müßig Straße"), b"M\xfc\xdfig Stra\xdfe");
        assert_eq!(
            win_ansi("„€“ – ÄÖÜäöü"),
            b"\x84\x80\x93 \x96 \xc4\xd6\xdc\xe4\xf6\xfc"
        );
        assert_eq!(win_ansi("a\tb\u{7}c\r\nd 漢"), b"a bc\nd ?");
    }

    #[test]
    fn lines_break_at_spaces_and_long_words_where_they_must() {
        let text = win_ansi("eins zwei drei vier");
        let width = Font::Regular.width(b"eins zwei", BODY);
        let lines = wrap(&text, Font::Regular, BODY, width);
        assert_eq!(lines, vec![b"eins zwei".to_vec(), b"drei vier".to_vec()]);
        let long = wrap(&[b'W'; 100], Font::Regular, BODY, 100.0);
        assert!(long.len() > 1);
        assert!(
            long.iter()
                .all(|line| Font::Regular.width(line, BODY) <= 100.0)
        );
        assert_eq!(long.concat().len(), 100, "no byte is lost");
        assert_eq!(wrap(b"a\n\nb", Font::Regular, BODY, 100.0).len(), 3);
    }

    #[test]
    fn helvetica_widths_are_adobes() {
        // From the AFM files: "W" 944, "i" 222, "ü" 556; bold "m" 889.
        assert_eq!(Font::Regular.width(b"W", 1000.0), 944.0);
        assert_eq!(Font::Regular.width(b"i", 1000.0), 222.0);
        assert_eq!(Font::Regular.width(&win_ansi("ü"), 1000.0), 556.0);
        assert_eq!(Font::Bold.width(b"m", 1000.0), 889.0);
    }
}
