// JSON events into EventData: what POST /v1/events and `event_reporter replay` pay per event.
//
// The body is 50 events of the generator's web-shop traffic, written by EventToJson (what
// `generate --output` writes and tracker.js sends, field for field). ParseEventsJson reads it
// into an EventBatch: simdjson parses, the rules are driven from its document. Beside it, in
// the same run: the same rules driven by nlohmann's SAX parser alone, and nlohmann's document
// parse of the body alone, which the reader before these paid in full before converting the
// document into the batch (so that row is a lower bound of the former cost).
#include <benchmark/benchmark.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "event_reporter/traffic_generator.h"
#include "proto/event_json.h"

namespace {

constexpr int kEventsPerBody = 50;

std::vector<std::string> Lines(int count) {
  rta::reporter::GeneratorOptions options;
  options.seed = 7;
  options.start_ms = 1'764'000'000'000;
  rta::reporter::TrafficGenerator generator(options);
  std::vector<std::string> lines;
  analytics::EventData event;
  for (int i = 0; i < count; ++i) {
    generator.Next(&event);
    lines.push_back(rta::events::EventToJson(event));
  }
  return lines;
}

std::string Body() {
  std::string body = "[";
  for (const std::string& line : Lines(kEventsPerBody)) {
    if (body.size() > 1) body += ',';
    body += line;
  }
  return body + "]";
}

using BodyReader = rta::events::ParsedEvents (*)(std::string_view, size_t, analytics::EventBatch*);

// `reuse`: into one batch, cleared before each body, as POST /v1/events reads (a cleared
// message keeps its events and their strings' buffers); otherwise into a fresh batch each time.
void BM_BodyIntoBatch(benchmark::State& state, BodyReader read, bool reuse) {
  const std::string body = Body();
  analytics::EventBatch reused;
  for (auto _ : state) {
    analytics::EventBatch fresh;
    analytics::EventBatch& batch = reuse ? reused : fresh;
    batch.Clear();
    const rta::events::ParsedEvents parsed = read(body, 1000, &batch);
    if (parsed.count != kEventsPerBody || !parsed.error.empty()) state.SkipWithError("not read");
    benchmark::DoNotOptimize(batch);
  }
  state.SetItemsProcessed(state.iterations() * kEventsPerBody);
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(body.size()));
  state.SetLabel(std::to_string(body.size()) + " bytes");
}
// What POST /v1/events runs: simdjson, then the rules, into the thread's reused batch.
BENCHMARK_CAPTURE(BM_BodyIntoBatch, simdjson_reused_batch, rta::events::ParseEventsJson, true);
// The same into a fresh batch per body (the endpoint before the reuse).
BENCHMARK_CAPTURE(BM_BodyIntoBatch, simdjson, rta::events::ParseEventsJson, false);
// The same rules driven by nlohmann's SAX parser alone (what ParseEventsJson falls back to).
BENCHMARK_CAPTURE(BM_BodyIntoBatch, nlohmann_only, rta::events::ParseEventsJsonWithNlohmannOnly,
                  false);

void BM_BodyDocumentOnly(benchmark::State& state) {
  const std::string body = Body();
  for (auto _ : state) {
    nlohmann::json document = nlohmann::json::parse(body);
    benchmark::DoNotOptimize(document);
  }
  state.SetItemsProcessed(state.iterations() * kEventsPerBody);
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(body.size()));
}
BENCHMARK(BM_BodyDocumentOnly);

void BM_LineIntoEvent(benchmark::State& state) {
  const std::vector<std::string> lines = Lines(1000);
  analytics::EventData event;
  size_t i = 0;
  for (auto _ : state) {
    const std::string& line = lines[i++ % lines.size()];
    if (!rta::events::ParseEventJson(line, &event).empty()) state.SkipWithError("not read");
    benchmark::DoNotOptimize(event);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_LineIntoEvent);

}  // namespace

BENCHMARK_MAIN();
