"""docs/operations.md and the alert rules agree: every alert has summary, description
and a runbook link to its own section of the operations guide."""

import pathlib
import re

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "operations.md").read_text()
RULES = yaml.safe_load((ROOT / "helm" / "berth" / "rules" / "berth-alerts.yaml").read_text())
BASE = "https://example.invalid/berth/docs/operations.md#"


def anchors(markdown):
    """The anchors GitHub gives the headings: lower-case, spaces to '-', punctuation dropped."""
    out = set()
    for heading in re.findall(r"^#{1,6} (.+)$", markdown, flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        out.add(slug)
    return out


def alerts():
    return [r for g in RULES["groups"] for r in g["rules"] if "alert" in r]


def test_every_alert_has_its_annotations_and_a_runbook_section():
    names = [a["alert"] for a in alerts()]
    assert len(names) == len(set(names)) and len(names) >= 7, names
    for a in alerts():
        notes = a["annotations"]
        assert notes["summary"] and notes["description"], a["alert"]
        assert notes["runbook_url"] == BASE + a["alert"].lower(), notes["runbook_url"]
        assert a["alert"].lower() in anchors(DOC), f"no section '### {a['alert']}' in docs/operations.md"
        assert a["labels"]["severity"] in {"info", "warning", "critical"}


def test_the_asked_for_alerts_exist():
    names = {a["alert"] for a in alerts()}
    for wanted in [
        "BerthNodeUnreachable",
        "BerthDeviceFailed",
        "BerthDeviceFatalXid",
        "BerthBudgetAlmostSpent",
        "BerthBookingIdle",
        "BerthQueueWaitTooLong",
        "BerthSchedulerNotReady",
        "BerthNoLeader",
    ]:
        assert wanted in names


def test_the_guide_covers_what_operators_need():
    for heading in [
        "install-on-kubernetes",
        "install-on-bare-metal",
        "upgrade",
        "backup-and-restore",
        "rotating-the-signing-key",
        "rotating-tls-certificates",
        "alerts",
        "running-several-schedulers",
    ]:
        assert heading in anchors(DOC), heading
    for block in ["sqlite-backup", "sqlite-restore", "postgres-backup", "postgres-restore"]:
        assert f"<!-- test: {block} -->\n```sh\n" in DOC, block


def test_every_link_within_the_guide_resolves():
    links = re.findall(r"\]\(#([^)]+)\)", DOC)
    assert links, "no links within the guide"
    missing = sorted(set(links) - anchors(DOC))
    assert missing == [], missing
