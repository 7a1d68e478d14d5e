//! A small HTML builder that escapes every value it is given.
//!
//! Tag and attribute names are `&'static str` (written in this crate's code); every text
//! and attribute value passes through [`escape`]. There is no way to add raw markup from
//! a runtime string, so an untrusted string (a job's name, a log line, an error from the
//! database) cannot become markup.

/// Markup being built.
#[derive(Debug, Default)]
pub struct Html {
    buf: String,
}

/// Appends `s` to `out` with `& < > " '` escaped, for text and attribute values alike.
pub fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// `s` escaped for HTML text or a quoted attribute value.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    escape_into(&mut out, s);
    out
}

impl Html {
    /// Empty markup.
    pub fn new() -> Self {
        Html::default()
    }

    /// Escaped text.
    pub fn text(&mut self, s: &str) -> &mut Self {
        escape_into(&mut self.buf, s);
        self
    }

    fn open(&mut self, tag: &'static str, attrs: &[(&'static str, &str)]) {
        self.buf.push('<');
        self.buf.push_str(tag);
        for (name, value) in attrs {
            self.buf.push(' ');
            self.buf.push_str(name);
            self.buf.push_str("=\"");
            escape_into(&mut self.buf, value);
            self.buf.push('"');
        }
        self.buf.push('>');
    }

    /// An element with attributes and a body.
    pub fn el(
        &mut self,
        tag: &'static str,
        attrs: &[(&'static str, &str)],
        body: impl FnOnce(&mut Html),
    ) -> &mut Self {
        self.open(tag, attrs);
        body(self);
        self.buf.push_str("</");
        self.buf.push_str(tag);
        self.buf.push('>');
        self
    }

    /// An element holding only text.
    pub fn el_text(
        &mut self,
        tag: &'static str,
        attrs: &[(&'static str, &str)],
        text: &str,
    ) -> &mut Self {
        self.el(tag, attrs, |h| {
            h.text(text);
        })
    }

    /// A void element (`input`, `meta`, `link`, `br`).
    pub fn void(&mut self, tag: &'static str, attrs: &[(&'static str, &str)]) -> &mut Self {
        self.open(tag, attrs);
        self
    }

    /// The doctype, written once at the start of a page.
    pub fn doctype(&mut self) -> &mut Self {
        self.buf.push_str("<!doctype html>\n");
        self
    }

    /// The markup.
    pub fn finish(self) -> String {
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_attributes_are_escaped() {
        let mut h = Html::new();
        h.el("a", &[("href", "/x?a=1&b=\"2\"")], |h| {
            h.text("<script>alert('x')</script>");
        });
        assert_eq!(
            h.finish(),
            "<a href=\"/x?a=1&amp;b=&quot;2&quot;\">&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;</a>"
        );
    }

    #[test]
    fn void_elements_have_no_end_tag() {
        let mut h = Html::new();
        h.void("input", &[("name", "count"), ("value", "2")]);
        assert_eq!(h.finish(), "<input name=\"count\" value=\"2\">");
    }
}
