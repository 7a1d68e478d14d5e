//! `berth nodes`, `berth classes`, `berth availability`.

use super::{Ctx, dash, device_health, node_state, opt};
use crate::error::{Error, tr, trf};
use crate::output::{self, Format, Table};
use crate::timefmt;
use berth_i18n::cli::Msg;
use berth_proto::time::{ms_to_dur, ms_to_ts};
use berth_proto::v1;
use serde::Serialize;
use std::collections::BTreeMap;

/// `berth availability` flags.
#[derive(Debug, clap::Args)]
pub struct AvailabilityArgs {
    /// Device class.
    #[arg(long)]
    pub class: String,
    /// Only this site.
    #[arg(long)]
    pub site: Option<String>,
    /// Start of the range (default now).
    #[arg(long, allow_hyphen_values = true)]
    pub from: Option<String>,
    /// End of the range (default 24h after the start).
    #[arg(long, allow_hyphen_values = true)]
    pub to: Option<String>,
    /// Bucket width (default 1h).
    #[arg(long, allow_hyphen_values = true)]
    pub step: Option<String>,
}

#[derive(Debug, Serialize)]
struct TelemetryView {
    sampled_at: Option<String>,
    utilization_pct: f64,
    memory_used_bytes: u64,
    memory_utilization_pct: f64,
    temperature_c: f64,
    power_w: f64,
    energy_j: f64,
}

#[derive(Debug, Serialize)]
struct DeviceView {
    uuid: String,
    node: String,
    class: String,
    vendor: String,
    model: String,
    memory_bytes: u64,
    health: &'static str,
    health_reason: Option<String>,
    index: u32,
    pci_bus_id: Option<String>,
    telemetry: Option<TelemetryView>,
}

#[derive(Debug, Serialize)]
struct NodeView {
    name: String,
    site: String,
    state: &'static str,
    hostname: String,
    last_heartbeat: Option<String>,
    agent_version: String,
    runtime: String,
    devices: Vec<DeviceView>,
}

fn node_view(n: &v1::Node) -> NodeView {
    NodeView {
        name: n.name.clone(),
        site: n.site.clone(),
        state: node_state(n.state),
        hostname: n.hostname.clone(),
        last_heartbeat: timefmt::ts_rfc3339(n.last_heartbeat.as_ref()),
        agent_version: n.agent_version.clone(),
        runtime: n.runtime.clone(),
        devices: n
            .devices
            .iter()
            .map(|d| DeviceView {
                uuid: d.uuid.clone(),
                node: d.node.clone(),
                class: d.class.clone(),
                vendor: d.vendor.clone(),
                model: d.model.clone(),
                memory_bytes: d.memory_bytes,
                health: device_health(d.health),
                health_reason: opt(&d.health_reason),
                index: d.index,
                pci_bus_id: opt(&d.pci_bus_id),
                telemetry: d.telemetry.as_ref().map(|t| TelemetryView {
                    sampled_at: timefmt::ts_rfc3339(t.sampled_at.as_ref()),
                    utilization_pct: t.utilization_pct,
                    memory_used_bytes: t.memory_used_bytes,
                    memory_utilization_pct: t.memory_utilization_pct,
                    temperature_c: t.temperature_c,
                    power_w: t.power_w,
                    energy_j: t.energy_j,
                }),
            })
            .collect(),
    }
}

/// `4 h100-80gb, 2 rngd`.
fn device_summary(devices: &[v1::Device]) -> String {
    let mut by_class: BTreeMap<&str, usize> = BTreeMap::new();
    for d in devices {
        *by_class.entry(d.class.as_str()).or_default() += 1;
    }
    let parts: Vec<String> = by_class
        .iter()
        .map(|(class, n)| format!("{n} {}", if class.is_empty() { "?" } else { class }))
        .collect();
    if parts.is_empty() {
        "-".to_owned()
    } else {
        parts.join(", ")
    }
}

/// Prints nodes as a table or JSON (also used by `admin nodes drain`).
pub fn print_nodes(nodes: &[v1::Node], format: Format) -> Result<(), Error> {
    if format == Format::Json {
        let views: Vec<NodeView> = nodes.iter().map(node_view).collect();
        return output::json(&views);
    }
    let mut t = Table::new([
        "name",
        "site",
        "state",
        "devices",
        "unhealthy",
        "runtime",
        "heartbeat",
    ]);
    for n in nodes {
        let unhealthy = n
            .devices
            .iter()
            .filter(|d| d.health != v1::DeviceHealth::Healthy as i32)
            .count();
        t.row([
            n.name.clone(),
            n.site.clone(),
            node_state(n.state).to_owned(),
            device_summary(&n.devices),
            unhealthy.to_string(),
            dash(&n.runtime),
            timefmt::ts_local(n.last_heartbeat.as_ref()),
        ]);
    }
    t.print(format, tr(Msg::EmptyNodes))
}

/// `berth nodes`.
pub async fn nodes(ctx: &Ctx) -> Result<(), Error> {
    let resp = ctx
        .api()
        .await?
        .capacity()
        .list_nodes(v1::ListNodesRequest::default())
        .await?
        .into_inner();
    print_nodes(&resp.nodes, ctx.format)
}

/// A device class as printed in JSON.
#[derive(Debug, Serialize)]
pub struct ClassView {
    name: String,
    vendor: String,
    description: String,
    total_devices: u32,
    schedulable_devices: u32,
    rate: f64,
}

impl From<&v1::DeviceClass> for ClassView {
    fn from(c: &v1::DeviceClass) -> Self {
        Self {
            name: c.name.clone(),
            vendor: c.vendor.clone(),
            description: c.description.clone(),
            total_devices: c.total_devices,
            schedulable_devices: c.schedulable_devices,
            rate: c.rate,
        }
    }
}

/// Prints device classes (also used by `admin classes`).
pub fn print_classes(classes: &[v1::DeviceClass], format: Format) -> Result<(), Error> {
    if format == Format::Json {
        let views: Vec<ClassView> = classes.iter().map(Into::into).collect();
        return output::json(&views);
    }
    let mut t = Table::new([
        "name",
        "vendor",
        "devices",
        "schedulable",
        "rate",
        "description",
    ]);
    for c in classes {
        t.row([
            c.name.clone(),
            dash(&c.vendor),
            c.total_devices.to_string(),
            c.schedulable_devices.to_string(),
            c.rate.to_string(),
            c.description.clone(),
        ]);
    }
    t.print(format, tr(Msg::EmptyClasses))
}

/// `berth classes`.
pub async fn classes(ctx: &Ctx) -> Result<(), Error> {
    let resp = ctx
        .api()
        .await?
        .capacity()
        .list_classes(v1::ListClassesRequest {})
        .await?
        .into_inner();
    print_classes(&resp.classes, ctx.format)
}

#[derive(Debug, Serialize)]
struct SlotView {
    start: Option<String>,
    end: Option<String>,
    free: u32,
    total: u32,
}

/// `berth availability`.
pub async fn availability(ctx: &Ctx, args: &AvailabilityArgs) -> Result<(), Error> {
    let (from, to) = timefmt::range_flags(args.from.as_deref(), args.to.as_deref())?;
    let step = args
        .step
        .as_deref()
        .map(|v| timefmt::positive_duration_flag("--step", v))
        .transpose()?;
    let req = v1::AvailabilityRequest {
        class: args.class.clone(),
        site: args.site.clone().unwrap_or_default(),
        from: from.map(ms_to_ts),
        to: to.map(ms_to_ts),
        step: step.map(ms_to_dur),
    };
    let resp = ctx
        .api()
        .await?
        .capacity()
        .availability(req)
        .await?
        .into_inner();
    if ctx.format == Format::Json {
        let views: Vec<SlotView> = resp
            .slots
            .iter()
            .map(|s| SlotView {
                start: timefmt::ts_rfc3339(s.start.as_ref()),
                end: timefmt::ts_rfc3339(s.end.as_ref()),
                free: s.free,
                total: s.total,
            })
            .collect();
        return output::json(&views);
    }
    let mut t = Table::new(["start", "end", "free", "total", ""]);
    for s in &resp.slots {
        t.row([
            timefmt::ts_local(s.start.as_ref()),
            timefmt::ts_local(s.end.as_ref()),
            s.free.to_string(),
            s.total.to_string(),
            bar(s.free, s.total),
        ]);
    }
    t.print(
        ctx.format,
        &trf(Msg::EmptyAvailability, &[("class", &resp.class)]),
    )
}

/// A small gauge of free devices: `####....`, at most 16 wide.
fn bar(free: u32, total: u32) -> String {
    if total == 0 {
        return String::new();
    }
    let width = total.min(16);
    let filled =
        (u64::from(free.min(total)) * u64::from(width)).div_ceil(u64::from(total)) as usize;
    format!(
        "{}{}",
        "#".repeat(filled),
        ".".repeat(width as usize - filled)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauges_scale_to_sixteen() {
        assert_eq!(bar(2, 4), "##..");
        assert_eq!(bar(0, 4), "....");
        assert_eq!(bar(32, 32), "#".repeat(16));
        assert_eq!(bar(1, 32), format!("#{}", ".".repeat(15)));
        assert_eq!(bar(0, 0), "");
    }

    #[test]
    fn device_summaries_group_by_class() {
        let dev = |class: &str| v1::Device {
            class: class.into(),
            ..Default::default()
        };
        assert_eq!(
            device_summary(&[dev("rngd"), dev("h100"), dev("rngd")]),
            "1 h100, 2 rngd"
        );
        assert_eq!(device_summary(&[]), "-");
    }
}
