#include "server/aggregator/event_validation.h"

#include <catch2/catch.hpp>
#include <limits>
#include <string>

#include "tests/aggregator/test_util.h"

namespace rta::agg {
namespace {

using testing::Event;
using testing::kStartMs;

struct Checked {
  bool ok;
  IngestResult result;
  int64_t event_ms = 0;
  EventKind kind = EventKind::kOther;
};

Checked Check(const analytics::EventData& event, int64_t now_ms = kStartMs) {
  Checked c{true, {}};
  c.ok = ValidateEventId(event, &c.result) &&
         ValidateEvent(event, now_ms, ValidationLimits{}, &c.event_ms, &c.kind, &c.result);
  return c;
}

TEST_CASE("a valid event passes and is classified", "[aggregator][validation]") {
  const auto c = Check(Event("e1", "page_view", kStartMs - 5000));
  CHECK(c.ok);
  CHECK(c.result.outcome == IngestOutcome::kAccepted);
  CHECK(c.result.reason.empty());
  CHECK(c.event_ms == kStartMs - 5000);
  CHECK(c.kind == EventKind::kPageView);
  CHECK(Check(Event("e", "purchase")).kind == EventKind::kPurchase);
  CHECK(Check(Event("e", "signup")).kind == EventKind::kSignup);
  CHECK(Check(Event("e", "page_load")).kind == EventKind::kPageLoad);
  CHECK(Check(Event("e", "checkout.step-2:ok")).kind == EventKind::kOther);
  SECTION("timestamp 0 means now") {
    const auto now = Check(Event("e", "click", 0));
    CHECK(now.ok);
    CHECK(now.event_ms == kStartMs);
  }
}

TEST_CASE("validation names the field and the reason", "[aggregator][validation]") {
  auto refused = [](const analytics::EventData& event, IngestOutcome outcome,
                    std::string_view field, const std::string& reason) {
    const auto c = Check(event);
    CHECK_FALSE(c.ok);
    CHECK(c.result.outcome == outcome);
    CHECK(c.result.field == field);
    CHECK(c.result.reason == reason);
  };
  refused(Event("", "click"), IngestOutcome::kInvalid, "event_id", "required");
  refused(Event(std::string(129, 'x'), "click"), IngestOutcome::kInvalid, "event_id",
          "129 bytes, limit 128");
  CHECK(Check(Event(std::string(128, 'x'), "click")).ok);
  refused(Event("e", ""), IngestOutcome::kInvalid, "event_type", "required");
  refused(Event("e", "Page_view"), IngestOutcome::kInvalid, "event_type",
          "character 'P' at position 0 is not allowed (use a-z 0-9 _ . : -)");
  refused(Event("e", "page view"), IngestOutcome::kInvalid, "event_type",
          "character ' ' at position 4 is not allowed (use a-z 0-9 _ . : -)");
  refused(Event("e", std::string("a\tb")), IngestOutcome::kInvalid, "event_type",
          "character 0x09 at position 1 is not allowed (use a-z 0-9 _ . : -)");
  refused(Event("e", std::string(65, 'a')), IngestOutcome::kInvalid, "event_type",
          "65 characters, limit 64");
  CHECK(Check(Event("e", std::string(64, 'a'))).ok);

  auto negative = Event("e", "purchase");
  negative.set_value(-1.5);
  refused(negative, IngestOutcome::kInvalid, "value", "must be finite and not negative, got -1.5");
  auto nan = Event("e", "purchase");
  nan.set_value(std::numeric_limits<double>::quiet_NaN());
  CHECK(Check(nan).result.field == "value");
  auto infinite = Event("e", "purchase");
  infinite.set_value(std::numeric_limits<double>::infinity());
  CHECK(Check(infinite).result.field == "value");

  auto long_page = Event("e", "page_view");
  long_page.set_page(std::string(2049, '/'));
  refused(long_page, IngestOutcome::kInvalid, "page", "2049 bytes, limit 2048");
  auto long_device = Event("e", "page_view");
  long_device.set_device(std::string(3000, 'd'));
  refused(long_device, IngestOutcome::kInvalid, "device", "3000 bytes, limit 2048");

  refused(Event("e", "click", -5), IngestOutcome::kInvalid, "timestamp_ms",
          "must not be negative (0 means now), got -5");
}

TEST_CASE("too old and future events are refused with the event time", "[aggregator][validation]") {
  const auto old = Check(Event("e", "click", kStartMs - 3'700'000));
  CHECK(old.result.outcome == IngestOutcome::kTooOld);
  CHECK(old.result.field == "timestamp_ms");
  CHECK(old.result.reason == "event time 2026-11-25T08:58:20Z is 3700 s old (limit 3600 s)");
  CHECK(Check(Event("e", "click", kStartMs - 3'600'000)).ok);  // exactly at the limit

  const auto future = Check(Event("e", "click", kStartMs + 60'500));
  CHECK(future.result.outcome == IngestOutcome::kInFuture);
  CHECK(future.result.reason ==
        "event time 2026-11-25T10:01:00.500Z is 60.5 s in the future (limit 60 s)");
  CHECK(Check(Event("e", "click", kStartMs + 60'000)).ok);
}

TEST_CASE("FormatUtc prints ISO 8601 in UTC", "[aggregator][validation]") {
  CHECK(FormatUtc(0) == "1970-01-01T00:00:00Z");
  CHECK(FormatUtc(kStartMs) == "2026-11-25T10:00:00Z");
  CHECK(FormatUtc(951'782'400'123) == "2000-02-29T00:00:00.123Z");
  CHECK(FormatUtc(-1) == "1969-12-31T23:59:59.999Z");
}

}  // namespace
}  // namespace rta::agg
