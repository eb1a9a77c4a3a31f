// Server reflection (server/reflection_service.cc) on the real server with real stubs of the
// reflection contract: what grpcurl asks (list, a file by symbol or by name, errors), and who
// may ask: anyone on loopback, beyond loopback only a caller with a live token.
#include "server/reflection_service.h"

#include <arpa/inet.h>
#include <google/protobuf/descriptor.pb.h>
#include <ifaddrs.h>
#include <netinet/in.h>

#include <catch2/catch.hpp>

#include "tests/server/integration_util.h"
#include "tests/support/server_harness.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_users.h"

namespace {

namespace refl = grpc::reflection::v1alpha;
using rta::testing::ServerHarness;
using rta::testing::TempDir;

// One reflection stream: each Ask writes a request and reads its answer.
class ReflectionClient {
 public:
  ReflectionClient(const std::shared_ptr<grpc::Channel>& channel, const std::string& token = "")
      : stub_(refl::ServerReflection::NewStub(channel)),
        context_(rta::testing::DeadlineContext(10)) {
    if (!token.empty()) context_->AddMetadata("authorization", "Bearer " + token);
    stream_ = stub_->ServerReflectionInfo(context_.get());
  }
  bool Ask(const refl::ServerReflectionRequest& request, refl::ServerReflectionResponse* out) {
    return stream_->Write(request) && stream_->Read(out);
  }
  grpc::Status Finish() {
    stream_->WritesDone();
    refl::ServerReflectionResponse ignored;
    while (stream_->Read(&ignored)) {
    }
    return stream_->Finish();
  }

 private:
  std::unique_ptr<refl::ServerReflection::Stub> stub_;
  std::unique_ptr<grpc::ClientContext> context_;
  std::unique_ptr<grpc::ClientReaderWriter<refl::ServerReflectionRequest,
                                           refl::ServerReflectionResponse>>
      stream_;
};

refl::ServerReflectionRequest ListServices() {
  refl::ServerReflectionRequest request;
  request.set_list_services("");
  return request;
}

std::vector<std::string> ServiceNames(const refl::ServerReflectionResponse& response) {
  std::vector<std::string> names;
  for (const auto& service : response.list_services_response().service()) {
    names.push_back(service.name());
  }
  return names;
}

std::vector<google::protobuf::FileDescriptorProto> Files(
    const refl::ServerReflectionResponse& response) {
  std::vector<google::protobuf::FileDescriptorProto> files;
  for (const std::string& bytes : response.file_descriptor_response().file_descriptor_proto()) {
    REQUIRE(files.emplace_back().ParseFromString(bytes));
  }
  return files;
}

// This machine's first IPv4 address that is not loopback, or "" when it has none: a connection
// to it stays on this machine but reaches the server from a non-loopback peer address.
std::string NonLoopbackAddress() {
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return "";
  std::string found;
  for (ifaddrs* entry = list; entry != nullptr && found.empty(); entry = entry->ifa_next) {
    if (entry->ifa_addr == nullptr || entry->ifa_addr->sa_family != AF_INET) continue;
    const auto* in = reinterpret_cast<const sockaddr_in*>(entry->ifa_addr);
    if ((ntohl(in->sin_addr.s_addr) >> 24) == 127) continue;
    char text[INET_ADDRSTRLEN];
    if (inet_ntop(AF_INET, &in->sin_addr, text, sizeof text) != nullptr) found = text;
  }
  freeifaddrs(list);
  return found;
}

}  // namespace

TEST_CASE("reflection lists the services and sends a file with its imports, or names what is "
          "missing",
          "[server][reflection]") {
  ServerHarness h;
  ReflectionClient client(h.NewChannel());
  refl::ServerReflectionResponse response;

  REQUIRE(client.Ask(ListServices(), &response));
  CHECK(ServiceNames(response) ==
        std::vector<std::string>{"analytics.AnalyticsService", "userservice.UserService",
                                 "userservice.TokenService", "grpc.health.v1.Health",
                                 "grpc.reflection.v1alpha.ServerReflection"});

  // A service, a method and a message all lead to the file that defines them.
  for (const char* symbol : {"analytics.AnalyticsService", "analytics.AnalyticsService.GetMetrics",
                             "analytics.EventData"}) {
    INFO(symbol);
    refl::ServerReflectionRequest request;
    request.set_file_containing_symbol(symbol);
    REQUIRE(client.Ask(request, &response));
    CHECK(response.original_request().file_containing_symbol() == symbol);
    const auto files = Files(response);
    REQUIRE_FALSE(files.empty());
    CHECK(files.front().name() == "analytics.proto");
    CHECK(files.front().package() == "analytics");
  }
  {
    refl::ServerReflectionRequest request;
    request.set_file_by_filename("user_service.proto");
    REQUIRE(client.Ask(request, &response));
    const auto files = Files(response);
    REQUIRE(files.size() >= 1);
    bool has_user_service = false;
    for (const auto& service : files.front().service()) {
      has_user_service |= service.name() == "UserService";
    }
    CHECK(has_user_service);
    // Every import the file names comes along, so a client can build the descriptors.
    for (const std::string& import : files.front().dependency()) {
      INFO(import);
      CHECK(std::any_of(files.begin(), files.end(),
                        [&](const auto& file) { return file.name() == import; }));
    }
  }
  {
    refl::ServerReflectionRequest request;
    request.set_all_extension_numbers_of_type("analytics.EventData");
    REQUIRE(client.Ask(request, &response));
    CHECK(response.all_extension_numbers_response().base_type_name() == "analytics.EventData");
    CHECK(response.all_extension_numbers_response().extension_number().empty());
  }
  // What is not there is an error answer on the same stream, which goes on.
  {
    refl::ServerReflectionRequest request;
    request.set_file_containing_symbol("analytics.NoSuchThing");
    REQUIRE(client.Ask(request, &response));
    CHECK(response.error_response().error_code() == grpc::StatusCode::NOT_FOUND);
    CHECK_THAT(response.error_response().error_message(),
               Catch::Contains("analytics.NoSuchThing"));
    request.set_file_by_filename("nothing.proto");
    REQUIRE(client.Ask(request, &response));
    CHECK(response.error_response().error_code() == grpc::StatusCode::NOT_FOUND);
    CHECK_THAT(response.error_response().error_message(), Catch::Contains("nothing.proto"));
    REQUIRE(client.Ask(refl::ServerReflectionRequest(), &response));
    CHECK(response.error_response().error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    REQUIRE(client.Ask(ListServices(), &response));
    CHECK(ServiceNames(response).size() == 5);
  }
  CHECK(client.Finish().ok());
}

TEST_CASE("beyond loopback reflection needs a live token of any role, on loopback none",
          "[server][reflection][auth]") {
  const std::string local = NonLoopbackAddress();
  if (local.empty()) {
    WARN("this machine has no non-loopback IPv4 address: the beyond-loopback half is not run");
    return;
  }
  TempDir dir;
  const std::string reporter_token =
      rta::testing::MakeUsersWithTokens(dir.path(), {{"rep", "reporter"}}).at("rep");
  rta::server::ServerConfig config = ServerHarness::DefaultConfig();
  config.data_dir = dir.path();
  config.listen = "0.0.0.0:0";
  config.insecure = 1;  // plaintext beyond loopback, with tokens
  ServerHarness h(config);
  const std::string beyond = local + ":" + std::to_string(h.server().grpc_port());
  auto channel = [](const std::string& target) {
    return grpc::CreateChannel(target, grpc::InsecureChannelCredentials());
  };
  refl::ServerReflectionResponse response;
  {
    ReflectionClient anonymous(channel(beyond));
    CHECK_FALSE(anonymous.Ask(ListServices(), &response));
    const grpc::Status status = anonymous.Finish();
    CHECK(status.error_code() == grpc::StatusCode::UNAUTHENTICATED);
    CHECK_THAT(status.error_message(), Catch::Contains("missing token"));
  }
  {
    ReflectionClient wrong(channel(beyond), "rta_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    CHECK_FALSE(wrong.Ask(ListServices(), &response));
    CHECK(wrong.Finish().error_code() == grpc::StatusCode::UNAUTHENTICATED);
  }
  {
    // A reporter may not read metrics, but may see what the server offers.
    ReflectionClient reporter(channel(beyond), reporter_token);
    REQUIRE(reporter.Ask(ListServices(), &response));
    CHECK(ServiceNames(response).size() == 5);
    CHECK(reporter.Finish().ok());
  }
  {
    ReflectionClient on_loopback(channel(h.address()));
    REQUIRE(on_loopback.Ask(ListServices(), &response));
    CHECK(ServiceNames(response).size() == 5);
    CHECK(on_loopback.Finish().ok());
  }
  CHECK(rta::testing::ScrapeValue(
            h, R"(analytics_auth_refused_total{code="UNAUTHENTICATED",method="ServerReflectionInfo"})") ==
        2);
}
