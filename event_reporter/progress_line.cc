#include "event_reporter/progress_line.h"

#include <algorithm>

#include "clients/common/number_text.h"

namespace rta::reporter {

using client::WithThousands;

std::string ClockText(double seconds) {
  const auto total = static_cast<int64_t>(seconds);
  char text[32];
  if (total >= 3600) {
    std::snprintf(text, sizeof text, "%lld:%02lld:%02lld", static_cast<long long>(total / 3600),
                  static_cast<long long>(total / 60 % 60), static_cast<long long>(total % 60));
  } else {
    std::snprintf(text, sizeof text, "%lld:%02lld", static_cast<long long>(total / 60),
                  static_cast<long long>(total % 60));
  }
  return text;
}

ProgressLine::ProgressLine(FILE* err, bool enabled, const Reporter& reporter,
                           std::function<std::optional<double>()> done_fraction)
    : err_(err), reporter_(reporter), done_fraction_(std::move(done_fraction)) {
  if (enabled) thread_ = std::thread([this] { Run(); });
}

void ProgressLine::Stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) {
    thread_.join();
    std::fprintf(err_, "\r\033[K");
  }
}

void ProgressLine::Run() {
  const auto start = std::chrono::steady_clock::now();
  std::unique_lock lock(mutex_);
  while (!wake_.wait_for(lock, std::chrono::milliseconds(250), [&] { return stopping_; })) {
    const DeliveryStats stats = reporter_.stats();
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::string line = "sent " + WithThousands(stats.sent) + "  acked " +
                       WithThousands(stats.acknowledged()) + "  rejected " +
                       WithThousands(stats.rejected) + "  retries " + WithThousands(stats.retries) +
                       "  " +
                       WithThousands(static_cast<uint64_t>(stats.sent / std::max(elapsed, 1e-3))) +
                       " ev/s  " + ClockText(elapsed);
    if (const std::optional<double> fraction = done_fraction_();
        fraction && *fraction > 0.01 && *fraction <= 1) {
      line += "  ETA " + ClockText(elapsed / *fraction - elapsed);
    }
    std::fprintf(err_, "\r\033[K%s", line.c_str());
    std::fflush(err_);
  }
}

}  // namespace rta::reporter
