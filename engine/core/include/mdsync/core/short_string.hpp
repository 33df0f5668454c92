// An immutable string held inline up to 24 bytes, on the heap beyond: the field and side
// names a decision records several times over. Copying a short one moves a few words, where
// copying a std::string calls into the library, and nothing is allocated for it.
#pragma once

#include <cstddef>
#include <cstring>
#include <string>
#include <string_view>

namespace mdsync::core {

class ShortString {
 public:
  ShortString() = default;
  ShortString(std::string_view s) {
    init(s.data(), s.size());
  }  // NOLINT(google-explicit-constructor)
  ShortString(const std::string& s) : ShortString(std::string_view(s)) {}  // NOLINT
  ShortString(const char* s) : ShortString(std::string_view(s)) {}         // NOLINT
  ShortString(const ShortString& o) { copy_from(o); }
  ShortString(ShortString&& o) noexcept : size_(o.size_), u_(o.u_) { o.size_ = 0; }
  ShortString& operator=(const ShortString& o) {
    if (this != &o) {
      release();
      copy_from(o);
    }
    return *this;
  }
  ShortString& operator=(ShortString&& o) noexcept {
    if (this != &o) {
      release();
      size_ = o.size_;
      u_ = o.u_;
      o.size_ = 0;
    }
    return *this;
  }
  ~ShortString() { release(); }

  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  const char* data() const { return size_ > kInline ? u_.heap : u_.chars; }
  std::string_view view() const { return {data(), size_}; }
  operator std::string_view() const { return view(); }  // NOLINT(google-explicit-constructor)
  std::string str() const { return std::string(view()); }

  friend bool operator==(const ShortString& a, const ShortString& b) {
    return a.view() == b.view();
  }
  friend bool operator!=(const ShortString& a, const ShortString& b) { return !(a == b); }

 private:
  static constexpr std::size_t kInline = 24;

  void init(const char* s, std::size_t n) {
    size_ = n;
    if (n > kInline) {
      u_.heap = new char[n];
      std::memcpy(u_.heap, s, n);
    } else if (n > 0) {
      std::memcpy(u_.chars, s, n);
    }
  }
  void copy_from(const ShortString& o) {
    if (o.size_ > kInline) {
      init(o.u_.heap, o.size_);
    } else {
      size_ = o.size_;
      u_ = o.u_;
    }
  }
  void release() {
    if (size_ > kInline) delete[] u_.heap;
  }

  std::size_t size_ = 0;
  // Zeroed so that copying a short string copies no indeterminate bytes.
  union Storage {
    char chars[kInline];
    char* heap;
  } u_ = {};
};

}  // namespace mdsync::core
