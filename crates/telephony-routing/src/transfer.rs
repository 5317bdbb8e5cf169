//! The document that transfers a live call: `<Dial>` to a phone number or a SIP URI, the same
//! in TwiML and TeXML. The carrier replaces the call's instructions with it (a redirect), so
//! the caller leaves the agent and is connected to the new party.

use crate::target::{E164, SipUri};
use crate::xml::XmlWriter;

/// Where a live call is transferred: a checked phone number or SIP URI, so the document
/// carries only values the API has validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransferTarget<'a> {
    /// Dial a phone number.
    Number(E164<'a>),
    /// Dial a SIP endpoint.
    Sip(SipUri<'a>),
}

impl TransferTarget<'_> {
    /// Renders `<Response><Dial><Number>…</Number></Dial></Response>` (or `<Sip>`), every value
    /// escaped. `<Dial>`, `<Number>` and `<Sip>` are common to TwiML and TeXML, so one document
    /// serves both carriers.
    #[must_use]
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(160);
        let mut xml = XmlWriter::document(&mut out);
        xml.open("Response").content().open("Dial").content();
        match self {
            Self::Number(number) => xml.element("Number", number.as_str()),
            Self::Sip(uri) => xml.element("Sip", uri.as_str()),
        };
        xml.close("Dial").close("Response");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_number_is_dialled() {
        let number = E164::parse("+14155550123").expect("e164");
        assert_eq!(
            TransferTarget::Number(number).render(),
            r#"<?xml version="1.0" encoding="UTF-8"?><Response><Dial><Number>+14155550123</Number></Dial></Response>"#
        );
    }

    #[test]
    fn a_sip_uri_is_escaped() {
        let uri = SipUri::parse("sip:desk@pbx.example.com?X-Ref=a&b").expect("sip");
        assert_eq!(
            TransferTarget::Sip(uri).render(),
            r#"<?xml version="1.0" encoding="UTF-8"?><Response><Dial><Sip>sip:desk@pbx.example.com?X-Ref=a&amp;b</Sip></Dial></Response>"#
        );
    }
}
