/*
 * tracker.js: page analytics for analytics_server, one script tag, no dependencies.
 *
 *   <script async src="https://analytics.example/tracker.js"
 *           data-site="site_shop"                         (a key of --http-site-keys; optional)
 *           data-endpoint="https://analytics.example"     (default: where the script came from)
 *           data-respect-dnt="true"></script>             (send nothing when Do-Not-Track is on)
 *
 * What it reports (POST {endpoint}/v1/events, the server's JSON form of EventData):
 * - page_view on load and on every single-page-app navigation (history.pushState,
 *   replaceState to another path, popstate, hashchange is not a page);
 * - page_load once per document: the Navigation Timing duration (ms) as the value;
 * - click for a link to another site (outbound), with its href in properties.href;
 * - anything the page asks for: window.rta.track("purchase", {value: 59.9}).
 * Every event carries the page path, the referring site (when another one), the campaign of the
 * visit (utm_source, utm_campaign from the landing URL, kept for the session), a device class,
 * a visitor id and a session id.
 *
 * Privacy: no cookie at all. The visitor id is a random id in this site's localStorage (first
 * party: another site cannot read it); the session id lives in sessionStorage and is renewed
 * after 30 minutes without an event. With data-respect-dnt, navigator.doNotTrack = "1" sends
 * nothing.
 *
 * Delivery: events are queued and sent in batches (every 2 s, at 20 events, and when the page
 * is hidden or left, with navigator.sendBeacon). Bodies are text/plain, so that browsers send
 * them without a CORS preflight; the server checks the Origin itself (--http-allowed-origins).
 * A batch that fails (network, 429, 5xx) stays queued, in localStorage too, and is re-sent
 * later with the same event ids: the server counts each event once.
 */
(function () {
  "use strict";
  if (window.rta && window.rta.track) return;  // loaded twice
  var script = document.currentScript;
  var attr = function (name) { return script ? script.getAttribute(name) : null; };
  var origin = script && script.src ? new URL(script.src, location.href).origin : location.origin;
  var endpoint = (attr("data-endpoint") || origin).replace(/\/+$/, "");
  var site = attr("data-site");
  var url = endpoint + "/v1/events" + (site ? "?site=" + encodeURIComponent(site) : "");
  if (attr("data-respect-dnt") === "true" &&
      (navigator.doNotTrack === "1" || window.doNotTrack === "1")) {
    window.rta = { track: function () {} };
    return;
  }

  var SESSION_IDLE_MS = 30 * 60 * 1000, BATCH = 20, FLUSH_MS = 2000, STORE_KEY = "rta_queue";
  var MAX_QUEUE = 500;  // a page offline for long keeps its latest events, not unbounded ones

  function randomId() {
    var bytes = new Uint8Array(12);
    (window.crypto || window.msCrypto).getRandomValues(bytes);
    var out = "";
    for (var i = 0; i < bytes.length; i++) out += ("0" + bytes[i].toString(16)).slice(-2);
    return out;
  }
  function storage(kind) {
    try { var s = window[kind]; s.setItem("rta_probe", "1"); s.removeItem("rta_probe"); return s; }
    catch (e) { return null; }  // disabled, or a private mode that refuses writes
  }
  var local = storage("localStorage"), session = storage("sessionStorage");
  var memory = {};
  function get(store, key) { return store ? store.getItem(key) : memory[key] || null; }
  function put(store, key, value) { if (store) store.setItem(key, value); else memory[key] = value; }

  function visitorId() {
    var id = get(local, "rta_visitor");
    if (!id) { id = randomId(); put(local, "rta_visitor", id); }
    return id;
  }
  function sessionId(now) {
    var id = get(session, "rta_session");
    var last = Number(get(session, "rta_session_last") || 0);
    if (!id || now - last > SESSION_IDLE_MS) { id = randomId(); put(session, "rta_session", id); }
    put(session, "rta_session_last", String(now));
    return id;
  }
  // The campaign of the visit: from the landing URL, kept for the rest of the session.
  function campaign() {
    var params = new URLSearchParams(location.search);
    var source = params.get("utm_source"), name = params.get("utm_campaign");
    if (source || name) {
      put(session, "rta_utm_source", source || "");
      put(session, "rta_utm_campaign", name || "");
    }
    return { source: get(session, "rta_utm_source") || "", name: get(session, "rta_utm_campaign") || "" };
  }
  function referrerSite() {
    if (!document.referrer) return "";
    try {
      var ref = new URL(document.referrer);
      return ref.host === location.host ? "" : ref.hostname.replace(/^www\./, "");
    } catch (e) { return ""; }
  }
  function device() {
    var ua = navigator.userAgent || "";
    if (/iPad|Tablet/i.test(ua) || (/Android/i.test(ua) && !/Mobile/i.test(ua))) return "tablet";
    if (/Mobi|iPhone|Android/i.test(ua) || Math.min(screen.width, screen.height) < 600) return "mobile";
    return "desktop";
  }

  var queue = [];
  try { queue = JSON.parse(get(local, STORE_KEY) || "[]"); } catch (e) { queue = []; }
  var sending = false, referrer = referrerSite();
  function save() { put(local, STORE_KEY, JSON.stringify(queue)); }

  function track(type, options) {
    options = options || {};
    var now = Date.now(), utm = campaign();
    var event = {
      event_id: randomId(), event_type: type, timestamp_ms: now,
      visitor_id: visitorId(), session_id: sessionId(now),
      page: location.pathname, device: device()
    };
    if (referrer) event.referrer = referrer;
    if (utm.source) event.utm_source = utm.source;
    if (utm.name) event.utm_campaign = utm.name;
    if (typeof options.value === "number" && isFinite(options.value)) event.value = options.value;
    if (options.properties) event.properties = options.properties;
    queue.push(event);
    if (queue.length > MAX_QUEUE) queue.splice(0, queue.length - MAX_QUEUE);
    save();
    if (queue.length >= BATCH) flush();
  }

  // Sends what is queued; a batch leaves the queue only once the server has answered 2xx
  // (4xx other than 429: the server will never take it, so it is dropped rather than retried
  // for ever).
  function flush() {
    if (sending || queue.length === 0) return;
    var batch = queue.slice(0, 100);
    sending = true;
    fetch(url, { method: "POST", body: JSON.stringify(batch), keepalive: true,
                 headers: { "Content-Type": "text/plain" }, credentials: "omit", mode: "cors" })
      .then(function (response) {
        var permanent = response.status >= 400 && response.status < 500 && response.status !== 429;
        if (response.ok || permanent) { queue.splice(0, batch.length); save(); }
      })
      .catch(function () { /* offline: kept, re-sent with the same ids */ })
      .then(function () { sending = false; });
  }
  // Leaving the page: what is queued goes with sendBeacon, which outlives the page. It stays in
  // localStorage until a later page of the site has seen it acknowledged (the ids make a
  // second delivery harmless).
  function beacon() {
    if (queue.length === 0 || !navigator.sendBeacon) return flush();
    var body = new Blob([JSON.stringify(queue.slice(0, 100))], { type: "text/plain" });
    if (navigator.sendBeacon(url, body)) {
      // Queued by the browser: drop from memory, keep the copy in storage for a retry if the
      // beacon is lost (the next page sends it again; duplicates count once).
      queue = [];
    }
  }

  // Single-page apps: a new path is a new page view.
  var lastPath = location.pathname + location.search;
  function navigated() {
    var path = location.pathname + location.search;
    if (path === lastPath) return;
    lastPath = path;
    track("page_view");
  }
  ["pushState", "replaceState"].forEach(function (name) {
    var original = history[name];
    history[name] = function () {
      var result = original.apply(this, arguments);
      navigated();
      return result;
    };
  });
  window.addEventListener("popstate", navigated);

  // Outbound links.
  document.addEventListener("click", function (e) {
    var link = e.target && e.target.closest ? e.target.closest("a[href]") : null;
    if (!link) return;
    try {
      var target = new URL(link.href, location.href);
      if ((target.protocol === "http:" || target.protocol === "https:") && target.host !== location.host) {
        track("click", { properties: { href: target.href.slice(0, 500), outbound: "1" } });
        beacon();
      }
    } catch (err) { /* not a URL */ }
  }, true);

  // Page-load time, once the load event has finished.
  function reportLoad() {
    var entries = performance.getEntriesByType ? performance.getEntriesByType("navigation") : [];
    var timing = entries.length ? entries[0] : null;
    if (timing && timing.loadEventEnd > 0) {
      track("page_load", { value: Math.round(timing.loadEventEnd - timing.startTime) });
    }
  }
  if (document.readyState === "complete") setTimeout(reportLoad, 0);
  else window.addEventListener("load", function () { setTimeout(reportLoad, 0); });

  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "hidden") beacon();
  });
  window.addEventListener("pagehide", beacon);
  setInterval(flush, FLUSH_MS);

  window.rta = { track: track, flush: flush };
  track("page_view");
  flush();  // also whatever an earlier page left queued
})();
