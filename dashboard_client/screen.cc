#include "dashboard_client/screen.h"

#include <algorithm>

#include "dashboard_client/format.h"

namespace rta::dashboard {

Screen::Screen(int width, int height)
    : width_(std::max(width, 0)),
      height_(std::max(height, 0)),
      cells_(static_cast<size_t>(width_) * height_, L' '),
      styles_(cells_.size(), Style::kNormal) {}

void Screen::Put(int x, int y, const std::string& utf8, Style style, int max_width) {
  if (y < 0 || y >= height_) return;
  const std::wstring text = DecodeUtf8(utf8);
  const int limit = max_width < 0 ? width_ : std::min(width_, x + max_width);
  for (size_t i = 0; i < text.size(); ++i) {
    const int column = x + static_cast<int>(i);
    if (column >= limit) break;
    if (column < 0) continue;
    cells_[Index(column, y)] = text[i];
    styles_[Index(column, y)] = style;
  }
}

void Screen::PutRight(int x_end, int y, const std::string& utf8, Style style) {
  Put(x_end - static_cast<int>(DisplayWidth(utf8)), y, utf8, style);
}

void Screen::Fill(int x, int y, int width, wchar_t c, Style style) {
  if (y < 0 || y >= height_) return;
  for (int column = std::max(x, 0); column < std::min(x + width, width_); ++column) {
    cells_[Index(column, y)] = c;
    styles_[Index(column, y)] = style;
  }
}

void Screen::Box(int x, int y, int width, int height, const std::string& title, Style border,
                 Style title_style) {
  if (width < 2 || height < 2) return;
  Fill(x + 1, y, width - 2, L'─', border);
  Fill(x + 1, y + height - 1, width - 2, L'─', border);
  for (int row = y + 1; row < y + height - 1; ++row) {
    Put(x, row, "│", border);
    Put(x + width - 1, row, "│", border);
  }
  Put(x, y, "┌", border);
  Put(x + width - 1, y, "┐", border);
  Put(x, y + height - 1, "└", border);
  Put(x + width - 1, y + height - 1, "┘", border);
  if (!title.empty() && width > 4) {
    // "┌─ Title ─┐" when there is room, "┌ Title ┐" down to the last column.
    const size_t room = static_cast<size_t>(width - 4);
    const int start = DisplayWidth(title) + 2 <= room ? x + 2 : x + 1;
    Put(start, y, std::string(" ").append(Truncate(title, room)).append(" "), title_style);
  }
}

std::string Screen::RowText(int y) const {
  std::wstring row(Row(y), static_cast<size_t>(width_));
  row.erase(row.find_last_not_of(L' ') + 1);
  return EncodeUtf8(row);
}

std::string Screen::Text() const {
  std::string text;
  for (int y = 0; y < height_; ++y) text += RowText(y) + "\n";
  return text;
}

wchar_t AsciiFallback(wchar_t c) {
  if (c < 0x80) return c;
  if (c >= L'▁' && c <= L'█') return L"_.:-=+*#"[c - L'▁'];
  switch (c) {
    case L'─':
    case L'—':
    case L'·':
      return L'-';
    case L'│':
      return L'|';
    case L'┌':
    case L'┐':
    case L'└':
    case L'┘':
      return L'+';
    case L'▲':
      return L'^';
    case L'▼':
      return L'v';
    case L'●':
      return L'*';
    case L'→':
      return L'>';
    case L'…':
      return L'~';
    default:
      return L'?';
  }
}

std::wstring DecodeUtf8(const std::string& utf8) {
  std::wstring text;
  text.reserve(utf8.size());
  for (size_t i = 0; i < utf8.size();) {
    const auto byte = static_cast<unsigned char>(utf8[i]);
    int length = byte < 0x80           ? 1
                 : (byte >> 5) == 0x6  ? 2
                 : (byte >> 4) == 0xE  ? 3
                 : (byte >> 3) == 0x1E ? 4
                                       : 0;
    if (length == 0 || i + length > utf8.size()) {
      text += L'\uFFFD';
      ++i;
      continue;
    }
    uint32_t code = length == 1 ? byte : byte & (0xFF >> (length + 1));
    bool valid = true;
    for (int k = 1; k < length; ++k) {
      const auto next = static_cast<unsigned char>(utf8[i + k]);
      if ((next & 0xC0) != 0x80) valid = false;
      code = (code << 6) | (next & 0x3F);
    }
    // Control characters would move the terminal's cursor: never draw them.
    if (!valid || code < 0x20 || code == 0x7F) code = 0xFFFD;
    text += static_cast<wchar_t>(code);
    i += valid ? length : 1;
  }
  return text;
}

std::string EncodeUtf8(const std::wstring& text) {
  std::string utf8;
  for (wchar_t wide : text) {
    const auto c = static_cast<uint32_t>(wide);
    if (c < 0x80) {
      utf8 += static_cast<char>(c);
    } else if (c < 0x800) {
      utf8 += static_cast<char>(0xC0 | (c >> 6));
      utf8 += static_cast<char>(0x80 | (c & 0x3F));
    } else if (c < 0x10000) {
      utf8 += static_cast<char>(0xE0 | (c >> 12));
      utf8 += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
      utf8 += static_cast<char>(0x80 | (c & 0x3F));
    } else {
      utf8 += static_cast<char>(0xF0 | (c >> 18));
      utf8 += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
      utf8 += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
      utf8 += static_cast<char>(0x80 | (c & 0x3F));
    }
  }
  return utf8;
}

}  // namespace rta::dashboard
