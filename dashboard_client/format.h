#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace rta::dashboard {

// Number formatting for the dashboard: short, fixed-width-friendly, locale-independent.

// 999 -> "999", 1234 -> "1,234", 98765 -> "98.8k", 1234567 -> "1.23M" (at most 6 characters for
// values below 10^12). Negative values get a leading '-'; NaN is "—".
std::string FormatCount(double value);
// 1234.5 -> "$1,234.50"; large sums shorten: 123456 -> "$123.5k".
std::string FormatMoney(double value);
// A ratio as a percentage: 0.1234 -> "12.3%".
std::string FormatPercent(double ratio);
// Milliseconds: 842 -> "842 ms", 1520 -> "1.52 s".
std::string FormatMs(double ms);
// Change from `previous` to `current`: "▲ 12%", "▼ 3.4%", "= 0%"; "" when there is nothing to
// compare with (previous is NaN, or 0 with current 0), "▲ new" from 0 to more.
std::string FormatChange(double previous, double current);
// Age in seconds for the status line: "0.4 s", "12 s", "3 min", "2 h".
std::string FormatAge(double seconds);
// A sparkline of `width` characters from the values (oldest first) with the block characters
// ▁▂▃▄▅▆▇█, scaled between the minimum and the maximum; NaN (no data) is a space. More values
// than width are averaged into buckets; fewer are right-aligned.
std::string Sparkline(const std::vector<double>& values, int width);
// The same as a chart `rows` lines tall (top line first), for tiles with room to spare: each
// column is a bar of up to rows * 8 eighths. Sparkline(v, w) == SparkChart(v, w, 1)[0].
std::vector<std::string> SparkChart(const std::vector<double>& values, int width, int rows);

// The number of characters (code points) in UTF-8 text: every character the dashboard draws is
// one terminal column wide.
size_t DisplayWidth(const std::string& utf8);
// Cuts UTF-8 text to at most `width` characters, ending in "…" when it had to cut.
std::string Truncate(const std::string& utf8, size_t width);

}  // namespace rta::dashboard
