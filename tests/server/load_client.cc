// A small load client for the tests that drive the real analytics_server binary
// (dedupe_resend_test.sh, long_keys_rss_test.sh). Loopback only; every loop is bounded in count
// and time.
//
//   load_client dedupe ADDRESS IDS RESEND
//     Reports IDS distinct event ids on two concurrent ReportEventBatches streams, then the first
//     RESEND ids again; prints "pass=1 accepted=.. duplicates=.. rejected=.." and "pass=2 ...".
//   load_client long-pages ADDRESS RATE SECONDS PAGE_BYTES PID
//     Reports page views with a new PAGE_BYTES-long page each, paced at RATE events/s for
//     SECONDS (at most 600), one stream per second; after each second prints
//     "sample second=S sent=N accepted=A rss_kib=K" with the VmRSS of process PID.
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "analytics.grpc.pb.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Totals {
  uint64_t accepted = 0;
  uint64_t duplicates = 0;
  uint64_t rejected = 0;
  bool ok = true;
};

// Sends [first, last) ids as "id-<n>" in batches of 1000 on one stream.
Totals SendIds(analytics::AnalyticsService::Stub& stub, int64_t first, int64_t last) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  analytics::EventResponse response;
  auto writer = stub.ReportEventBatches(&context, &response);
  analytics::EventBatch batch;
  for (int64_t i = first; i < last;) {
    batch.Clear();
    for (int n = 0; n < 1000 && i < last; ++n, ++i) {
      analytics::EventData* event = batch.add_events();
      std::string id = "id-";  // (not "id-" + ...: GCC 12 warns falsely, -Wrestrict)
      id += std::to_string(i);
      event->set_event_id(std::move(id));
      event->set_event_type("click");
    }
    if (!writer->Write(batch)) break;
  }
  writer->WritesDone();
  const grpc::Status status = writer->Finish();
  Totals totals{response.accepted(), response.duplicates(), response.rejected(), status.ok()};
  if (!status.ok()) std::fprintf(stderr, "stream failed: %s\n", status.error_message().c_str());
  return totals;
}

int Dedupe(const std::string& address, int64_t ids, int64_t resend) {
  auto channel = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  auto stub = analytics::AnalyticsService::NewStub(channel);
  const Clock::time_point start = Clock::now();
  Totals halves[2];
  std::thread second([&] { halves[1] = SendIds(*stub, ids / 2, ids); });
  halves[0] = SendIds(*stub, 0, ids / 2);
  second.join();
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  std::printf("pass=1 accepted=%lu duplicates=%lu rejected=%lu seconds=%.2f rate=%.0f\n",
              halves[0].accepted + halves[1].accepted,
              halves[0].duplicates + halves[1].duplicates, halves[0].rejected + halves[1].rejected,
              seconds, static_cast<double>(ids) / seconds);
  const Totals again = SendIds(*stub, 0, resend);
  std::printf("pass=2 accepted=%lu duplicates=%lu rejected=%lu\n", again.accepted, again.duplicates,
              again.rejected);
  return halves[0].ok && halves[1].ok && again.ok ? 0 : 1;
}

long RssKib(long pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

int LongPages(const std::string& address, int rate, int seconds, int page_bytes, long pid) {
  auto channel = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  auto stub = analytics::AnalyticsService::NewStub(channel);
  constexpr int kSlicesPerSecond = 50;  // a batch every 20 ms
  const int per_slice = rate / kSlicesPerSecond;
  uint64_t sent = 0;
  uint64_t accepted = 0;
  const std::string filler(static_cast<size_t>(page_bytes), 'x');
  const Clock::time_point start = Clock::now();
  for (int second = 0; second < seconds; ++second) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    analytics::EventResponse response;
    auto writer = stub->ReportEventBatches(&context, &response);
    analytics::EventBatch batch;
    for (int slice = 0; slice < kSlicesPerSecond; ++slice) {
      batch.Clear();
      for (int n = 0; n < per_slice; ++n) {
        const std::string number = std::to_string(sent++);
        analytics::EventData* event = batch.add_events();
        std::string id = "lp-";
        id += number;
        event->set_event_id(std::move(id));
        event->set_event_type("page_view");
        // Unique from the first byte, so that no two values share a prefix of any length.
        std::string page = "/";
        page += number;
        page += '/';
        if (page.size() < filler.size()) page += filler.substr(page.size());
        event->set_page(std::move(page));
        std::string visitor = "v";
        visitor += std::to_string(n);
        event->set_visitor_id(std::move(visitor));
      }
      if (!writer->Write(batch)) break;
      std::this_thread::sleep_until(start + std::chrono::milliseconds(
                                                (second * kSlicesPerSecond + slice + 1) * 20));
    }
    writer->WritesDone();
    const grpc::Status status = writer->Finish();
    if (!status.ok()) {
      std::fprintf(stderr, "stream failed: %s\n", status.error_message().c_str());
      return 1;
    }
    accepted += response.accepted();
    std::printf("sample second=%d sent=%lu accepted=%lu rss_kib=%ld\n", second + 1, sent, accepted,
                RssKib(pid));
    std::fflush(stdout);
  }
  return accepted == sent ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  if (args.size() == 4 && args[0] == "dedupe") {
    return Dedupe(args[1], std::stoll(args[2]), std::stoll(args[3]));
  }
  if (args.size() == 6 && args[0] == "long-pages") {
    return LongPages(args[1], std::stoi(args[2]), std::min(std::stoi(args[3]), 600),
                     std::stoi(args[4]), std::stol(args[5]));
  }
  std::fprintf(stderr,
               "usage: load_client dedupe ADDRESS IDS RESEND\n"
               "       load_client long-pages ADDRESS RATE SECONDS PAGE_BYTES PID\n");
  return 2;
}
