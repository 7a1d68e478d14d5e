//! The CLI's words: its own messages, table headers and the labels of `show` commands.
//!
//! Table headers and labels are looked up by their stable key ([`header`], [`label`]):
//! the key is also the CSV column name, which never changes with the language.

crate::catalogue! {
    /// Every string the CLI writes itself (the server's messages come from the API).
    pub enum Msg {
        InvalidValue => "invalid {flag} {value}: {reason}", "{flag} 값 {value}이(가) 올바르지 않습니다: {reason}";
        CannotConnect => "cannot connect to {server}: {reason}", "{server}에 연결할 수 없습니다: {reason}";
        ConnectionClosed => "the connection closed before the server answered ({reason}); check the server URL (https:// for a server that serves TLS)", "서버가 응답하기 전에 연결이 끊겼습니다({reason}). 서버 URL을 확인하세요(TLS를 쓰는 서버는 https://)";
        NoToken => "no token: run `berth login --server URL --token TOKEN`, set BERTH_TOKEN or pass --token", "토큰이 없습니다: `berth login --server URL --token TOKEN`을 실행하거나 BERTH_TOKEN을 설정하거나 --token을 주세요";
        ConfigFile => "config file {path}: {reason}", "설정 파일 {path}: {reason}";
        ErrorPrefix => "error", "오류";
        NoTokenGiven => "no token given: pass --token TOKEN or type it on stdin", "토큰이 없습니다: --token TOKEN을 주거나 표준 입력으로 입력하세요";
        LoggedIn => "logged in to {server} as {user} (org {org}, role {role}); saved to {path}", "{server}에 {user}(으)로 로그인했습니다(기관 {org}, 역할 {role}). {path}에 저장했습니다";
        WebLink => "open this link in your browser to sign in to the portal; it works once, until {expires}:", "브라우저에서 이 링크를 열어 포털에 로그인하세요. {expires}까지 한 번만 쓸 수 있습니다:";
        Reserved => "reserved {count} {class} ({state}); submit into it with: berth submit --reservation {id} --count {count} -- CMD", "{class} {count}대를 예약했습니다({state}). 작업 제출: berth submit --reservation {id} --count {count} -- CMD";
        JobSubmittedWaiting => "job {id} submitted ({state}{why})", "작업 {id}을(를) 제출했습니다({state}{why})";
        JobSubmitted => "job submitted ({state}{why}); follow it with: berth logs -f {id}", "작업을 제출했습니다({state}{why}). 진행 확인: berth logs -f {id}";
        StoppedFollowing => "stopped following job {id}; it keeps running (stop it with: berth cancel {id})", "작업 {id} 따라가기를 멈췄습니다. 작업은 계속 실행됩니다(중지: berth cancel {id})";
        JobExited => "job {id} {state} with exit code {code}{why}", "작업 {id}: {state}, 종료 코드 {code}{why}";
        JobEndedWithoutCode => "job {id} ended {state} without an exit code: {why}", "작업 {id}이(가) 종료 코드 없이 {state}(으)로 끝났습니다: {why}";
        NoReasonGiven => "no reason given", "사유 없음";
        JobIs => "job {id} is {state}", "작업 {id}: {state}";
        GiveDurationOrEnd => "give --duration or --end", "--duration 또는 --end를 주세요";
        MustBeAfterStart => "must be after --start", "--start 이후여야 합니다";
        MustBeAfterFrom => "must be after --from", "--from 이후여야 합니다";
        TooLarge => "is too large", "너무 큽니다";
        MustBePositive => "must be positive", "양수여야 합니다";
        ExpectedKeyValue => "expected KEY=VALUE", "KEY=VALUE 형식이어야 합니다";
        ZeroOrMore => "must be 0 or more", "0 이상이어야 합니다";
        NotNegative => "must not be negative", "음수일 수 없습니다";
        HoursOrUnlimited => "expected a number of hours or `unlimited`", "시간 수 또는 `unlimited`여야 합니다";
        NothingToChange => "nothing to change: give at least one policy flag (see --help)", "바꿀 것이 없습니다: 정책 플래그를 하나 이상 주세요(--help 참고)";
        ShowingNewest => "showing the newest {shown} {what}; use --limit N for more, or -o json for all", "최근 {shown}개의 {what}만 표시합니다. 더 보려면 --limit N, 전부 보려면 -o json을 쓰세요";
        ConfigDirUnknown => "cannot find the config directory: set HOME, XDG_CONFIG_HOME or BERTH_CONFIG", "설정 디렉터리를 찾을 수 없습니다: HOME, XDG_CONFIG_HOME 또는 BERTH_CONFIG를 설정하세요";
        BadTokenCharacters => "the token contains characters a token cannot have", "토큰에 쓸 수 없는 문자가 들어 있습니다";
        Stopping => "stopping...", "멈추는 중...";
        StoppedKept => "stopped; the data is kept for next time", "멈췄습니다. 데이터는 다음을 위해 보관됩니다";
        CannotStartScheduler => "cannot start the scheduler: {reason}", "스케줄러를 시작할 수 없습니다: {reason}";
        AgentStopped => "the agent stopped: {reason}", "에이전트가 멈췄습니다: {reason}";
        UserCreated => "created user {user} in org {org} (role {role}); token {id} expires {expires}; it is shown only this once", "기관 {org}에 사용자 {user}을(를) 만들었습니다(역할 {role}). 토큰 {id}은(는) {expires}에 만료되며 지금 한 번만 표시됩니다";
        TokenCreated => "token {id} for {user} expires {expires}; it is shown only this once", "{user}의 토큰 {id}은(는) {expires}에 만료되며 지금 한 번만 표시됩니다";
        JoinTokenCreated => "join token {joins}, expires {expires}; start an agent with: berth-agent --server {server} --join-token TOKEN --node {node} --site SITE", "참여 토큰: {joins}. {expires}에 만료됩니다. 에이전트 시작: berth-agent --server {server} --join-token TOKEN --node {node} --site SITE";
        JoinTokenJoinsNamed => "joins node {node} once", "노드 {node}만 한 번 참여할 수 있습니다";
        JoinTokenJoinsOne => "joins one new node", "새 노드 하나가 참여할 수 있습니다";
        JoinTokenJoinsMany => "joins up to {uses} new nodes", "새 노드 최대 {uses}대가 참여할 수 있습니다";
        TourUp => "Berth is up: a scheduler and node {node} with 8 simulated GPUs (class {class}).", "Berth가 시작되었습니다: 스케줄러와 시뮬레이션 GPU 8대(장치 종류 {class})의 노드 {node}.";
        TourDocker => "jobs run in hardened containers on the local Docker engine", "작업은 로컬 Docker 엔진의 보안 강화 컨테이너에서 실행됩니다";
        TourProcess => "no Docker engine answered, so jobs run as plain host processes", "Docker 엔진이 응답하지 않아 작업은 일반 호스트 프로세스로 실행됩니다";
        TourImageNote => "(jobs need an image on this Docker engine: scripts/build-test-images.sh builds berth-test/busybox from Debian's busybox-static, or pass any local --image)", "(작업에는 이 Docker 엔진의 이미지가 필요합니다: scripts/build-test-images.sh가 Debian의 busybox-static으로 berth-test/busybox를 만듭니다. 또는 로컬 --image를 지정하세요)";
        TourPortal => "sign in: `berth login --web` prints a link", "로그인: `berth login --web`이 링크를 출력합니다";
        TourAgent => "device metrics, DCGM exporter names", "장치 지표, DCGM exporter 이름";
        TourConfig => "server and admin token", "서버와 관리자 토큰";
        TourTry => "Try, from another shell:", "다른 셸에서 해 보세요:";
        TourStop => "Ctrl-C stops it; running `berth up` again keeps the data.", "Ctrl-C로 멈춥니다. `berth up`을 다시 실행해도 데이터는 유지됩니다.";
        NotJobState => "not a job state (pending, scheduled, starting, running, succeeded, failed, cancelled, preempted, timed-out, lost)", "작업 상태가 아닙니다(pending, scheduled, starting, running, succeeded, failed, cancelled, preempted, timed-out, lost)";
        NotReservationState => "not a reservation state (confirmed, active, completed, cancelled, reclaimed)", "예약 상태가 아닙니다(confirmed, active, completed, cancelled, reclaimed)";
        DatasetFormat => "expected NAME, NAME:ro or NAME:rw", "NAME, NAME:ro 또는 NAME:rw 형식이어야 합니다";
        NoDataDir => "cannot find a data directory: pass --data-dir or set HOME", "데이터 디렉터리를 찾을 수 없습니다: --data-dir을 주거나 HOME을 설정하세요";
        NoAdminToken => "the scheduler gave no admin token and {path} has none", "스케줄러가 관리자 토큰을 주지 않았고 {path}에도 없습니다";
        ConfigKept => "note: your config for {server} is kept in {path}; copy it back to return to that server", "참고: {server}용 설정은 {path}에 보관했습니다. 그 서버로 돌아가려면 다시 복사하세요";
        NodeNotReady => "warning: node {node} has not become ready yet; see the agent's log above", "경고: 노드 {node}이(가) 아직 준비되지 않았습니다. 위의 에이전트 로그를 확인하세요";
        WritingStdout => "writing to stdout", "표준 출력 쓰기";
        ReadingToken => "reading the token from stdin", "표준 입력에서 토큰 읽기";
        WritingLogs => "writing logs", "로그 쓰기";
        TimeFormats => "expected now, +DURATION, \"YYYY-MM-DD HH:MM\" or RFC 3339", "now, +기간, \"YYYY-MM-DD HH:MM\" 또는 RFC 3339 형식이어야 합니다";
        DurationFormats => "expected a duration like 8h, 90m, 1h30m, 45s or 2d", "8h, 90m, 1h30m, 45s, 2d 같은 기간이어야 합니다";
        DeletedBudget => "deleted the {class} budget of {org}", "{org}의 {class} 예산을 삭제했습니다";
        RevokedToken => "revoked token {id}", "토큰 {id}을(를) 폐기했습니다";
        DeviceCleared => "device {uuid} cleared: {reason}", "장치 {uuid} 격리를 해제했습니다: {reason}";
        RetentionUpdated => "retention updated: {changed}", "보존 기간을 변경했습니다: {changed}";
        PolicyUpdated => "policy updated: {changed}", "정책을 변경했습니다: {changed}";
        EmptyReservations => "no reservations", "예약이 없습니다";
        EmptyBudgets => "no budgets", "예산이 없습니다";
        EmptyProjects => "no projects", "과제가 없습니다";
        GrantsFormat => "expected CLASS=HOURS[,CLASS=HOURS], e.g. h100-80gb=100", "CLASS=HOURS[,CLASS=HOURS] 형식이어야 합니다(예: h100-80gb=100)";
        DefaultProjectSet => "bookings and jobs that name no project are now charged to project {project}", "과제를 지정하지 않은 예약과 작업은 이제 과제 {project}에 청구됩니다";
        DefaultProjectCleared => "no default project: bookings and jobs that name none are charged to your organisation's budget", "기본 과제가 없습니다: 과제를 지정하지 않은 예약과 작업은 조직 예산으로 청구됩니다";
        EmptyLedger => "no ledger entries in this period", "이 기간에 원장 항목이 없습니다";
        EmptyJobs => "no jobs", "작업이 없습니다";
        EmptyUsage => "no usage in this period", "이 기간에 사용 기록이 없습니다";
        EmptyRetention => "no retention policy", "보존 정책이 없습니다";
        EmptyNodes => "no nodes", "노드가 없습니다";
        EmptyClasses => "no device classes", "장치 종류가 없습니다";
        EmptyAvailability => "no availability for class {class}", "{class} 장치의 가용 정보가 없습니다";
        EmptyPolicy => "no policy", "정책이 없습니다";
        EmptyOrgs => "no organisations", "기관이 없습니다";
        EmptyUsers => "no users", "사용자가 없습니다";
        EmptySites => "no sites", "사이트가 없습니다";
        EmptyAudit => "no audit events", "감사 기록이 없습니다";
        EmptyPrices => "no prices", "가격이 없습니다";
        EmptyDiscounts => "no discounts", "할인이 없습니다";
        EmptyInvoices => "no invoices", "청구서가 없습니다";
        EmptyReport => "no activity in {month}", "{month}에 활동이 없습니다";
        FlagLowUtil => "utilisation {percent} % under {threshold} %", "사용률 {percent} %로 기준 {threshold} % 미만";
        FlagReclaims => "idle reclaimed {count} times", "유휴 회수 {count}회";
        FlagUnused => "{count} bookings unused ({hours} h held)", "사용하지 않은 예약 {count}건({hours}시간 점유)";
        ReportTitle => "Monthly check {month}", "{month} 월간 점검";
        InvoiceKept => "{org}: invoice {id} is {state}; kept, not regenerated (void it first to correct it)", "{org}: 청구서 {id}은(는) {state} 상태라 그대로 두고 다시 만들지 않았습니다(고치려면 먼저 무효 처리하세요)";
        InvoicesNone => "no org had activity in {month}; no invoice generated", "{month}에 활동한 기관이 없어 청구서를 만들지 않았습니다";
        RoundingRule => "Amounts in whole won (KRW). Each line: billable hours x price x (100 - discount %) / 100, rounded half away from zero; VAT: 10 % of the subtotal, rounded the same way. Hours: net charged device-hours (charges minus refunds) whose time falls in the month, a UTC calendar month.", "금액은 원 단위입니다. 각 줄: 청구 시간 x 단가 x (100 - 할인율) / 100, 0.5원 이상 올림(0에서 먼 쪽으로 반올림). 부가세: 소계의 10 %, 같은 방식으로 반올림. 시간: 그 달(UTC 달력 기준)에 기록된 순 차감 장치-시간(차감 - 환급).";

        ColId => "id", "ID";
        ColName => "name", "이름";
        ColState => "state", "상태";
        ColClass => "class", "장치 종류";
        ColCount => "count", "수";
        ColPrio => "prio", "우선순위";
        ColNode => "node", "노드";
        ColExit => "exit", "종료 코드";
        ColCreated => "created", "생성";
        ColReason => "reason", "사유";
        ColOrg => "org", "기관";
        ColUser => "user", "사용자";
        ColKind => "kind", "종류";
        ColDevices => "devices", "장치";
        ColStart => "start", "시작";
        ColEnd => "end", "종료";
        ColDeviceHours => "device-hours", "장치-시간";
        ColReservedDeviceHours => "reserved device-hours", "예약 장치-시간";
        ColJobDeviceHours => "job device-hours", "작업 장치-시간";
        ColSite => "site", "사이트";
        ColDescription => "description", "설명";
        ColWeight => "weight", "가중치";
        ColRole => "role", "역할";
        ColTime => "time", "시각";
        ColActor => "actor", "수행자";
        ColAction => "action", "작업";
        ColTarget => "target", "대상";
        ColOutcome => "outcome", "결과";
        ColVendor => "vendor", "제조사";
        ColSchedulable => "schedulable", "배정 가능";
        ColRate => "rate", "요율";
        ColUnhealthy => "unhealthy", "이상";
        ColRuntime => "runtime", "런타임";
        ColHeartbeat => "heartbeat", "하트비트";
        ColFree => "free", "가용";
        ColTotal => "total", "전체";
        ColField => "field", "항목";
        ColValue => "value", "값";
        ColKept => "kept", "보존 기간";
        ColBudgetClass => "budget_class", "예산 종류";
        ColHours => "hours", "시간";
        ColSubjectKind => "subject_kind", "대상 종류";
        ColSubjectId => "subject_id", "대상 ID";
        ColDeviceClass => "device_class", "장치 종류";
        ColDeviceHoursSnake => "device_hours", "장치-시간";
        ColNote => "note", "메모";
        ColPeriodStart => "period_start", "기간 시작";
        ColPeriod => "period", "기간";
        ColTopUp => "top-up", "추가";
        ColCharged => "charged", "차감";
        ColRefunded => "refunded", "환급";
        ColLeft => "left", "잔여";
        ColHeld => "held", "사용 중";
        ColMaxDevices => "max-devices", "최대 장치";
        ColMaxBooking => "max-booking", "최장 예약";
        ColHorizon => "horizon", "예약 가능 범위";
        ColExpires => "expires", "만료";

        LblId => "ID", "ID";
        LblName => "Name", "이름";
        ColProject => "project", "과제";
        ColMonth => "month", "월";
        ColCovered => "covered hours", "과제 지원 시간";
        ColBillable => "billable hours", "청구 시간";
        ColPrice => "krw/h", "원/시간";
        ColIdlePrice => "idle krw/h", "유휴 원/시간";
        ColDiscountPct => "discount %", "할인율";
        ColAmount => "amount krw", "금액(원)";
        ColSubtotal => "subtotal krw", "소계(원)";
        ColVat => "vat krw", "부가세(원)";
        ColTotalKrw => "total krw", "합계(원)";
        ColPercent => "percent", "할인율(%)";
        LblMonth => "Month", "월";
        LblPeriod => "Period", "기간";
        LblDiscount => "Discount", "할인";
        LblSubtotal => "Subtotal", "소계";
        LblVat => "VAT", "부가세";
        LblTotal => "Total", "합계";
        LblIssued => "Issued", "발행";
        LblPaid => "Paid", "납부";
        LblVoided => "Voided", "무효 처리";
        ColGranted => "granted h", "지원 시간";
        ColBooked => "booked h", "예약 시간";
        ColUsed => "used h", "사용 시간";
        ColReclaimed => "reclaimed h", "회수 시간";
        ColReclaims => "reclaims", "회수 횟수";
        ColRefundedHours => "refunded h", "환급 시간";
        ColUtil => "util %", "사용률(%)";
        ColEnergy => "energy wh", "에너지(Wh)";
        ColDue => "due krw", "청구액(원)";
        ColFlags => "flags", "경고";
        LblState => "State", "상태";
        LblClass => "Class", "장치 종류";
        LblCount => "Count", "수";
        LblOrg => "Org", "기관";
        LblUser => "User", "사용자";
        LblRole => "Role", "역할";
        LblNode => "Node", "노드";
        LblNodes => "Nodes", "노드 수";
        LblServer => "Server", "서버";
        LblTokenExpires => "Token expires", "토큰 만료";
        LblChargedHours => "Charged hours", "차감 시간";
        LblCommand => "Command", "명령";
        LblCreated => "Created", "생성";
        LblDevices => "Devices", "장치";
        LblEstimatedStart => "Estimated start", "예상 시작";
        LblExitCode => "Exit code", "종료 코드";
        LblFinished => "Finished", "종료";
        LblStarted => "Started", "시작됨";
        LblImage => "Image", "이미지";
        LblMaxRuntime => "Max runtime", "최대 실행 시간";
        LblPreemptible => "Preemptible", "선점 가능";
        LblPriority => "Priority", "우선순위";
        LblReason => "Reason", "사유";
        LblRequeuedFrom => "Requeued from", "재대기 원본";
        LblReservation => "Reservation", "예약";
        LblBudget => "Budget", "예산";
        LblStart => "Start", "시작";
        LblEnd => "End", "종료";
        LblSite => "Site", "사이트";
        LblWarning => "Warning", "경고";
        EmptyNotifications => "no notifications", "알림이 없습니다";
        EmptyWebhooks => "no webhooks", "웹훅이 없습니다";
        NotificationsSet => "notifications: mail to {email} for {events}", "알림: {events} 이벤트를 {email}(으)로 보냅니다";
        NotificationsNone => "no notification settings: set them with `berth notifications set --email ADDR --events LIST`", "알림 설정이 없습니다: `berth notifications set --email ADDR --events LIST`로 설정하세요";
        NotificationsCleared => "notification settings cleared", "알림 설정을 지웠습니다";
        WebhookAdded => "webhook {id} added to {org}", "{org}에 웹훅 {id}을(를) 추가했습니다";
        WebhookRemoved => "webhook {id} removed", "웹훅 {id}을(를) 삭제했습니다";
        LanguageSet => "language set to {lang}", "언어를 {lang}(으)로 설정했습니다";
        NoEvents => "no events", "이벤트 없음";
    }
}

/// The message of a table header key (the CSV column name), if the catalogue has one.
pub fn header(key: &str) -> Option<Msg> {
    use crate::Message;
    // Header messages are the `Col*` keys; their English text is the key.
    Msg::all()
        .iter()
        .copied()
        .find(|m| m.key().starts_with("Col") && m.text(crate::Lang::En) == key)
}

/// The message of a `show` label (`Token expires`), if the catalogue has one.
pub fn label(key: &str) -> Option<Msg> {
    use crate::Message;
    Msg::all()
        .iter()
        .copied()
        .find(|m| m.key().starts_with("Lbl") && m.text(crate::Lang::En) == key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Lang, Message};

    #[test]
    fn headers_and_labels_are_found_by_their_english_key() {
        assert_eq!(header("device-hours"), Some(Msg::ColDeviceHours));
        assert_eq!(
            header("reserved device-hours").map(|m| m.text(Lang::Ko)),
            Some("예약 장치-시간")
        );
        assert_eq!(label("Token expires"), Some(Msg::LblTokenExpires));
        assert_eq!(header("no such column"), None);
        // Messages are not headers, even when a text matches.
        assert_eq!(header("no jobs"), None);
    }

    #[test]
    fn header_and_label_keys_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for m in Msg::all() {
            let k = m.key();
            if k.starts_with("Col") || k.starts_with("Lbl") {
                let kind = &k[..3];
                assert!(seen.insert((kind, m.text(Lang::En))), "{k} repeats a key");
            }
        }
    }
}
