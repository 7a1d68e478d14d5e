//! `berth prices`, `berth invoices` and `berth admin prices|discounts|invoices`: prices per
//! device-hour, discounts, and monthly invoices in whole won as a table, JSON, CSV or a
//! printable HTML page.

use super::{Ctx, opt};
use crate::error::{Error, tr, trf};
use crate::output::{self, Details, Format, Table};
use crate::timefmt;
use berth_i18n::cli::Msg;
use berth_proto::v1;
use serde::Serialize;

/// `berth admin prices` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum PricesCmd {
    /// Set a class's price in whole won per device-hour.
    Set {
        /// Device class.
        #[arg(long)]
        class: String,
        /// Won per device-hour.
        #[arg(long, value_name = "N", allow_hyphen_values = true)]
        krw_per_hour: i64,
        /// Won per booked device-hour no job used (default: the same price).
        #[arg(long, value_name = "N", allow_hyphen_values = true)]
        idle_krw_per_hour: Option<i64>,
    },
}

/// `berth admin discounts` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum DiscountsCmd {
    /// Set an organisation's discount on its invoices.
    Set {
        #[arg(long)]
        org: String,
        /// 0 to 100.
        #[arg(long, value_name = "P")]
        percent: u32,
        /// Why (shown on every invoice), e.g. "부산 소재 중소기업".
        #[arg(long)]
        reason: String,
    },
}

/// `berth admin invoices` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum AdminInvoicesCmd {
    /// Generate the draft invoices of a month that has ended.
    Generate {
        /// YYYY-MM (a UTC calendar month).
        #[arg(long, value_name = "YYYY-MM")]
        month: String,
        /// Only this organisation (default: every one with activity in the month).
        #[arg(long)]
        org: Option<String>,
        /// Replace the month's drafts (issued and paid invoices are kept).
        #[arg(long)]
        replace_drafts: bool,
    },
    /// Issue a draft invoice; it is never edited again.
    Issue {
        /// Invoice id.
        id: String,
    },
    /// Mark an issued invoice paid.
    Pay {
        /// Invoice id.
        id: String,
    },
    /// Void a draft or issued invoice (a correction is a new invoice).
    Void {
        /// Invoice id.
        id: String,
    },
}

/// `berth invoices` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum InvoicesCmd {
    /// Show one invoice: -o table, json, csv or html (a printable page).
    Show {
        /// Invoice id.
        id: String,
    },
}

/// Listing filters of `berth invoices`.
#[derive(Debug, Clone, clap::Args)]
pub struct InvoiceFilter {
    /// Organisation (admins only, default all; others always see their own).
    #[arg(long)]
    pub org: Option<String>,
    /// Only this month (YYYY-MM).
    #[arg(long, value_name = "YYYY-MM")]
    pub month: Option<String>,
}

/// The state's name.
pub fn invoice_state(state: i32) -> &'static str {
    use v1::InvoiceState as S;
    match S::try_from(state) {
        Ok(S::Draft) => "draft",
        Ok(S::Issued) => "issued",
        Ok(S::Paid) => "paid",
        Ok(S::Void) => "void",
        Ok(S::Unspecified) | Err(_) => "unknown",
    }
}

/// `1234567` as `1,234,567` (and `-1,000`).
pub fn won(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// Hours with three decimals.
fn hours(h: f64) -> String {
    format!("{h:.3}")
}

/// A price as printed in JSON.
#[derive(Debug, Serialize)]
pub struct PriceView {
    pub class: String,
    pub krw_per_hour: i64,
    pub idle_krw_per_hour: Option<i64>,
    pub updated_at: Option<String>,
}

impl From<&v1::Price> for PriceView {
    fn from(p: &v1::Price) -> Self {
        Self {
            class: p.class.clone(),
            krw_per_hour: p.krw_per_hour,
            idle_krw_per_hour: p.idle_krw_per_hour,
            updated_at: timefmt::ts_rfc3339(p.updated_at.as_ref()),
        }
    }
}

/// A discount as printed in JSON.
#[derive(Debug, Serialize)]
pub struct DiscountView {
    pub org: String,
    pub percent: u32,
    pub reason: String,
    pub updated_at: Option<String>,
}

impl From<&v1::Discount> for DiscountView {
    fn from(d: &v1::Discount) -> Self {
        Self {
            org: d.org.clone(),
            percent: d.percent,
            reason: d.reason.clone(),
            updated_at: timefmt::ts_rfc3339(d.updated_at.as_ref()),
        }
    }
}

/// An invoice line as printed in JSON.
#[derive(Debug, Serialize)]
pub struct LineView {
    pub project: Option<String>,
    pub class: String,
    pub kind: String,
    pub hours: f64,
    pub covered_hours: f64,
    pub billable_hours: f64,
    pub krw_per_hour: i64,
    pub discount_percent: u32,
    pub amount_krw: i64,
}

/// An invoice as printed in JSON.
#[derive(Debug, Serialize)]
pub struct InvoiceView {
    pub id: String,
    pub org: String,
    pub month: String,
    pub state: &'static str,
    pub period_start: Option<String>,
    pub period_end: Option<String>,
    pub time_zone: &'static str,
    pub lines: Vec<LineView>,
    pub subtotal_krw: i64,
    pub vat_percent: u32,
    pub vat_krw: i64,
    pub total_krw: i64,
    pub discount_percent: u32,
    pub discount_reason: Option<String>,
    pub rounding: &'static str,
    pub created_at: Option<String>,
    pub issued_at: Option<String>,
    pub paid_at: Option<String>,
    pub voided_at: Option<String>,
}

/// The rounding rule, as stated on every invoice (English, for JSON).
pub const ROUNDING: &str = "each line: billable hours x price x (100 - discount %) / 100, rounded to whole won half away from zero; VAT: 10 % of the subtotal, rounded the same way";

impl From<&v1::Invoice> for InvoiceView {
    fn from(i: &v1::Invoice) -> Self {
        Self {
            id: i.id.clone(),
            org: i.org.clone(),
            month: i.month.clone(),
            state: invoice_state(i.state),
            period_start: timefmt::ts_rfc3339(i.period_start.as_ref()),
            period_end: timefmt::ts_rfc3339(i.period_end.as_ref()),
            time_zone: "UTC",
            lines: i
                .lines
                .iter()
                .map(|l| LineView {
                    project: opt(&l.project),
                    class: l.class.clone(),
                    kind: l.kind.clone(),
                    hours: l.hours,
                    covered_hours: l.covered_hours,
                    billable_hours: l.billable_hours,
                    krw_per_hour: l.krw_per_hour,
                    discount_percent: l.discount_percent,
                    amount_krw: l.amount_krw,
                })
                .collect(),
            subtotal_krw: i.subtotal_krw,
            vat_percent: i.vat_percent,
            vat_krw: i.vat_krw,
            total_krw: i.total_krw,
            discount_percent: i.discount_percent,
            discount_reason: opt(&i.discount_reason),
            rounding: ROUNDING,
            created_at: timefmt::ts_rfc3339(i.created_at.as_ref()),
            issued_at: timefmt::ts_rfc3339(i.issued_at.as_ref()),
            paid_at: timefmt::ts_rfc3339(i.paid_at.as_ref()),
            voided_at: timefmt::ts_rfc3339(i.voided_at.as_ref()),
        }
    }
}

/// `berth prices` and `berth admin prices`.
pub async fn prices(ctx: &Ctx, cmd: Option<&PricesCmd>) -> Result<(), Error> {
    let mut client = ctx.api().await?.billing();
    let prices = match cmd {
        Some(PricesCmd::Set {
            class,
            krw_per_hour,
            idle_krw_per_hour,
        }) => {
            let req = v1::SetPriceRequest {
                class: class.clone(),
                krw_per_hour: *krw_per_hour,
                idle_krw_per_hour: *idle_krw_per_hour,
            };
            vec![client.set_price(req).await?.into_inner()]
        }
        None => {
            client
                .list_prices(v1::ListPricesRequest {})
                .await?
                .into_inner()
                .prices
        }
    };
    if ctx.format == Format::Json {
        let views: Vec<PriceView> = prices.iter().map(Into::into).collect();
        return output::json(&views);
    }
    let mut t = Table::new(["class", "krw/h", "idle krw/h"]);
    for p in &prices {
        t.row([
            p.class.clone(),
            won(p.krw_per_hour),
            p.idle_krw_per_hour.map_or("-".to_owned(), won),
        ]);
    }
    t.print(ctx.format, tr(Msg::EmptyPrices))
}

/// `berth admin discounts`.
pub async fn discounts(
    ctx: &Ctx,
    org: Option<&str>,
    cmd: Option<&DiscountsCmd>,
) -> Result<(), Error> {
    let mut client = ctx.api().await?.billing();
    let discounts = match cmd {
        Some(DiscountsCmd::Set {
            org,
            percent,
            reason,
        }) => {
            let req = v1::SetDiscountRequest {
                org: org.clone(),
                percent: *percent,
                reason: reason.clone(),
            };
            vec![client.set_discount(req).await?.into_inner()]
        }
        None => {
            let req = v1::ListDiscountsRequest {
                org: org.unwrap_or_default().to_owned(),
            };
            client.list_discounts(req).await?.into_inner().discounts
        }
    };
    if ctx.format == Format::Json {
        let views: Vec<DiscountView> = discounts.iter().map(Into::into).collect();
        return output::json(&views);
    }
    let mut t = Table::new(["org", "percent", "reason"]);
    for d in &discounts {
        t.row([d.org.clone(), d.percent.to_string(), d.reason.clone()]);
    }
    t.print(ctx.format, tr(Msg::EmptyDiscounts))
}

/// Prints a list of invoices.
fn print_list(ctx: &Ctx, invoices: &[v1::Invoice]) -> Result<(), Error> {
    if ctx.format == Format::Json {
        let views: Vec<InvoiceView> = invoices.iter().map(Into::into).collect();
        return output::json(&views);
    }
    let mut t = Table::new([
        "id",
        "org",
        "month",
        "state",
        "hours",
        "subtotal krw",
        "vat krw",
        "total krw",
    ]);
    for i in invoices {
        t.row([
            i.id.clone(),
            i.org.clone(),
            i.month.clone(),
            invoice_state(i.state).to_owned(),
            hours(i.lines.iter().map(|l| l.hours).sum()),
            won(i.subtotal_krw),
            won(i.vat_krw),
            won(i.total_krw),
        ]);
    }
    t.print(ctx.format, tr(Msg::EmptyInvoices))
}

/// `berth invoices` (and `berth admin invoices` without a subcommand).
pub async fn invoices(
    ctx: &Ctx,
    filter: &InvoiceFilter,
    cmd: Option<&InvoicesCmd>,
) -> Result<(), Error> {
    let mut client = ctx.api().await?.billing();
    match cmd {
        Some(InvoicesCmd::Show { id }) => {
            let i = client
                .get_invoice(v1::GetInvoiceRequest { id: id.clone() })
                .await?
                .into_inner();
            print_one(&i, ctx.format)
        }
        None => {
            let req = v1::ListInvoicesRequest {
                org: filter.org.clone().unwrap_or_default(),
                month: filter.month.clone().unwrap_or_default(),
            };
            let list = client.list_invoices(req).await?.into_inner().invoices;
            print_list(ctx, &list)
        }
    }
}

/// `berth admin invoices generate|issue|pay|void`.
pub async fn admin_invoices(ctx: &Ctx, cmd: &AdminInvoicesCmd) -> Result<(), Error> {
    let mut client = ctx.api().await?.billing();
    let to_state = |id: &str, state: v1::InvoiceState| v1::SetInvoiceStateRequest {
        id: id.to_owned(),
        state: state as i32,
    };
    let changed = match cmd {
        AdminInvoicesCmd::Generate {
            month,
            org,
            replace_drafts,
        } => {
            let req = v1::GenerateInvoicesRequest {
                month: month.clone(),
                org: org.clone().unwrap_or_default(),
                replace_drafts: *replace_drafts,
            };
            let out = client.generate_invoices(req).await?.into_inner();
            for s in &out.skipped {
                output::note(trf(
                    Msg::InvoiceKept,
                    &[
                        ("org", &s.org),
                        ("id", &s.invoice_id),
                        ("state", &invoice_state(s.state)),
                    ],
                ));
            }
            if out.invoices.is_empty() && out.skipped.is_empty() {
                output::note(trf(Msg::InvoicesNone, &[("month", month)]));
            }
            return print_list(ctx, &out.invoices);
        }
        AdminInvoicesCmd::Issue { id } => to_state(id, v1::InvoiceState::Issued),
        AdminInvoicesCmd::Pay { id } => to_state(id, v1::InvoiceState::Paid),
        AdminInvoicesCmd::Void { id } => to_state(id, v1::InvoiceState::Void),
    };
    let i = client.set_invoice_state(changed).await?.into_inner();
    print_one(&i, ctx.format)
}

/// Prints one invoice in `format`.
pub fn print_one(i: &v1::Invoice, format: Format) -> Result<(), Error> {
    match format {
        Format::Json => output::json(&InvoiceView::from(i)),
        Format::Csv => output::emit(&csv(i)),
        Format::Html => output::emit(&html(i)),
        Format::Table => output::emit(&table(i)),
    }
}

/// The period line: `2025-03-01 00:00 – 2025-04-01 00:00 UTC`.
fn period(i: &v1::Invoice) -> String {
    let utc = |ts: Option<&prost_types::Timestamp>| {
        timefmt::ts_ms(ts)
            .and_then(chrono::DateTime::from_timestamp_millis)
            .map_or("-".to_owned(), |t| t.format("%Y-%m-%d %H:%M").to_string())
    };
    format!(
        "{} – {} UTC",
        utc(i.period_start.as_ref()),
        utc(i.period_end.as_ref())
    )
}

/// The lines as a table, without totals.
fn lines_table(i: &v1::Invoice) -> Table {
    let mut t = Table::new([
        "project",
        "class",
        "kind",
        "hours",
        "covered hours",
        "billable hours",
        "krw/h",
        "discount %",
        "amount krw",
    ]);
    for l in &i.lines {
        t.row([
            super::dash(&l.project),
            l.class.clone(),
            l.kind.clone(),
            hours(l.hours),
            hours(l.covered_hours),
            hours(l.billable_hours),
            won(l.krw_per_hour),
            l.discount_percent.to_string(),
            won(l.amount_krw),
        ]);
    }
    t
}

/// Details, lines, totals and the rounding rule, for people.
fn table(i: &v1::Invoice) -> String {
    let mut d = Details::new()
        .field("ID", &i.id)
        .field("Org", &i.org)
        .field("Month", &i.month)
        .field("Period", period(i))
        .field("State", invoice_state(i.state));
    if i.discount_percent > 0 || !i.discount_reason.is_empty() {
        d = d.field(
            "Discount",
            format!("{} % ({})", i.discount_percent, i.discount_reason),
        );
    }
    d = d.field("Created", timefmt::ts_local(i.created_at.as_ref()));
    for (label, ts) in [
        ("Issued", &i.issued_at),
        ("Paid", &i.paid_at),
        ("Voided", &i.voided_at),
    ] {
        if ts.is_some() {
            d = d.field(label, timefmt::ts_local(ts.as_ref()));
        }
    }
    let mut out = d.render();
    out.push('\n');
    out.push_str(&lines_table(i).render());
    out.push('\n');
    out.push_str(
        &Details::new()
            .field("Subtotal", format!("{} KRW", won(i.subtotal_krw)))
            .field(
                "VAT",
                format!("{} KRW ({} %)", won(i.vat_krw), i.vat_percent),
            )
            .field("Total", format!("{} KRW", won(i.total_krw)))
            .render(),
    );
    out.push('\n');
    out.push_str(tr(Msg::RoundingRule));
    out.push('\n');
    out
}

/// One row per line, then the subtotal, VAT and total rows; raw numbers for spreadsheets.
fn csv(i: &v1::Invoice) -> String {
    let mut t = Table::new([
        "invoice",
        "org",
        "month",
        "state",
        "line",
        "project",
        "class",
        "kind",
        "hours",
        "covered_hours",
        "billable_hours",
        "krw_per_hour",
        "discount_percent",
        "amount_krw",
    ]);
    let head = || {
        vec![
            i.id.clone(),
            i.org.clone(),
            i.month.clone(),
            invoice_state(i.state).to_owned(),
        ]
    };
    for (n, l) in i.lines.iter().enumerate() {
        let mut row = head();
        row.extend([
            (n + 1).to_string(),
            l.project.clone(),
            l.class.clone(),
            l.kind.clone(),
            hours(l.hours),
            hours(l.covered_hours),
            hours(l.billable_hours),
            l.krw_per_hour.to_string(),
            l.discount_percent.to_string(),
            l.amount_krw.to_string(),
        ]);
        t.row(row);
    }
    for (what, amount) in [
        ("subtotal", i.subtotal_krw),
        ("vat", i.vat_krw),
        ("total", i.total_krw),
    ] {
        let mut row = head();
        row.push(what.to_owned());
        row.extend(std::iter::repeat_n(String::new(), 8));
        row.push(amount.to_string());
        t.row(row);
    }
    t.render_csv()
}

/// Escapes text for HTML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => {
                out.push_str(&format!("&#x{:x};", c as u32))
            }
            c => out.push(c),
        }
    }
    out
}

/// The page's style: A4 portrait, fonts that have Hangul, no external resources.
pub(crate) const PAGE_CSS: &str = "@page{size:A4;margin:18mm}\
body{font-family:'Noto Sans KR','Malgun Gothic','Apple SD Gothic Neo',sans-serif;color:#111;font-size:10.5pt;max-width:180mm;margin:0 auto}\
h1{font-size:16pt;margin:0 0 4mm}\
table{border-collapse:collapse;width:100%;margin:3mm 0}\
th,td{border:1px solid #999;padding:1.5mm 2mm;text-align:left}\
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}\
.totals td{border:none}.totals tr.total td{font-weight:bold;border-top:2px solid #111}\
.meta th{width:35mm;background:#f3f3f3}.rule{font-size:8.5pt;color:#444}\
@media print{body{max-width:none}}";

/// A printable, self-contained page (every value escaped).
fn html(i: &v1::Invoice) -> String {
    let e = escape;
    let mut meta = vec![
        (tr(Msg::LblOrg), i.org.clone()),
        (tr(Msg::LblMonth), i.month.clone()),
        (tr(Msg::LblPeriod), period(i)),
        (tr(Msg::LblState), invoice_state(i.state).to_owned()),
    ];
    if i.discount_percent > 0 || !i.discount_reason.is_empty() {
        meta.push((
            tr(Msg::LblDiscount),
            format!("{} % ({})", i.discount_percent, i.discount_reason),
        ));
    }
    for (label, ts) in [
        (tr(Msg::LblCreated), &i.created_at),
        (tr(Msg::LblIssued), &i.issued_at),
        (tr(Msg::LblPaid), &i.paid_at),
        (tr(Msg::LblVoided), &i.voided_at),
    ] {
        if let Some(t) = timefmt::ts_rfc3339(ts.as_ref()) {
            meta.push((label, t));
        }
    }
    let mut s = String::new();
    s.push_str("<!DOCTYPE html>\n<html lang=\"ko\">\n<head>\n<meta charset=\"utf-8\">\n");
    s.push_str(&format!(
        "<title>Invoice {} {} {}</title>\n<style>{PAGE_CSS}</style>\n</head>\n<body>\n",
        e(&i.id),
        e(&i.org),
        e(&i.month)
    ));
    s.push_str(&format!(
        "<h1>청구서 Invoice <span class=\"id\">{}</span></h1>\n<table class=\"meta\">\n",
        e(&i.id)
    ));
    for (k, v) in &meta {
        s.push_str(&format!("<tr><th>{}</th><td>{}</td></tr>\n", e(k), e(v)));
    }
    s.push_str("</table>\n<table class=\"lines\">\n<thead><tr>");
    let heads = [
        ("project", false),
        ("class", false),
        ("kind", false),
        ("hours", true),
        ("covered hours", true),
        ("billable hours", true),
        ("krw/h", true),
        ("discount %", true),
        ("amount krw", true),
    ];
    for (h, numeric) in heads {
        let label = berth_i18n::cli::header(h).map_or(h, |m| tr(m));
        let class = if numeric { " class=\"n\"" } else { "" };
        s.push_str(&format!("<th{class}>{}</th>", e(label)));
    }
    s.push_str("</tr></thead>\n<tbody>\n");
    for l in &i.lines {
        s.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>\n",
            e(&super::dash(&l.project)),
            e(&l.class),
            e(&l.kind),
            hours(l.hours),
            hours(l.covered_hours),
            hours(l.billable_hours),
            won(l.krw_per_hour),
            l.discount_percent,
            won(l.amount_krw),
        ));
    }
    s.push_str("</tbody>\n</table>\n<table class=\"totals\">\n");
    for (label, amount, class) in [
        (tr(Msg::LblSubtotal).to_owned(), i.subtotal_krw, ""),
        (
            format!("{} ({} %)", tr(Msg::LblVat), i.vat_percent),
            i.vat_krw,
            "",
        ),
        (
            tr(Msg::LblTotal).to_owned(),
            i.total_krw,
            " class=\"total\"",
        ),
    ] {
        s.push_str(&format!(
            "<tr{class}><td>{}</td><td class=\"n\">₩{}</td></tr>\n",
            e(&label),
            won(amount)
        ));
    }
    s.push_str(&format!(
        "</table>\n<p class=\"rule\">{}</p>\n</body>\n</html>\n",
        e(tr(Msg::RoundingRule))
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invoice() -> v1::Invoice {
        v1::Invoice {
            id: "inv-1".into(),
            org: "<acme & \"co\">".into(),
            month: "2025-03".into(),
            state: v1::InvoiceState::Issued as i32,
            lines: vec![v1::InvoiceLine {
                project: String::new(),
                class: "h100".into(),
                kind: "use".into(),
                hours: 13.0,
                covered_hours: 0.0,
                billable_hours: 13.0,
                krw_per_hour: 3500,
                discount_percent: 50,
                amount_krw: 22_750,
                device_ms: 13 * 3_600_000,
                billable_ms: 13 * 3_600_000,
            }],
            subtotal_krw: 22_750,
            vat_percent: 10,
            vat_krw: 2_275,
            total_krw: 25_025,
            discount_percent: 50,
            discount_reason: "부산 소재 중소기업 <b>".into(),
            ..Default::default()
        }
    }

    #[test]
    fn won_has_thousands_separators() {
        assert_eq!(won(0), "0");
        assert_eq!(won(999), "999");
        assert_eq!(won(1_000), "1,000");
        assert_eq!(won(1_234_567), "1,234,567");
        assert_eq!(won(-7_700), "-7,700");
    }

    #[test]
    fn html_escapes_everything_and_needs_nothing_outside() {
        let page = html(&invoice());
        assert!(page.contains("&lt;acme &amp; &quot;co&quot;&gt;"), "{page}");
        assert!(page.contains("부산 소재 중소기업 &lt;b&gt;"));
        assert!(!page.contains("<b>"));
        assert!(page.contains("₩25,025"));
        assert!(page.contains("@page{size:A4"));
        assert!(!page.contains("http://") && !page.contains("https://"));
        assert!(page.contains("<meta charset=\"utf-8\">"));
    }

    #[test]
    fn csv_has_a_row_per_line_and_the_totals() {
        let text = csv(&invoice());
        let rows: Vec<&str> = text.lines().collect();
        assert_eq!(rows.len(), 1 + 1 + 3);
        assert!(
            rows[1].ends_with(",1,,h100,use,13.000,0.000,13.000,3500,50,22750"),
            "{}",
            rows[1]
        );
        assert!(
            rows[3].contains(",vat,") && rows[3].ends_with(",2275"),
            "{}",
            rows[3]
        );
        assert!(rows[4].ends_with(",25025"));
    }
}
