#!/usr/bin/env python3
"""tracker.js in a real headless Chromium (Debian's chromium + chromium-driver, Selenium).

Pages served on loopback by a second origin (Python's http.server) embed the tracker from the
real analytics_server's HTTP port (GET /tracker.js), with a site key and the page origin in
--http-allowed-origins, exactly as a website would. The browser lands with UTM parameters, follows
a link, navigates twice inside a single-page app, clicks an outbound link and closes. The server's
counts must equal what the browser did:
  page views 5 (3 documents + 2 pushState navigations), 1 visitor, the campaign on all 5,
  3 page_load events with a page-load quantile present, 1 outbound click, 9 events in all,
  and nothing refused.

Usage: tracker_chromium_test.py ANALYTICS_SERVER DASHBOARD_CLIENT
"""
import json
import os
import subprocess
import sys
import tempfile
import time

from selenium.webdriver.common.by import By

from chromium_util import (fail, serve_pages, start_chromium, start_server, tear_down,
                           wait_for)

SERVER, DASHBOARD = sys.argv[1], sys.argv[2]

work = tempfile.mkdtemp(prefix="rta_tracker_")
pages = os.path.join(work, "pages")
os.makedirs(os.path.join(pages, "spa"))


page_server, page_port = serve_pages(pages)

server, server_log, grpc_port, http_port = start_server(
    SERVER, work, ["--http-site-keys", "site_test",
                   "--http-allowed-origins", f"http://127.0.0.1:{page_port}"])
driver = None
try:
    tag = (f'<script async src="http://127.0.0.1:{http_port}/tracker.js" '
           'data-site="site_test"></script>')
    with open(os.path.join(pages, "index.html"), "w") as f:
        f.write(f'<!doctype html><html><head><title>home</title>{tag}</head><body>'
                '<a id="next" href="/page2.html">next</a></body></html>')
    with open(os.path.join(pages, "page2.html"), "w") as f:
        f.write(f'<!doctype html><html><head><title>two</title>{tag}</head><body>'
                '<a id="app" href="/spa/index.html">app</a></body></html>')
    # The outbound link goes to another host (localhost, not 127.0.0.1): a page without the tag.
    with open(os.path.join(pages, "spa", "index.html"), "w") as f:
        f.write(f'<!doctype html><html><head><title>app</title>{tag}</head><body>'
                '<button id="step1" onclick="history.pushState({}, \'\', \'/spa/step1\')">1</button>'
                '<button id="step2" onclick="history.pushState({}, \'\', \'/spa/step2\')">2</button>'
                f'<a id="out" href="http://localhost:{page_port}/elsewhere.html">elsewhere</a>'
                '</body></html>')
    with open(os.path.join(pages, "elsewhere.html"), "w") as f:
        f.write('<!doctype html><html><body>another site</body></html>')

    def metrics():
        out = subprocess.run([DASHBOARD, "--once", "--json", "--server", f"127.0.0.1:{grpc_port}"],
                             capture_output=True, text=True, timeout=20)
        if out.returncode != 0:
            return None
        return json.loads(out.stdout)["metrics"]

    def total(name):
        m = metrics()
        return m[name]["total"] if m else None

    driver = start_chromium(work)

    driver.get(f"http://127.0.0.1:{page_port}/index.html?utm_source=newsletter&utm_campaign=spring")
    # The landing page view is sent on its own (the tracker flushes at once).
    if wait_for(lambda: total("page_views") == 1, 15) is not True:
        fail(f"the landing page view did not arrive: page_views={total('page_views')}", server_log)
    driver.find_element(By.ID, "next").click()
    wait_for(lambda: driver.title == "two", 10)
    driver.find_element(By.ID, "app").click()
    wait_for(lambda: driver.title == "app", 10)
    driver.find_element(By.ID, "step1").click()
    driver.find_element(By.ID, "step2").click()
    if driver.current_url != f"http://127.0.0.1:{page_port}/spa/step2":
        fail(f"the app did not navigate: {driver.current_url}")
    time.sleep(0.5)  # the page_load of this document is reported just after its load event
    driver.find_element(By.ID, "out").click()
    wait_for(lambda: "another site" in driver.page_source, 10)
    driver.quit()
    driver = None

    expected = {"page_views": 5, "events_total": 9, "unique_visitors": 1}
    if not wait_for(lambda: all(total(k) == v for k, v in expected.items()), 30):
        m = metrics()
        fail("counts: " + json.dumps({k: m[k]["total"] for k in expected} if m else None), server_log)
    m = metrics()
    campaigns = m["top_campaigns"]["total"]["top"]
    if campaigns != [{"count": 5, "error": 0, "key": "spring", "share": 1.0}]:
        fail(f"top_campaigns: {campaigns}")
    pages_seen = sorted(entry["key"] for entry in m["top_pages"]["total"]["top"])
    if pages_seen != ["/index.html", "/page2.html", "/spa/index.html", "/spa/step1", "/spa/step2"]:
        fail(f"top_pages: {pages_seen}")
    p50 = m["page_load_ms_p50"]["total"]
    if not (p50 and p50 > 0):
        fail(f"no page-load quantile: p50={p50}")
    print(f"ok: page_views 5, events 9 (3 page_load, 1 outbound click), 1 visitor, campaign spring "
          f"on 5, page_load p50 {p50:.1f} ms")
finally:
    tear_down(driver, server, work, page_server)
