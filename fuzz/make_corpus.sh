#!/usr/bin/env bash
# Regenerates the seed corpus (fuzz/corpus/<target>/) and the protobuf dictionary from the
# readable sources below. The seeds are committed; run this after changing them or the proto.
#   bash fuzz/make_corpus.sh
set -euo pipefail
cd "$(dirname "$0")/.."
readonly NOW=1767225600000  # 2026-01-01T00:00:00Z: the fuzz targets' manual clock (ingest_fuzzer.cc)

encode() {  # encode MESSAGE OUT [SELECTOR]: text format on stdin -> wire bytes, optional first byte
  local message=$1 out=$2 selector=${3:-}
  mkdir -p "$(dirname "$out")"
  {
    [[ -n $selector ]] && printf "\\x$selector"
    protoc --proto_path=proto --encode="analytics.$message" proto/analytics.proto
  } >"$out"
}

# ingest: one selector byte (00 = ReportEvent's EventData, 01 = ReportEventBatches' EventBatch).
d=fuzz/corpus/ingest
rm -rf "$d"
encode EventData $d/page_view 00 <<TXT
event_id: "e1" event_type: "page_view" session_id: "s1" visitor_id: "v1" page: "/pricing"
referrer: "https://news.example/" utm_source: "newsletter" utm_campaign: "spring" country: "DE"
device: "mobile"
TXT
encode EventData $d/purchase_30s_ago 00 <<TXT
event_id: "e2" event_type: "purchase" timestamp_ms: $((NOW - 30000)) session_id: "s1" visitor_id: "v1" value: 59.9
TXT
encode EventData $d/page_load 00 <<TXT
event_id: "e3" event_type: "page_load" timestamp_ms: $NOW page: "/" value: 1234.5
TXT
encode EventData $d/signup_properties 00 <<TXT
event_id: "e4" event_type: "signup" visitor_id: "v2"
properties { key: "plan" value: "pro" } properties { key: "seats" value: "3" }
TXT
encode EventData $d/too_many_properties 00 <<TXT
event_id: "e5" event_type: "click"
properties { key: "a" value: "1" } properties { key: "b" value: "2" } properties { key: "c" value: "3" }
properties { key: "d" value: "4" } properties { key: "e" value: "5" } properties { key: "f" value: "6" }
properties { key: "g" value: "7" } properties { key: "h" value: "8" } properties { key: "i" value: "9" }
TXT
encode EventData $d/long_page 00 <<TXT
event_id: "e6" event_type: "page_view" page: "/$(printf 'x%.0s' {1..2048})"
TXT
encode EventData $d/negative_time 00 <<TXT
event_id: "e7" event_type: "click" timestamp_ms: -1
TXT
encode EventData $d/no_event_id 00 <<TXT
event_type: "page_view" page: "/"
TXT
encode EventData $d/bad_type_char 00 <<TXT
event_id: "e8" event_type: "Page View"
TXT
encode EventData $d/far_future 00 <<TXT
event_id: "e9" event_type: "page_view" timestamp_ms: 9223372036854775807
TXT
encode EventBatch $d/session_funnel 01 <<TXT
events { event_id: "b1" event_type: "page_view" session_id: "s9" visitor_id: "v9" page: "/" referrer: "https://search.example/" country: "US" device: "desktop" timestamp_ms: $((NOW - 120000)) }
events { event_id: "b2" event_type: "page_view" session_id: "s9" visitor_id: "v9" page: "/product/7" country: "US" device: "desktop" timestamp_ms: $((NOW - 90000)) }
events { event_id: "b3" event_type: "add_to_cart" session_id: "s9" visitor_id: "v9" timestamp_ms: $((NOW - 60000)) }
events { event_id: "b4" event_type: "purchase" session_id: "s9" visitor_id: "v9" value: 120 timestamp_ms: $((NOW - 1000)) }
events { event_id: "b4" event_type: "purchase" session_id: "s9" visitor_id: "v9" value: 120 timestamp_ms: $((NOW - 1000)) }
events { event_id: "b5" event_type: "page_load" page: "/product/7" value: 830 }
TXT
encode EventBatch $d/mixed_refusals 01 <<TXT
events { event_id: "r1" event_type: "page_view" timestamp_ms: $((NOW - 3600001)) }
events { event_id: "r2" event_type: "page_view" timestamp_ms: $((NOW + 60001)) }
events { event_id: "r3" event_type: "purchase" value: -1 }
events { event_id: "r4" event_type: "purchase" value: inf }
events { event_id: "r5" event_type: "purchase" value: nan }
events { event_id: "r6" event_type: "" }
events { event_id: "$(printf 'i%.0s' {1..129})" event_type: "click" }
events { event_id: "r7" event_type: "$(printf 't%.0s' {1..65})" }
TXT
encode EventBatch $d/many_countries 01 <<TXT
events { event_id: "c1" event_type: "page_view" country: "DE" device: "mobile" session_id: "a" }
events { event_id: "c2" event_type: "page_view" country: "FR" device: "tablet" session_id: "b" }
events { event_id: "c3" event_type: "page_view" country: "US" device: "desktop" session_id: "c" }
events { event_id: "c4" event_type: "page_view" country: "JP" device: "tv" session_id: "d" }
events { event_id: "c5" event_type: "page_view" country: "BR" device: "watch" session_id: "e" }
events { event_id: "c6" event_type: "page_view" country: "IN" device: "car" session_id: "f" }
TXT
encode EventBatch $d/empty_batch 01 </dev/null

# subscription_request: SubscriptionRequest as SubscribeMetrics receives it.
d=fuzz/corpus/subscription_request
rm -rf "$d"
encode SubscriptionRequest $d/everything </dev/null
encode SubscriptionRequest $d/dashboard <<TXT
metric_types: "page_views" metric_types: "revenue" metric_types: "top_pages" windows: WINDOW_1M
windows: WINDOW_1H interval_ms: 1000 history_seconds: 3600 dashboard_id: "ops-wall"
TXT
encode SubscriptionRequest $d/resume_push <<TXT
metric_types: "events_total" resume_epoch: 1234567 resume_after_sequence: 42 push_on_change: true
TXT
encode SubscriptionRequest $d/unknown_metric <<TXT
metric_types: "page_views" metric_types: "pageviews"
TXT
encode SubscriptionRequest $d/history_too_long <<TXT
history_seconds: 3601
TXT
encode SubscriptionRequest $d/dashboard_id_too_long <<TXT
dashboard_id: "$(printf 'd%.0s' {1..257})"
TXT
encode SubscriptionRequest $d/unknown_window <<TXT
windows: WINDOW_UNSPECIFIED windows: WINDOW_TOTAL windows: 7
TXT
encode SubscriptionRequest $d/live_segment <<TXT
metric_types: "conversions" filters { dimension: "utm_campaign" value: "spring" }
filters { dimension: "country" value: "DE" } filters { dimension: "referrer" }
TXT
encode SubscriptionRequest $d/live_segment_twice <<TXT
filters { dimension: "country" value: "DE" } filters { dimension: "country" value: "FR" }
TXT
encode SubscriptionRequest $d/live_segment_unknown <<TXT
filters { dimension: "city" value: "Berlin" }
TXT
encode SubscriptionRequest $d/empty_filter <<TXT
filters { }
TXT

# event_json: one JSON line each, as `event_reporter replay` reads them, or an HTTP body.
d=fuzz/corpus/event_json
rm -rf "$d" && mkdir -p "$d"
printf '%s' '{"event_type":"page_view","page":"/","visitor_id":"v1"}' >$d/page_view
printf '%s' '{"event_id":"e2","event_type":"purchase","timestamp_ms":1767225600000,"session_id":"s1","visitor_id":"v1","value":59.9,"country":"DE","device":"mobile"}' >$d/purchase
printf '%s' '{"event_type":"signup","properties":{"plan":"pro","seats":"3"},"referrer":null}' >$d/properties
printf '%s' '{"event_type":"click","page":"/caf\u00e9 \ud83d\ude00","value":1e300,"timestamp_ms":-5}' >$d/escapes
printf '%s' '{"event_type":"page_view","pgae":"/"}' >$d/unknown_field
printf '%s' '{"event_type":7}' >$d/wrong_type
printf '%s' '{"event_type":"x","timestamp_ms":18446744073709551615}' >$d/timestamp_out_of_range
printf '%s' '{"event_type":"x","timestamp_ms":1.5}' >$d/timestamp_float
printf '%s' '[{"event_type":"x"}]' >$d/not_object
printf '%s' '{"event_type":"page_view",' >$d/truncated
printf '%s' '{"event_type":"a","event_type":"b","value":-0.0}' >$d/duplicate_key
printf '%s' '{"event_type":"click","value":1e999}' >$d/number_overflow  # was an uncaught exception
# HTTP bodies (ParseEventsJson): arrays whose elements fail on their own, past the limit of 4.
printf '%s' '[{"event_id":"a","event_type":"x"},7,{"event_type":"y","value":"1"},[{}],{"page":"/"},{"event_type":"z"}]' >$d/body_mixed
printf '%s' '[{"event_type":"x","timestamp_ms":-0,"properties":{"k":["v"],"j":"w"}},{"event_type":"y","value":-9223372036854775809}]' >$d/body_numbers

# config_file: the JSON of `analytics_server --config FILE`.
d=fuzz/corpus/config_file
rm -rf "$d" && mkdir -p "$d"
printf '%s' '{"listen":"127.0.0.1:6000","metrics_listen":"","tick_ms":250,"workers":4}' >$d/small
printf '%s' '{"max_subscribers":100,"max_streams":1000,"max_message_bytes":1048576,"max_event_bytes":8192,"max_event_properties":16,"max_batch_events":500,"memory_quota_bytes":67108864,"shutdown_grace_ms":1000}' >$d/limits
printf '%s' '{"dedupe_horizon_seconds":600,"dedupe_capacity_log2":20,"max_event_age_seconds":3600,"max_event_future_seconds":60,"dimension_cardinality_cap":50,"top_k_capacity":100,"max_sessions":1000,"active_session_seconds":300}' >$d/aggregator
printf '%s' '{"tick_ms":-1}' >$d/negative
printf '%s' '{"tick_ms":4294967296}' >$d/overflow
printf '%s' '{"memory_quota_bytes":18446744073709551615}' >$d/u64_max
printf '%s' '{"tick_ms":"250"}' >$d/string_for_int
printf '%s' '{"tick_mss":250}' >$d/unknown_key
printf '%s' '[1,2]' >$d/array
printf '%s' '{"listen":"::1"' >$d/truncated

# config_flags: the arguments of analytics_server, one per line.
d=fuzz/corpus/config_flags
rm -rf "$d" && mkdir -p "$d"
printf '%s\n' --listen 127.0.0.1:6000 --tick-ms 250 --metrics-listen= >$d/small
printf '%s\n' --config server.json --tick-ms=100 >$d/config_then_flag
printf '%s\n' --max-message-bytes 1024 --max-event-bytes 1025 >$d/event_over_message
printf '%s\n' --dedupe-capacity-log2 31 >$d/capacity
printf '%s\n' --tick-ms -5 >$d/negative
printf '%s\n' --help --tick-ms 1 >$d/help
printf '%s\n' --version >$d/version
printf '%s\n' --listen >$d/missing_value
printf '%s\n' listen 1 >$d/no_dashes

# Dictionary for the SubscriptionRequest target: every metric name as a whole metric_types
# field (tag 0x0a, length, bytes), so that a mutation inserts a well-formed one.
python3 - >fuzz/dict/subscription_request.dict <<'PY'
import re
names = re.findall(r'^    "([a-z0-9_]+)",$', open("server/aggregator/metric_catalog.h").read(), re.M)
assert len(names) > 10, names
print("# Generated by fuzz/make_corpus.sh: metric_types fields (tag 0x0a, length, name).")
for n in names:
    print('metric_%s="\\x0a\\x%02x%s"' % (n, len(n), n))
for w in range(5):
    print('window_%d="\\x18\\x%02x"' % (w, w))
print('history_3600="\\x28\\x90\\x1c"')
print('history_3601="\\x28\\x91\\x1c"')
PY
# Dictionary for the ingest target: event types as whole event_type fields (tag 0x12, length).
python3 - >fuzz/dict/ingest.dict <<'PY'
print("# Generated by fuzz/make_corpus.sh: event_type fields (tag 0x12, length, type), timestamps.")
for t in ["page_view", "page_load", "purchase", "signup", "click", "add_to_cart"]:
    print('type_%s="\\x12\\x%02x%s"' % (t, len(t), t))
def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])
for name, ms in [("now", 1767225600000), ("hour_ago", 1767225600000 - 3600000),
                 ("minute_ahead", 1767225600000 + 60000), ("negative", (1 << 64) - 1)]:
    print('time_%s="\\x18%s"' % (name, "".join("\\x%02x" % b for b in varint(ms))))
PY

# Dictionaries for the config targets: every key of server/config_parser.cc.
python3 - <<'PY'
import re
keys = re.findall(r'\{"([a-z0-9_]+)", &', open("server/config_parser.cc").read())
assert len(keys) > 20, keys
numbers = ["-1", "0", "4294967295", "4294967296", "18446744073709551615", "18446744073709551616",
           "-9223372036854775808"]
with open("fuzz/dict/config_file.dict", "w") as f:
    f.write("# Generated by fuzz/make_corpus.sh: every config key and some JSON tokens.\n")
    for k in keys:
        f.write('"\\"%s\\":"\n' % k)
    for t in ["null", "true", "false", "{}", "[]", "1.5", "1e3"] + numbers:
        f.write('"%s"\n' % t)
with open("fuzz/dict/config_flags.dict", "w") as f:
    f.write("# Generated by fuzz/make_corpus.sh: every flag, ending its line.\n")
    for k in keys:
        f.write('"--%s\\x0a"\n' % k.replace("_", "-"))
    for t in ["--config\\x0a", "--help\\x0a", "--version\\x0a", "=", "\\x0a", "127.0.0.1:0",
              "[::1]:50051"] + numbers:
        f.write('"%s"\n' % t)
PY

# rollup_bytes: one selector byte (00 = a stored rollup cell, 01 = a stored session, 02 = a
# rollup run from a cluster's partial record), then the
# bytes as the history's RocksDB store holds them (server/storage/rollup_cell.cc,
# rollup_accumulator.cc). Built by hand, as tests/storage/rollup_cell_test.cc does.
d=fuzz/corpus/rollup_bytes
rm -rf "$d"
mkdir -p "$d"
# Format 3: counters 5 4 1 2 1 and revenue 250000 (zigzag 500000), two sparse registers at
# precision 12 (gaps 16 and 4079), two page loads in bins 1000 and 1001.
printf '\x00\x03\x05\x04\x01\x02\x01\xa0\xc2\x1e\x01\x0c\x02\x10\x03\xef\x1f\x01\x01\x02\x00\xe8\x07\x02\x01\x01' >$d/cell_v3_sparse
# Format 3: no visitors, no page loads, a refund (revenue -125000: zigzag 249999).
printf '\x00\x03\x01\x00\x00\x00\x00\x8f\xa1\x0f\x00\x00' >$d/cell_v3_refund
# Format 1 (fixed width, precision 14 implied), as the first build wrote it.
{
  printf '\x00\x01'
  for counter in 07 03 01 02 01; do printf "\\x$counter\\x00\\x00\\x00\\x00\\x00\\x00\\x00"; done
  printf '\x90\xd0\x03\x00\x00\x00\x00\x00'  # revenue 250000
  printf '\x01\x02\x00\x00\x00\x10\x00\x03\xff\x3f\x01\x00'
} >$d/cell_v1
# A session: first, last and ingest times (zigzag varints), 1 page view, then the seven names.
printf '\x01\x00\x00\x00\x01\x02DE\x07desktop\x05/home\x0agoogle.com\x06google\x06spring\x09page_view' \
  >$d/session
# A rollup run (02, server/storage/rollup_delta.h): a write of the sparse cell above at hour
# resolution (time_s 1800000000, zigzag varint) for "country=DE", an admitted value (dimension
# 0, "DE"), a forgotten session (hash 7) and the session above as a state (hash 9).
{
  printf '\x02\x01\x80\xc8\xce\xb4\x0d\x0acountry=DE\x19'
  printf '\x03\x05\x04\x01\x02\x01\xa0\xc2\x1e\x01\x0c\x02\x10\x03\xef\x1f\x01\x01\x02\x00\xe8\x07\x02\x01\x01'
  printf '\x10\x00\x02DE'
  printf '\x11\x07\x00\x00\x00\x00\x00\x00\x00'
  printf '\x12\x09\x00\x00\x00\x00\x00\x00\x00\x38'
  printf '\x00\x00\x00\x01\x02DE\x07desktop\x05/home\x0agoogle.com\x06google\x06spring\x09page_view'
} >$d/run

# grpc_web: one selector byte (bit 0: 0 binary, 1 text; bits 1-7: the size limit, 1 + 64 * n),
# then a gRPC-Web call body (server/http/grpc_web.h): frames of a flag byte, a 4-byte big-endian
# length and the bytes.
d=fuzz/corpus/grpc_web
rm -rf "$d"
mkdir -p "$d"
frame() {  # frame FLAG MESSAGE_FILE: one frame around the file's bytes
  local size
  size=$(stat -c %s "$2")
  printf "\\x$1"
  printf "$(printf '%08x' "$size" | sed 's/../\\x&/g')"
  cat "$2"
}
query=$(mktemp)
protoc --proto_path=proto --encode=analytics.MetricsQuery proto/analytics.proto >"$query" <<TXT
metric_types: "page_views" windows: WINDOW_TOTAL
TXT
{ printf '\xfe'; frame 00 "$query"; } >$d/binary_query
{ printf '\x00'; frame 00 "$query"; } >$d/binary_over_limit
{ printf '\xff'; frame 00 "$query" | base64 -w0; } >$d/text_query
{ printf '\xfe'; frame 01 "$query"; } >$d/compressed
printf 'grpc-status:0\r\n' >"$query.trailers"
{ printf '\xfe'; frame 80 "$query.trailers"; } >$d/trailers_in_request
{ printf '\xfe'; frame 00 "$query"; frame 00 "$query"; } >$d/two_messages
{ printf '\xfe'; frame 00 "$query" | head -c 7; } >$d/truncated
printf '\xfehttps://shop.example, http://127.0.0.1:8080' >$d/origin_list
rm -f "$query" "$query.trailers"

echo "corpus: $(find fuzz/corpus -type f | wc -l) seeds"
