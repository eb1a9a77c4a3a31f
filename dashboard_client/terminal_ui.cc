#include "dashboard_client/terminal_ui.h"

#ifndef NCURSES_WIDECHAR
#define NCURSES_WIDECHAR 1
#endif
#include <curses.h>
#include <langinfo.h>

#include <chrono>
#include <clocale>
#include <cstring>
#include <string>

#include "dashboard_client/chat_pane.h"
#include "dashboard_client/dashboard_model.h"
#include "dashboard_client/history_view.h"
#include "dashboard_client/screen.h"

namespace rta::dashboard {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::chrono::milliseconds kFrame{250};
// The history view asks again this often: the rollups take new events every few seconds.
constexpr std::chrono::seconds kHistoryRefresh{10};
constexpr int kEscape = 27;

// Colour pairs by Style; without colours, attributes carry the meaning.
void InitStyles() {
  if (!has_colors()) return;
  start_color();
  use_default_colors();
  init_pair(1, COLOR_BLACK, COLOR_CYAN);  // title
  init_pair(2, COLOR_CYAN, -1);           // header
  init_pair(3, COLOR_GREEN, -1);          // up, good
  init_pair(4, COLOR_RED, -1);            // down, bad
  init_pair(5, COLOR_YELLOW, -1);         // warn
  init_pair(6, COLOR_BLUE, -1);           // spark
}

attr_t Attributes(Style style) {
  const bool colour = has_colors();
  switch (style) {
    case Style::kTitle:
      return colour ? COLOR_PAIR(1) | A_BOLD : A_REVERSE;
    case Style::kHeader:
      return colour ? COLOR_PAIR(2) | A_BOLD : A_BOLD;
    case Style::kDim:
      return A_DIM;
    case Style::kUp:
    case Style::kGood:
      return colour ? COLOR_PAIR(3) | A_BOLD : A_BOLD;
    case Style::kDown:
    case Style::kBad:
      return colour ? COLOR_PAIR(4) | A_BOLD : A_BOLD | A_UNDERLINE;
    case Style::kWarn:
      return colour ? COLOR_PAIR(5) | A_BOLD : A_BOLD;
    case Style::kSpark:
      return colour ? COLOR_PAIR(6) : A_NORMAL;
    case Style::kNormal:
      return A_NORMAL;
  }
  return A_NORMAL;
}

// Copies the grid to the terminal, one call per run of cells with the same style; in ASCII on
// terminals whose locale cannot show the box and block characters.
void Blit(const Screen& screen, bool ascii) {
  std::wstring run;
  for (int y = 0; y < screen.height(); ++y) {
    int x = 0;
    while (x < screen.width()) {
      const Style style = screen.StyleAt(x, y);
      int end = x;
      while (end < screen.width() && screen.StyleAt(end, y) == style) ++end;
      attrset(Attributes(style));
      // The bottom-right cell cannot be written without scrolling; leave it.
      const int length =
          (y == screen.height() - 1 && end == screen.width()) ? end - x - 1 : end - x;
      if (length > 0) {
        run.assign(screen.Row(y) + x, static_cast<size_t>(length));
        if (ascii) {
          for (wchar_t& c : run) c = AsciiFallback(c);
        }
        mvaddnwstr(y, x, run.c_str(), length);
      }
      x = end;
    }
  }
  attrset(A_NORMAL);
}

// RAII for curses mode: the terminal is restored however the loop ends.
class CursesSession {
 public:
  CursesSession() {
    std::setlocale(LC_ALL, "");
    utf8_ = std::strcmp(nl_langinfo(CODESET), "UTF-8") == 0;
    initscr();
    cbreak();
    noecho();
    keypad(stdscr, TRUE);
    curs_set(0);
    // Esc closes the chat pane: wait 25 ms (not curses' default second) for the rest of an
    // escape sequence before taking a lone Esc.
    set_escdelay(25);
    timeout(static_cast<int>(kFrame.count()));
    InitStyles();
  }
  ~CursesSession() { endwin(); }
  CursesSession(const CursesSession&) = delete;
  CursesSession& operator=(const CursesSession&) = delete;

  // Whether the terminal's locale can show the dashboard's Unicode characters.
  bool utf8() const { return utf8_; }

 private:
  bool utf8_ = false;
};

}  // namespace

int RunTerminalUi(Subscription& subscription, ViewState view, const ChatFactory& open_chat,
                  const HistoryFactory& open_history, const std::atomic<bool>& quit) {
  CursesSession session;
  HistoryView history;
  std::unique_ptr<HistoryQueries> queries;  // made when the history view first asks
  Clock::time_point asked_at{};
  // Sends the history view's query; `changed`: the range, filter or breakdown changed, so the
  // last answer no longer fits the title and is dropped.
  auto ask = [&](bool changed) {
    if (changed) history.has_result = false;
    analytics::RangeQuery query;
    std::string error;
    if (!BuildHistoryQuery(history, HistoryBreakdownRows(COLS, LINES), &query, &error)) {
      history.error = error;
      history.has_result = false;
      history.loading = false;
      return;
    }
    if (queries == nullptr) queries = open_history();
    queries->Start(query);
    history.loading = true;
    asked_at = Clock::now();
  };
  std::unique_ptr<SupportChat> chat;  // made when the pane first opens
  bool chat_open = false;
  std::string chat_input;
  DashboardModel model;
  DashboardModel frozen;  // what a paused display shows
  std::vector<analytics::MetricUpdate> updates;
  Clock::time_point last_update{};
  bool received = false;
  while (!quit.load()) {
    updates.clear();
    const SubscriptionStatus status = subscription.Drain(&updates);
    if (status.reset) model.Reset();
    for (const analytics::MetricUpdate& update : updates) model.Apply(update);
    if (!updates.empty()) {
      last_update = Clock::now();
      received = true;
    }
    view.link = status.link;
    view.link_message = status.message;
    view.reconnect_in_seconds =
        std::chrono::duration<double>(status.retry_at - Clock::now()).count();
    view.seconds_since_update =
        received ? std::chrono::duration<double>(Clock::now() - last_update).count() : -1;

    const bool in_history = !history.range.empty();
    if (queries != nullptr) {
      analytics::RangeResult result;
      grpc::Status answer;
      if (queries->Poll(&result, &answer)) {
        history.loading = false;
        if (answer.ok()) {
          history.result = std::move(result);
          history.has_result = true;
          history.error.clear();
        } else {
          history.error = DescribeFailure(answer, view.server, CallKind::kQuery);
          // A refusal stays until the query changes (or `r`); an outage is asked again.
          const grpc::StatusCode code = answer.error_code();
          history.error_transient = code == grpc::StatusCode::UNAVAILABLE ||
                                    code == grpc::StatusCode::DEADLINE_EXCEEDED ||
                                    code == grpc::StatusCode::RESOURCE_EXHAUSTED;
        }
      }
    }
    if (in_history && !history.loading && (history.error.empty() || history.error_transient) &&
        Clock::now() - asked_at >= kHistoryRefresh) {
      ask(false);
    }

    // Paused: the data keeps flowing into the model, the picture shows the moment of the pause.
    Screen screen(COLS, LINES);
    if (in_history) {
      RenderHistory(history, view, &screen);
    } else {
      RenderDashboard(view.paused ? frozen : model, view, &screen);
    }
    if (chat_open) DrawChatPane(chat->Status(), chat_input, &screen);
    erase();
    Blit(screen, !session.utf8());
    refresh();

    const int key = getch();  // waits up to one frame
    if (history.prompt_open) {
      if (key == kEscape) {
        history.prompt_open = false;
      } else if (key == '\n' || key == '\r' || key == KEY_ENTER) {
        history.prompt_open = false;
        history.filter_text = history.prompt_input;
        // A filtered dimension cannot also be the breakdown.
        if (FilterNames(history.filter_text, history.breakdown)) history.breakdown.clear();
        if (history.range.empty()) history.range = "24h";
        history.error.clear();
        ask(true);
      } else {
        EditChatInput(key, &history.prompt_input);
      }
      continue;
    }
    if (chat_open) {
      constexpr int kCtrlR = 18;
      if (key == kEscape) {
        chat_open = false;
      } else if (key == '\n' || key == '\r' || key == KEY_ENTER) {
        if (chat->Send(chat_input)) chat_input.clear();
      } else if (key == kCtrlR) {
        chat->Reconnect();
      } else {
        EditChatInput(key, &chat_input);
      }
      continue;
    }
    switch (key) {
      case 'q':
      case 'Q':
        return 0;
      case 'w':
      case 'W':
        if (!in_history) view.window = NextWindow(view.window);
        break;
      case 'p':
      case 'P':
        if (in_history) break;
        view.paused = !view.paused;
        if (view.paused) frozen = model;
        break;
      case 'r':
      case 'R':
        if (in_history) {
          history.error.clear();
          ask(false);
        } else {
          subscription.ReconnectNow();
        }
        break;
      case 't':
      case 'T':
        history.range = NextRange(history.range);
        history.error.clear();
        if (!history.range.empty()) ask(true);
        break;
      case 'f':
      case 'F':
        history.prompt_open = true;
        history.prompt_input = history.filter_text;
        view.help = false;
        break;
      case 'b':
      case 'B':
        if (history.range.empty()) history.range = "24h";
        history.breakdown = NextBreakdown(history.breakdown, history.filter_text);
        history.error.clear();
        ask(true);
        break;
      case 'c':
      case 'C':
        if (chat == nullptr) chat = open_chat();
        chat_open = true;
        view.help = false;
        break;
      case '?':
      case 'h':
        view.help = !view.help;
        break;
      case KEY_RESIZE:  // COLS and LINES are updated; the next frame uses them
        break;
      default:
        break;
    }
  }
  return 0;
}

}  // namespace rta::dashboard
