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
#include "dashboard_client/screen.h"

namespace rta::dashboard {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::chrono::milliseconds kFrame{250};

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
                  const std::atomic<bool>& quit) {
  CursesSession session;
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

    // Paused: the data keeps flowing into the model, the picture shows the moment of the pause.
    Screen screen(COLS, LINES);
    RenderDashboard(view.paused ? frozen : model, view, &screen);
    if (chat_open) DrawChatPane(chat->Status(), chat_input, &screen);
    erase();
    Blit(screen, !session.utf8());
    refresh();

    const int key = getch();  // waits up to one frame
    if (chat_open) {
      constexpr int kEscape = 27, kCtrlR = 18;
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
        view.window = NextWindow(view.window);
        break;
      case 'p':
      case 'P':
        view.paused = !view.paused;
        if (view.paused) frozen = model;
        break;
      case 'r':
      case 'R':
        subscription.ReconnectNow();
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
