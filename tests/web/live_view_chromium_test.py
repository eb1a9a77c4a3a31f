#!/usr/bin/env python3
"""The live web view (GET / on the HTTP port) in a real headless Chromium.

The page subscribes over gRPC-Web (SubscribeMetricBatches on the same port). The test reads the
Events and Page views tiles from the DOM, reports events over gRPC-free HTTP (POST /v1/events),
and waits until the tiles show the new numbers; then it keeps a screenshot as a test artefact.

Usage: live_view_chromium_test.py ANALYTICS_SERVER SCREENSHOT.png
"""
import json
import os
import sys
import tempfile
import time
import urllib.request

from selenium.webdriver.common.by import By

from chromium_util import fail, start_chromium, start_server, tear_down, wait_for

SERVER, SCREENSHOT = sys.argv[1], sys.argv[2]

work = tempfile.mkdtemp(prefix="rta_view_")
server, server_log, _, port = start_server(SERVER, work, [])
driver = None
try:
    driver = start_chromium(work)
    driver.get(f"http://127.0.0.1:{port}/")

    def tile(metric):
        return driver.find_element(By.ID, "v-" + metric).text

    if not wait_for(lambda: "connected" in driver.find_element(By.ID, "status").text):
        fail("the view never connected: " + driver.find_element(By.ID, "status").text, server_log)
    if not wait_for(lambda: tile("events_total") == "0"):
        fail(f"Events tile before any event: {tile('events_total')!r}")

    now = int(time.time() * 1000)
    events = [{"event_id": f"view-{i}", "event_type": "page_view" if i < 3 else "click",
               "timestamp_ms": now, "visitor_id": "v1", "session_id": "s1", "page": "/"}
              for i in range(5)]
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/events",
                                     data=json.dumps(events).encode(),
                                     headers={"Content-Type": "application/json"})
    answer = json.load(urllib.request.urlopen(request, timeout=10))
    if answer["accepted"] != 5:
        fail(f"the events were not all accepted: {answer}")
    if not wait_for(lambda: tile("events_total") == "5" and tile("page_views") == "3"):
        fail(f"the tiles did not follow: events {tile('events_total')!r}, "
             f"page views {tile('page_views')!r}")
    os.makedirs(os.path.dirname(os.path.abspath(SCREENSHOT)), exist_ok=True)
    if not driver.save_screenshot(SCREENSHOT):
        fail("no screenshot")
    print(f"ok: Events 0 -> 5 and Page views -> 3 in the DOM; screenshot {SCREENSHOT}")
finally:
    tear_down(driver, server, work)
