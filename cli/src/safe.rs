//! Untrusted text made safe for a terminal.
//!
//! Job names, commands, reasons, server messages and job output come from other people
//! and other programs. Printed raw, an ESC could move the cursor, rewrite earlier lines,
//! change the window title or worse; a BEL rings; a NUL or a Unicode direction override
//! hides what follows. So control characters (C0 but newline and tab, DEL, C1) and the
//! bidirectional controls are shown escaped and visible instead: `\x1b`, `\x07`,
//! `\u{202e}`. Bytes that are not UTF-8 show as `\xNN`.

use berth_proto::model::is_unsafe_char;

/// Appends the visible escape of `c`: `\x1b` below U+0100, else `\u{202e}`.
fn push_escaped(out: &mut String, c: char) {
    use std::fmt::Write;
    let code = u32::from(c);
    if code < 0x100 {
        let _ = write!(out, "\\x{code:02x}");
    } else {
        let _ = write!(out, "\\u{{{code:x}}}");
    }
}

/// Text for a message or a details value: newlines and tabs kept, every other control
/// character escaped.
pub fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if is_unsafe_char(c) && c != '\n' && c != '\t' {
            push_escaped(&mut out, c);
        } else {
            out.push(c);
        }
    }
    out
}

/// Text for a table cell: on one line (runs of newlines, carriage returns and tabs
/// become one space), every other control character escaped.
pub fn cell(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut gap = false;
    for c in s.chars() {
        if matches!(c, '\n' | '\r' | '\t') {
            gap = !out.is_empty();
            continue;
        }
        if gap {
            out.push(' ');
            gap = false;
        }
        if is_unsafe_char(c) {
            push_escaped(&mut out, c);
        } else {
            out.push(c);
        }
    }
    out
}

/// Text for a CSV cell: newlines, carriage returns and tabs kept (CSV quotes them),
/// every other control character escaped.
pub fn csv(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if is_unsafe_char(c) && !matches!(c, '\n' | '\r' | '\t') {
            push_escaped(&mut out, c);
        } else {
            out.push(c);
        }
    }
    out
}

/// Escapes a stream of bytes (a job's output) chunk by chunk: a UTF-8 character split
/// across two chunks is kept whole; newlines and tabs pass, other controls and
/// invalid bytes are escaped.
#[derive(Debug, Default)]
pub struct Escaper {
    /// The start of a UTF-8 character whose end is in the next chunk.
    pending: Vec<u8>,
}

impl Escaper {
    /// Escapes `bytes`, keeping an incomplete character at the end for the next call.
    pub fn push(&mut self, bytes: &[u8]) -> String {
        let mut input = std::mem::take(&mut self.pending);
        input.extend_from_slice(bytes);
        let mut out = String::with_capacity(input.len());
        let mut rest = input.as_slice();
        loop {
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    out.push_str(&text(s));
                    break;
                }
                Err(e) => {
                    let (valid, after) = rest.split_at(e.valid_up_to());
                    // The prefix is valid UTF-8 by the error's own account.
                    out.push_str(&text(std::str::from_utf8(valid).unwrap_or_default()));
                    match e.error_len() {
                        None => {
                            self.pending = after.to_vec();
                            break;
                        }
                        Some(n) => {
                            for b in &after[..n] {
                                push_escaped(&mut out, char::from(*b));
                            }
                            rest = &after[n..];
                        }
                    }
                }
            }
        }
        out
    }

    /// Escapes what is left: an incomplete character at the very end of the stream.
    pub fn finish(&mut self) -> String {
        let mut out = String::new();
        for b in std::mem::take(&mut self.pending) {
            push_escaped(&mut out, char::from(b));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_bell_and_nul_are_shown_visibly() {
        assert_eq!(text("a\u{1b}[2Jb\u{7}c\u{0}"), r"a\x1b[2Jb\x07c\x00");
        assert_eq!(text("del\u{7f} csi\u{9b}"), r"del\x7f csi\x9b");
        assert_eq!(text("rtl\u{202e}txt"), r"rtl\u{202e}txt");
        assert_eq!(text("two\nlines\tand tab"), "two\nlines\tand tab");
        assert_eq!(text("cr\rhidden"), r"cr\x0dhidden");
        assert_eq!(text("부산 ok"), "부산 ok");
    }

    #[test]
    fn cells_stay_on_one_line() {
        assert_eq!(cell("line one\nline two"), "line one line two");
        assert_eq!(cell("a\r\n\tb"), "a b");
        assert_eq!(cell("\nlead"), "lead");
        assert_eq!(cell("x\u{1b}]0;title\u{7}"), r"x\x1b]0;title\x07");
    }

    #[test]
    fn csv_keeps_line_breaks_for_quoting() {
        assert_eq!(csv("a\nb\u{1b}"), "a\nb\\x1b");
    }

    #[test]
    fn the_stream_escaper_keeps_split_characters_whole() {
        let mut e = Escaper::default();
        let han = "한".as_bytes();
        assert_eq!(e.push(&[b'a', han[0]]), "a");
        assert_eq!(e.push(&han[1..]), "한");
        assert_eq!(e.push(b"\x1b[31mred\x07\n"), "\\x1b[31mred\\x07\n");
        assert_eq!(e.push(&[0xff, b'z']), "\\xffz");
        assert_eq!(e.push(&[0xe2, 0x80]), "");
        assert_eq!(e.finish(), "\\xe2\\x80");
        assert_eq!(e.finish(), "");
    }
}
