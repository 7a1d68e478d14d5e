//! Languages and how one is chosen.

/// A language Berth speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Lang {
    /// English (the default).
    #[default]
    En,
    /// Korean.
    Ko,
}

impl Lang {
    /// Every language, default first.
    pub const ALL: [Lang; 2] = [Lang::En, Lang::Ko];

    /// The BCP 47 code (`en`, `ko`), as stored in settings and sent in headers.
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Ko => "ko",
        }
    }

    /// The language's own name, for pickers.
    pub fn native_name(self) -> &'static str {
        match self {
            Lang::En => "English",
            Lang::Ko => "한국어",
        }
    }

    /// A language from a code or locale: `ko`, `ko-KR`, `ko_KR.UTF-8`, `EN`.
    pub fn parse(s: &str) -> Option<Lang> {
        let primary = s
            .trim()
            .split(['-', '_', '.', '@'])
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        match primary.as_str() {
            "en" => Some(Lang::En),
            "ko" => Some(Lang::Ko),
            _ => None,
        }
    }

    /// The preferred language Berth speaks from an `Accept-Language` header
    /// (`ko-KR,ko;q=0.9,en;q=0.8`): the highest weight wins, the first on a tie; `q=0`
    /// means "not this one".
    pub fn from_accept_language(header: &str) -> Option<Lang> {
        let mut best: Option<(Lang, u32)> = None;
        for part in header.split(',') {
            let mut pieces = part.split(';');
            let Some(lang) = pieces.next().and_then(Lang::parse) else {
                continue;
            };
            let q = pieces
                .find_map(|p| p.trim().strip_prefix("q="))
                .map_or(1000, quality);
            if q > 0 && best.is_none_or(|(_, b)| q > b) {
                best = Some((lang, q));
            }
        }
        best.map(|(l, _)| l)
    }

    /// The language of the process's locale: `LC_ALL`, then `LC_MESSAGES`, then `LANG`
    /// (the first that is set and not empty decides, as in POSIX).
    pub fn from_env() -> Option<Lang> {
        Lang::from_locale_vars(|k| std::env::var(k).ok())
    }

    /// [`Lang::from_env`] over any source of variables.
    pub fn from_locale_vars(get: impl Fn(&str) -> Option<String>) -> Option<Lang> {
        ["LC_ALL", "LC_MESSAGES", "LANG"]
            .iter()
            .find_map(|k| get(k).filter(|v| !v.is_empty()))
            .and_then(|v| Lang::parse(&v))
    }

    /// The first language that is known, in the order the product gives: the user's
    /// setting, then `Accept-Language` (portal, API) or the locale (CLI), then English.
    pub fn negotiate(choices: impl IntoIterator<Item = Option<Lang>>) -> Lang {
        choices.into_iter().flatten().next().unwrap_or_default()
    }
}

/// A `q=` weight in thousandths (`0.8` is 800); malformed weights count as 0.
fn quality(s: &str) -> u32 {
    let s = s.trim();
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    let whole: u32 = match whole {
        "0" => 0,
        "1" => 1000,
        _ => return 0,
    };
    let frac: String = frac.chars().chain("000".chars()).take(3).collect();
    let frac: u32 = frac.parse().unwrap_or(0);
    (whole + frac).min(1000)
}

impl std::fmt::Display for Lang {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_locales_parse() {
        assert_eq!(Lang::parse("ko"), Some(Lang::Ko));
        assert_eq!(Lang::parse("ko_KR.UTF-8"), Some(Lang::Ko));
        assert_eq!(Lang::parse("EN-us"), Some(Lang::En));
        assert_eq!(Lang::parse("C.UTF-8"), None);
        assert_eq!(Lang::parse("fr"), None);
    }

    #[test]
    fn accept_language_takes_the_highest_weight_berth_speaks() {
        assert_eq!(Lang::from_accept_language("ko"), Some(Lang::Ko));
        assert_eq!(
            Lang::from_accept_language("fr-FR,ko;q=0.9,en;q=0.8"),
            Some(Lang::Ko)
        );
        assert_eq!(
            Lang::from_accept_language("ko;q=0.5, en;q=0.7"),
            Some(Lang::En)
        );
        assert_eq!(Lang::from_accept_language("en, ko"), Some(Lang::En));
        assert_eq!(Lang::from_accept_language("ko;q=0, de"), None);
        assert_eq!(Lang::from_accept_language(""), None);
    }

    #[test]
    fn the_locale_follows_posix_precedence() {
        let vars = |all: &'static str, lang: &'static str| {
            move |k: &str| match k {
                "LC_ALL" => Some(all.to_owned()),
                "LANG" => Some(lang.to_owned()),
                _ => None,
            }
        };
        assert_eq!(
            Lang::from_locale_vars(vars("", "ko_KR.UTF-8")),
            Some(Lang::Ko)
        );
        assert_eq!(
            Lang::from_locale_vars(vars("en_US.UTF-8", "ko_KR.UTF-8")),
            Some(Lang::En)
        );
        assert_eq!(Lang::from_locale_vars(vars("", "C")), None);
    }

    #[test]
    fn negotiation_takes_the_first_known_choice_then_english() {
        assert_eq!(Lang::negotiate([None, Some(Lang::Ko)]), Lang::Ko);
        assert_eq!(Lang::negotiate([Some(Lang::En), Some(Lang::Ko)]), Lang::En);
        assert_eq!(Lang::negotiate([None, None]), Lang::En);
    }
}
