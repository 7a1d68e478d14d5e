//! The API's words: how its errors are framed, and every message and field reason the
//! scheduler answers with.
//!
//! An error carries a [`Text`]: a key of this catalogue and its arguments (names, counts,
//! hours), never English to be parsed back. It is worded in the client's language only
//! when it is answered ([`Text::render`]); its [`Display`](std::fmt::Display) is the
//! English text, for logs and for clients that ask for English.

use crate::{Lang, Message, fill};
use std::fmt;

/// A message of the API catalogue with its arguments, worded when it is shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text {
    msg: Msg,
    args: Vec<(&'static str, Arg)>,
}

/// One argument of a [`Text`]: a value shown as it is, or another text worded in the same
/// language.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Arg {
    Value(String),
    Text(Text),
}

impl Text {
    /// `msg` without arguments yet.
    pub fn new(msg: Msg) -> Self {
        Self {
            msg,
            args: Vec::new(),
        }
    }

    /// Fills `{name}` with `value` as it is (names, numbers, hours): values are never
    /// translated.
    pub fn arg(mut self, name: &'static str, value: impl fmt::Display) -> Self {
        self.args.push((name, Arg::Value(value.to_string())));
        self
    }

    /// Fills `{name}` with `value` quoted as the API quotes names (`"gpu-a"`).
    pub fn quoted(mut self, name: &'static str, value: impl fmt::Debug) -> Self {
        self.args.push((name, Arg::Value(format!("{value:?}"))));
        self
    }

    /// Fills `{name}` with another text, worded in the same language as this one.
    pub fn text(mut self, name: &'static str, value: Text) -> Self {
        self.args.push((name, Arg::Text(value)));
        self
    }

    /// The catalogue key.
    pub fn msg(&self) -> Msg {
        self.msg
    }

    /// The text in `lang`, its placeholders filled.
    pub fn render(&self, lang: Lang) -> String {
        let values: Vec<(&str, String)> = self
            .args
            .iter()
            .map(|(name, arg)| {
                let v = match arg {
                    Arg::Value(v) => v.clone(),
                    Arg::Text(t) => t.render(lang),
                };
                (*name, v)
            })
            .collect();
        let refs: Vec<(&str, &dyn fmt::Display)> = values
            .iter()
            .map(|(n, v)| (*n, v as &dyn fmt::Display))
            .collect();
        fill(self.msg.text(lang), &refs)
    }
}

impl From<Msg> for Text {
    fn from(msg: Msg) -> Self {
        Text::new(msg)
    }
}

impl fmt::Display for Text {
    /// The English text.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(Lang::En))
    }
}

/// Builds a [`Text`]: `text!(UnknownOrg, org = ?org, hours = h, what = @inner, class)`.
/// `name = v` fills `{name}` with `v` as it is, `name = ?v` quoted (`{v:?}`), `name = @t`
/// with the text `t`, and a bare `name` with the variable of that name.
#[macro_export]
macro_rules! text {
    ($msg:ident $(, $($args:tt)*)?) => {
        $crate::__text_args!($crate::api::Text::new($crate::api::Msg::$msg); $($($args)*)?)
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __text_args {
    ($t:expr;) => { $t };
    ($t:expr; $name:ident = ? $v:expr $(, $($rest:tt)*)?) => {
        $crate::__text_args!($t.quoted(stringify!($name), &$v); $($($rest)*)?)
    };
    ($t:expr; $name:ident = @ $v:expr $(, $($rest:tt)*)?) => {
        $crate::__text_args!($t.text(stringify!($name), $v); $($($rest)*)?)
    };
    ($t:expr; $name:ident = $v:expr $(, $($rest:tt)*)?) => {
        $crate::__text_args!($t.arg(stringify!($name), &$v); $($($rest)*)?)
    };
    ($t:expr; $name:ident $(, $($rest:tt)*)?) => {
        $crate::__text_args!($t.arg(stringify!($name), &$name); $($($rest)*)?)
    };
}

crate::catalogue! {
    /// Every API message, in English and Korean.
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
        NotAUserRole => "agent is not a user role", "agent는 사용자 역할이 아닙니다";
        PositiveAtMostTwoYears => "must be positive and at most two years", "양수이고 최대 2년이어야 합니다";
        PositiveAtMostSevenDays => "must be positive and at most 7 days", "양수이고 최대 7일이어야 합니다";
        // Framing and the store.
        TakenConcurrently => "the devices were taken by a concurrent request ({detail}); try again", "동시에 들어온 다른 요청이 장치를 먼저 가져갔습니다({detail}). 다시 시도하세요";
        NoLongerLeader => "this scheduler is no longer the leader ({detail}); nothing was recorded: retry with the leader", "이 스케줄러는 더 이상 리더가 아닙니다({detail}). 아무것도 기록되지 않았으니 리더에서 다시 시도하세요";
        // Who and what: objects named in messages.
        WhatUser => "user {name}", "사용자 {name}";
        WhatUserInOrg => "user {name} in org {org}", "조직 {org}의 사용자 {name}";
        WhatSite => "site {name}", "사이트 {name}";
        WhatClass => "device class {name}", "장치 클래스 {name}";
        WhatOrg => "org {name}", "조직 {name}";
        WhatToken => "token {id}", "토큰 {id}";
        WhatDevice => "device {uuid}", "장치 {uuid}";
        WhatNode => "node {name}", "노드 {name}";
        WhatGrant => "grant of dataset {name} to org {org}", "조직 {org}에 대한 데이터셋 {name} 권한";
        WhatJobOnNode => "job {id} on node {node}", "노드 {node}의 작업 {id}";
        WhatReservation => "reservation {id}", "예약 {id}";
        WhatJob => "job {id}", "작업 {id}";
        WhatBudget => "budget of org {org} for {class}", "조직 {org}의 {class} 예산";
        WhatLedgerEntry => "ledger entry {ids}", "원장 항목 {ids}";
        WhatLedgerEntries => "one of ledger entries {ids}", "원장 항목 {ids} 중 하나";
        WhatLedgerEntriesMore => "one of ledger entries {ids} (and {more} more)", "원장 항목 {ids} (외 {more}개) 중 하나";
        WhatAction => "action {name}", "동작 {name}";
        WhatWebhook => "webhook {id}", "웹훅 {id}";
        // Authentication and permissions.
        NotThisNode => "this credential may not speak for node {node}", "이 자격 증명으로는 노드 {node}을(를) 대신할 수 없습니다";
        TooManyRequests => "too many requests from {who} (at most {per_second} per second, {burst} at once); retry in {wait_ms} ms", "{who}의 요청이 너무 많습니다(초당 최대 {per_second}개, 동시에 {burst}개). {wait_ms} ms 후에 다시 시도하세요";
        MayNotCreateUsers => "a {caller} may not create {role} users in org {org}", "{caller} 역할은 조직 {org}에 {role} 사용자를 만들 수 없습니다";
        MayNotIssueTokens => "you may not issue tokens for {user}", "{user}의 토큰을 발급할 권한이 없습니다";
        OnlyAdminsSeeCredentials => "only admins see nodes' credentials", "노드의 자격 증명은 관리자만 볼 수 있습니다";
        // Administration.
        SeveralOrgsHaveUser => "several organisations have a user {name}: name the organisation", "여러 조직에 사용자 {name}이(가) 있습니다. 조직을 지정하세요";
        UsesAtMost => "must be at most {max}, not {uses}", "최대 {max}이어야 합니다({uses}이(가) 아님)";
        BoundJoinTokenOnce => "a join token bound to a node joins it once", "노드에 묶인 참여 토큰은 그 노드를 한 번만 참여시킵니다";
        NotQuarantined => "device {uuid} is not quarantined", "장치 {uuid}은(는) 격리되어 있지 않습니다";
        UnknownOrg => "unknown org {org}", "알 수 없는 조직 {org}입니다";
        NodeCannotChange => "node {node} is {state}; it cannot be changed now", "노드 {node}은(는) {state} 상태라서 지금은 바꿀 수 없습니다";
        BootstrapNotAdmin => "user {user} exists but is not an admin", "사용자 {user}이(가) 있지만 관리자가 아닙니다";
        // Agents and nodes.
        JoinTokenRequired => "a join token is required to join", "참여하려면 참여 토큰이 필요합니다";
        JoinTokenInvalid => "invalid, expired or already used join token: create one with `berth admin join-token`", "유효하지 않거나 만료되었거나 이미 사용한 참여 토큰입니다. `berth admin join-token`으로 새로 만드세요";
        JoinTokenForOtherNode => "this join token is for node {bound}, not {node}", "이 참여 토큰은 {node}이(가) 아니라 노드 {bound}용입니다";
        SiteMissing => "site {quoted} does not exist: create it with `berth admin sites create {site}`", "사이트 {quoted}이(가) 없습니다. `berth admin sites create {site}`로 만드세요";
        NodeAtOtherSite => "node {node} is registered at site {registered}, not {site}", "노드 {node}은(는) {site}이(가) 아니라 사이트 {registered}에 등록되어 있습니다";
        NodeExists => "node {quoted} already exists: to join again it needs its current credential, or an admin's `berth admin nodes rejoin {node}`", "노드 {quoted}이(가) 이미 있습니다. 다시 참여하려면 현재 자격 증명이나 관리자의 `berth admin nodes rejoin {node}`가 필요합니다";
        OnlyAgentsReport => "only agents report jobs", "작업 보고는 에이전트만 할 수 있습니다";
        OnlyAgentsPushLogs => "only agents push logs", "로그 전송은 에이전트만 할 수 있습니다";
        OneTo128Characters => "must be 1 to 128 characters", "1자 이상 128자 이하여야 합니다";
        ClassMissing => "device class {quoted} does not exist: create it with `berth admin classes create {class}`", "장치 클래스 {quoted}이(가) 없습니다. `berth admin classes create {class}`로 만드세요";
        DeviceOnOtherNode => "device {uuid} is registered on node {node}", "장치 {uuid}은(는) 노드 {node}에 등록되어 있습니다";
        // Reservations and budgets.
        ReservationAlready => "reservation {id} is already {state}", "예약 {id}은(는) 이미 {state} 상태입니다";
        UnknownSite => "unknown site {site}", "알 수 없는 사이트 {site}입니다";
        ReservationNotYours => "reservation {id} belongs to {owner}; only they or an org-admin may cancel it", "예약 {id}은(는) {owner}의 것입니다. 본인이나 조직 관리자만 취소할 수 있습니다";
        UnknownClassNone => "unknown device class {class} (known: none)", "알 수 없는 장치 클래스 {class}입니다 (등록된 클래스 없음)";
        UnknownClassKnown => "unknown device class {class} (known: {known})", "알 수 없는 장치 클래스 {class}입니다 (등록된 클래스: {known})";
        NoDevicesYet => "no {class} devices are registered yet", "아직 등록된 {class} 장치가 없습니다";
        UnknownBudgetClassNone => "unknown device class {class} (known: none yet; or \"*\" for every class)", "알 수 없는 장치 클래스 {class}입니다 (아직 등록된 클래스 없음. 모든 클래스는 \"*\")";
        UnknownBudgetClassKnown => "unknown device class {class} (known: {known}; or \"*\" for every class)", "알 수 없는 장치 클래스 {class}입니다 (등록된 클래스: {known}. 모든 클래스는 \"*\")";
        FactorRange => "must be greater than 0 and at most {max}, not {v}", "0보다 크고 {max} 이하여야 합니다({v}이(가) 아님)";
        PositiveWhenSet => "must be positive when set", "지정할 때는 양수여야 합니다";
        HoursNotNegative => "must be a finite number of hours >= 0, not {h}", "0 이상의 유한한 시간 수여야 합니다({h}이(가) 아님)";
        NotAPeriod => "{period} is not a period (day, week or month)", "{period}은(는) 기간이 아닙니다(day, week, month 중 하나)";
        HoursPositive => "must be a positive number of hours, not {h}", "양수인 시간 수여야 합니다({h}이(가) 아님)";
        NoBudget => "org {org} has no budget for {class}; set one first", "조직 {org}에는 {class} 예산이 없습니다. 먼저 설정하세요";
        NoHourLimit => "the budget of org {org} for {class} has no hour limit; there is nothing to top up", "조직 {org}의 {class} 예산에는 시간 한도가 없어 충전할 것이 없습니다";
        // Jobs.
        ReservationClosed => "reservation {id} is {state}; jobs can no longer be submitted to it", "예약 {id}은(는) {state} 상태라서 더 이상 작업을 제출할 수 없습니다";
        JobNotYours => "job {id} belongs to {owner}; only they or an org-admin may cancel it", "작업 {id}은(는) {owner}의 것입니다. 본인이나 조직 관리자만 취소할 수 있습니다";
        JobAlreadyEnded => "job {id} already ended ({state})", "작업 {id}은(는) 이미 끝났습니다({state})";
        DatasetNotGranted => "datasets: dataset {quoted} is not granted to org {quoted_org}: an admin grants it with `berth admin datasets grant --org {org} {name}`", "datasets: 데이터셋 {quoted}은(는) 조직 {quoted_org}에 허가되지 않았습니다. 관리자가 `berth admin datasets grant --org {org} {name}`으로 허가합니다";
        DatasetReadOnly => "datasets: org {org} may mount dataset {name} read-only, not read-write", "datasets: 조직 {org}은(는) 데이터셋 {name}을(를) 읽기 전용으로만 마운트할 수 있습니다(읽기-쓰기 불가)";
        ReservationOtherOrg => "reservation {id} belongs to org {org}; jobs run in it are charged to it", "예약 {id}은(는) 조직 {org}의 것입니다. 그 안에서 실행하는 작업은 그 조직에 청구됩니다";
        ReservationHolds => "reservation {id} holds {holds} devices, {requested} requested", "예약 {id}에는 장치가 {holds}개 있는데 {requested}개를 요청했습니다";
        ReservationEnded => "reservation {id} has ended", "예약 {id}은(는) 끝났습니다";
        NeverStart => "{why}; this job could never start", "{why}. 이 작업은 결코 시작될 수 없습니다";
        LargestNode => "{count} {class} devices requested but the largest node has {largest}; count is per node (use --nodes to span nodes)", "{class} 장치를 {count}개 요청했지만 가장 큰 노드에도 {largest}개뿐입니다. count는 노드당 개수입니다(여러 노드에 걸치려면 --nodes 사용)";
        TooFewNodes => "{nodes} nodes with {count} {class} devices each requested, but only {fitting} node(s) have that many", "{class} 장치가 {count}개씩 있는 노드를 {nodes}개 요청했지만 그만큼 가진 노드는 {fitting}개뿐입니다";
        // Limits, availability and the pipeline.
        FollowLimitUser => "you already follow {mine} log streams, the most one user may; stop one first", "이미 로그 스트림 {mine}개를 따라가고 있습니다. 사용자 한 명이 따라갈 수 있는 최대치이니 하나를 먼저 멈추세요";
        FollowLimitServer => "the scheduler is at its limit of log followers; retry shortly", "스케줄러의 로그 팔로워 수가 한도에 이르렀습니다. 잠시 후 다시 시도하세요";
        Stopping => "the scheduler is stopping", "스케줄러가 종료되는 중입니다";
        EarlierCommitFailed => "an earlier change failed to commit, and this one may depend on it; nothing of it was recorded: try again", "앞선 변경을 커밋하지 못했고 이 변경이 그것에 의존할 수 있습니다. 아무것도 기록되지 않았으니 다시 시도하세요";
        NotAJobState => "{s} is not a job state", "{s}은(는) 작업 상태가 아닙니다";
        NotAReservationState => "{s} is not a reservation state", "{s}은(는) 예약 상태가 아닙니다";
        TooManyBuckets => "the range would have more than 1000 buckets; use a larger step", "범위의 구간이 1000개를 넘습니다. 더 큰 step을 사용하세요";
        NotALanguage => "{code} is not a language Berth speaks (en, ko)", "{code}은(는) Berth가 지원하는 언어가 아닙니다(en, ko)";
        NotOurPageToken => "is not a token this server made", "이 서버가 만든 토큰이 아닙니다";
        OtherListing => "belongs to another listing ({kind})", "다른 목록({kind})의 토큰입니다";
        OtherFilters => "was made for other filters; ask again from the first page", "다른 필터로 만든 토큰입니다. 첫 페이지부터 다시 요청하세요";
        ThisPage => "this page", "이 페이지";
        // The core's refusals.
        ClassHasNoDevices => "unknown device class {class}: no device of this class is registered", "알 수 없는 장치 클래스 {class}입니다. 이 클래스의 장치가 등록되어 있지 않습니다";
        NotEnoughFree => "not enough {class} devices free for the whole window: {requested} requested, {free} free ({total} in the class, {schedulable} schedulable)", "기간 전체에 걸쳐 비어 있는 {class} 장치가 부족합니다: {requested}개 요청, {free}개 비어 있음(클래스 전체 {total}개, 스케줄 가능 {schedulable}개)";
        NoNodeFits => "not enough {class} devices free on one node: {per_node} needed on each of {nodes} node(s), {fitting} node(s) have that many free (at most {most_free} on any node)", "한 노드에 비어 있는 {class} 장치가 부족합니다: 노드 {nodes}개 각각에 {per_node}개가 필요한데 그만큼 비어 있는 노드는 {fitting}개입니다(한 노드 최대 {most_free}개)";
        InvalidRequest => "invalid request: {reason}", "잘못된 요청입니다: {reason}";
        StepNotPositive => "the step must be positive, not {step}", "step은 양수여야 합니다({step}이(가) 아님)";
        RangeInverted => "the range start {from} is not before its end {to}", "범위의 시작 {from}이(가) 끝 {to}보다 앞서지 않습니다";
        TooManyBucketsAsked => "{n} buckets asked for, at most {max} allowed: use a larger step", "구간 {n}개를 요청했지만 최대 {max}개까지 허용됩니다. 더 큰 step을 사용하세요";
        WindowInverted => "the window start {start} is not before its end {end}", "기간의 시작 {start}이(가) 끝 {end}보다 앞서지 않습니다";
        AtLeastOneDevice => "at least one device must be requested", "장치를 하나 이상 요청해야 합니다";
        BudgetExhausted => "budget for {key} exhausted: {left} left, {asked} requested", "{key}의 예산이 소진되었습니다: {left} 남음, {asked} 요청됨";
        BudgetExhaustedAll => "budget for all classes exhausted: {left} left, {asked} requested", "모든 클래스의 예산이 소진되었습니다: {left} 남음, {asked} 요청됨";
        BudgetExpired => "budget for {key} expired at {at}", "{key}의 예산이 {at}에 만료되었습니다";
        BudgetExpiredAll => "budget for all classes expired at {at}", "모든 클래스의 예산이 {at}에 만료되었습니다";
        CapReached => "cap on concurrent {class} devices reached: {max} allowed, {held} held, {asked} requested", "동시 {class} 장치 한도에 이르렀습니다: {max}개 허용, {held}개 사용 중, {asked}개 요청됨";
        BookingTooLong => "booking too long for {class}: {asked} requested, at most {max} allowed", "{class} 예약이 너무 깁니다: {asked} 요청, 최대 {max} 허용";
        BeyondHorizon => "booking too far ahead for {class}: it starts in {ahead}, the horizon is {horizon}", "{class} 예약이 너무 먼 미래입니다: {ahead} 후에 시작하는데 예약 가능 범위는 {horizon}입니다";

        // Projects (과제).
        UnknownProject => "unknown project {project}", "알 수 없는 과제 {project}입니다";
        WhatProject => "project {id}", "과제 {id}";
        ProjectNotOpen => "project {project} grants nothing now: it is not approved, or it has ended", "과제 {project}은(는) 지금 사용할 수 없습니다: 승인되지 않았거나 종료되었습니다";
        OutsideProject => "outside the period of project {project} ({start} to {end})", "과제 {project}의 기간({start} ~ {end})을 벗어납니다";
        GrantExhausted => "project {project} has {left} of {class} left until {end}, {asked} requested (the org does not allow overage onto its budget)", "과제 {project}의 {class} 잔여 시간은 {left}(종료 {end})인데 {asked}를 요청했습니다(조직 예산으로의 초과 사용이 허용되지 않음)";
        ProjectCannot => "project {id} is {state}: only a project that is {from} can be {action}", "과제 {id}은(는) {state} 상태입니다: {from} 상태인 과제만 {action}할 수 있습니다";
        ProjectOverlaps => "overlaps project {other} of the same programme ({start} to {end})", "같은 사업의 과제 {other}의 기간({start} ~ {end})과 겹칩니다";
        AtLeastOneGrant => "grant hours for at least one class (CLASS=HOURS)", "하나 이상의 클래스에 시간을 배정해야 합니다(CLASS=HOURS)";
        OnlyOrgAdminsRequestProjects => "only org-admins and admins may request a project", "조직 관리자와 관리자만 과제를 신청할 수 있습니다";
        JobProjectIsBookings => "a job in reservation {id} is charged to that booking, under project {project}", "예약 {id} 안의 작업은 그 예약(과제 {project})으로 청구됩니다";
        NotAnOverage => "{value} is not an overage policy (allow, deny)", "{value}은(는) 초과 사용 정책이 아닙니다(allow, deny)";
        // Request validation (berth-proto's model).
        NameCharacters => "{value} must be lower-case letters, digits, '-', '_' or '.', starting with a letter or digit", "{value}은(는) 영문 소문자, 숫자, '-', '_', '.'만 쓸 수 있고 영문자나 숫자로 시작해야 합니다";
        ControlCharacter => "must not contain control characters (found {found} at byte {at})", "제어 문자를 포함할 수 없습니다({at}번째 바이트에서 {found} 발견)";
        NotAnId => "{value} is not a valid id", "{value}은(는) 올바른 ID가 아닙니다";
        UnknownRole => "unknown role {value}", "알 수 없는 역할 {value}입니다";
        AtMost => "must be at most {max}", "최대 {max}이어야 합니다";
        AtMostCharacters => "must be at most {max} characters", "최대 {max}자여야 합니다";
        TooFarAhead => "is too far ahead: a booking may start at most {days} days from now", "너무 먼 미래입니다. 예약은 지금부터 최대 {days}일 이내에 시작해야 합니다";
        ReservationOrClass => "give either a reservation or a class, not both", "예약과 클래스 중 하나만 지정하세요";
        ReservationOrClassNeeded => "give a reservation or a class to run on", "실행할 예약이나 클래스를 지정하세요";
        TooManyArguments => "has more than {max} arguments", "인자가 {max}개를 넘습니다";
        NoNul => "must not contain NUL characters", "NUL 문자를 포함할 수 없습니다";
        TooManyVariables => "has more than {max} variables", "변수가 {max}개를 넘습니다";
        NotAVariableName => "{name} is not a valid variable name (a letter or '_', then letters, digits or '_')", "{name}은(는) 올바른 변수 이름이 아닙니다(영문자나 '_'로 시작하고 영문자, 숫자, '_'만 사용)";
        SetByBerth => "is set by Berth and cannot be overridden", "Berth가 설정하는 값이라 바꿀 수 없습니다";
        SpecTooLarge => "the job's environment ({env_bytes} bytes) and command ({command_bytes} bytes) together exceed the limit of {max} bytes", "작업의 환경 변수({env_bytes}바이트)와 명령({command_bytes}바이트)을 합친 크기가 한도 {max}바이트를 넘습니다";
        NeverPrivileged => "jobs never run privileged; devices are given to the job without it", "작업은 privileged로 실행되지 않습니다. 장치는 privileged 없이 작업에 주어집니다";
        NoCapabilities => "extra capabilities ({cap}) are not granted to jobs", "작업에는 추가 capability({cap})를 허용하지 않습니다";
        NoHostPaths => "host paths ({path}) cannot be mounted; use an admin-approved dataset (--dataset NAME) or the job's scratch directory", "호스트 경로({path})는 마운트할 수 없습니다. 관리자가 승인한 데이터셋(--dataset NAME)이나 작업의 스크래치 디렉터리를 사용하세요";
        NoHostNetwork => "host networking is not allowed for jobs", "작업에는 호스트 네트워킹을 허용하지 않습니다";
        NotANetworkMode => "{mode} is not a network mode (use bridge or none)", "{mode}은(는) 네트워크 모드가 아닙니다(bridge 또는 none 사용)";
        TooManyDatasets => "at most {max} datasets", "데이터셋은 최대 {max}개입니다";
        GivenTwice => "{name} is given twice", "{name}이(가) 두 번 지정되었습니다";
        AtMost366DaysSpan => "must be at most 366 days", "최대 366일이어야 합니다";
        PriorityRange => "must be between -{max} and {max}", "-{max}에서 {max} 사이여야 합니다";
        ReservationNotPreemptible => "a job in a reservation runs on the reservation's own devices and cannot be preemptible", "예약 안의 작업은 예약된 장치에서 실행되므로 선점 가능(preemptible)으로 지정할 수 없습니다";
        ReservationOneNode => "a job in a reservation runs on one node; queue multi-node jobs for a class", "예약 안의 작업은 한 노드에서 실행됩니다. 다중 노드 작업은 클래스로 대기열에 넣으세요";
        NumberFromZero => "must be a number from 0 to {max}, not {value}", "0에서 {max} 사이의 수여야 합니다({value}이(가) 아님)";
        FiniteNotNegative => "must be a finite number of at least 0, not {value}", "0 이상의 유한한 수여야 합니다({value}이(가) 아님)";
        MustBeGiven => "must be given", "지정해야 합니다";
        UnknownSource => "unknown source {source}", "알 수 없는 출처 {source}입니다";
        // Load, leadership and policies.
        AtLimitRequests => "the scheduler is at its limit of concurrent requests; retry shortly", "스케줄러가 동시에 처리할 수 있는 요청 수의 한도에 이르렀습니다. 잠시 후 다시 시도하세요";
        AtLimitHeartbeats => "the scheduler is at its limit of concurrent heartbeats; retry shortly", "스케줄러가 동시에 처리할 수 있는 하트비트 수의 한도에 이르렀습니다. 잠시 후 다시 시도하세요";
        AgentNeedsClientCert => "this scheduler accepts agents only with a client certificate signed by its agent CA: start berth-agent with --tls-client-cert FILE and --tls-client-key FILE", "이 스케줄러는 에이전트 CA가 서명한 클라이언트 인증서가 있는 에이전트만 받습니다. berth-agent를 --tls-client-cert FILE과 --tls-client-key FILE로 시작하세요";
        StandbyLeaderAt => "this scheduler is a standby; the leader is at {address}", "이 스케줄러는 대기 중입니다. 리더는 {address}에 있습니다";
        StandbyNoLeader => "this scheduler is a standby and no scheduler leads right now; retry shortly", "이 스케줄러는 대기 중이고 지금은 리더인 스케줄러가 없습니다. 잠시 후 다시 시도하세요";
        NoLongerLeads => "this scheduler no longer leads; {why}", "이 스케줄러는 더 이상 리더가 아닙니다. {why}";
        NameAField => "name at least one field to change ({fields})", "바꿀 필드를 하나 이상 지정하세요({fields})";
        UnknownRetentionField => "unknown retention field {field} (known: {known})", "알 수 없는 보존 필드 {field}입니다(가능한 필드: {known})";
        UnknownPolicyField => "unknown policy field {field} (known: {known})", "알 수 없는 정책 필드 {field}입니다(가능한 필드: {known})";
        NotABackfillMode => "{mode} is not a backfill mode (none, easy, conservative)", "{mode}은(는) 백필 모드가 아닙니다(none, easy, conservative 중 하나)";
        OneTo1000 => "must be between 1 and 1000", "1에서 1000 사이여야 합니다";
        SpecBytesRange => "must be between 1024 and {max} bytes, not {value}", "1024에서 {max}바이트 사이여야 합니다({value}이(가) 아님)";
        DurationRequired => "a duration is required", "기간을 지정해야 합니다";
        AtLeastSeconds => "must be at least {min} s, not {value} s", "최소 {min}초여야 합니다({value}초가 아님)";
        NotAPercentage => "must be a percentage 0..100, not {v}", "0..100 사이의 백분율이어야 합니다({v}이(가) 아님)";
        // Billing.
        WonNotNegative => "must be whole won >= 0, not {v}", "0 이상의 원 단위 정수여야 합니다({v}이(가) 아님)";
        PercentRange => "must be a percentage 0..=100, not {v}", "0..=100 사이의 백분율이어야 합니다({v}이(가) 아님)";
        NotAMonth => "expected a month YYYY-MM (1970-01 or later), not {month}", "YYYY-MM 형식의 월(1970-01 이후)이어야 합니다({month}이(가) 아님)";
        MonthNotEnded => "month {month} has not ended yet (it ends {end}); invoices are generated for ended months only", "{month}월이 아직 끝나지 않았습니다({end}에 끝남). 청구서는 끝난 달에 대해서만 만들 수 있습니다";
        InvoicesExist => "{month} already has draft invoices for {orgs}; pass --replace-drafts to replace them", "{month}에 이미 {orgs}의 초안 청구서가 있습니다. 바꾸려면 --replace-drafts를 지정하세요";
        NoPriceFor => "org {org} has billable hours of class {class}, which has no price: set one with `berth admin prices set --class {name} --krw-per-hour N`", "조직 {org}에 가격이 없는 클래스 {class}의 청구 대상 시간이 있습니다. `berth admin prices set --class {name} --krw-per-hour N`으로 가격을 정하세요";
        WhatInvoice => "invoice {id}", "청구서 {id}";
        InvoiceTransition => "invoice {id} is {from}; it cannot become {to} (draft -> issued -> paid, or draft/issued -> void)", "청구서 {id}은(는) {from} 상태라 {to}(으)로 바꿀 수 없습니다(draft -> issued -> paid, 또는 draft/issued -> void)";
        NotAnInvoiceState => "must be issued, paid or void", "issued, paid, void 중 하나여야 합니다";
        // Image references.
        ImageForms => "expected [HOST[:PORT]/]NAME[:TAG][@DIGEST], e.g. busybox:1.36 or registry.example:5000/team/trainer:v2", "[HOST[:PORT]/]NAME[:TAG][@DIGEST] 형식이어야 합니다. 예: busybox:1.36, registry.example:5000/team/trainer:v2";
        ImageLooksLikeFlag => "{reference} looks like a command-line flag, not an image reference ({forms})", "{reference}은(는) 이미지 참조가 아니라 명령줄 플래그처럼 보입니다({forms})";
        ImageBadCharacter => "{reference} contains {c}, which no image reference holds ({forms})", "{reference}에 이미지 참조에 쓸 수 없는 문자 {c}이(가) 있습니다({forms})";
        NotAnImage => "{reference} is not an image reference: {why} ({forms})", "{reference}은(는) 이미지 참조가 아닙니다: {why}({forms})";
        ImageDigest => "the digest must be ALGORITHM:HEX with at least 32 hex digits", "digest는 16진수 32자리 이상의 ALGORITHM:HEX 형식이어야 합니다";
        ImageTag => "the tag must be 1 to 128 letters, digits, '_', '.' or '-', not starting with '.' or '-'", "태그는 영문자, 숫자, '_', '.', '-'로 된 1~128자여야 하고 '.'이나 '-'로 시작할 수 없습니다";
        ImageNameEmpty => "the name is empty", "이름이 비어 있습니다";
        ImageNameTooLong => "the name is longer than 255 characters", "이름이 255자보다 깁니다";
        ImageComponent => "{component} is not a valid name component (lower-case letters and digits, joined by '.', '_', '__' or '-')", "{component}은(는) 올바른 이름 구성 요소가 아닙니다(영문 소문자와 숫자를 '.', '_', '__', '-'로 연결)";
        NotHttpUrl => "must be an http:// or https:// URL", "http:// 또는 https:// URL이어야 합니다";
        UnknownEvent => "unknown event {name} (known: {known})", "알 수 없는 이벤트 {name} (가능한 값: {known})";
        NotAnEmail => "{value} is not an email address", "{value}은(는) 이메일 주소가 아닙니다";
        NoSmtp => "no SMTP server is configured (start the scheduler with --smtp-url and --smtp-from)", "SMTP 서버가 설정되지 않았습니다 (스케줄러를 --smtp-url과 --smtp-from으로 시작하세요)";
        NotifyBookingStart => "Booking {id} ({count} × {class}) starts at {at}", "예약 {id}({class} {count}개)이(가) {at}에 시작됩니다";
        NotifyBookingEnd => "Booking {id} ({count} × {class}) ends at {at}; its jobs will be stopped then", "예약 {id}({class} {count}개)이(가) {at}에 끝나며, 그때 작업이 중지됩니다";
        NotifyIdleWarning => "Booking {id} is idle: it will be reclaimed at {at} unless its devices are used", "예약 {id}이(가) 유휴 상태입니다: 장치를 사용하지 않으면 {at}에 회수됩니다";
        NotifyReclaimed => "Booking {id} was reclaimed for idleness; the unused rest is refunded by policy", "예약 {id}이(가) 유휴 상태로 회수되었습니다. 사용하지 않은 나머지는 정책에 따라 환불됩니다";
        NotifyJobEnd => "Job {id} ({name}) ended: {state}. {reason}", "작업 {id}({name})이(가) 끝났습니다: {state}. {reason}";
        NotifyGrant => "Project {project} of {org} has used {percent}% of its {class} grant", "조직 {org}의 과제 {project}이(가) {class} 배정 시간의 {percent}%를 사용했습니다";
        NotifyBudget => "Organisation {org} has used {percent}% of its {class} budget for the period from {at}", "조직 {org}이(가) {at}부터의 {class} 예산 중 {percent}%를 사용했습니다";
        NotifyProjectExpiring => "Project {id} ({title}) expires at {at}", "과제 {id}({title})이(가) {at}에 만료됩니다";
        NotifyProjectExpired => "Project {id} ({title}) has expired", "과제 {id}({title})이(가) 만료되었습니다";
        NotifyInvoice => "Invoice {id} for {month} was issued: {amount} KRW", "{month} 청구서 {id}이(가) 발행되었습니다: {amount}원";
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_fills_its_values_in_either_language() {
        let t = text!(BudgetExhausted, key = "a100", left = "1.5 h", asked = "4 h");
        assert_eq!(
            t.to_string(),
            "budget for a100 exhausted: 1.5 h left, 4 h requested"
        );
        assert_eq!(
            t.render(Lang::Ko),
            "a100의 예산이 소진되었습니다: 1.5 h 남음, 4 h 요청됨"
        );
        assert_eq!(t.msg(), Msg::BudgetExhausted);
    }

    #[test]
    fn quoted_values_and_nested_texts() {
        let class = "h100";
        let t = text!(UnknownClassKnown, class = ?class, known = "a100, l4");
        assert_eq!(
            t.to_string(),
            "unknown device class \"h100\" (known: a100, l4)"
        );
        let nested =
            text!(NeverStart, why = @text!(CapReached, class, max = 2, held = 2, asked = 1));
        assert_eq!(
            nested.render(Lang::Ko),
            "동시 h100 장치 한도에 이르렀습니다: 2개 허용, 2개 사용 중, 1개 요청됨. 이 작업은 결코 시작될 수 없습니다"
        );
        assert_eq!(
            Text::from(Msg::IsRequired).render(Lang::Ko),
            "필수 항목입니다"
        );
    }
}
