#include "dashboard_client/range_mode.h"

#include <grpcpp/client_context.h>

#include <cmath>
#include <sstream>

#include "analytics.grpc.pb.h"
#include "clients/common/number_text.h"
#include "dashboard_client/format.h"
#include "dashboard_client/subscription.h"

namespace rta::dashboard {
namespace {

std::string Utc(int64_t ms) { return client::UtcText(ms, /*millis=*/false); }

// A metric's value in the text output, in the unit the name says; "—" for NaN (the formats
// write it so), what the server answers for a KPI a segment does not keep.
std::string Show(const std::string& metric, double value) {
  if (metric == "revenue") return FormatMoney(value);
  if (metric == "bounce_rate" || metric == "conversion_rate") return FormatPercent(value);
  if (metric.rfind("page_load_ms", 0) == 0) return FormatMs(value);
  return FormatCount(value);
}

std::string Pad(const std::string& text, size_t width) {
  const size_t shown = DisplayWidth(text);
  return shown >= width ? text : text + std::string(width - shown, ' ');
}

}  // namespace

bool ParseFilterFlags(const std::vector<std::string>& texts,
                      google::protobuf::RepeatedPtrField<analytics::DimensionFilter>* out,
                      std::string* error) {
  for (const std::string& text : texts) {
    std::stringstream words(text);
    for (std::string word; words >> word;) {
      const size_t equals = word.find('=');
      if (equals == std::string::npos || equals == 0) {
        *error = "--filter: expected dimension=value (e.g. country=DE), got \"" + word + "\"";
        return false;
      }
      analytics::DimensionFilter* filter = out->Add();
      filter->set_dimension(word.substr(0, equals));
      filter->set_value(word.substr(equals + 1));
    }
  }
  return true;
}

bool BuildRangeQuery(const RangeFlags& flags, analytics::RangeQuery* query, std::string* error) {
  static const std::pair<const char*, analytics::NamedRange> kRanges[] = {
      {"1h", analytics::RANGE_LAST_1H},      {"24h", analytics::RANGE_LAST_24H},
      {"7d", analytics::RANGE_LAST_7D},      {"30d", analytics::RANGE_LAST_30D},
      {"today", analytics::RANGE_TODAY},     {"yesterday", analytics::RANGE_YESTERDAY},
      {"month", analytics::RANGE_THIS_MONTH}};
  bool known = false;
  for (const auto& [name, range] : kRanges) {
    if (flags.range == name) {
      query->set_range(range);
      known = true;
    }
  }
  if (!known) {
    *error = "--range: expected 1h, 24h, 7d, 30d, today, yesterday or month, got \"" + flags.range +
             "\"";
    return false;
  }
  for (const std::string& metric : flags.metrics) query->add_metrics(metric);
  if (!ParseFilterFlags(flags.filters, query->mutable_filters(), error)) return false;
  query->set_breakdown(flags.breakdown);
  query->set_breakdown_by(flags.breakdown_by);
  if (flags.breakdown_limit != 0) {
    query->set_breakdown_limit(static_cast<uint32_t>(flags.breakdown_limit));
  }
  if (flags.step == "1m") {
    query->set_step_seconds(60);
  } else if (flags.step == "1h") {
    query->set_step_seconds(3600);
  } else if (flags.step == "1d") {
    query->set_step_seconds(86'400);
  } else if (!flags.step.empty()) {
    *error = "--step: expected 1m, 1h or 1d, got \"" + flags.step + "\"";
    return false;
  }
  query->set_compare_previous(flags.compare);
  return true;
}

nlohmann::json RangeJson(const analytics::RangeResult& result, const analytics::RangeQuery& query,
                         const std::string& server) {
  nlohmann::json doc;
  doc["server"] = server;
  doc["from_ms"] = result.from_ms();
  doc["to_ms"] = result.to_ms();
  doc["from"] = Utc(result.from_ms());
  doc["to"] = Utc(result.to_ms());
  doc["step_seconds"] = result.step_seconds();
  doc["metrics"] = std::vector<std::string>(result.metrics().begin(), result.metrics().end());
  if (query.filters_size() > 0) {
    nlohmann::json filters = nlohmann::json::object();
    for (const auto& filter : query.filters()) filters[filter.dimension()] = filter.value();
    doc["filters"] = filters;
  }
  // NaN (a KPI the segment does not keep) is null, as JSON has no NaN.
  auto number = [](double value) {
    return std::isnan(value) ? nlohmann::json(nullptr) : nlohmann::json(value);
  };
  auto by_name = [&](const auto& values) {
    nlohmann::json row = nlohmann::json::object();
    for (int i = 0; i < result.metrics_size() && i < values.size(); ++i) {
      row[result.metrics(i)] = number(values.Get(i));
    }
    return row;
  };
  doc["totals"] = by_name(result.totals());
  if (query.compare_previous()) {
    nlohmann::json previous;
    previous["from_ms"] = result.previous_from_ms();
    previous["to_ms"] = result.previous_to_ms();
    previous["totals"] = by_name(result.previous_totals());
    nlohmann::json change = nlohmann::json::object();
    for (int i = 0; i < result.metrics_size() && i < result.previous_totals_size(); ++i) {
      const double before = result.previous_totals(i);
      change[result.metrics(i)] =
          before == 0 ? nlohmann::json(nullptr) : number((result.totals(i) - before) / before);
    }
    previous["change"] = change;
    doc["previous"] = previous;
  }
  nlohmann::json series = nlohmann::json::array();
  for (const auto& point : result.series()) {
    nlohmann::json row = by_name(point.values());
    row["start_ms"] = point.start_ms();
    row["start"] = Utc(point.start_ms());
    series.push_back(row);
  }
  doc["series"] = series;
  if (!query.breakdown().empty()) {
    nlohmann::json rows = nlohmann::json::array();
    for (const auto& entry : result.breakdown()) {
      nlohmann::json row = by_name(entry.values());
      row["value"] = entry.value();
      rows.push_back(row);
    }
    doc["breakdown"] = {{"dimension", query.breakdown()}, {"rows", rows}};
  }
  doc["notes"] = std::vector<std::string>(result.notes().begin(), result.notes().end());
  return doc;
}

std::string RangeText(const analytics::RangeResult& result, const analytics::RangeQuery& query) {
  std::string out = "range " + Utc(result.from_ms()) + " .. " + Utc(result.to_ms()) + ", step " +
                    std::to_string(result.step_seconds()) + " s";
  for (const auto& filter : query.filters()) {
    out += ", " + filter.dimension() + "=" + filter.value();
  }
  out += "\n";
  for (int i = 0; i < result.metrics_size() && i < result.totals_size(); ++i) {
    out += "  " + Pad(result.metrics(i), 18) + Pad(Show(result.metrics(i), result.totals(i)), 12);
    if (query.compare_previous() && i < result.previous_totals_size()) {
      out += FormatChange(result.previous_totals(i), result.totals(i)) + " vs " +
             Show(result.metrics(i), result.previous_totals(i)) + " the period before";
    }
    out += "\n";
  }
  if (!query.breakdown().empty()) {
    out += "by " + query.breakdown() + ":\n";
    out += "  " + Pad(query.breakdown(), 28);
    for (const std::string& metric : result.metrics()) out += Pad(metric, 18);
    out += "\n";
    for (const auto& row : result.breakdown()) {
      out += "  " + Pad(Truncate(row.value(), 27), 28);
      for (int i = 0; i < row.values_size() && i < result.metrics_size(); ++i) {
        out += Pad(Show(result.metrics(i), row.values(i)), 18);
      }
      out += "\n";
    }
  }
  for (const std::string& note : result.notes()) out += "note: " + note + "\n";
  return out;
}

int RunRangeOnce(const std::shared_ptr<grpc::Channel>& channel,
                 const client::ChannelOptions& options, const analytics::RangeQuery& query,
                 bool as_json, std::chrono::milliseconds timeout, FILE* out, FILE* err) {
  auto stub = analytics::AnalyticsService::NewStub(channel);
  grpc::ClientContext context;
  client::AddCredentials(options, &context);
  context.set_deadline(std::chrono::system_clock::now() + timeout);
  analytics::RangeResult result;
  const grpc::Status status = stub->QueryMetrics(&context, query, &result);
  const std::string servers = client::DescribeServers(options);
  if (!status.ok()) {
    std::fprintf(err, "dashboard_client: %s\n",
                 DescribeFailure(status, servers, CallKind::kQuery).c_str());
    return 1;
  }
  if (as_json) {
    std::fprintf(out, "%s\n", RangeJson(result, query, servers).dump(2).c_str());
  } else {
    std::fputs(RangeText(result, query).c_str(), out);
  }
  return 0;
}

}  // namespace rta::dashboard
