// analyze_session_client: try AnalyzeSession from a shell.
//
// Reads UserAction messages as JSON Lines (proto3 JSON field names, e.g.
// {"session_id":"s1","action_type":"click","target":"#buy"}) from a file or stdin, streams them,
// and prints every AnalysisResult as one JSON line. After the input ends it keeps the stream
// open for --wait-seconds, so server-initiated results (cart abandonment after 30 s) show up.
#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <thread>

#include "analytics.grpc.pb.h"

namespace {

constexpr char kUsage[] =
    "analyze_session_client [--server HOST:PORT] [--wait-seconds N] [FILE|-]\n"
    "  Streams UserAction JSON lines to AnalyzeSession and prints each AnalysisResult as JSON.\n"
    "  --server        default 127.0.0.1:50051\n"
    "  --wait-seconds  keep listening after the input ends (default 0)\n"
    "Example:\n"
    "  printf '%s\\n' '{\"session_id\":\"s1\",\"action_type\":\"add_to_cart\"}' |\n"
    "    analyze_session_client --wait-seconds 35 -\n";

}  // namespace

int main(int argc, char** argv) {
  std::string server = "127.0.0.1:50051";
  std::string path = "-";
  int wait_seconds = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (arg == "--server" && i + 1 < argc) {
      server = argv[++i];
    } else if (arg == "--wait-seconds" && i + 1 < argc) {
      wait_seconds = std::atoi(argv[++i]);
    } else if (arg.rfind("--", 0) != 0) {
      path = arg;
    } else {
      std::fprintf(stderr, "analyze_session_client: unknown flag %s\n%s", arg.c_str(), kUsage);
      return 2;
    }
  }
  std::ifstream file;
  if (path != "-") {
    file.open(path);
    if (!file) {
      std::fprintf(stderr, "analyze_session_client: cannot open %s\n", path.c_str());
      return 2;
    }
  }
  std::istream& in = path == "-" ? std::cin : file;

  auto stub = analytics::AnalyticsService::NewStub(
      grpc::CreateChannel(server, grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  auto stream = stub->AnalyzeSession(&context);
  std::thread printer([&] {
    analytics::AnalysisResult result;
    google::protobuf::util::JsonPrintOptions options;
    options.always_print_primitive_fields = true;
    while (stream->Read(&result)) {
      std::string json;
      (void)google::protobuf::util::MessageToJsonString(result, &json, options);
      std::printf("%s\n", json.c_str());
      std::fflush(stdout);
    }
  });
  int bad_lines = 0;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    analytics::UserAction action;
    const auto status = google::protobuf::util::JsonStringToMessage(line, &action);
    if (!status.ok()) {
      std::fprintf(stderr, "line %d: %s\n", number, std::string(status.message()).c_str());
      ++bad_lines;
      continue;
    }
    if (!stream->Write(action)) break;  // the server ended the stream; Finish says why
  }
  std::this_thread::sleep_for(std::chrono::seconds(wait_seconds));
  stream->WritesDone();
  printer.join();
  const grpc::Status status = stream->Finish();
  if (!status.ok()) {
    std::fprintf(stderr, "analyze_session_client: %s (code %d) from %s\n",
                 status.error_message().c_str(), static_cast<int>(status.error_code()),
                 server.c_str());
    return 1;
  }
  return bad_lines == 0 ? 0 : 1;
}
