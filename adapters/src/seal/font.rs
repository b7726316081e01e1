//! The embedded font: Liberation Sans 2.1.5, Regular and Bold (SIL OFL 1.1, `fonts/LICENSE`).
//! It has Helvetica's and Arial's widths, and its glyphs cover Latin with Extended-A and -B,
//! Vietnamese, Greek, Cyrillic and Hebrew. Each PDF embeds, per font, a subset of the glyphs it
//! uses (typst's `subsetter`) as a Type0 font with Identity-H encoding over a CIDFontType2.
//!
//! The CIDs are the document's own: one per distinct character a font draws, numbered from 1
//! in the order of first use, and the CIDToGIDMap stream maps each to its glyph in the subset.
//! So every character has its own ToUnicode entry, even where the font draws two characters
//! with one glyph or has no glyph at all (an emoji is the .notdef box on the page), and text
//! extraction gives back exactly what was written.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::LazyLock;

use lopdf::{Dictionary, Document, Object, ObjectId, Stream, dictionary};
use sha2::{Digest as _, Sha256};
use subsetter::GlyphRemapper;
use ttf_parser::{Face, GlyphId};
use videoamt_core::seal::SealError;

static REGULAR: LazyLock<Loaded> = LazyLock::new(|| Loaded::new(Font::Regular));
static BOLD: LazyLock<Loaded> = LazyLock::new(|| Loaded::new(Font::Bold));

/// The code points below this (Latin, Greek, Cyrillic) have their advances in a table:
/// wrapping measures every character, and a cmap lookup costs ten times an index.
const TABULATED: char = '\u{530}';

/// A font parsed once.
struct Loaded {
    face: Face<'static>,
    /// The advances of the code points below [`TABULATED`], in 1/1000 em.
    advances: Vec<u32>,
}

impl Loaded {
    fn new(font: Font) -> Self {
        let face = Face::parse(font.program(), 0)
            .expect("the vendored font parses (checked by `both_fonts_parse_and_cover_europe`)");
        let advances = ('\0'..TABULATED)
            .map(|c| advance(&face, glyph(&face, c)))
            .collect();
        Self { face, advances }
    }
}

/// The glyph `c` is drawn with: the font's, else `.notdef`.
fn glyph(face: &Face<'_>, c: char) -> GlyphId {
    face.glyph_index(c).unwrap_or(GlyphId(0))
}

/// A length in font units as the PDF gives it, in 1/1000 em.
fn thousandths(face: &Face<'_>, units: i32) -> i32 {
    let per_em = i32::from(face.units_per_em().max(1));
    (units * 1000 + units.signum() * per_em / 2) / per_em
}

fn advance(face: &Face<'_>, glyph: GlyphId) -> u32 {
    let units = face.glyph_hor_advance(glyph).unwrap_or(0);
    thousandths(face, i32::from(units)).unsigned_abs()
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Font {
    Regular,
    Bold,
}

impl Font {
    /// The name of the font in the pages' resources.
    pub(super) fn resource(self) -> &'static str {
        match self {
            Self::Regular => "F1",
            Self::Bold => "F2",
        }
    }

    fn program(self) -> &'static [u8] {
        match self {
            Self::Regular => include_bytes!("fonts/LiberationSans-Regular.ttf"),
            Self::Bold => include_bytes!("fonts/LiberationSans-Bold.ttf"),
        }
    }

    fn postscript_name(self) -> &'static str {
        match self {
            Self::Regular => "LiberationSans",
            Self::Bold => "LiberationSans-Bold",
        }
    }

    fn loaded(self) -> &'static Loaded {
        match self {
            Self::Regular => &REGULAR,
            Self::Bold => &BOLD,
        }
    }

    fn face(self) -> &'static Face<'static> {
        &self.loaded().face
    }

    fn glyph(self, c: char) -> GlyphId {
        glyph(self.face(), c)
    }

    /// The advance of the glyph `c` is drawn with, in 1/1000 em: the width the `W` array gives
    /// the viewer, so the layout measures what the page shows.
    pub(super) fn advance(self, c: char) -> u32 {
        let loaded = self.loaded();
        match loaded.advances.get(c as usize) {
            Some(&tabulated) => tabulated,
            None => advance(&loaded.face, self.glyph(c)),
        }
    }

    /// The width of `text` at `size` points.
    pub(super) fn width(self, text: &str, size: f32) -> f32 {
        let units: u32 = text.chars().map(|c| self.advance(c)).sum();
        units as f32 * size / 1000.0
    }
}

/// The characters one font draws in a document; a character's CID is its index plus 1.
#[derive(Debug)]
pub(super) struct Subset {
    font: Font,
    chars: Vec<char>,
    cids: HashMap<char, u16>,
}

impl Subset {
    pub(super) fn new(font: Font) -> Self {
        Self {
            font,
            chars: Vec::new(),
            cids: HashMap::new(),
        }
    }

    /// `text` as Identity-H codes: each character's CID in two bytes, big-endian. Past 65,535
    /// distinct characters, which no form comes near, a new one is CID 0, the .notdef box, and
    /// extracts as U+FFFD.
    pub(super) fn encode(&mut self, text: &str) -> Vec<u8> {
        let mut codes = Vec::with_capacity(text.len() * 2);
        for c in text.chars() {
            let cid = match self.cids.get(&c) {
                Some(&cid) => cid,
                None => match u16::try_from(self.chars.len() + 1) {
                    Ok(cid) => {
                        self.chars.push(c);
                        self.cids.insert(c, cid);
                        cid
                    }
                    Err(_) => 0,
                },
            };
            codes.extend(cid.to_be_bytes());
        }
        codes
    }

    /// Adds the font with its subset, widths and maps to `doc` and returns the Type0 font.
    pub(super) fn embed(&self, doc: &mut Document) -> Result<ObjectId, SealError> {
        let font = self.font;
        let face = font.face();
        let mut remapper = GlyphRemapper::new();
        // CID 0 is .notdef, which the remapper keeps as glyph 0.
        let mut cid_to_gid = vec![0u8, 0];
        for &c in &self.chars {
            cid_to_gid.extend(remapper.remap(font.glyph(c).0).to_be_bytes());
        }
        let program = subsetter::subset(font.program(), 0, &remapper)
            .map_err(|e| SealError::Render(format!("subsetting the font: {e}")))?;
        let name = format!("{}+{}", self.tag(), font.postscript_name());

        let length = i64::try_from(program.len()).unwrap_or(i64::MAX);
        let file = doc.add_object(compressed(dictionary! { "Length1" => length }, program)?);
        let bbox = face.global_bounding_box();
        let scaled = |units: i16| Object::Integer(thousandths(face, units.into()).into());
        let weight = face.weight().to_number();
        let descriptor = doc.add_object(dictionary! {
            "Type" => "FontDescriptor",
            "FontName" => name.clone(),
            // Symbolic: the glyphs are reached by CID, not by a standard encoding.
            "Flags" => 4,
            "FontBBox" => vec![
                scaled(bbox.x_min), scaled(bbox.y_min), scaled(bbox.x_max), scaled(bbox.y_max),
            ],
            "ItalicAngle" => Object::Real(face.italic_angle()),
            "Ascent" => scaled(face.ascender()),
            "Descent" => scaled(face.descender()),
            "CapHeight" => scaled(face.capital_height().unwrap_or(face.ascender())),
            // The usual estimate from the weight class (regular 400 → 95, bold 700 → 169).
            "StemV" => Object::Integer((10.0 + 0.244 * (f32::from(weight) - 50.0)).round() as i64),
            "FontWeight" => weight,
            "FontFile2" => file,
        });
        let cid_to_gid = doc.add_object(compressed(Dictionary::new(), cid_to_gid)?);
        let mut cid_font = dictionary! {
            "Type" => "Font",
            "Subtype" => "CIDFontType2",
            "BaseFont" => name.clone(),
            "CIDSystemInfo" => dictionary! {
                "Registry" => Object::string_literal("Adobe"),
                "Ordering" => Object::string_literal("Identity"),
                "Supplement" => 0,
            },
            "FontDescriptor" => descriptor,
            "DW" => advance(face, GlyphId(0)),
            "CIDToGIDMap" => cid_to_gid,
        };
        if !self.chars.is_empty() {
            let widths = self.chars.iter().map(|&c| font.advance(c).into()).collect();
            cid_font.set("W", vec![1.into(), Object::Array(widths)]);
        }
        let cid_font = doc.add_object(cid_font);
        let to_unicode = doc.add_object(compressed(Dictionary::new(), self.to_unicode())?);
        Ok(doc.add_object(dictionary! {
            "Type" => "Font",
            "Subtype" => "Type0",
            "BaseFont" => name,
            "Encoding" => "Identity-H",
            "DescendantFonts" => vec![cid_font.into()],
            "ToUnicode" => to_unicode,
        }))
    }

    /// The subset's tag, six capital letters from the characters it holds, so two subsets of
    /// one font differ and the same text gives the same tag.
    fn tag(&self) -> String {
        let mut hash = Sha256::new();
        hash.update(self.font.postscript_name());
        for c in &self.chars {
            hash.update(u32::from(*c).to_be_bytes());
        }
        hash.finalize()[..6]
            .iter()
            .map(|b| char::from(b'A' + b % 26))
            .collect()
    }

    /// The ToUnicode CMap: each CID to its character (UTF-16BE), CID 0 to U+FFFD.
    fn to_unicode(&self) -> Vec<u8> {
        let mut cmap = String::from(
            "/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n\
             /CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n\
             /CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n\
             1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n",
        );
        let entries: Vec<char> = std::iter::once('\u{FFFD}')
            .chain(self.chars.iter().copied())
            .collect();
        // A bfchar section holds at most 100 entries.
        for (block, chars) in entries.chunks(100).enumerate() {
            let _ = writeln!(cmap, "{} beginbfchar", chars.len());
            for (i, c) in chars.iter().enumerate() {
                let cid = block * 100 + i;
                let _ = write!(cmap, "<{cid:04X}> <");
                for unit in c.encode_utf16(&mut [0; 2]) {
                    let _ = write!(cmap, "{unit:04X}");
                }
                cmap.push_str(">\n");
            }
            cmap.push_str("endbfchar\n");
        }
        cmap.push_str("endcmap\nCMapName currentdict /CMap defineresource pop\nend\nend\n");
        cmap.into_bytes()
    }
}

fn compressed(dict: Dictionary, content: Vec<u8>) -> Result<Stream, SealError> {
    let mut stream = Stream::new(dict, content);
    stream
        .compress()
        .map_err(|e| SealError::Render(e.to_string()))?;
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Latin Extended-A (Turkish, Polish, Czech, …), the Romanian comma letters of
    /// Extended-B, the Greek and the Cyrillic alphabets.
    fn europe() -> impl Iterator<Item = char> {
        ('\u{100}'..='\u{17F}')
            .chain('\u{218}'..='\u{21B}')
            .chain(('\u{391}'..='\u{3C9}').filter(|&c| c != '\u{3A2}'))
            .chain('\u{400}'..='\u{45F}')
            .chain("ÄÖÜäöüßÑñ€„“–".chars())
    }

    #[test]
    fn both_fonts_parse_and_cover_europe() {
        for font in [Font::Regular, Font::Bold] {
            let missing: String = europe()
                .filter(|&c| font.face().glyph_index(c).is_none())
                .collect();
            assert_eq!(missing, "", "{font:?} lacks glyphs");
            assert_eq!(font.face().glyph_index('🙂'), None, "an emoji is not there");
        }
    }

    #[test]
    fn each_character_has_one_cid_even_without_a_glyph() {
        let mut subset = Subset::new(Font::Regular);
        assert_eq!(subset.encode("aba"), [0, 1, 0, 2, 0, 1]);
        // The emoji is drawn as .notdef but keeps its own CID, and so its ToUnicode entry.
        assert_eq!(subset.encode("🙂 a"), [0, 3, 0, 4, 0, 1]);
        let cmap = String::from_utf8(subset.to_unicode()).expect("ASCII");
        assert!(cmap.contains("<0001> <0061>"), "{cmap}");
        assert!(cmap.contains("<0003> <D83DDE42>"), "{cmap}");
        assert!(cmap.contains("<0000> <FFFD>"), "{cmap}");
        assert!(cmap.contains("5 beginbfchar"), "{cmap}");
        let notdef = advance(Font::Regular.face(), GlyphId(0));
        assert_eq!(Font::Regular.advance('🙂'), notdef);
        assert_eq!(
            Font::Regular.advance('\u{378}'),
            notdef,
            "unassigned, in the table"
        );
    }

    #[test]
    fn a_bfchar_section_holds_at_most_a_hundred() {
        let mut subset = Subset::new(Font::Regular);
        let text: String = ('\u{400}'..='\u{45F}')
            .chain('\u{100}'..='\u{17F}')
            .collect();
        subset.encode(&text);
        let cmap = String::from_utf8(subset.to_unicode()).expect("ASCII");
        // 96 + 128 characters and CID 0: 100, 100 and 25.
        assert_eq!(cmap.matches("100 beginbfchar").count(), 2, "{cmap}");
        assert!(cmap.contains("25 beginbfchar"), "{cmap}");
    }

    #[test]
    fn the_embedded_program_holds_only_the_glyphs_used() {
        let mut subset = Subset::new(Font::Bold);
        subset.encode("Şahin Yıldız");
        let mut doc = Document::with_version("1.7");
        let type0 = subset.embed(&mut doc).expect("embedded");
        let dict = |id: ObjectId| doc.get_dictionary(id).expect("a dictionary");
        let reference = |d: &Dictionary, key: &[u8]| d.get(key).and_then(Object::as_reference);
        let font = dict(type0);
        assert_eq!(
            font.get(b"Encoding").and_then(Object::as_name).ok(),
            Some(&b"Identity-H"[..])
        );
        let descendant = font
            .get(b"DescendantFonts")
            .and_then(Object::as_array)
            .expect("one")[0]
            .as_reference()
            .expect("a reference");
        let cid_font = dict(descendant);
        let descriptor = dict(reference(cid_font, b"FontDescriptor").expect("a descriptor"));
        let name = descriptor
            .get(b"FontName")
            .and_then(Object::as_name)
            .expect("a name");
        let name = std::str::from_utf8(name).expect("ASCII");
        assert!(
            name.ends_with("+LiberationSans-Bold") && name.len() == 7 + 19,
            "{name}"
        );
        let file = doc
            .get_object(reference(descriptor, b"FontFile2").expect("a font file"))
            .and_then(Object::as_stream)
            .expect("a stream");
        let program = file.decompressed_content().expect("inflates");
        let face = Face::parse(&program, 0).expect("the subset is a font");
        // .notdef, the 11 distinct characters and the parts of composite glyphs (Ş is an S
        // and a cedilla); the original has thousands.
        assert!(
            (12..20).contains(&face.number_of_glyphs()),
            "{}",
            face.number_of_glyphs()
        );
        assert!(program.len() < 12_000, "{} bytes", program.len());
        assert!(Font::Bold.face().number_of_glyphs() > 2_000);
    }
}
