//! Rendering a [`Decision`] as TwiML or TeXML.
//!
//! The two dialects differ only in `<Stream>`: Telnyx sends the agent's audio back to the
//! caller only with `bidirectionalMode="rtp"` (its default, `mp3`, takes whole audio files and
//! cannot carry a conversation), and the codecs are pinned to PCMU so that an agent receives
//! 8 kHz mu-law from both carriers, as Twilio always sends.
//!
//! Sources: Twilio's `<Stream>`, `<Parameter>` and `<Sip>` pages (custom SIP headers go in the
//! URI after `?`, must start with `X-` but not `X-Twilio`, and the header part must be shorter
//! than 1024 characters: warnings 32113 and 21227). Telnyx's `<Stream>` page documents `url`,
//! `track`, `name`, `codec` and the bidirectional attributes. Two Telnyx behaviours are taken from
//! public TeXML code rather than from Telnyx's pages and should be checked against a live
//! account: `<Parameter>` children of `<Stream>` reaching the socket's start message, and URI
//! headers in `<Sip>` becoming INVITE headers.

use crate::decision::{Action, Decision, Message, Params, is_sip_plain, sip_headers};
use crate::input::Dialect;
use crate::xml::XmlWriter;

/// Room for the fixed markup of the largest document (a stream with eight parameters).
const MARKUP_BUDGET: usize = 512;

impl Decision<'_> {
    /// Renders the document for `dialect` into a new string sized for it.
    #[must_use]
    pub fn render(&self, dialect: Dialect) -> String {
        let mut out = String::with_capacity(self.capacity_hint());
        self.render_into(dialect, &mut out);
        out
    }

    /// Appends the document for `dialect` to `out`, so that a caller may reuse one buffer.
    pub fn render_into(&self, dialect: Dialect, out: &mut String) {
        let mut xml = XmlWriter::document(out);
        xml.open("Response").content();
        match self.action {
            Action::Stream { url, params } => {
                xml.open("Connect")
                    .content()
                    .open("Stream")
                    .attr("url", url.as_str());
                if dialect == Dialect::TeXML {
                    xml.attr("bidirectionalMode", "rtp")
                        .attr("bidirectionalCodec", "PCMU")
                        .attr("codec", "PCMU");
                }
                xml.content();
                for (name, value) in stream_parameters(&params) {
                    xml.open("Parameter")
                        .attr("name", name)
                        .attr("value", value)
                        .empty();
                }
                xml.close("Stream").close("Connect");
            }
            Action::Sip { uri, params } => {
                xml.open("Dial")
                    .content()
                    .open("Sip")
                    .content()
                    .text(uri.as_str());
                // Append the call headers piece by piece: escaping is per character, so the
                // pieces escape to the same text as the whole URI would.
                let mut separator = match uri.headers() {
                    None => "?",
                    Some("") => "",
                    Some(_) => "&",
                };
                for (name, value) in sip_headers(&uri, &params) {
                    xml.text(separator).text(name).text("=");
                    write_percent_encoded(&mut xml, value);
                    separator = "&";
                }
                xml.close("Sip").close("Dial");
            }
            Action::Dial { number, .. } => {
                xml.element("Dial", number.as_str());
            }
            Action::Say(message) => {
                write_message(&mut xml, message);
            }
        }
        xml.close("Response");
    }

    /// An upper bound, in the common case, of the rendered length: one allocation per call.
    fn capacity_hint(&self) -> usize {
        let values = match self.action {
            Action::Stream { url, params } => {
                url.as_str().len()
                    + stream_parameters(&params)
                        .map(|(_, value)| value.len())
                        .sum::<usize>()
            }
            // Percent-encoding triples at worst; ids are mostly plain.
            Action::Sip { uri, params } => {
                uri.as_str().len()
                    + sip_headers(&uri, &params)
                        .map(|(_, value)| value.len() * 3)
                        .sum::<usize>()
            }
            Action::Dial { number, .. } => number.as_str().len(),
            Action::Say(message) => message.text().len(),
        };
        // Escaping grows a value; an eighth more covers the odd quote or ampersand.
        MARKUP_BUDGET + values + values / 8
    }
}

/// The `<Parameter>`s of a media stream, in a fixed order. Twilio drops a stream URL's query
/// string, so these are the only way to hand values to the agent. The token is the one the
/// gateway minted for this call: never a carrier credential.
fn stream_parameters<'a>(params: &Params<'a>) -> impl Iterator<Item = (&'static str, &'a str)> {
    let required = [
        ("number_id", params.number_id),
        ("call_id", params.call_id),
        ("agent_id", params.agent_id),
        ("token", params.token),
        ("provider", params.provider.as_str()),
    ];
    let optional = [
        ("from", params.from),
        ("to", params.to),
        ("forwarded_from", params.forwarded_from),
    ];
    required.into_iter().chain(
        optional
            .into_iter()
            .filter_map(|(name, value)| value.map(|value| (name, value))),
    )
}

fn write_percent_encoded(xml: &mut XmlWriter<'_>, value: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut run_start = 0;
    for (at, b) in value.bytes().enumerate() {
        if !is_sip_plain(b) {
            xml.text(&value[run_start..at]);
            let escaped = [b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]];
            // The three bytes are ASCII, so this is always valid UTF-8.
            xml.text(std::str::from_utf8(&escaped).unwrap_or_default());
            run_start = at + 1;
        }
    }
    xml.text(&value[run_start..]);
}

fn write_message(xml: &mut XmlWriter<'_>, message: Message) {
    xml.element("Say", message.text()).open("Hangup").empty();
}

/// The document for the number's fallback URL (Twilio `VoiceFallbackUrl`, Telnyx
/// `voice_fallback_url`), which the carrier fetches when the gateway's voice URL fails or
/// errors: an apology, then hang up. It depends on no call data, so it can be served even when
/// nothing else works, and it is the same in both dialects (`<Say>` and `<Hangup/>` are common
/// to TwiML and TeXML).
#[must_use]
pub fn fallback_document() -> String {
    let mut out = String::with_capacity(MARKUP_BUDGET);
    let mut xml = XmlWriter::document(&mut out);
    xml.open("Response").content();
    write_message(&mut xml, Message::Apology);
    xml.close("Response");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_encoding_escapes_everything_but_plain_bytes() {
        let mut out = String::new();
        let mut xml = XmlWriter::document(&mut out);
        write_percent_encoded(&mut xml, "v3:a/b+c_d-e.f~g&h");
        assert_eq!(
            out,
            r#"<?xml version="1.0" encoding="UTF-8"?>v3%3Aa%2Fb%2Bc_d-e.f~g%26h"#
        );
    }
}
