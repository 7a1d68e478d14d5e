//! The web portal in a real browser: Debian's `chromium` driven through `chromedriver`
//! (W3C WebDriver), against the real `berth-scheduler` and `berth-agent` binaries, with
//! the real `berth` CLI to check what the browser did.
//!
//! Screenshots of the main pages are written as PNG to `BERTH_PORTAL_SCREENSHOTS` when
//! it is set (docs/portal/ holds the committed ones; see docs/portal.md), else to the
//! test's temp dir.

mod common;
#[path = "common/webdriver.rs"]
mod webdriver;

use common::Centre;
use std::path::PathBuf;
use std::time::Duration;
use webdriver::{Driver, Session, http};

const CLASS: &str = "sim-gpu";
const WAIT: Duration = Duration::from_secs(30);

/// Where screenshots go.
fn shots_dir(c: &Centre) -> PathBuf {
    let dir = std::env::var_os("BERTH_PORTAL_SCREENSHOTS")
        .filter(|d| !d.is_empty())
        .map_or_else(|| c.path("screenshots"), PathBuf::from);
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

fn shot(s: &Session, dir: &std::path::Path, name: &str) {
    let png = s.screenshot();
    std::fs::write(dir.join(format!("{name}.png")), png).expect("write screenshot");
}

/// Signs in with `token` through the sign-in form.
#[track_caller]
fn sign_in(s: &Session, base: &str, token: &str) {
    s.goto(&format!("{base}/login"));
    let field = s.find("#f-token");
    s.type_into(&field, token);
    s.click(&s.find("form[action='/login'] button[type=submit]"));
    s.wait_for("the calendar after signing in", WAIT, |s| {
        s.url().ends_with("/calendar")
    });
}

/// The page fits the window's width: nothing scrolls sideways but the tables' own boxes.
#[track_caller]
fn fits_width(s: &Session) {
    let fits = s.script(
        "return document.documentElement.scrollWidth <= document.documentElement.clientWidth + 1;",
    );
    assert_eq!(
        fits,
        true,
        "the page is wider than the window at {}",
        s.url()
    );
}

/// The session cookie's value.
#[track_caller]
fn session_cookie(s: &Session) -> String {
    let c = s.cookie("berth_session").expect("the berth_session cookie");
    assert_eq!(c["httpOnly"], true, "{c}");
    assert_eq!(c["sameSite"], "Strict", "{c}");
    c["value"].as_str().expect("cookie value").to_owned()
}

#[test]
fn the_portal_in_a_real_browser() {
    let mut c = Centre::start();
    c.site_and_class("local", CLASS);
    c.admin(&["admin", "orgs", "create", "acme"]);
    c.admin(&["admin", "orgs", "create", "globex"]);
    c.admin(&[
        "admin", "budgets", "set", "--org", "acme", "--class", "*", "--hours", "100",
    ]);
    let alice = c.user("acme", "alice");
    let bob = c.user("globex", "bob");
    c.start_agent("node-a", "local", CLASS, 4);
    let base = format!("http://{}", c.web);
    let dir = shots_dir(&c);
    let driver = Driver::start();

    // Log in with a token; the cookie is HttpOnly and SameSite=Strict.
    let a = driver.session("en-US");
    sign_in(&a, &base, &alice);
    assert!(a.source().contains("alice (acme)"));
    let alice_cookie = session_cookie(&a);
    shot(&a, &dir, "calendar");
    // Keyboard: the first Tab reaches the skip link.
    a.keys("\u{E004}");
    assert_eq!(a.property(&a.active(), "className"), "skip");

    // Book a slot from the calendar: a free hour, then its cost, then confirm.
    // The week's last free hour (rows are hours, columns days): never the current hour,
    // which would start at once.
    let cells = a.find_all("table.calendar td.free a");
    a.click(cells.last().expect("the calendar shows free hours"));
    a.wait_for("the booking form", WAIT, |s| s.url().contains("/book?"));
    assert_eq!(a.property(&a.find("#f-class"), "value"), CLASS);
    let count = a.find("#f-count");
    a.clear(&count);
    a.type_into(&count, "2");
    a.click(&a.find("form[action='/book#cost'] button[type=submit]"));
    let cost = a.text(&a.find("#cost"));
    assert!(cost.contains("the organisation's budget for *"), "{cost}");
    assert!(cost.contains("Left after this booking"), "{cost}");
    shot(&a, &dir, "booking-cost");
    a.click(&a.find("#confirm"));
    a.wait_for("the new booking", WAIT, |s| {
        s.url().contains("notice=booked")
    });
    let url = a.url();
    let id = url
        .rsplit('/')
        .next()
        .and_then(|p| p.split('?').next())
        .expect("booking id")
        .to_owned();
    shot(&a, &dir, "booking");
    let listed = c.json(&alice, &["reservations"]);
    let found = listed
        .as_array()
        .expect("reservations -o json: an array")
        .iter()
        .find(|r| r["id"] == id.as_str())
        .unwrap_or_else(|| panic!("booking {id} not in `berth reservations`: {listed}"));
    assert_eq!(
        (found["count"].as_u64(), found["state"].as_str()),
        (Some(2), Some("confirmed"))
    );

    // A form posted without its CSRF token is refused, and nothing changes.
    let cookie = format!("berth_session={alice_cookie}");
    let refused = http(
        &c.web,
        "POST",
        &format!("/reservations/{id}/cancel"),
        &[
            ("Cookie", &cookie),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        "",
    )
    .expect("POST without a CSRF token");
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains("security token"), "{}", refused.body);
    let wrong = http(
        &c.web,
        "POST",
        &format!("/reservations/{id}/cancel"),
        &[
            ("Cookie", &cookie),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        "_csrf=0123456789abcdef0123456789abcdef0123456789abcdef",
    )
    .expect("POST with a wrong CSRF token");
    assert_eq!(wrong.status, 403);
    let still = c.json(&alice, &["reservations", "show", &id]);
    assert_eq!(still["state"], "confirmed", "{still}");

    // Submit nothing: every field says what is wrong, beside it, and nothing is booked.
    a.goto(&format!("{base}/book"));
    for f in ["#f-count", "#f-start", "#f-hours"] {
        a.clear(&a.find(f));
    }
    a.click(&a.find("form[action='/book#cost'] button[type=submit]"));
    for f in ["class", "count", "start", "hours"] {
        let e = a.text(&a.find(&format!("#e-{f}")));
        assert!(e.contains(f), "the error beside {f} says {e:?}");
        assert_eq!(
            a.property(&a.find(&format!("#f-{f}")), "ariaInvalid"),
            "true"
        );
    }
    assert!(a.find_all("#cost").is_empty());
    shot(&a, &dir, "booking-errors");
    let after = c.json(&alice, &["reservations"]);
    assert_eq!(after.as_array().map(Vec::len), Some(1), "{after}");

    // A job with a live log tail.
    let job = c
        .berth(
            &alice,
            &[
                "-o",
                "json",
                "submit",
                "--class",
                CLASS,
                "--max-runtime",
                "5m",
                "--",
                "sh",
                "-c",
                "echo hello from the portal; sleep 2; echo done",
            ],
        )
        .ok()
        .json();
    let job_id = job["id"].as_str().expect("job id").to_owned();
    a.goto(&format!("{base}/jobs/{job_id}"));
    a.wait_for("the job's log", WAIT, |s| {
        s.text(&s.find("#log")).contains("done")
    });
    a.wait_for("the job to end", WAIT, |s| {
        s.text(&s.find("#job-state")) == "succeeded"
    });
    assert!(a.text(&a.find("#log")).contains("hello from the portal"));
    shot(&a, &dir, "job");
    a.goto(&format!("{base}/jobs?all=1"));
    assert!(a.source().contains(&job_id[..8]));

    // A second org's session never shows the first org's booking, even by its URL.
    let b = driver.session("en-US");
    sign_in(&b, &base, &bob);
    b.goto(&format!("{base}/reservations?all=1"));
    assert!(
        !b.source().contains(&id),
        "globex sees acme's booking in its list"
    );
    b.goto(&format!("{base}/reservations/{id}"));
    assert_eq!(b.title(), "Not found · Berth");
    assert!(
        !b.source().contains("alice"),
        "globex sees acme's booking by its URL"
    );
    b.goto(&format!("{base}/jobs/{job_id}"));
    assert_eq!(b.title(), "Not found · Berth");
    b.goto(&format!("{base}/jobs/{job_id}/log"));
    assert!(!b.source().contains("hello from the portal"));
    let bob_cookie = format!("berth_session={}", session_cookie(&b));
    let csrf = b.property(&b.find("input[name=_csrf]"), "value");
    let cancel = http(
        &c.web,
        "POST",
        &format!("/reservations/{id}/cancel"),
        &[
            ("Cookie", &bob_cookie),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        &format!("_csrf={csrf}"),
    )
    .expect("globex cancels acme's booking");
    assert_eq!(cancel.status, 404, "{}", cancel.body);

    // Then cancel the booking from its row.
    a.goto(&format!("{base}/reservations"));
    a.click(&a.find(&format!("tr[data-id='{id}'] button.danger")));
    a.wait_for("the cancelled notice", WAIT, |s| {
        s.url().contains("notice=cancelled")
    });
    let gone = c.json(&alice, &["reservations", "show", &id]);
    assert_eq!(gone["state"], "cancelled", "{gone}");

    // Usage, account, and a phone's width.
    a.goto(&format!("{base}/usage"));
    assert!(a.find_all("#budgets tbody tr").len() == 1);
    shot(&a, &dir, "usage");
    let csv = http(&c.web, "GET", "/usage.csv", &[("Cookie", &cookie)], "").expect("usage.csv");
    assert_eq!(csv.status, 200);
    assert!(
        csv.body
            .starts_with("org,user,kind,subject_id,class,devices,start,end,device_hours,"),
        "{}",
        csv.body
    );
    assert!(csv.body.contains(&job_id), "{}", csv.body);
    a.goto(&format!("{base}/account"));
    shot(&a, &dir, "account");
    a.resize(390, 844);
    for path in [
        "/calendar",
        "/book",
        "/reservations?all=1",
        "/jobs?all=1",
        "/usage",
        "/account",
    ] {
        a.goto(&format!("{base}{path}"));
        fits_width(&a);
    }
    a.goto(&format!("{base}/calendar"));
    shot(&a, &dir, "phone-calendar");

    // Admin pages.
    let admin = driver.session("en-US");
    sign_in(&admin, &base, &c.admin_token);
    admin.goto(&format!("{base}/admin/nodes"));
    assert!(admin.source().contains("node-a"));
    shot(&admin, &dir, "admin-nodes");
    admin.goto(&format!("{base}/admin/audit"));
    let audit = admin.source();
    assert!(
        audit.contains("reservation.create")
            && audit.contains("reservation.cancel")
            && audit.contains("session.create")
    );
    admin.goto(&format!("{base}/admin/orgs"));
    shot(&admin, &dir, "admin-orgs");
    // Alice is no admin, whatever the URL.
    a.goto(&format!("{base}/admin/nodes"));
    assert!(!a.source().contains("node-a"));

    // Accept-Language: ko gives the Korean page, in the browser and over plain HTTP.
    let ko = driver.session("ko-KR");
    ko.goto(&format!("{base}/login"));
    assert_eq!(ko.script("return document.documentElement.lang;"), "ko");
    assert!(ko.source().contains("로그인"));
    shot(&ko, &dir, "login-ko");
    sign_in(&ko, &base, &alice);
    assert!(ko.source().contains("이번 주 사용 가능한 장치"));
    shot(&ko, &dir, "calendar-ko");
    let page = http(
        &c.web,
        "GET",
        "/login",
        &[("Accept-Language", "ko-KR,ko;q=0.9,en;q=0.5")],
        "",
    )
    .expect("GET /login in Korean");
    assert!(
        page.body.contains("<html lang=\"ko\">") && page.body.contains("API 토큰"),
        "{}",
        page.body
    );
    let csp = page.header("content-security-policy").unwrap_or_default();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );

    // Signing out ends the session: its cookie no longer opens a page.
    b.click(&b.find("form[action='/logout'] button"));
    b.wait_for("the sign-in page", WAIT, |s| s.url().ends_with("/login"));
    let after = http(
        &c.web,
        "GET",
        "/reservations",
        &[("Cookie", &bob_cookie)],
        "",
    )
    .expect("GET after sign-out");
    assert_eq!(after.status, 303);
}

/// `berth login --web` prints a link that signs in once, within five minutes.
#[test]
fn a_login_link_signs_in_once() {
    let c = Centre::start();
    c.admin(&["admin", "orgs", "create", "acme"]);
    let alice = c.user("acme", "alice");
    let run = c.berth(&alice, &["login", "--web"]).ok();
    let url = run.stdout.trim().to_owned();
    let prefix = format!("http://{}/login/link?t=", c.web);
    assert!(url.starts_with(&prefix), "{url}");
    let secret = &url[prefix.len()..];

    // The link asks first (a link previewer cannot use it up).
    let page =
        http(&c.web, "GET", &format!("/login/link?t={secret}"), &[], "").expect("GET the link");
    assert_eq!(page.status, 200);
    let pre = page
        .headers
        .iter()
        .filter(|(k, _)| k == "set-cookie")
        .find_map(|(_, v)| v.strip_prefix("berth_pre="))
        .and_then(|v| v.split(';').next())
        .expect("a berth_pre cookie")
        .to_owned();
    let post = |csrf: &str| {
        http(
            &c.web,
            "POST",
            "/login/link",
            &[
                ("Cookie", &format!("berth_pre={pre}")),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            &format!("_csrf={csrf}&t={secret}"),
        )
        .expect("POST the link")
    };
    assert_eq!(post("").status, 403, "no CSRF token");
    let used = post(&pre);
    assert_eq!(used.status, 303, "{}", used.body);
    let session = used
        .headers
        .iter()
        .filter(|(k, _)| k == "set-cookie")
        .find_map(|(_, v)| v.strip_prefix("berth_session="))
        .and_then(|v| v.split(';').next())
        .expect("a session cookie")
        .to_owned();
    let home = http(
        &c.web,
        "GET",
        "/reservations",
        &[("Cookie", &format!("berth_session={session}"))],
        "",
    )
    .expect("GET with the session");
    assert_eq!(home.status, 200);
    assert!(home.body.contains("alice (acme)"));
    // Used once: the second time it is refused, saying why.
    let again = post(&pre);
    assert_eq!(again.status, 400);
    assert!(again.body.contains("berth login --web"), "{}", again.body);
    let audit = c.admin(&["admin", "audit", "-o", "json"]).stdout;
    assert!(
        audit.contains("web-login.create") && audit.contains("web sign-in with a link"),
        "{audit}"
    );
}

/// The value of the first hidden `_csrf` field of a page.
fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"_csrf\" value=\"").expect("a _csrf field") + 20;
    page[at..].split('"').next().unwrap_or_default().to_owned()
}

/// The value a `Set-Cookie` header of `reply` gives cookie `name`.
fn set_cookie(reply: &webdriver::HttpReply, name: &str) -> Option<String> {
    reply
        .headers
        .iter()
        .filter(|(k, _)| k == "set-cookie")
        .find_map(|(_, v)| v.strip_prefix(&format!("{name}=")))
        .and_then(|v| v.split(';').next())
        .map(str::to_owned)
}

/// The user's language, chosen in the portal, is the CLI's too after `berth login`; else
/// LANG decides; JSON never changes.
#[test]
fn the_cli_speaks_the_users_language() {
    let mut c = Centre::start();
    c.site_and_class("local", CLASS);
    c.admin(&["admin", "orgs", "create", "acme"]);
    let alice = c.user("acme", "alice");
    c.start_agent("node-a", "local", CLASS, 2);

    // LANG=ko_KR.UTF-8: Korean headers, messages and errors; the same JSON.
    let korean = |args: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_berth"));
        cmd.args(args)
            .env("BERTH_SERVER", c.server_url())
            .env("BERTH_TOKEN", &alice)
            .env("BERTH_CONFIG", c.path("ko-config.json"))
            .env("LANG", "ko_KR.UTF-8")
            .env_remove("LC_ALL")
            .env_remove("LC_MESSAGES");
        cmd.output().expect("run berth")
    };
    let nodes = korean(&["nodes"]);
    let table = String::from_utf8_lossy(&nodes.stdout);
    assert!(table.starts_with("이름"), "{table}");
    let bad = korean(&[
        "reserve",
        "--class",
        CLASS,
        "--count",
        "1",
        "--duration",
        "-1h",
    ]);
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.starts_with("오류: "), "{err}");
    // The scheduler's messages with values are Korean too, the values as they are.
    let unknown = korean(&[
        "reserve",
        "--class",
        "no-such-class",
        "--count",
        "1",
        "--start",
        "now",
        "--duration",
        "1h",
    ]);
    let err = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        err.contains(&format!(
            "class 값이 올바르지 않습니다: 알 수 없는 장치 클래스 \"no-such-class\"입니다 (등록된 클래스: {CLASS})"
        )),
        "{err}"
    );
    let json_ko = korean(&["nodes", "-o", "json"]);
    let json_en = c.berth(&alice, &["nodes", "-o", "json"]).ok();
    let ko: serde_json::Value = serde_json::from_slice(&json_ko.stdout).expect("JSON");
    let en = json_en.json();
    assert_eq!(
        ko[0]
            .as_object()
            .map(|o| o.keys().cloned().collect::<Vec<_>>()),
        en[0]
            .as_object()
            .map(|o| o.keys().cloned().collect::<Vec<_>>())
    );
    assert_eq!(ko[0]["state"], "ready");

    // Alice chooses Korean in the portal (over plain HTTP: sign in, then the form).
    let login = http(&c.web, "GET", "/login", &[], "").expect("GET /login");
    let pre = set_cookie(&login, "berth_pre").expect("berth_pre");
    let signed = http(
        &c.web,
        "POST",
        "/login",
        &[
            ("Cookie", &format!("berth_pre={pre}")),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        &format!("_csrf={}&token={alice}", csrf_of(&login.body)),
    )
    .expect("POST /login");
    let session = format!(
        "berth_session={}",
        set_cookie(&signed, "berth_session").expect("session")
    );
    let account =
        http(&c.web, "GET", "/account", &[("Cookie", &session)], "").expect("GET /account");
    let saved = http(
        &c.web,
        "POST",
        "/account/language",
        &[
            ("Cookie", &session),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        &format!("_csrf={}&lang=ko", csrf_of(&account.body)),
    )
    .expect("POST /account/language");
    assert_eq!(saved.status, 303, "{}", saved.body);
    let bad_lang = http(
        &c.web,
        "POST",
        "/account/language",
        &[
            ("Cookie", &session),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        &format!("_csrf={}&lang=fr", csrf_of(&account.body)),
    )
    .expect("POST a language Berth does not speak");
    assert_eq!(bad_lang.status, 400);
    // Said beside the field, in the language just chosen.
    assert!(
        bad_lang.body.contains(
            "id=\"e-lang\">lang 값이 올바르지 않습니다: &quot;fr&quot;은(는) Berth가 지원하는 \
                 언어가 아닙니다(en, ko)"
        ),
        "{}",
        bad_lang.body
    );
    // The setting beats the browser's English.
    let page = http(
        &c.web,
        "GET",
        "/calendar",
        &[("Cookie", &session), ("Accept-Language", "en")],
        "",
    )
    .expect("GET /calendar");
    assert!(page.body.contains("<html lang=\"ko\">"), "{}", page.body);

    // `berth login` saves the setting; with LANG=C the CLI then speaks Korean.
    let config = c.path("alice-config.json");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_berth"));
    let out = cmd
        .args(["login", "--server", &c.server_url(), "--token", &alice])
        .env("BERTH_CONFIG", &config)
        .env("LANG", "C")
        .env_remove("BERTH_SERVER")
        .env_remove("BERTH_TOKEN")
        .output()
        .expect("berth login");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config).expect("config"))
            .expect("config JSON");
    assert_eq!(saved["language"], "ko");
    let nodes = c.berth_with_config(&config, &["nodes"]).ok();
    assert!(nodes.stdout.starts_with("이름"), "{}", nodes.stdout);
}
