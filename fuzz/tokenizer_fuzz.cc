// WordTokenizer (text/word_tokenizer.h) on arbitrary bytes: texts as
// clients send them, valid UTF-8 or not.
// Input: byte 0 picks max_tokens (1..16) and whether a begin token is used;
// the rest is one text, and also the data of a BYTES tensor.
// Properties: every word is non-empty and only [a-z0-9]; on ASCII text the
// words are its maximal runs of letters and digits, lower-cased; Encode
// gives at most max_tokens ids, all in the vocabulary, the begin id first
// when set; EncodeBatch accepts exactly well-formed BYTES data and then gives
// INT64 [rows, longest row] whose rows are Encode's, padded with the pad id.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.h"
#include "text/word_tokenizer.h"

namespace {

bool IsWordChar(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// The ASCII-only model: maximal runs of ASCII letters and digits, lower-cased.
std::vector<std::string> AsciiWords(std::string_view text) {
  std::vector<std::string> words;
  std::string word;
  for (char c : text) {
    const char lower = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    if (IsWordChar(lower)) {
      word += lower;
    } else if (!word.empty()) {
      words.push_back(std::move(word));
      word.clear();
    }
  }
  if (!word.empty()) words.push_back(std::move(word));
  return words;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t control = data[0];
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);

  const std::vector<std::string> words = thaw::SplitWords(text);
  for (const std::string& w : words) {
    FUZZ_CHECK(!w.empty(), "a word is empty");
    for (char c : w) FUZZ_CHECK(IsWordChar(c), "a word has a character outside [a-z0-9]");
  }
  bool ascii = true;
  for (char c : text) ascii = ascii && static_cast<unsigned char>(c) < 0x80;
  if (ascii) FUZZ_CHECK(words == AsciiWords(text), "ASCII text splits differently from its runs");

  thaw::TokenizerSpec spec{.vocab_file = "vocab.txt", .feeds = "ids", .begin_token = (control & 0x80) ? "[CLS]" : "",
                           .unknown_token = "[UNK]", .pad_token = "[PAD]", .max_tokens = 1 + (control & 0x0f)};
  const std::vector<std::string> vocabulary = {"[PAD]", "[UNK]", "[CLS]", "a", "b", "ab", "0", "x86", "k", "i"};
  auto tokenizer = thaw::WordTokenizer::FromVocabulary(spec, vocabulary);
  FUZZ_CHECK(tokenizer.ok(), "the fixed vocabulary loads");
  const std::vector<int64_t> ids = tokenizer->Encode(text);
  FUZZ_CHECK(ids.size() <= static_cast<size_t>(spec.max_tokens), "more ids than max_tokens");
  for (int64_t id : ids) FUZZ_CHECK(id >= 0 && id < static_cast<int64_t>(vocabulary.size()), "an id outside the vocabulary");
  if (!spec.begin_token.empty()) FUZZ_CHECK(!ids.empty() && ids[0] == 2, "the begin id is not first");

  // The same bytes as a BYTES tensor of however many elements they hold.
  thaw::Tensor texts{.name = "text", .datatype = thaw::DataType::kBytes, .data = std::string(text)};
  int64_t rows = 0;
  size_t pos = 0;
  while (text.size() - pos >= 4) {
    uint32_t len;
    std::memcpy(&len, text.data() + pos, 4);
    if (text.size() - pos - 4 < len) break;
    pos += 4 + len;
    ++rows;
  }
  texts.shape = {rows};
  auto batch = tokenizer->EncodeBatch(texts);
  FUZZ_CHECK(batch.ok() == (pos == text.size()), "EncodeBatch accepts exactly well-formed data");
  if (!batch.ok()) return 0;
  FUZZ_CHECK(batch->datatype == thaw::DataType::kInt64 && batch->shape.size() == 2 && batch->shape[0] == rows,
             "ids are INT64 [rows, width]");
  const size_t width = static_cast<size_t>(batch->shape[1]);
  FUZZ_CHECK(batch->data.size() == static_cast<size_t>(rows) * width * 8, "ids fill the shape");
  pos = 0;
  for (int64_t r = 0; r < rows; ++r) {
    uint32_t len;
    std::memcpy(&len, text.data() + pos, 4);
    const std::vector<int64_t> row = tokenizer->Encode(text.substr(pos + 4, len));
    pos += 4 + len;
    FUZZ_CHECK(row.size() <= width, "a row is longer than the batch");
    for (size_t c = 0; c < width; ++c) {
      int64_t id;
      std::memcpy(&id, batch->data.data() + (static_cast<size_t>(r) * width + c) * 8, 8);
      FUZZ_CHECK(id == (c < row.size() ? row[c] : 0), "a batch row differs from Encode or is not padded with [PAD]");
    }
  }
  return 0;
}
