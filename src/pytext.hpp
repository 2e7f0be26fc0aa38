// Python's number syntax and text conventions, in plain C++17 (no Python).
//
// The compiled .cfg reader and writer (cfg_file.cpp) must accept, print and
// word errors exactly as the Python reference does (mtpkit/potentials/
// cfg_reference.py, cfg.py). That reference uses float(), int(), str.split(),
// str.strip(), repr() and "%f"-style formatting; these functions give the same
// results for ASCII text (the compiled reader leaves other text to Python).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace mtpkit::pytext {

// Python's str.isspace() for an ASCII character: " \t\n\v\f\r" and \x1c-\x1f.
extern const bool kSpace[256];
inline bool is_space(char c) { return kSpace[static_cast<unsigned char>(c)]; }

// str.strip() / str.lstrip() / str.split() with no arguments.
std::string_view strip(std::string_view s);
std::string_view lstrip(std::string_view s);
std::vector<std::string_view> split(std::string_view s);
// s.lower() == word, for an all-lowercase ASCII word.
bool equals_ignoring_case(std::string_view s, std::string_view word);

// float(text) for the common plain decimals "[-]digits[.digits]" of at most
// 15 digits: the digits as an exact integer divided by an exact power of ten,
// one correctly rounded operation, i.e. Python's value. False (value unset)
// for anything else.
bool parse_plain_decimal(std::string_view token, double& value);

// float(text): false where Python raises ValueError. Accepts surrounding
// whitespace, a sign, digits with single underscores between them, an
// optional fraction and exponent, and inf / infinity / nan in any case.
// `value` is the correctly rounded double (±inf or nan for those words and for
// overflow), as Python gives it.
bool parse_float(std::string_view text, double& value);

// int(text) in base 10, which may exceed 64 bits: sign and canonical digits.
struct Integer {
  bool negative = false;
  std::string digits;  // no leading zeros ("0" for zero)
  std::string str() const { return negative ? "-" + digits : digits; }
  // the value clamped to the int64 range
  int64_t clamped() const;
};

// int(text): false where Python raises ValueError (bad syntax, or more than
// Python's default limit of 4300 digits).
bool parse_int(std::string_view text, Integer& value);

// repr(x) of a Python float ("0.1", "1e-05", "1e+16", "-0.0", "inf", "nan").
std::string float_repr(double x);

// repr(s) of an ASCII Python str ('abc', "it's", '\t', '\x00').
std::string str_repr(std::string_view s);

// repr() of a list of str: ['xx', 'yy'].
std::string str_list_repr(const std::vector<std::string_view>& items);

// f"{x:{width}.{decimals}f}" (the same text as printf("%*.*f")), appended to `out`.
void append_fixed(std::string& out, double x, int width, int decimals);

// The same written at `dst`, which needs room for max(width, kMaxFixed) chars;
// returns the end of the text.
constexpr int kMaxFixed = 330;  // 309 digits of the largest double, sign, point, decimals <= 16
char* write_fixed(char* dst, double x, int width, int decimals);

// f"{n:{width}d}" written at `dst` (room for max(width, 20) chars); returns its end.
char* write_int(char* dst, int64_t n, int width);

}  // namespace mtpkit::pytext
