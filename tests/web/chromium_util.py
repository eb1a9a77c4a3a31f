"""What the browser tests share: a headless Chromium through Selenium (Debian's chromium and
chromium-driver), the real analytics_server started on ephemeral loopback ports, and bounded
waits."""
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service


def fail(message, log=None):
    print("FAIL:", message)
    if log:
        print(open(log).read()[-4000:])
    sys.exit(1)


def wait_for(predicate, seconds=20):
    """predicate()'s first truthy value within `seconds` (polled every 0.1 s), else its last."""
    end = time.time() + seconds
    while time.time() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    return predicate()


def serve_pages(directory):
    """A second loopback origin for the test's pages (Python's http.server, quiet, on a thread):
    (server, port). The caller shuts it down."""

    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=directory, **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), QuietHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


def start_server(binary, work, flags):
    """analytics_server on ephemeral loopback ports, memory only, HTTP on: (process, log path,
    gRPC port, HTTP port). Fails the test if it does not come up within 20 s."""
    log = os.path.join(work, "server.log")
    process = subprocess.Popen(
        [binary, "--listen", "127.0.0.1:0", "--metrics-listen", "", "--data-dir", "",
         "--http-listen", "127.0.0.1:0", "--tick-ms", "200"] + flags,
        stderr=open(log, "w"))

    def ports():
        text = open(log).read()
        grpc = re.search(r"event=listening .*port=(\d+)", text)
        http = re.search(r"event=http_listening .*port=(\d+)", text)
        return (int(grpc.group(1)), int(http.group(1))) if grpc and http else None

    found = wait_for(ports, 20)
    if not found:
        process.kill()
        fail("the server did not start", log)
    return process, log, found[0], found[1]


def stop_server(process):
    process.terminate()
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()


def start_chromium(work):
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", "--no-first-run", "--window-size=1200,800",
                     f"--user-data-dir={work}/profile"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.set_page_load_timeout(20)
    return driver


def tear_down(driver, server, work, page_server=None):
    """The end of every browser test, passed or failed: the browser, the server, the page
    origin, the temporary directory."""
    if driver is not None:
        driver.quit()
    stop_server(server)
    if page_server is not None:
        page_server.shutdown()
    shutil.rmtree(work, ignore_errors=True)
