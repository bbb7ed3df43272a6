#include "text/word_tokenizer.h"

#include <algorithm>
#include <fstream>

namespace thaw {
namespace {

// The next code point of `text` from `pos` (advanced past it); -1 for a byte
// that does not start a valid UTF-8 sequence (advanced by one byte).
int32_t NextCodePoint(std::string_view text, size_t& pos) {
  const auto byte = [&](size_t i) { return static_cast<uint8_t>(text[i]); };
  const uint8_t lead = byte(pos);
  if (lead < 0x80) {
    ++pos;
    return lead;
  }
  int length = 0;
  int32_t cp = 0;
  if (lead >= 0xc2 && lead <= 0xdf) {
    length = 2;
    cp = lead & 0x1f;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    length = 3;
    cp = lead & 0x0f;
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    length = 4;
    cp = lead & 0x07;
  } else {
    ++pos;
    return -1;
  }
  if (pos + static_cast<size_t>(length) > text.size()) {
    ++pos;
    return -1;
  }
  for (int i = 1; i < length; ++i) {
    const uint8_t b = byte(pos + static_cast<size_t>(i));
    if ((b & 0xc0) != 0x80) {
      ++pos;
      return -1;
    }
    cp = (cp << 6) | (b & 0x3f);
  }
  // Overlong forms, surrogates and values past U+10FFFF are not UTF-8.
  const bool overlong = (length == 3 && cp < 0x800) || (length == 4 && cp < 0x10000);
  if (overlong || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) {
    ++pos;
    return -1;
  }
  pos += static_cast<size_t>(length);
  return cp;
}

// Calls on_word(word) for each word of `text` in order while it returns
// true: a caller that needs only the first words stops reading there.
template <typename OnWord>
void ForEachWord(std::string_view text, OnWord on_word) {
  std::string word;
  auto end_word = [&] {
    if (word.empty()) return true;
    const bool more = on_word(word);
    word.clear();
    return more;
  };
  for (size_t pos = 0; pos < text.size();) {
    const int32_t cp = NextCodePoint(text, pos);
    if (cp >= 'a' && cp <= 'z') {
      word += static_cast<char>(cp);
    } else if (cp >= 'A' && cp <= 'Z') {
      word += static_cast<char>(cp - 'A' + 'a');
    } else if (cp >= '0' && cp <= '9') {
      word += static_cast<char>(cp);
    } else if (cp == 0x212a) {  // KELVIN SIGN lower-cases to ASCII 'k'
      word += 'k';
    } else if (cp == 0x130) {  // LATIN CAPITAL I WITH DOT ABOVE -> "i" + COMBINING DOT ABOVE
      word += 'i';
      if (!end_word()) return;
    } else if (!end_word()) {
      return;
    }
  }
  end_word();
}

}  // namespace

std::vector<std::string> SplitWords(std::string_view text) {
  std::vector<std::string> words;
  ForEachWord(text, [&](const std::string& word) {
    words.push_back(word);
    return true;
  });
  return words;
}

StatusOr<WordTokenizer> WordTokenizer::Load(const TokenizerSpec& spec, const std::string& model_directory) {
  const std::string path = model_directory + "/" + spec.vocab_file;
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound("tokenizer vocabulary " + spec.vocab_file + " cannot be read");
  std::vector<std::string> vocabulary;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    vocabulary.push_back(std::move(line));
  }
  return FromVocabulary(spec, std::move(vocabulary));
}

StatusOr<WordTokenizer> WordTokenizer::FromVocabulary(const TokenizerSpec& spec, std::vector<std::string> vocabulary) {
  WordTokenizer t;
  t.spec_ = spec;
  t.ids_.reserve(vocabulary.size());
  for (size_t i = 0; i < vocabulary.size(); ++i) {
    if (!t.ids_.emplace(std::move(vocabulary[i]), static_cast<int64_t>(i)).second)
      return InvalidArgument("tokenizer vocabulary " + spec.vocab_file + ": line " + std::to_string(i + 1) +
                             " repeats an earlier token");
  }
  auto id_of = [&](const std::string& token, std::string_view role, int64_t* id) -> Status {
    auto it = t.ids_.find(token);
    if (it == t.ids_.end())
      return InvalidArgument("tokenizer vocabulary " + spec.vocab_file + " has no " + std::string(role) + " token '" +
                             token + "'");
    *id = it->second;
    return Status::Ok();
  };
  THAW_RETURN_IF_ERROR(id_of(spec.unknown_token, "unknown", &t.unknown_id_));
  THAW_RETURN_IF_ERROR(id_of(spec.pad_token, "pad", &t.pad_id_));
  if (!spec.begin_token.empty()) THAW_RETURN_IF_ERROR(id_of(spec.begin_token, "begin", &t.begin_id_));
  return t;
}

std::vector<int64_t> WordTokenizer::Encode(std::string_view text) const {
  std::vector<int64_t> ids;
  const size_t limit = static_cast<size_t>(spec_.max_tokens);
  if (begin_id_ >= 0) ids.push_back(begin_id_);
  if (ids.size() > limit) ids.resize(limit);
  // Words past the limit are never read: a long text costs max_tokens words.
  ForEachWord(text, [&](const std::string& word) {
    if (ids.size() >= limit) return false;
    auto it = ids_.find(word);
    ids.push_back(it == ids_.end() ? unknown_id_ : it->second);
    return ids.size() < limit;
  });
  return ids;
}

StatusOr<Tensor> WordTokenizer::EncodeBatch(const Tensor& texts) const {
  const std::string who = "input '" + texts.name + "'";
  if (texts.datatype != DataType::kBytes) return InvalidArgument(who + " must be BYTES texts to tokenize");
  if (texts.shape.empty() || texts.shape.size() > 2 || (texts.shape.size() == 2 && texts.shape[1] != 1))
    return InvalidArgument(who + ": one text per row, shape [N] or [N, 1]; got " + ShapeToString(texts.shape));
  THAW_RETURN_IF_ERROR(CheckTensorData(texts));
  const int64_t rows = texts.shape[0];
  std::vector<std::vector<int64_t>> encoded;
  encoded.reserve(static_cast<size_t>(rows));
  size_t width = 0;
  for (std::string_view text : BytesElements(texts.data)) {
    encoded.push_back(Encode(text));
    width = std::max(width, encoded.back().size());
  }
  Tensor ids;
  ids.name = spec_.feeds;
  ids.datatype = DataType::kInt64;
  ids.shape = {rows, static_cast<int64_t>(width)};
  std::vector<int64_t> flat(static_cast<size_t>(rows) * width, pad_id_);
  for (size_t r = 0; r < encoded.size(); ++r) std::copy(encoded[r].begin(), encoded[r].end(), flat.begin() + r * width);
  ids.data.assign(reinterpret_cast<const char*>(flat.data()), flat.size() * sizeof(int64_t));
  return ids;
}

ModelConfig ConfigAfterTokenizing(const ModelConfig& config) {
  ModelConfig engine = config;
  for (TensorSpec& spec : engine.inputs) {
    if (!spec.tokenizer) continue;
    spec.name = spec.tokenizer->feeds;
    spec.datatype = DataType::kInt64;
    spec.shape = {-1, -1};
    spec.format = TensorFormat::kNone;
    spec.tokenizer.reset();
  }
  return engine;
}

}  // namespace thaw
