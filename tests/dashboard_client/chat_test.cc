// The dashboard's support chat: the pane rendered into a character grid, the typed line's
// editing, and SupportChat against the real server's ChatSupport with real tokens.
#include <catch2/catch.hpp>

#include "dashboard_client/chat_pane.h"
#include "dashboard_client/support_chat.h"
#include "tests/support/server_harness.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_users.h"

namespace {

using namespace rta::dashboard;
using rta::testing::ServerHarness;
using rta::testing::WaitFor;

bool Shows(const Screen& screen, const std::string& text) {
  return screen.Text().find(text) != std::string::npos;
}

// A server that requires tokens, with an analyst, an admin and a viewer.
struct ChatServer {
  rta::testing::TempDir dir;
  std::map<std::string, std::string> tokens = rta::testing::MakeUsersWithTokens(
      dir.path(), {{"ana", "analyst"}, {"boss", "admin"}, {"val", "viewer"}});
  ServerHarness harness{[this] {
    auto config = ServerHarness::DefaultConfig();
    config.data_dir = dir.path();
    return config;
  }()};

  std::unique_ptr<SupportChat> ChatAs(const std::string& user) {
    rta::client::ChannelOptions options;
    options.servers = {harness.address()};
    options.token = tokens.at(user);
    std::string error;
    auto channel = rta::client::MakeChannel(options, &error);
    REQUIRE(channel != nullptr);
    return std::make_unique<SupportChat>(channel, options);
  }
};

bool HasLine(const SupportChat& chat, const std::string& from, const std::string& to,
             const std::string& text) {
  for (const ChatLine& line : chat.Status().lines) {
    if (line.from == from && line.to == to && line.text == text) return true;
  }
  return false;
}

size_t CountText(const SupportChat& chat, const std::string& text) {
  size_t count = 0;
  for (const ChatLine& line : chat.Status().lines) count += line.text == text ? 1 : 0;
  return count;
}

}  // namespace

TEST_CASE("chat pane: messages newest at the bottom, the link, the typed line",
          "[dashboard][chat]") {
  ChatStatus chat;
  chat.link = LinkState::kConnected;
  for (int i = 0; i < 30; ++i) {
    chat.lines.push_back({"ana", "", "question " + std::to_string(i), 1'764'000'000'000 + i});
  }
  chat.lines.push_back({"boss", "ana", "the answer", 1'764'000'060'000});
  Screen screen(80, 24);
  DrawChatPane(chat, "typing ünïcode", &screen);
  CHECK(Shows(screen, "Support chat"));
  CHECK(Shows(screen, "● connected"));
  CHECK(Shows(screen, "boss → ana: the answer"));  // the newest is shown
  CHECK(Shows(screen, "ana: question 29"));
  CHECK_FALSE(Shows(screen, "question 0"));  // the oldest did not fit
  CHECK(Shows(screen, "> typing ünïcode█"));
  CHECK(Shows(screen, "Esc closes"));

  ChatStatus refused;
  refused.link = LinkState::kRefused;
  refused.message = "chat refused: ChatSupport needs role analyst (PERMISSION_DENIED)";
  Screen small(60, 14);
  DrawChatPane(refused, "", &small);
  CHECK(Shows(small, "● refused (Ctrl-R retries)"));
  CHECK(Shows(small, "needs role analyst"));
  CHECK(Shows(small, "(no messages yet"));
}

TEST_CASE("chat input: printable bytes, Backspace removes a whole character, a bound",
          "[dashboard][chat]") {
  std::string input;
  for (unsigned char byte : std::string("hé!")) CHECK(EditChatInput(byte, &input));
  CHECK(input == "hé!");
  CHECK(EditChatInput(263, &input));  // KEY_BACKSPACE
  CHECK(input == "hé");
  CHECK(EditChatInput(127, &input));         // DEL, as many terminals send for Backspace
  CHECK(input == "h");                       // both bytes of é went
  CHECK_FALSE(EditChatInput(27, &input));    // Esc is the caller's
  CHECK_FALSE(EditChatInput('\n', &input));  // so is Enter
  CHECK_FALSE(EditChatInput(265, &input));   // a function key
  input.assign(SupportChat::kMaxText, 'x');
  CHECK(EditChatInput('y', &input));
  CHECK(input.size() == SupportChat::kMaxText);
}

TEST_CASE("support chat: a question reaches the admin, the answer the analyst, once each",
          "[dashboard][chat]") {
  ChatServer server;
  auto analyst = server.ChatAs("ana");
  auto admin = server.ChatAs("boss");
  REQUIRE(WaitFor([&] {
    return analyst->Status().link == LinkState::kConnected &&
           admin->Status().link == LinkState::kConnected;
  }));
  REQUIRE(analyst->Send("Is revenue in EUR?"));
  REQUIRE(WaitFor([&] { return HasLine(*admin, "ana", "", "Is revenue in EUR?"); }));
  CHECK(WaitFor([&] { return HasLine(*analyst, "ana", "", "Is revenue in EUR?"); }));  // the echo
  REQUIRE(admin->Send("@ana Yes, EUR."));
  REQUIRE(WaitFor([&] { return HasLine(*analyst, "boss", "ana", "Yes, EUR."); }));

  // A reconnect replays the kept messages; none shows twice.
  const uint64_t connections = analyst->Status().connections;
  analyst->Reconnect();
  REQUIRE(WaitFor([&] {
    const ChatStatus status = analyst->Status();
    return status.connections > connections && status.link == LinkState::kConnected;
  }));
  REQUIRE(analyst->Send("Thanks!"));
  REQUIRE(WaitFor([&] { return HasLine(*analyst, "ana", "", "Thanks!"); }));
  CHECK(CountText(*analyst, "Is revenue in EUR?") == 1);
  CHECK(CountText(*analyst, "Yes, EUR.") == 1);

  // What the server refuses is said, and the chat comes back by itself.
  CHECK_FALSE(admin->Send(""));
  CHECK(admin->Status().message == "nothing to send");
  const uint64_t admin_connections = admin->Status().connections;
  REQUIRE(admin->Send("no addressee"));  // an admin's message must name whom it answers
  REQUIRE(WaitFor([&] {
    return admin->Status().message.find("names the user it answers") != std::string::npos;
  }));
  CHECK(WaitFor([&] {
    const ChatStatus status = admin->Status();
    return status.connections > admin_connections && status.link == LinkState::kConnected;
  }));
  // Connected again, the pane still says why that message is not in the chat.
  CHECK_THAT(admin->Status().message, Catch::StartsWith("not sent: to_user"));
  CHECK(CountText(*admin, "no addressee") == 0);
}

TEST_CASE("support chat: without the analyst role it is refused and says why",
          "[dashboard][chat]") {
  ChatServer server;
  auto viewer = server.ChatAs("val");
  REQUIRE(WaitFor([&] { return viewer->Status().link == LinkState::kRefused; }));
  CHECK_THAT(viewer->Status().message, Catch::Contains("needs role analyst"));
  CHECK_FALSE(viewer->Send("hello?"));
  CHECK_THAT(viewer->Status().message, Catch::Contains("not connected"));
}
