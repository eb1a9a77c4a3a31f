#!/usr/bin/env python3
"""The server's gRPC-Web checked by a client we did not write, in a real headless Chromium.

The client is @improbable-eng/grpc-web 0.15.0 (its browser bundle) with messages from protobufjs
7.4.0 built from proto/analytics.proto at run time; both are fetched from npm's registry by
deploy/fetch_web_clients.sh (pinned, integrity-checked), since Debian packages no gRPC-Web
client. A page on a second loopback origin (listed in --http-allowed-origins, so the CORS
preflight is the library's own) calls the real analytics_server's HTTP port:
  - GetMetrics over the fetch transport and over the XHR transport: the same values the gRPC
    port answers (dashboard_client --once --json);
  - SubscribeMetricBatches over fetch: the snapshot, then an update after more events are
    posted; closed by the client, after which the server holds no subscriber;
  - SubscribeMetricBatches over XHR: the snapshot;
  - errors as the library reads them: an unknown metric is INVALID_ARGUMENT naming it, a method
    gRPC-Web does not serve is UNIMPLEMENTED.

Usage: grpc_web_client_chromium_test.py ANALYTICS_SERVER DASHBOARD_CLIENT ANALYTICS_PROTO [CLIENTS_DIR]
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

from chromium_util import (fail, serve_pages, start_chromium, start_server, tear_down,
                           wait_for)

SERVER, DASHBOARD, PROTO = sys.argv[1:4]
CLIENTS = (sys.argv[4] if len(sys.argv) > 4 else os.environ.get(
    "RTA_WEB_CLIENTS_DIR",
    os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")),
                 "rta", "web-clients")))
BUNDLES = ("grpc-web-client.umd.js", "protobuf.min.js")
for bundle in BUNDLES:
    if not os.path.isfile(os.path.join(CLIENTS, bundle)):
        fail(f"{CLIENTS}/{bundle} is missing: run `bash deploy/setup.sh` "
             "(it runs deploy/fetch_web_clients.sh)")

work = tempfile.mkdtemp(prefix="rta_grpcweb_")
pages = os.path.join(work, "pages")
os.makedirs(pages)
for bundle in BUNDLES:
    shutil.copy(os.path.join(CLIENTS, bundle), pages)
shutil.copy(PROTO, os.path.join(pages, "analytics.proto"))

# The page's helpers: protobufjs types from the .proto, adapted to the interface the library
# expects of generated messages (serializeBinary / deserializeBinary / toObject).
PAGE = """<!doctype html><html><head><title>grpc-web client</title>
<script src="/protobuf.min.js"></script>
<script src="/grpc-web-client.umd.js"></script>
<script>
window.ready = fetch('/analytics.proto').then(r => r.text()).then(text => {
  window.root = protobuf.parse(text, {keepCase: true}).root;
  return true;
});
function type(name) { return window.root.lookupType('analytics.' + name); }
function method(name, request, response, streaming) {
  const req = type(request), res = type(response);
  return {
    methodName: name, service: {serviceName: 'analytics.AnalyticsService'},
    requestStream: false, responseStream: streaming,
    requestType: {},
    responseType: {deserializeBinary(bytes) {
      const decoded = res.decode(bytes);
      return {toObject() {
        return res.toObject(decoded, {longs: Number, enums: String, defaults: true});
      }};
    }},
    request(object) {
      const message = req.fromObject(object);
      return {serializeBinary() { return req.encode(message).finish(); }, toObject() { return object; }};
    },
  };
}
function transport(name) {
  return name === 'xhr' ? grpc.XhrTransport({}) : grpc.FetchReadableStreamTransport({});
}
function unary(host, name, request, response, object, transportName, done) {
  const m = method(name, request, response, false);
  grpc.unary(m, {host, request: m.request(object), transport: transport(transportName),
                 onEnd(res) {
                   done({status: res.status, message: res.statusMessage,
                         answer: res.message ? res.message.toObject() : null});
                 }});
}
window.streams = {};
function subscribe(host, key, object, transportName) {
  const m = method('SubscribeMetricBatches', 'SubscriptionRequest', 'MetricUpdateBatch', true);
  const state = {updates: [], end: null};
  window.streams[key] = state;
  state.call = grpc.invoke(m, {host, request: m.request(object), transport: transport(transportName),
    onMessage(message) { state.updates.push(...message.toObject().updates); },
    onEnd(status, message) { state.end = {status, message}; }});
}
</script></head><body>grpc-web client test</body></html>"""
with open(os.path.join(pages, "index.html"), "w") as f:
    f.write(PAGE)


page_server, page_port = serve_pages(pages)

server, server_log, grpc_port, http_port = start_server(
    SERVER, work, ["--http-allowed-origins", f"http://127.0.0.1:{page_port}"])
host = f"http://127.0.0.1:{http_port}"
driver = None
now_ms = int(time.time() * 1000)
posted = 0


def post(kinds):
    """Posts events of the given types over HTTP; returns how many were accepted."""
    global posted
    events = [{"event_id": f"grpcweb-{posted + i}", "event_type": kind, "timestamp_ms": now_ms,
               "visitor_id": f"v{posted + i}", "session_id": f"s{posted + i}", "page": "/",
               **({"value": 12.5} if kind == "purchase" else {})}
              for i, kind in enumerate(kinds)]
    posted += len(events)
    request = urllib.request.Request(f"{host}/v1/events", data=json.dumps(events).encode(),
                                     headers={"Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(request, timeout=10))["accepted"]


def grpc_totals():
    """metric -> total over the gRPC port, by a client of our own that is not gRPC-Web."""
    out = subprocess.run([DASHBOARD, "--once", "--json", "--server", f"127.0.0.1:{grpc_port}"],
                         capture_output=True, text=True, timeout=20)
    if out.returncode != 0:
        fail("dashboard_client --once failed: " + out.stderr)
    return {name: m["total"] for name, m in json.loads(out.stdout)["metrics"].items()}


try:
    driver = start_chromium(work)
    driver.set_script_timeout(20)
    driver.get(f"http://127.0.0.1:{page_port}/index.html")
    if not driver.execute_async_script("window.ready.then(arguments[0])"):
        fail("the page did not load analytics.proto")

    def call(name, request, response, obj, transport):
        return driver.execute_async_script(
            "unary(...arguments)", host, name, request, response, obj, transport)

    def metrics_over(transport):
        answer = call("GetMetrics", "MetricsQuery", "MetricsSnapshot",
                      {"windows": ["WINDOW_TOTAL"]}, transport)
        if answer["status"] != 0:
            fail(f"GetMetrics over {transport}: status {answer['status']} {answer['message']}",
                 server_log)
        return {m["metric_type"]: m["value"] for m in answer["answer"]["metrics"]
                if m["window"] == "WINDOW_TOTAL"}

    if post(["page_view"] * 3 + ["purchase"]) != 4:
        fail("the first events were not all accepted")
    # Settled: the tick has folded the 4 events (the gRPC port says so), then both agree.
    if not wait_for(lambda: grpc_totals().get("events_total") == 4):
        fail("the gRPC port never showed the 4 events", server_log)
    expected = grpc_totals()
    for transport in ("fetch", "xhr"):
        got = metrics_over(transport)
        for metric in ("events_total", "page_views", "revenue", "unique_visitors"):
            if got.get(metric) != expected.get(metric):
                fail(f"GetMetrics over gRPC-Web ({transport}) says {metric} = {got.get(metric)}, "
                     f"the gRPC port {expected.get(metric)}")
    print(f"ok: GetMetrics over fetch and XHR equal the gRPC port: events 4, page views "
          f"{expected['page_views']}, revenue {expected['revenue']}")

    request = {"metric_types": ["page_views"], "windows": ["WINDOW_TOTAL"],
               "dashboard_id": "grpc-web-client-test"}
    for key, transport in (("fetch", "fetch"), ("xhr", "xhr")):
        driver.execute_script("subscribe(...arguments)", host, key, request, transport)

    def values(key):
        return [u["value"] for u in driver.execute_script(
            f"return window.streams['{key}'].updates") if u["metric_type"] == "page_views"]

    for key in ("fetch", "xhr"):
        if not wait_for(lambda: 3 in values(key)):
            fail(f"SubscribeMetricBatches over {key}: no snapshot with page views 3: "
                 f"{values(key)} end {driver.execute_script(f'return window.streams[{key!r}].end')}",
                 server_log)
    if post(["page_view"] * 2) != 2:
        fail("the second events were not all accepted")
    if not wait_for(lambda: 5 in values("fetch")):
        fail(f"the fetch stream never showed page views 5: {values('fetch')}", server_log)
    print(f"ok: SubscribeMetricBatches over fetch: {values('fetch')}; over XHR: {values('xhr')}")
    # No update may go backwards or beyond what was posted.
    stream = values("fetch")
    if stream != sorted(stream) or stream[-1] != 5:
        fail(f"the stream's page views are not a rising sequence ending at 5: {stream}")

    # The client closes its streams: the server lets both subscribers go.
    driver.execute_script("for (const k in window.streams) window.streams[k].call.close()")

    left = wait_for(lambda: open(server_log).read().count("event=subscriber_left") >= 2, 15)
    if not left:
        fail("the server did not let the closed gRPC-Web subscribers go", server_log)

    answer = call("GetMetrics", "MetricsQuery", "MetricsSnapshot",
                  {"metric_types": ["no_such_metric"]}, "fetch")
    if answer["status"] != 3 or "no_such_metric" not in answer["message"]:
        fail(f"an unknown metric: expected INVALID_ARGUMENT naming it, got {answer}")
    answer = call("ReportEventBatches", "MetricsQuery", "MetricsSnapshot", {}, "fetch")
    if answer["status"] != 12:
        fail(f"a method gRPC-Web does not serve: expected UNIMPLEMENTED, got {answer}")
    print(f"ok: errors as the library reads them: INVALID_ARGUMENT, UNIMPLEMENTED "
          f"({answer['message']!r})")

    # The README's example, as written there but for the host: its console lines must show the
    # page views.
    readme = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                               "README.md")).read()
    start = readme.index("```js\n") + len("```js\n")
    example = readme[start:readme.index("```", start)]
    if '"https://analytics.example"' not in example:
        fail("the README's gRPC-Web example no longer names https://analytics.example")
    example = example.replace('"https://analytics.example"', json.dumps(host))
    driver.execute_script(
        "window.readmeLog = [];"
        "const console = {log: (...parts) => window.readmeLog.push(parts.join(' '))};"
        "(async () => {" + example + "})().catch(e => window.readmeLog.push('error ' + e));")
    if not wait_for(lambda: "page_views 5" in driver.execute_script("return window.readmeLog")):
        fail(f"the README example logged {driver.execute_script('return window.readmeLog')}")
    print("ok: the README's example logs page_views 5")
finally:
    tear_down(driver, server, work, page_server)
