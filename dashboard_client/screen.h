#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace rta::dashboard {

// How a cell is drawn; the terminal maps each to colours (or to bold/reverse without colours).
enum class Style : uint8_t {
  kNormal,
  kTitle,   // the top bar
  kHeader,  // tile and table titles
  kDim,     // borders, secondary text
  kUp,      // a rise
  kDown,    // a fall
  kGood,    // connected
  kWarn,    // reconnecting, paused
  kBad,     // refused, failed
  kSpark,   // sparklines
};

// A character grid the dashboard is rendered into before it reaches the terminal, so that the
// layout can be tested without one. Everything drawn outside the grid is clipped.
class Screen {
 public:
  Screen(int width, int height);

  int width() const { return width_; }
  int height() const { return height_; }

  // Writes UTF-8 text from (x, y), at most max_width characters (-1: to the right edge).
  void Put(int x, int y, const std::string& utf8, Style style = Style::kNormal, int max_width = -1);
  // Right-aligns text so that it ends just before x_end.
  void PutRight(int x_end, int y, const std::string& utf8, Style style = Style::kNormal);
  void Fill(int x, int y, int width, wchar_t c, Style style);
  // A box with a title in its top border.
  void Box(int x, int y, int width, int height, const std::string& title, Style border,
           Style title_style);

  wchar_t At(int x, int y) const { return cells_[Index(x, y)]; }
  Style StyleAt(int x, int y) const { return styles_[Index(x, y)]; }
  const wchar_t* Row(int y) const { return &cells_[Index(0, y)]; }
  // A row as UTF-8 (for tests and --once output), trailing spaces removed.
  std::string RowText(int y) const;
  // The whole grid as UTF-8 lines.
  std::string Text() const;

 private:
  size_t Index(int x, int y) const { return static_cast<size_t>(y) * width_ + x; }
  int width_;
  int height_;
  std::vector<wchar_t> cells_;
  std::vector<Style> styles_;
};

// What a cell shows on a terminal whose locale is not UTF-8: the dashboard's box, block, arrow
// and bullet characters as their nearest ASCII ("-", "|", "+", "_.:-=+*#", "^", "v", "*"),
// anything else outside ASCII as "?".
wchar_t AsciiFallback(wchar_t c);

// UTF-8 to code points (malformed bytes become U+FFFD).
std::wstring DecodeUtf8(const std::string& utf8);
std::string EncodeUtf8(const std::wstring& text);

}  // namespace rta::dashboard
