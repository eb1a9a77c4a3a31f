// The per-call cost of authentication: Authenticator::CheckHeader for a live token with the
// role, over a directory of 10,000 users with one token each (SHA-256 of the token, one hash
// map find, the role check), against the same call with authentication off.
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "server/auth/authenticator.h"

namespace {

using rta::auth::AuthMode;
using rta::auth::Authenticator;
using rta::auth::Principal;
using rta::auth::Role;
using rta::auth::RoleSet;
using rta::auth::UserDirectory;

struct Directory {
  Directory() {
    std::string error, token;
    users = UserDirectory::Load(nullptr, &error);
    for (int i = 0; i < 10'000; ++i) {
      const std::string id = "user" + std::to_string(i);
      users->PutUser({id, "", "", RoleSet::Of({Role::kViewer})}, &error);
      users->CreateToken(id, "", 0, 0, &token, nullptr, &error);
      headers.push_back("Bearer " + token);
    }
  }
  std::unique_ptr<UserDirectory> users;
  std::vector<std::string> headers;
};

Directory& Shared() {
  static Directory directory;
  return directory;
}

void BM_CheckValidToken(benchmark::State& state) {
  Directory& directory = Shared();
  Authenticator authenticator(*directory.users, AuthMode::kRequired);
  size_t i = 0;
  for (auto _ : state) {
    Principal principal;
    const grpc::Status status = authenticator.CheckHeader(
        directory.headers[i++ % directory.headers.size()], true, "GetMetrics", 1, &principal);
    benchmark::DoNotOptimize(status);
  }
}
BENCHMARK(BM_CheckValidToken);

void BM_CheckUnknownToken(benchmark::State& state) {
  Directory& directory = Shared();
  Authenticator authenticator(*directory.users, AuthMode::kRequired);
  const std::string header = "Bearer " + rta::auth::NewToken();
  for (auto _ : state) {
    Principal principal;
    benchmark::DoNotOptimize(authenticator.CheckHeader(header, true, "GetMetrics", 1, &principal));
  }
}
BENCHMARK(BM_CheckUnknownToken);

void BM_CheckOff(benchmark::State& state) {
  Directory& directory = Shared();
  Authenticator authenticator(*directory.users, AuthMode::kOff);
  for (auto _ : state) {
    Principal principal;
    benchmark::DoNotOptimize(
        authenticator.CheckHeader(directory.headers[0], true, "GetMetrics", 1, &principal));
  }
}
BENCHMARK(BM_CheckOff);

}  // namespace

BENCHMARK_MAIN();
