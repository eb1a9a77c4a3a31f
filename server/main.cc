// analytics_server: parses the configuration, starts the server, and shuts it down in order on
// SIGINT/SIGTERM. Everything else lives in the rta_server library.
#include <google/protobuf/stubs/logging.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "server/access_init.h"
#include "server/analytics_server.h"
#include "server/config_parser.h"
#include "server/log.h"

namespace {

// Protobuf logs an ERROR for every string field that is not UTF-8 when it parses a message: a
// client could fill the log with them. The client is told (INVALID_ARGUMENT names the field) and
// analytics_messages_unparseable_total counts them, so those lines are dropped; anything else
// protobuf has to say goes out as a structured warning.
void ProtobufLogHandler(google::protobuf::LogLevel level, const char* file, int line,
                        const std::string& message) {
  if (message.find("UTF-8") != std::string::npos) return;
  rta::server::LogWarn("protobuf", {{"level", std::to_string(static_cast<int>(level))},
                                    {"at", std::string(file) + ":" + std::to_string(line)},
                                    {"message", message}});
}

}  // namespace

int main(int argc, char** argv) {
  using namespace rta::server;
  google::protobuf::SetLogHandler(&ProtobufLogHandler);
  CommandLine command_line;
  std::string error;
  if (!ParseCommandLine(std::vector<std::string>(argv + 1, argv + argc), &command_line, &error)) {
    std::fprintf(stderr, "analytics_server: %s\n", error.c_str());
    return 2;
  }
  if (command_line.show_help) {
    std::fputs(ServerHelpText().c_str(), stdout);
    return 0;
  }
  if (command_line.show_version) {
    std::printf("analytics_server %s (grpc %s)\n", RTA_VERSION, RTA_GRPC_VERSION);
    return 0;
  }
  if (command_line.init) {
    std::string report;
    if (!InitAccess(command_line.config, &report, &error)) {
      std::fprintf(stderr, "analytics_server --init: %s\n", error.c_str());
      return 1;
    }
    std::fputs(report.c_str(), stdout);
    return 0;
  }
  const auto grace = std::chrono::milliseconds(command_line.config.shutdown_grace_ms);
  // A log file over the process's file-size limit (RLIMIT_FSIZE) must be a write error the log
  // retries (EFBIG, like a full disk), not SIGXFSZ's default: death with a core dump.
  std::signal(SIGXFSZ, SIG_IGN);
  AnalyticsServer server(command_line.config);
  if (!server.Start(&error)) {
    std::fprintf(stderr, "analytics_server: %s\n", error.c_str());
    return 1;
  }

  boost::asio::io_context io;
  boost::asio::signal_set signals(io, SIGINT, SIGTERM);
  std::thread shutdown_thread;
  std::function<void(const boost::system::error_code&, int)> on_signal =
      [&](const boost::system::error_code& ec, int signal_number) {
        if (ec) return;
        if (shutdown_thread.joinable()) {
          LogWarn("shutdown_forced", {{"signal", std::to_string(signal_number)}});
          std::_Exit(130);
        }
        LogInfo("signal", {{"signal", std::to_string(signal_number)}});
        shutdown_thread = std::thread([&] {
          server.Shutdown(grace);
          io.stop();
        });
        signals.async_wait(on_signal);  // a second signal forces the exit
      };
  signals.async_wait(on_signal);
  // SIGHUP: reload the TLS files (open connections keep theirs).
  boost::asio::signal_set hangup(io, SIGHUP);
  std::function<void(const boost::system::error_code&, int)> on_hangup =
      [&](const boost::system::error_code& ec, int) {
        if (ec) return;
        std::string reload_error;
        if (!server.ReloadTls(&reload_error)) {
          LogWarn("tls_reload_failed", {{"error", reload_error}});
        }
        hangup.async_wait(on_hangup);
      };
  hangup.async_wait(on_hangup);
  io.run();
  if (shutdown_thread.joinable()) shutdown_thread.join();
  return 0;
}
