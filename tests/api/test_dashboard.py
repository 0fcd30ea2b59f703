"""The dashboard in headless Chromium (Debian's, driven by Playwright): it loads, a live alert
turns its city's colour on the map (asserted on the chart's option data), the alert is
acknowledged in the page, and the acknowledgement is in the audit trail read through the API."""

from __future__ import annotations

import pytest
from playwright.sync_api import sync_playwright

from domain.severity import Severity
from tests.api.conftest import auth
from tests.api.support import Alerts

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
NANCHANG = "南昌市"
CITY_COLOUR = """() => {
  const d = window.yujing.map.getOption().series[0].data.find(x => x.name === '南昌市');
  return d ? d.colour : null;
}"""


@pytest.fixture
def page(server):
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            pg = browser.new_page()
            pg.set_default_timeout(15_000)
            yield pg
        finally:
            browser.close()


def test_live_alert_colours_the_map_and_is_acknowledged(page, server, client, keys, seeded):
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server.url + "/dashboard/")
    assert page.title().startswith("预警")
    page.fill("#api-key", keys["city_a"])
    page.click("#login-form button[type=submit]")
    page.wait_for_function("() => window.yujing && window.yujing.ready === true")
    page.wait_for_selector("#live-status.on")
    cities = page.evaluate("() => window.yujing.map.getOption().series[0].data.map(x => x.name)")
    assert NANCHANG in cities
    before = page.evaluate(CITY_COLOUR)
    assert before == "yellow"  # EA1's assessed colour (dynamic mode), no alert yet

    Alerts(server).raise_(seeded["sensors"]["EA1/CH4-0101"], Severity.ALARM, 1.6, 1.5)  # orange
    page.wait_for_function(CITY_COLOUR.replace("return d ? d.colour : null;",
                                               "return d && d.colour === 'orange';"))
    row = page.wait_for_selector("#alerts tbody tr")
    alert_id = int(row.get_attribute("data-alert-id"))
    # the operator reads names, not registry ids: city, enterprise, location; kind and setpoint
    cells = [c.inner_text() for c in row.query_selector_all("td")]
    assert cells[1] == "南昌市东湖区 甲煤矿 采煤工作面", cells
    assert cells[2] == "甲烷 1.6%VOL ≥ 断电值 1.5%VOL", cells
    row.query_selector("button.ack").click()
    # the queue is re-read from the API after the POST: the button then says 已确认
    page.wait_for_function(f"""() => {{
      const b = document.querySelector("#alerts tbody tr[data-alert-id='{alert_id}'] button.ack");
      return b && b.disabled && b.textContent === '已确认';
    }}""")

    detail = client.get(f"/api/v1/alerts/{alert_id}", headers=auth(keys["province"])).json()
    assert detail["state"] == "acknowledged"
    acks = [e for e in detail["history"] if "acknowledge" in e["action"]]
    assert acks and acks[0]["actor"].endswith(":city_a")
    # English is one click away
    page.select_option("#lang", "en")
    assert page.inner_text("#alerts-panel h2") == "Live alert queue"
    assert page.inner_text(f"#alerts tbody tr[data-alert-id='{alert_id}'] td:nth-child(3)") == \
        "methane 1.6 %VOL ≥ power-cut setpoint 1.5 %VOL"
    assert not errors, errors
