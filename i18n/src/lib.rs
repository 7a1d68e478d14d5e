//! Berth's one message catalogue: every user-facing string of the web portal, the CLI and
//! the API's errors, in English and Korean.
//!
//! Messages are enum variants ([`portal::Msg`], ...), so a missing key is a compile
//! error, and the catalogue macro takes both languages for each, so a key without a
//! translation does not compile either; a test checks that no text is empty and that
//! both languages use the same `{placeholders}`.
//!
//! The language is chosen by, in order: the user's setting, `Accept-Language` (portal and
//! API), `LANG` (CLI), English ([`Lang::negotiate`]). Only words change with the language:
//! JSON field names, enum values and CSV column names never do.

pub mod api;
pub mod cli;
mod lang;
pub mod portal;

pub use lang::Lang;

/// One message of a catalogue: its stable key and its text in each language.
pub trait Message: Copy + 'static {
    /// The stable key (the variant's name), for tests and logs.
    fn key(self) -> &'static str;
    /// The text in `lang`.
    fn text(self, lang: Lang) -> &'static str;
    /// Every message of this catalogue.
    fn all() -> &'static [Self];
}

/// The text of `msg` in `lang`.
pub fn t<M: Message>(lang: Lang, msg: M) -> &'static str {
    msg.text(lang)
}

/// The text of `msg` in `lang` with each `{name}` replaced by its argument.
/// A placeholder without an argument is left as it is (a test keeps that from happening).
pub fn tf<M: Message>(lang: Lang, msg: M, args: &[(&str, &dyn std::fmt::Display)]) -> String {
    fill(msg.text(lang), args)
}

/// Replaces each `{name}` in `text` with its argument.
pub fn fill(text: &str, args: &[(&str, &dyn std::fmt::Display)]) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) => {
                let name = &after[..close];
                match args.iter().find(|(n, _)| *n == name) {
                    Some((_, v)) => out.push_str(&v.to_string()),
                    None => {
                        out.push('{');
                        out.push_str(name);
                        out.push('}');
                    }
                }
                rest = &after[close + 1..];
            }
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// The `{placeholders}` of a text, sorted.
pub fn placeholders(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else { break };
        out.push(&after[..close]);
        rest = &after[close + 1..];
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Declares a catalogue: an enum `Msg` whose variants each carry an English and a
/// Korean text.
#[macro_export]
macro_rules! catalogue {
    ($(#[$m:meta])* $vis:vis enum $name:ident { $($key:ident => $en:literal, $ko:literal;)+ }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[allow(missing_docs)]
        $vis enum $name { $($key),+ }

        impl $crate::Message for $name {
            fn key(self) -> &'static str {
                match self { $($name::$key => stringify!($key)),+ }
            }
            fn text(self, lang: $crate::Lang) -> &'static str {
                match (self, lang) {
                    $(($name::$key, $crate::Lang::En) => $en,
                      ($name::$key, $crate::Lang::Ko) => $ko,)+
                }
            }
            fn all() -> &'static [Self] {
                &[$($name::$key),+]
            }
        }
    };
}

/// Checks one catalogue: every key has a non-empty text in every language, and the
/// languages use the same placeholders. Returns the problems found.
pub fn check<M: Message>() -> Vec<String> {
    let mut problems = Vec::new();
    let mut keys = std::collections::HashSet::new();
    for &m in M::all() {
        if !keys.insert(m.key()) {
            problems.push(format!("{}: listed twice", m.key()));
        }
        let en = placeholders(m.text(Lang::En));
        for lang in Lang::ALL {
            let text = m.text(lang);
            if text.trim().is_empty() {
                problems.push(format!("{}: no {} text", m.key(), lang.code()));
            }
            if placeholders(text) != en {
                problems.push(format!(
                    "{}: {} placeholders {:?} differ from en {:?}",
                    m.key(),
                    lang.code(),
                    placeholders(text),
                    en
                ));
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_has_both_languages_and_the_same_placeholders() {
        let mut problems = check::<portal::Msg>();
        problems.extend(check::<cli::Msg>());
        problems.extend(check::<api::Msg>());
        assert!(problems.is_empty(), "{}", problems.join("\n"));
        assert!(portal::Msg::all().len() > 50);
    }

    #[test]
    fn placeholders_are_filled_by_name() {
        assert_eq!(
            fill("{n} of {total} free", &[("total", &8), ("n", &3)]),
            "3 of 8 free"
        );
        assert_eq!(fill("{missing} stays", &[]), "{missing} stays");
        assert_eq!(fill("no brace {", &[]), "no brace {");
        assert_eq!(placeholders("{b} {a} {b}"), ["a", "b"]);
    }

    catalogue! {
        enum Broken {
            Fine => "{a} ok", "{a} 좋음";
            Empty => "text", " ";
            Mismatch => "{count} left", "{n} 남음";
        }
    }

    #[test]
    fn the_check_finds_missing_texts_and_placeholder_mismatches() {
        let problems = check::<Broken>();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].starts_with("Empty: no ko text"));
        assert!(problems[1].starts_with("Mismatch: ko placeholders"));
    }
}
