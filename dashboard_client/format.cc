#include "dashboard_client/format.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "clients/common/number_text.h"

namespace rta::dashboard {
namespace {

using client::WithThousands;

std::string Printf(const char* format, double value) {
  char text[64];
  std::snprintf(text, sizeof text, format, value);
  return text;
}

bool IsContinuationByte(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

}  // namespace

std::string FormatCount(double value) {
  if (std::isnan(value)) return "—";
  if (value < 0) return std::string("-").append(FormatCount(-value));
  if (std::isinf(value)) return "∞";
  if (value < 100'000) {
    // Small values keep their precision: fractional ones (rates) with one decimal.
    if (value < 100 && std::fabs(value - std::round(value)) > 1e-9) return Printf("%.1f", value);
    return WithThousands(static_cast<uint64_t>(std::llround(value)));
  }
  if (value < 1e6) return Printf("%.1fk", value / 1e3);
  if (value < 1e9) return Printf("%.2fM", value / 1e6);
  if (value < 1e12) return Printf("%.2fG", value / 1e9);
  return Printf("%.3g", value);
}

std::string FormatMoney(double value) {
  if (std::isnan(value)) return "—";
  if (value < 0) return std::string("-").append(FormatMoney(-value));
  if (value < 100'000) {
    const auto cents = static_cast<uint64_t>(std::llround(value * 100));
    return std::string("$")
        .append(WithThousands(cents / 100))
        .append(Printf(".%02.0f", static_cast<double>(cents % 100)));
  }
  return std::string("$").append(FormatCount(value));
}

std::string FormatPercent(double ratio) {
  if (std::isnan(ratio)) return "—";
  const double percent = ratio * 100;
  return Printf(std::fabs(percent) < 10 ? "%.2f%%" : "%.1f%%", percent);
}

std::string FormatMs(double ms) {
  if (std::isnan(ms)) return "—";
  if (ms < 1'000) return Printf("%.0f ms", ms);
  if (ms < 10'000) return Printf("%.2f s", ms / 1'000);
  return Printf("%.1f s", ms / 1'000);
}

std::string FormatChange(double previous, double current) {
  if (std::isnan(previous) || std::isnan(current)) return "";
  if (previous == 0) return current == 0 ? "" : current > 0 ? "▲ new" : "▼ new";
  const double change = (current - previous) / std::fabs(previous) * 100;
  if (std::fabs(change) < 0.05) return "= 0%";
  const std::string amount =
      std::fabs(change) >= 999.5
          ? ">999%"
          : Printf(std::fabs(change) < 10 ? "%.1f%%" : "%.0f%%", std::fabs(change));
  return std::string(change > 0 ? "▲ " : "▼ ").append(amount);
}

std::string FormatAge(double seconds) {
  if (std::isnan(seconds) || seconds < 0) return "—";
  if (seconds < 10) return Printf("%.1f s", seconds);
  if (seconds < 120) return Printf("%.0f s", seconds);
  if (seconds < 7'200) return Printf("%.0f min", seconds / 60);
  return Printf("%.0f h", seconds / 3'600);
}

std::string Sparkline(const std::vector<double>& values, int width) {
  return width <= 0 ? "" : SparkChart(values, width, 1).front();
}

std::vector<std::string> SparkChart(const std::vector<double>& values, int width, int rows) {
  static const char* const kBlocks[] = {"▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"};
  rows = std::max(rows, 1);
  std::vector<std::string> lines(static_cast<size_t>(rows));
  if (width <= 0) return lines;
  // Bucket the values into at most `width` columns (the mean of each bucket).
  std::vector<double> columns;
  const size_t n = values.size();
  const size_t count = std::min<size_t>(n, static_cast<size_t>(width));
  for (size_t c = 0; c < count; ++c) {
    const size_t begin = c * n / count;
    const size_t end = (c + 1) * n / count;
    double sum = 0;
    size_t used = 0;
    for (size_t i = begin; i < end; ++i) {
      if (std::isnan(values[i])) continue;
      sum += values[i];
      ++used;
    }
    columns.push_back(used == 0 ? NAN : sum / static_cast<double>(used));
  }
  double low = INFINITY;
  double high = -INFINITY;
  for (double v : columns) {
    if (std::isnan(v)) continue;
    low = std::min(low, v);
    high = std::max(high, v);
  }
  // Fewer values than columns: right-aligned, so the newest value is always at the right edge.
  for (std::string& line : lines) line.assign(static_cast<size_t>(width) - count, ' ');
  const int levels = rows * 8;
  for (double v : columns) {
    // Every known value gets at least the lowest eighth, so "zero" differs from "no data".
    int level = 0;
    if (!std::isnan(v)) {
      level =
          high <= low
              ? (v > 0 ? levels / 2 : 1)  // flat: a middle line, or the floor for 0
              : 1 + std::clamp(static_cast<int>((v - low) / (high - low) * (levels - 1 + 0.999)), 0,
                               levels - 1);
    }
    for (int r = 0; r < rows; ++r) {
      const int fill = level - (rows - 1 - r) * 8;  // eighths of this line (top line first)
      lines[static_cast<size_t>(r)] += fill <= 0 ? " " : kBlocks[std::min(fill, 8) - 1];
    }
  }
  return lines;
}

size_t DisplayWidth(const std::string& utf8) {
  return static_cast<size_t>(
      std::count_if(utf8.begin(), utf8.end(), [](char c) { return !IsContinuationByte(c); }));
}

std::string Truncate(const std::string& utf8, size_t width) {
  if (DisplayWidth(utf8) <= width) return utf8;
  if (width == 0) return "";
  std::string text;
  size_t characters = 0;
  for (size_t i = 0; i < utf8.size(); ++i) {
    if (!IsContinuationByte(utf8[i]) && ++characters == width) break;  // room for the "…"
    text += utf8[i];
  }
  return text + "…";
}

}  // namespace rta::dashboard
