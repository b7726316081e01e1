//! What an uploaded PDF carries besides pages: the room passes a citizen's PDF on to the clerk,
//! whose reader would run what it contains. A document for an authority needs no script, no
//! embedded file and no action that starts something; a PDF that has one is refused, and so is
//! one whose compressed streams inflate past a bound (a decompression bomb), before anything is
//! stored.
//!
//! The check reads names, not a parsed object tree: a reader repairs broken files and finds
//! objects a strict parser would not, so every name in the file counts, in the raw bytes and in
//! every stream that inflates (object streams hide dictionaries there), with `#xx` escapes
//! decoded (`/J#53` is `/JS`).

use std::io::Read as _;

/// Names that mean active content: scripts, actions that launch, submit or import, embedded
/// files and media, XFA forms, and additional actions (run on open, close, focus...).
const ACTIVE: [&[u8]; 14] = [
    b"JavaScript",
    b"JS",
    b"AA",
    b"Launch",
    b"SubmitForm",
    b"ImportData",
    b"GoToE",
    b"EmbeddedFile",
    b"EmbeddedFiles",
    b"RichMedia",
    b"XFA",
    b"Rendition",
    b"Movie",
    b"Sound",
];

/// Why a PDF is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PdfRefusal {
    /// It carries the named kind of active content (one of [`ACTIVE`]).
    ActiveContent(&'static str),
    /// Its streams inflate to more than the bound.
    Bomb,
}

/// Checks `bytes` (a file that starts with `%PDF-`) for active content, inflating at most
/// `max_inflated` bytes of its Flate streams in all.
///
/// Names are read outside streams and inside object streams: stream data is otherwise pages,
/// fonts and pictures, whose bytes would now and then spell a name by chance, and a reader
/// takes dictionaries from nowhere else. Every Flate stream counts towards the bound, pictures
/// too, since a viewer inflates them all.
pub fn inspect_pdf(bytes: &[u8], max_inflated: usize) -> Result<(), PdfRefusal> {
    let mut budget = max_inflated;
    let mut outside = 0;
    for stream in streams(bytes) {
        active_name(&bytes[outside..stream.data.start])?;
        outside = stream.data.end;
        let data = &bytes[stream.data.clone()];
        let Some(inflated) = inflate(data, &mut budget)? else {
            continue; // not Flate (a JPEG, another filter): nothing more to read
        };
        if names(&bytes[stream.dict.clone()]).any(|n| n == b"ObjStm") {
            active_name(&inflated)?;
        }
    }
    active_name(&bytes[outside..])
}

/// The first active name in `bytes`, as an error.
fn active_name(bytes: &[u8]) -> Result<(), PdfRefusal> {
    for name in names(bytes) {
        if let Some(active) = ACTIVE.iter().find(|a| **a == name.as_slice()) {
            // Every entry is ASCII.
            return Err(PdfRefusal::ActiveContent(
                std::str::from_utf8(active).unwrap_or("JavaScript"),
            ));
        }
    }
    Ok(())
}

/// Every name (`/Something`) in `bytes`, decoded.
fn names(bytes: &[u8]) -> impl Iterator<Item = Vec<u8>> {
    let mut i = 0;
    std::iter::from_fn(move || {
        while i < bytes.len() && bytes[i] != b'/' {
            i += 1;
        }
        if i >= bytes.len() {
            return None;
        }
        let start = i + 1;
        let mut end = start;
        while end < bytes.len() && regular(bytes[end]) {
            end += 1;
        }
        i = end;
        Some(decode_name(&bytes[start..end]))
    })
}

/// A PDF "regular character": neither white space nor a delimiter.
fn regular(b: u8) -> bool {
    !matches!(
        b,
        b'\0'
            | b'\t'
            | b'\n'
            | b'\x0c'
            | b'\r'
            | b' '
            | b'('
            | b')'
            | b'<'
            | b'>'
            | b'['
            | b']'
            | b'{'
            | b'}'
            | b'/'
            | b'%'
    )
}

/// A name's bytes with `#xx` escapes decoded.
fn decode_name(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'#'
            && let Some(byte) = raw
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(raw[i]);
        i += 1;
    }
    out
}

/// Where a stream is: its dictionary (from the `obj` before it) and its data.
struct Stream {
    dict: std::ops::Range<usize>,
    data: std::ops::Range<usize>,
}

/// Every `stream ... endstream` in `bytes` (an unterminated one runs to the end).
fn streams(bytes: &[u8]) -> impl Iterator<Item = Stream> {
    let mut from = 0;
    std::iter::from_fn(move || {
        loop {
            let at = from + find(&bytes[from..], b"stream")?;
            let keyword_end = at + b"stream".len();
            let dict_start = bytes[from..at]
                .windows(3)
                .rposition(|w| w == b"obj")
                .map_or(from, |p| from + p + 3);
            from = keyword_end;
            // `endstream` contains `stream`: skip it.
            if at >= 3 && &bytes[at - 3..at] == b"end" {
                continue;
            }
            let rest = &bytes[keyword_end..];
            let eol = if rest.starts_with(b"\r\n") {
                2
            } else if rest.starts_with(b"\n") || rest.starts_with(b"\r") {
                1
            } else {
                continue; // the word in a string or a name, not the keyword
            };
            let start = keyword_end + eol;
            let end = find(&bytes[start..], b"endstream").map_or(bytes.len(), |e| start + e);
            from = end;
            return Some(Stream {
                dict: dict_start..at,
                data: start..end,
            });
        }
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// `data` inflated as zlib, taking from `budget`: `None` when it is not zlib at all, the
/// bomb refusal when it would inflate past what is left.
fn inflate(data: &[u8], budget: &mut usize) -> Result<Option<Vec<u8>>, PdfRefusal> {
    // A zlib header: deflate, and a check value that divides by 31.
    let zlib = data.len() >= 2
        && data[0] & 0x0f == 8
        && (u16::from(data[0]) << 8 | u16::from(data[1])) % 31 == 0;
    if !zlib {
        return Ok(None);
    }
    let mut out = Vec::new();
    let limit = u64::try_from(*budget).unwrap_or(u64::MAX).saturating_add(1);
    // A stream that breaks off inflates as far as it goes: a reader shows that much too.
    let _ = flate2::read::ZlibDecoder::new(data)
        .take(limit)
        .read_to_end(&mut out);
    if out.len() > *budget {
        return Err(PdfRefusal::Bomb);
    }
    *budget -= out.len();
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    const MAX: usize = 64 * 1024 * 1024;

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(data).expect("in memory");
        e.finish().expect("in memory")
    }

    fn pdf_with_stream(stream: &[u8]) -> Vec<u8> {
        let mut pdf = b"%PDF-1.7\n1 0 obj << /Type /ObjStm /N 1 /First 4 /Filter /FlateDecode \
            /Length 0 >>\nstream\n"
            .to_vec();
        pdf.extend_from_slice(stream);
        pdf.extend_from_slice(b"\nendstream\nendobj\ntrailer << /Root 2 0 R >>\n%%EOF\n");
        pdf
    }

    #[test]
    fn a_plain_document_passes_and_scripts_actions_and_files_do_not() {
        let plain = b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R /OpenAction [3 0 R /Fit] \
            >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n";
        assert_eq!(inspect_pdf(plain, MAX), Ok(()));
        for (pdf, what) in [
            (
                &b"%PDF-1.4\n1 0 obj << /OpenAction << /S /JavaScript /JS (app.alert(1)) >> >>"[..],
                "JavaScript",
            ),
            (
                &b"%PDF-1.4\n1 0 obj << /S /Launch /F (cmd.exe) >>"[..],
                "Launch",
            ),
            (
                &b"%PDF-1.4\n<< /Names << /EmbeddedFiles 4 0 R >> >>"[..],
                "EmbeddedFiles",
            ),
            (&b"%PDF-1.4\n<< /AcroForm << /XFA 5 0 R >> >>"[..], "XFA"),
            (&b"%PDF-1.4\n<< /AA << /O 6 0 R >> >>"[..], "AA"),
            // Escaped names are the same names.
            (
                &b"%PDF-1.4\n<< /S /Java#53cript /J#53 (x) >>"[..],
                "JavaScript",
            ),
        ] {
            assert_eq!(
                inspect_pdf(pdf, MAX),
                Err(PdfRefusal::ActiveContent(what)),
                "{}",
                String::from_utf8_lossy(pdf)
            );
        }
    }

    #[test]
    fn a_script_hidden_in_a_compressed_object_stream_is_found() {
        let hidden = zlib(b"3 0 << /Type /Action /S /JavaScript /JS (this.print()) >>");
        assert_eq!(
            inspect_pdf(&pdf_with_stream(&hidden), MAX),
            Err(PdfRefusal::ActiveContent("JavaScript"))
        );
        let harmless = zlib(b"3 0 << /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>");
        assert_eq!(inspect_pdf(&pdf_with_stream(&harmless), MAX), Ok(()));
        // A picture's data is not read for names, compressed or not, even where its bytes
        // spell one.
        assert_eq!(
            inspect_pdf(&pdf_with_stream(b"\xff\xd8\xff/JS "), MAX),
            Ok(())
        );
        let picture = b"%PDF-1.4\n4 0 obj << /Type /XObject /Subtype /Image /Filter \
            /FlateDecode >>\nstream\n";
        let mut image = picture.to_vec();
        image.extend_from_slice(&zlib(b"\x01\x02/JS \x03/AA\x00"));
        image.extend_from_slice(b"\nendstream\nendobj\n%%EOF\n");
        assert_eq!(inspect_pdf(&image, MAX), Ok(()));
    }

    #[test]
    fn a_stream_that_inflates_past_the_bound_is_a_bomb() {
        // 16 MiB of zeros compress to about 16 KiB.
        let bomb = zlib(&vec![0u8; 16 * 1024 * 1024]);
        assert!(bomb.len() < 64 * 1024, "{}", bomb.len());
        assert_eq!(
            inspect_pdf(&pdf_with_stream(&bomb), 8 * 1024 * 1024),
            Err(PdfRefusal::Bomb)
        );
        // Two streams share one bound.
        let half = zlib(&vec![0u8; 5 * 1024 * 1024]);
        let mut two = pdf_with_stream(&half);
        two.extend_from_slice(&pdf_with_stream(&half));
        assert_eq!(inspect_pdf(&two, 8 * 1024 * 1024), Err(PdfRefusal::Bomb));
        assert_eq!(inspect_pdf(&two, 16 * 1024 * 1024), Ok(()));
    }
}
