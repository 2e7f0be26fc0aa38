// Python's number syntax and text conventions (see pytext.hpp).
#include "pytext.hpp"

#include <charconv>
#include <cmath>
#include <algorithm>
#include <cstdlib>
#include <limits>
#include <locale.h>
#include <system_error>

namespace mtpkit::pytext {
namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// 10^k, exact in a double for k <= 22.
constexpr double kPow10[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                               1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                               1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

// Python's `digitpart`: digits with single underscores between digits, copied
// to `out` without the underscores. Advances `pos`; false if no digit at `pos`.
bool read_digitpart(std::string_view s, size_t& pos, std::string& out) {
  if (pos >= s.size() || !is_digit(s[pos])) return false;
  out.push_back(s[pos++]);
  while (pos < s.size()) {
    if (is_digit(s[pos])) {
      out.push_back(s[pos++]);
    } else if (s[pos] == '_' && pos + 1 < s.size() && is_digit(s[pos + 1])) {
      ++pos;
    } else {
      break;
    }
  }
  return true;
}

// strtod in the "C" locale, for the rare decimal strings that std::from_chars
// reports out of range (it then leaves the value unset; Python gives ±inf or
// the underflowed value).
double strtod_c_locale(const std::string& text) {
  static locale_t c_locale = newlocale(LC_ALL_MASK, "C", nullptr);
  return strtod_l(text.c_str(), nullptr, c_locale);
}

}  // namespace

// \t \n \v \f \r, \x1c-\x1f and the blank; every other byte false
const bool kSpace[256] = {
    false, false, false, false, false, false, false, false, false, true,  true,  true,  true,
    true,  false, false, false, false, false, false, false, false, false, false, false, false,
    false, false, true,  true,  true,  true,  true};

std::string_view strip(std::string_view s) {
  size_t a = 0, b = s.size();
  while (a < b && is_space(s[a])) ++a;
  while (b > a && is_space(s[b - 1])) --b;
  return s.substr(a, b - a);
}

std::string_view lstrip(std::string_view s) {
  size_t a = 0;
  while (a < s.size() && is_space(s[a])) ++a;
  return s.substr(a);
}

bool equals_ignoring_case(std::string_view s, std::string_view word) {
  if (s.size() != word.size()) return false;
  for (size_t i = 0; i < s.size(); ++i)
    if (lower(s[i]) != word[i]) return false;
  return true;
}

std::vector<std::string_view> split(std::string_view s) {
  std::vector<std::string_view> words;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && is_space(s[i])) ++i;
    const size_t start = i;
    while (i < s.size() && !is_space(s[i])) ++i;
    if (i > start) words.push_back(s.substr(start, i - start));
  }
  return words;
}

bool parse_plain_decimal(std::string_view token, double& value) {
  size_t i = 0;
  const bool negative = !token.empty() && token[0] == '-';
  i += negative;
  uint64_t mantissa = 0;
  int digits = 0, decimals = 0;
  bool point = false;
  for (; i < token.size(); ++i) {
    const char c = token[i];
    if (c >= '0' && c <= '9') {
      mantissa = 10 * mantissa + static_cast<uint64_t>(c - '0');
      if (++digits > 15) return false;
      decimals += point;
    } else if (c == '.' && !point) {
      point = true;
    } else {
      return false;
    }
  }
  // "5." and ".5" are fine, "." and "" are not
  if (digits == 0) return false;
  const double x = static_cast<double>(mantissa) / kPow10[decimals];  // both exact
  value = negative ? -x : x;
  return true;
}

bool parse_float(std::string_view text, double& value) {
  const std::string_view s = strip(text);
  size_t pos = 0;
  const bool negative = !s.empty() && s[0] == '-';
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) ++pos;
  const std::string_view body = s.substr(pos);
  if (equals_ignoring_case(body, "inf") || equals_ignoring_case(body, "infinity")) {
    value = negative ? -std::numeric_limits<double>::infinity()
                     : std::numeric_limits<double>::infinity();
    return true;
  }
  if (equals_ignoring_case(body, "nan")) {
    value = std::numeric_limits<double>::quiet_NaN();
    return true;
  }
  // number ::= [digitpart] "." digitpart | digitpart ["."];  then [exponent]
  std::string clean;
  clean.reserve(s.size());
  if (negative) clean.push_back('-');
  size_t i = 0;
  const bool whole = read_digitpart(body, i, clean);
  bool fraction = false;
  if (i < body.size() && body[i] == '.') {
    clean.push_back('.');
    ++i;
    fraction = read_digitpart(body, i, clean);
  }
  if (!whole && !fraction) return false;
  if (i < body.size() && (body[i] == 'e' || body[i] == 'E')) {
    clean.push_back('e');
    ++i;
    if (i < body.size() && (body[i] == '+' || body[i] == '-')) clean.push_back(body[i++]);
    if (!read_digitpart(body, i, clean)) return false;
  }
  if (i != body.size()) return false;
  const auto result = std::from_chars(clean.data(), clean.data() + clean.size(), value,
                                      std::chars_format::general);
  if (result.ec == std::errc::result_out_of_range) value = strtod_c_locale(clean);
  return true;
}

int64_t Integer::clamped() const {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  if (digits.size() > 19) return negative ? std::numeric_limits<int64_t>::min() : kMax;
  unsigned long long magnitude = std::stoull(digits);  // < 10^19 < 2^64
  if (negative)
    return magnitude > static_cast<unsigned long long>(kMax)
               ? std::numeric_limits<int64_t>::min()
               : -static_cast<int64_t>(magnitude);
  return magnitude > static_cast<unsigned long long>(kMax) ? kMax
                                                           : static_cast<int64_t>(magnitude);
}

bool parse_int(std::string_view text, Integer& value) {
  constexpr size_t kMaxDigits = 4300;  // Python's default int max_str_digits
  const std::string_view s = strip(text);
  size_t pos = 0;
  const bool negative = !s.empty() && s[0] == '-';
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) ++pos;
  std::string digits;
  if (!read_digitpart(s, pos, digits) || pos != s.size()) return false;
  if (digits.size() > kMaxDigits) return false;
  const size_t first = digits.find_first_not_of('0');
  value.digits = first == std::string::npos ? "0" : digits.substr(first);
  value.negative = negative && value.digits != "0";
  return true;
}

std::string float_repr(double x) {
  if (std::isnan(x)) return "nan";
  if (std::isinf(x)) return x > 0 ? "inf" : "-inf";
  if (x == 0.0) return std::signbit(x) ? "-0.0" : "0.0";
  // shortest round-trip digits, as "d.ddde±XX"
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof(buf), x, std::chars_format::scientific);
  const std::string_view sci(buf, static_cast<size_t>(r.ptr - buf));
  const size_t e = sci.find('e');
  std::string digits;
  bool negative = false;
  for (char c : sci.substr(0, e)) {
    if (c == '-') negative = true;
    else if (c != '.') digits.push_back(c);
  }
  const int decpt = std::atoi(std::string(sci.substr(e + 1)).c_str()) + 1;
  const int ndigits = static_cast<int>(digits.size());
  std::string out = negative ? "-" : "";
  if (decpt <= -4 || decpt > 16) {  // Python's repr switches to an exponent here
    out += digits[0];
    if (ndigits > 1) out += "." + digits.substr(1);
    const int exponent = decpt - 1;
    out += exponent < 0 ? "e-" : "e+";
    const std::string mag = std::to_string(exponent < 0 ? -exponent : exponent);
    out += (mag.size() < 2 ? "0" : "") + mag;
  } else if (decpt <= 0) {
    out += "0." + std::string(-decpt, '0') + digits;
  } else if (decpt >= ndigits) {
    out += digits + std::string(decpt - ndigits, '0') + ".0";
  } else {
    out += digits.substr(0, decpt) + "." + digits.substr(decpt);
  }
  return out;
}

std::string str_repr(std::string_view s) {
  const bool double_quotes =
      s.find('\'') != std::string_view::npos && s.find('"') == std::string_view::npos;
  const char quote = double_quotes ? '"' : '\'';
  static const char hex[] = "0123456789abcdef";
  std::string out(1, quote);
  for (char c : s) {
    if (c == quote || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (static_cast<unsigned char>(c) < 0x20 || c == '\x7f') {
      out += "\\x";
      out += hex[(static_cast<unsigned char>(c) >> 4) & 15];
      out += hex[static_cast<unsigned char>(c) & 15];
    } else {
      out += c;
    }
  }
  out += quote;
  return out;
}

std::string str_list_repr(const std::vector<std::string_view>& items) {
  std::string out = "[";
  for (size_t k = 0; k < items.size(); ++k) {
    if (k) out += ", ";
    out += str_repr(items[k]);
  }
  return out + "]";
}

namespace {

// "%.{decimals}f" of x into the end of `buf` (text ends at `end`); false when
// x is not finite, too large, or so close to a rounding tie that the rounded
// product |x| 10^decimals could round the other way than the exact decimal
// value does (then the caller formats it exactly).
bool fixed_by_rounding(double x, int decimals, char* end, char*& begin) {
  if (!std::isfinite(x) || decimals > 15) return false;
  const double y = std::fabs(x) * kPow10[decimals];  // |y - exact| <= ulp(y) / 2
  if (!(y < 4503599627370496.0)) return false;        // 2^52: integer part and fraction exact
  const double whole = std::floor(y);
  const double frac = y - whole;
  if (std::fabs(frac - 0.5) <= y * 0x1p-50) return false;  // within 4 ulp of a tie
  uint64_t q = static_cast<uint64_t>(whole) + (frac > 0.5 ? 1 : 0);
  char* p = end;
  for (int k = 0; k < decimals; ++k) {
    *--p = static_cast<char>('0' + q % 10);
    q /= 10;
  }
  if (decimals > 0) *--p = '.';
  do {
    *--p = static_cast<char>('0' + q % 10);
    q /= 10;
  } while (q);
  if (std::signbit(x)) *--p = '-';  // "%f" keeps the sign of -0.0 and of values rounding to 0
  begin = p;
  return true;
}

}  // namespace

char* write_fixed(char* dst, double x, int width, int decimals) {
  char buf[400];
  char* const end = buf + sizeof(buf);
  char* begin = nullptr;
  char* stop = end;
  if (!fixed_by_rounding(x, decimals, end, begin)) {  // exact formatting
    begin = buf;
    if (std::isfinite(x)) {
      stop = std::to_chars(buf, end, x, std::chars_format::fixed, decimals).ptr;
    } else {
      const std::string_view word = std::isnan(x) ? "nan" : (x > 0 ? "inf" : "-inf");
      stop = std::copy(word.begin(), word.end(), buf);
    }
  }
  const int len = static_cast<int>(stop - begin);
  for (int k = len; k < width; ++k) *dst++ = ' ';
  return std::copy(begin, stop, dst);
}

void append_fixed(std::string& out, double x, int width, int decimals) {
  char buf[400];
  out.append(buf, static_cast<size_t>(write_fixed(buf, x, width, decimals) - buf));
}

char* write_int(char* dst, int64_t n, int width) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof(buf), n);
  for (int k = static_cast<int>(r.ptr - buf); k < width; ++k) *dst++ = ' ';
  return std::copy(buf, r.ptr, dst);
}

}  // namespace mtpkit::pytext
