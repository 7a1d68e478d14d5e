//! The API's words: how its errors are framed, and the fixed messages and field reasons
//! the scheduler answers with.
//!
//! The scheduler's messages are still written as English text where they are raised; a
//! message or reason whose English text is in this catalogue is answered in the
//! client's language ([`find`]), anything else (texts with values in them) in English
//! until it moves here as a key of its own.

crate::catalogue! {
    /// Every API message with a Korean text.
    pub enum Msg {
        InvalidField => "invalid {field}: {reason}", "{field} 값이 올바르지 않습니다: {reason}";
        NotFound => "{what} not found", "{what}을(를) 찾을 수 없습니다";
        AlreadyExists => "{what} already exists", "{what}이(가) 이미 있습니다";
        StoreFailed => "the database failed; the scheduler's log has the details under reference {reference}", "데이터베이스 오류입니다. 스케줄러 로그의 참조 번호 {reference}에 자세한 내용이 있습니다";
        InternalFailed => "an internal error occurred; the scheduler's log has the details under reference {reference}", "내부 오류가 발생했습니다. 스케줄러 로그의 참조 번호 {reference}에 자세한 내용이 있습니다";
        MissingToken => "missing bearer token: run `berth login` or set BERTH_TOKEN", "베어러 토큰이 없습니다: `berth login`을 실행하거나 BERTH_TOKEN을 설정하세요";
        MalformedAuthorization => "malformed authorization header", "authorization 헤더 형식이 잘못되었습니다";
        BearerFormat => "authorization must be `Bearer <token>`", "authorization은 `Bearer <token>` 형식이어야 합니다";
        TokenExpired => "invalid token: it has expired", "유효하지 않은 토큰: 만료되었습니다";
        TokenForeign => "invalid token: it was not issued by this scheduler", "유효하지 않은 토큰: 이 스케줄러가 발급한 토큰이 아닙니다";
        TokenRevoked => "invalid token: it was revoked", "유효하지 않은 토큰: 폐기되었습니다";
        TokenUserGone => "invalid token: its user no longer exists", "유효하지 않은 토큰: 사용자가 더 이상 없습니다";
        NeedsAdmin => "this needs the admin role", "관리자 권한이 필요합니다";
        AgentsOnly => "agents may only use the agent protocol", "에이전트는 에이전트 프로토콜만 사용할 수 있습니다";
        NoPortal => "this scheduler serves no web portal", "이 스케줄러는 웹 포털을 제공하지 않습니다";
        LinkGone => "this sign-in link is unknown, used or expired; run `berth login --web` for a new one", "알 수 없거나 이미 사용했거나 만료된 로그인 링크입니다. `berth login --web`으로 새 링크를 받으세요";
        NodeCredential => "this is a node credential; sign in with a user's API token", "노드 자격 증명입니다. 사용자의 API 토큰으로 로그인하세요";
        IsRequired => "is required", "필수 항목입니다";
        MustNotBeEmpty => "must not be empty", "비어 있을 수 없습니다";
        IsInThePast => "is in the past", "이미 지난 시간입니다";
        MustBePositive => "must be positive", "양수여야 합니다";
        AtLeastOne => "must be at least 1", "1 이상이어야 합니다";
        AfterStart => "must be after start", "시작 이후여야 합니다";
        AfterFrom => "must be after from", "from 이후여야 합니다";
        AtMost366Days => "the window must be at most 366 days", "기간은 최대 366일이어야 합니다";
        TooLarge => "is too large", "너무 큽니다";
        LessThanAMillisecond => "is less than a millisecond", "1밀리초보다 짧습니다";
        AtMost63 => "must be at most 63 characters", "최대 63자여야 합니다";
        AtMost128 => "must be at most 128 characters", "최대 128자여야 합니다";
        NotAUserRole => "agent is not a user role", "agent는 사용자 역할이 아닙니다";
        PositiveAtMostTwoYears => "must be positive and at most two years", "양수이고 최대 2년이어야 합니다";
        PositiveAtMostSevenDays => "must be positive and at most 7 days", "양수이고 최대 7일이어야 합니다";
    }
}

/// The message whose English text is exactly `english`, if the catalogue has one.
pub fn find(english: &str) -> Option<Msg> {
    use crate::Message;
    Msg::all()
        .iter()
        .copied()
        .find(|m| m.text(crate::Lang::En) == english)
}

/// `english` in `lang` when the catalogue has it, else as it is.
pub fn words(lang: crate::Lang, english: &str) -> String {
    use crate::Message;
    find(english).map_or_else(|| english.to_owned(), |m| m.text(lang).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Lang;

    #[test]
    fn fixed_texts_are_found_and_others_stay_english() {
        assert_eq!(words(Lang::Ko, "is required"), "필수 항목입니다");
        assert_eq!(words(Lang::En, "is required"), "is required");
        assert_eq!(
            words(Lang::Ko, "unknown device class \"x\""),
            "unknown device class \"x\""
        );
    }
}
