// An incremental Server-Sent Events parser: fed arbitrary byte slices, it
// calls back once per complete event with its `event:` name and joined
// `data:` lines (per the WHATWG EventSource rules that matter to LLM APIs).
#pragma once

#include <string>
#include <string_view>

namespace llmproxy::providers::sse {

struct Event {
  std::string_view name;  // "message" when absent
  std::string_view data;
};

class Parser {
 public:
  template <class OnEvent>
  void feed(std::string_view bytes, OnEvent&& on_event) {
    buffer_.append(bytes);
    std::size_t start = 0;
    for (;;) {
      std::size_t eol = buffer_.find('\n', start);
      if (eol == std::string::npos) break;
      std::string_view line(buffer_.data() + start, eol - start);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      start = eol + 1;
      if (line.empty()) {
        dispatch(on_event);
      } else {
        take_line(line);
      }
    }
    buffer_.erase(0, start);
  }

  // The stream ended: an event without its final blank line still counts.
  template <class OnEvent>
  void finish(OnEvent&& on_event) {
    if (!buffer_.empty()) {
      take_line(buffer_);
      buffer_.clear();
    }
    dispatch(on_event);
  }

 private:
  void take_line(std::string_view line) {
    if (line.front() == ':') return;  // comment
    std::size_t colon = line.find(':');
    std::string_view field = line.substr(0, colon);
    std::string_view value = colon == std::string_view::npos ? "" : line.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    if (field == "event") {
      name_.assign(value);
    } else if (field == "data") {
      if (has_data_) data_ += '\n';
      data_.append(value);
      has_data_ = true;
    }
  }

  template <class OnEvent>
  void dispatch(OnEvent& on_event) {
    if (has_data_ || !name_.empty()) {
      on_event(Event{name_.empty() ? std::string_view("message") : std::string_view(name_), data_});
    }
    name_.clear();
    data_.clear();
    has_data_ = false;
  }

  std::string buffer_;
  std::string name_;
  std::string data_;
  bool has_data_ = false;
};

}  // namespace llmproxy::providers::sse
