//! A tiny XML writer: just what a TwiML or TeXML document needs.
//!
//! Element and attribute names are `&'static str` chosen by this crate, so only values are
//! escaped. Every value goes through [`escape_into`], which makes any Rust string safe in an
//! attribute value or a text node of an XML 1.0 document: the five markup characters become
//! entities, characters that XML 1.0 forbids are dropped, and white space that a parser would
//! otherwise normalise away is written as a character reference so that the value the carrier
//! reads is the value we wrote.

/// Where an escaped value goes: the rules differ only for white space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Context {
    /// An attribute value in double quotes.
    Attribute,
    /// Character data between tags.
    Text,
}

/// The bytes [`escape_into`] looks at: the C0 controls, the five markup characters, and `EF`,
/// the first byte of U+FFFE and U+FFFF. Every other byte is copied as it is.
const SPECIAL: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = true;
        b += 1;
    }
    table[b'&' as usize] = true;
    table[b'<' as usize] = true;
    table[b'>' as usize] = true;
    table[b'"' as usize] = true;
    table[b'\'' as usize] = true;
    table[0xef] = true;
    table
};

/// Appends `value` to `out`, escaped for `context`.
pub(crate) fn escape_into(out: &mut String, value: &str, context: Context) {
    // Scan bytes, not chars: every character that needs work is ASCII except U+FFFE and
    // U+FFFF (UTF-8 `EF BF BE` and `EF BF BF`), and runs of ordinary bytes are copied in one
    // go. Most values (ids, E.164 numbers, URLs, the call token) need no escaping at all, and
    // this is the hot path of every inbound call: ordinary bytes are skipped by a table lookup
    // each, and only the bytes in [`SPECIAL`] reach the `match`. Slices below always start and
    // end next to an ASCII byte or a whole three-byte character, so they fall on character
    // boundaries.
    let bytes = value.as_bytes();
    let attribute = context == Context::Attribute;
    let mut run_start = 0;
    let mut at = 0;
    while let Some(skip) = bytes
        .get(at..)
        .and_then(|rest| rest.iter().position(|&b| SPECIAL[usize::from(b)]))
    {
        at += skip;
        let Some(&b) = bytes.get(at) else { break };
        let (replacement, width): (Option<&str>, usize) = match b {
            b'&' => (Some("&amp;"), 1),
            b'<' => (Some("&lt;"), 1),
            // `>` is legal in attributes and text except in `]]>`; escaping it always is
            // simpler than tracking what came before.
            b'>' => (Some("&gt;"), 1),
            b'"' => (Some("&quot;"), 1),
            b'\'' => (Some("&apos;"), 1),
            // A parser turns a carriage return into a line feed (end-of-line handling), and
            // turns tab, line feed and carriage return in an attribute into spaces (attribute
            // value normalisation). Character references survive both.
            b'\r' => (Some("&#13;"), 1),
            b'\n' if attribute => (Some("&#10;"), 1),
            b'\t' if attribute => (Some("&#9;"), 1),
            b'\n' | b'\t' => (None, 1),
            // Every other C0 control is forbidden in XML 1.0: drop it.
            0x00..=0x1f => (Some(""), 1),
            0xef if bytes.get(at + 1) == Some(&0xbf)
                && matches!(bytes.get(at + 2), Some(0xbe | 0xbf)) =>
            {
                (Some(""), 3)
            }
            _ => (None, 1),
        };
        if let Some(replacement) = replacement {
            out.push_str(value.get(run_start..at).unwrap_or_default());
            out.push_str(replacement);
            run_start = at + width;
        }
        at += width;
    }
    out.push_str(value.get(run_start..).unwrap_or_default());
}

/// Writes elements into a borrowed `String`.
#[derive(Debug)]
pub(crate) struct XmlWriter<'o> {
    out: &'o mut String,
}

impl<'o> XmlWriter<'o> {
    /// Starts a document with the XML declaration both carriers show in their examples.
    pub(crate) fn document(out: &'o mut String) -> Self {
        out.push_str(r#"<?xml version="1.0" encoding="UTF-8"?>"#);
        Self { out }
    }

    /// Writes `<name` and leaves the tag open for attributes.
    pub(crate) fn open(&mut self, name: &'static str) -> &mut Self {
        self.out.push('<');
        self.out.push_str(name);
        self
    }

    /// Writes ` name="value"` with the value escaped.
    pub(crate) fn attr(&mut self, name: &'static str, value: &str) -> &mut Self {
        self.out.push(' ');
        self.out.push_str(name);
        self.out.push_str("=\"");
        escape_into(self.out, value, Context::Attribute);
        self.out.push('"');
        self
    }

    /// Ends an open tag that will have content: `>`.
    pub(crate) fn content(&mut self) -> &mut Self {
        self.out.push('>');
        self
    }

    /// Ends an open tag as an empty element: `/>`.
    pub(crate) fn empty(&mut self) -> &mut Self {
        self.out.push_str("/>");
        self
    }

    /// Writes escaped character data. Several calls in a row write one text node, which is
    /// how a value is assembled from pieces without a temporary string.
    pub(crate) fn text(&mut self, value: &str) -> &mut Self {
        escape_into(self.out, value, Context::Text);
        self
    }

    /// Writes `</name>`.
    pub(crate) fn close(&mut self, name: &'static str) -> &mut Self {
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push('>');
        self
    }

    /// Writes `<name>text</name>`.
    pub(crate) fn element(&mut self, name: &'static str, text: &str) -> &mut Self {
        self.open(name).content().text(text).close(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether XML 1.0 allows `c` in a document at all (production `Char`). Rust strings cannot
    /// hold surrogates, so the only exclusions left are the C0 controls other than tab, line feed
    /// and carriage return, and the two non-characters U+FFFE and U+FFFF.
    const fn is_xml_char(c: char) -> bool {
        !matches!(c, '\u{0}'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}')
    }

    fn esc(value: &str, context: Context) -> String {
        let mut out = String::new();
        escape_into(&mut out, value, context);
        out
    }

    #[test]
    fn markup_characters_become_entities() {
        assert_eq!(
            esc(r#"a&b<c>d"e'f]]>"#, Context::Attribute),
            "a&amp;b&lt;c&gt;d&quot;e&apos;f]]&gt;"
        );
        assert_eq!(esc("]]>", Context::Text), "]]&gt;");
    }

    #[test]
    fn white_space_survives_parsing() {
        assert_eq!(esc("a\tb\nc\rd", Context::Attribute), "a&#9;b&#10;c&#13;d");
        assert_eq!(esc("a\tb\nc\rd", Context::Text), "a\tb\nc&#13;d");
    }

    #[test]
    fn characters_xml_forbids_are_dropped() {
        let hostile = "\u{0}a\u{1}\u{8}\u{b}\u{c}\u{e}\u{1f}b\u{fffe}\u{ffff}c";
        assert_eq!(esc(hostile, Context::Attribute), "abc");
        assert_eq!(esc(hostile, Context::Text), "abc");
    }

    #[test]
    fn every_character_is_kept_or_dropped_as_xml_1_0_says() {
        let mut buf = [0; 4];
        for c in (0..=0x10ffff).filter_map(char::from_u32) {
            if matches!(c, '&' | '<' | '>' | '"' | '\'' | '\t' | '\n' | '\r') {
                continue;
            }
            let text: &str = c.encode_utf8(&mut buf);
            let expected = if is_xml_char(c) { text } else { "" };
            assert_eq!(
                esc(text, Context::Attribute),
                expected,
                "U+{:04X}",
                u32::from(c)
            );
        }
    }

    #[test]
    fn other_unicode_passes_through() {
        // DEL, C1 controls and astral characters are legal XML 1.0 characters.
        let value = "é😀\u{7f}\u{85}\u{fffd}\u{10ffff}";
        assert_eq!(esc(value, Context::Attribute), value);
    }

    #[test]
    fn plain_values_are_copied() {
        assert_eq!(esc("+15551234567", Context::Text), "+15551234567");
        assert_eq!(esc("", Context::Text), "");
    }

    #[test]
    fn writer_builds_elements() {
        let mut out = String::new();
        XmlWriter::document(&mut out)
            .open("Response")
            .content()
            .open("Stream")
            .attr("url", "wss://x/\"y\"")
            .empty()
            .element("Say", "a < b")
            .close("Response");
        assert_eq!(
            out,
            r#"<?xml version="1.0" encoding="UTF-8"?><Response><Stream url="wss://x/&quot;y&quot;"/><Say>a &lt; b</Say></Response>"#
        );
    }
}
