//! The form as A4 pages: header, the fields as a two-column list, the signing time and method,
//! the signature evidence, a page footer. Text is set in the embedded Liberation Sans
//! (`font.rs`), measured with its glyphs' widths. Every text reaches the page as a string of
//! two-byte CIDs, which lopdf escapes, never spliced into an operator.

use lopdf::content::{Content, Operation};
use lopdf::{Dictionary, Document, Object, ObjectId, Stream, StringFormat, dictionary};
use time::OffsetDateTime;
use videoamt_core::german;
use videoamt_core::seal::{FormDocument, SealError, SignatureEvidence, StrokePoint};

use super::font::{Font, Subset};

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

/// A number as it goes into a content stream: two decimals are finer than a printer's dot.
fn num(value: f32) -> Object {
    Object::Real((value * 100.0).round() / 100.0)
}

/// `text` as it is set: line breaks kept as `\n`, tabs as spaces, other control characters
/// dropped.
fn plain(text: &str) -> String {
    text.replace("\r\n", "\n")
        .chars()
        .filter_map(|c| match c {
            '\n' => Some('\n'),
            '\t' => Some(' '),
            c if c.is_control() => None,
            c => Some(c),
        })
        .collect()
}

/// Greedy line breaking at spaces; a word wider than the line is broken where it must be.
/// Each `\n` starts a new line; an empty text is one empty line. Widths add up in the font's
/// thousandths of an em, exactly and once per word.
fn wrap(text: &str, font: Font, size: f32, width: f32) -> Vec<String> {
    // A thousandth of a point of slack, so that a line measured as exactly the column's width
    // fits whatever the float product rounds to.
    let fits = |units: u32| units as f32 * size / 1000.0 <= width + 0.001;
    let space = font.advance(' ');
    let mut lines = Vec::new();
    for paragraph in text.split('\n') {
        let mut line = String::new();
        let mut line_units = 0;
        for word in paragraph.split(' ').filter(|w| !w.is_empty()) {
            let word_units: u32 = word.chars().map(|c| font.advance(c)).sum();
            let candidate = if line.is_empty() {
                word_units
            } else {
                line_units + space + word_units
            };
            if fits(candidate) {
                if !line.is_empty() {
                    line.push(' ');
                }
                line.push_str(word);
                line_units = candidate;
                continue;
            }
            if !line.is_empty() {
                lines.push(std::mem::take(&mut line));
                line_units = 0;
            }
            for c in word.chars() {
                let advance = font.advance(c);
                if !line.is_empty() && !fits(line_units + advance) {
                    lines.push(std::mem::take(&mut line));
                    line_units = 0;
                }
                line.push(c);
                line_units += advance;
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
    continuation: String,
    regular: Subset,
    bold: Subset,
}

impl Layout {
    fn new(continuation: String) -> Self {
        Self {
            pages: vec![Vec::new()],
            y: TOP,
            continuation,
            regular: Subset::new(Font::Regular),
            bold: Subset::new(Font::Bold),
        }
    }

    fn subset(&mut self, font: Font) -> &mut Subset {
        match font {
            Font::Regular => &mut self.regular,
            Font::Bold => &mut self.bold,
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

    fn text_at(&mut self, font: Font, size: f32, x: f32, y: f32, text: &str, gray: f32) {
        let codes = self.subset(font).encode(text);
        self.ops().extend(text_ops(font, size, x, y, codes, gray));
    }

    /// A wrapped paragraph across the full width, `after` points of space below it.
    fn paragraph(&mut self, font: Font, size: f32, text: &str, after: f32) {
        let leading = size * 1.3;
        for line in wrap(&plain(text), font, size, CONTENT_WIDTH) {
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
        let labels = wrap(&plain(label), Font::Bold, BODY, LABEL_WIDTH);
        let value = if value.trim().is_empty() {
            "—"
        } else {
            value
        };
        let values = wrap(&plain(value), Font::Regular, BODY, VALUE_WIDTH);
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
        let name = plain(municipality);
        let font = Font::Regular;
        for (index, page) in self.pages.iter_mut().enumerate() {
            let number = format!("Seite {} von {}", index + 1, total);
            let number_width = font.width(&number, 8.0);
            if font.width(&name, 8.0) + number_width + 24.0 < CONTENT_WIDTH {
                let codes = self.regular.encode(&name);
                page.extend(text_ops(font, 8.0, MARGIN, MARGIN, codes, 0.4));
            }
            let x = PAGE_WIDTH - MARGIN - number_width;
            let codes = self.regular.encode(&number);
            page.extend(text_ops(font, 8.0, x, MARGIN, codes, 0.4));
        }
    }
}

/// One line of text at (`x`, `y`) in `gray` (0 black, 1 white), given as its font's codes.
fn text_ops(font: Font, size: f32, x: f32, y: f32, codes: Vec<u8>, gray: f32) -> [Operation; 6] {
    [
        Operation::new("BT", vec![]),
        Operation::new("g", vec![num(gray)]),
        Operation::new("Tf", vec![font.resource().into(), num(size)]),
        Operation::new("Td", vec![num(x), num(y)]),
        Operation::new("Tj", vec![Object::String(codes, StringFormat::Literal)]),
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
    let mut layout = Layout::new(plain(&format!(
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
    assemble(form, layout, signature_dict)
}

fn assemble(
    form: &FormDocument,
    layout: Layout,
    signature_dict: Object,
) -> Result<Rendered, SealError> {
    let render = |e: lopdf::Error| SealError::Render(e.to_string());
    let mut doc = Document::with_version("1.7");
    doc.reference_table.cross_reference_type = lopdf::xref::XrefType::CrossReferenceTable;
    let regular = layout.regular.embed(&mut doc)?;
    let bold = layout.bold.embed(&mut doc)?;
    let resources = doc.add_object(dictionary! {
        "Font" => dictionary! {
            Font::Regular.resource() => regular,
            Font::Bold.resource() => bold,
        },
    });
    let pages = layout.pages;
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
    fn line_breaks_stay_tabs_become_spaces_and_other_controls_go() {
        assert_eq!(plain("a\tb\u{7}c\r\nd 漢"), "a bc\nd 漢");
        assert_eq!(plain("Şahin\u{0}"), "Şahin");
    }

    #[test]
    fn lines_break_at_spaces_and_long_words_where_they_must() {
        let width = Font::Regular.width("eins zwei", BODY);
        let lines = wrap("eins zwei drei vier", Font::Regular, BODY, width);
        assert_eq!(lines, ["eins zwei", "drei vier"]);
        let word = "Ж".repeat(100);
        let long = wrap(&word, Font::Regular, BODY, 100.0);
        assert!(long.len() > 1);
        assert!(
            long.iter()
                .all(|line| Font::Regular.width(line, BODY) <= 100.0)
        );
        assert_eq!(long.concat(), word, "no character is lost");
        assert_eq!(wrap("a\n\nb", Font::Regular, BODY, 100.0).len(), 3);
    }

    #[test]
    fn names_beyond_latin_1_wrap_by_their_own_widths() {
        let value = "Şahin Yıldız, Łukasz Żółć, Иван Петров, Ελένη Παπαδοπούλου. ".repeat(6);
        let lines = wrap(&value, Font::Regular, BODY, VALUE_WIDTH);
        assert!(lines.len() > 3, "{lines:?}");
        for line in &lines {
            assert!(
                Font::Regular.width(line, BODY) <= VALUE_WIDTH + 0.001,
                "{line}"
            );
        }
        assert_eq!(
            lines.join(" "),
            value.trim_end(),
            "only spaces become breaks"
        );
        // Wider letters take more room: a line of Ж holds fewer than a line of i.
        let count = |c: char| {
            wrap(&c.to_string().repeat(200), Font::Regular, BODY, 100.0)[0]
                .chars()
                .count()
        };
        assert!(count('Ж') * 3 < count('i'), "{} {}", count('Ж'), count('i'));
    }

    #[test]
    fn liberation_sans_has_helveticas_widths() {
        // Adobe's AFM files: "W" 944, "i" 222, "ü" 556; bold "m" 889. Liberation Sans is
        // metric-compatible, so forms lay out as they did with the standard Helvetica.
        assert_eq!(Font::Regular.width("W", 1000.0), 944.0);
        assert_eq!(Font::Regular.width("i", 1000.0), 222.0);
        assert_eq!(Font::Regular.width("ü", 1000.0), 556.0);
        assert_eq!(Font::Bold.width("m", 1000.0), 889.0);
    }
}
