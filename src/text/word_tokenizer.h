// WordTokenizer: text in, token ids out, inside the model process, so a
// text model takes raw UTF-8 (a BYTES input with a "tokenizer" in its
// config, repo/model_config.h TokenizerSpec) instead of client-side ids.
//
// "words" tokenization, the one kind so far, is exactly Python's
//   re.findall(r"[a-z0-9]+", text.lower())
// on the text decoded as UTF-8: ASCII letters are lower-cased, and the two
// non-ASCII characters whose Unicode lower case is ASCII count too
// (U+212A KELVIN SIGN -> "k", U+0130 -> "i" then a separator); every other
// character, and every byte that is not valid UTF-8, separates words. Ids:
// the begin token (if any), then each word's vocabulary id, or the unknown
// token's for a word not in it, cut to max_tokens. The text is read only up
// to the word that fills them: a long text costs the memory of its first
// max_tokens words, not of all its words.
//
// Batches: EncodeBatch turns a BYTES tensor of N texts ([N] or [N, 1])
// into INT64 [N, L], L the longest row's length, shorter rows padded with
// the pad token's id (a model built for padding masks it out).
//
// Thread safety: const methods only after Load; safe from several threads.
// Errors: Load returns kNotFound for an unreadable vocabulary file and
// kInvalidArgument for a vocabulary without the named special tokens or
// with a word twice; EncodeBatch returns kInvalidArgument for a tensor that
// is not BYTES texts (wrong datatype, more than one text per row, elements
// that do not parse).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/status.h"
#include "repo/model_config.h"
#include "tensor/tensor.h"

namespace thaw {

// The words of `text`, lower-cased, as Python's re.findall(r"[a-z0-9]+", text.lower()).
std::vector<std::string> SplitWords(std::string_view text);

class WordTokenizer {
 public:
  // Reads `spec.vocab_file` from `model_directory`: one token per line,
  // line i (from 0) is id i; a trailing '\r' is dropped.
  static StatusOr<WordTokenizer> Load(const TokenizerSpec& spec, const std::string& model_directory);
  static StatusOr<WordTokenizer> FromVocabulary(const TokenizerSpec& spec, std::vector<std::string> vocabulary);

  std::vector<int64_t> Encode(std::string_view text) const;
  // `texts` named `name` in errors; the result is named spec.feeds.
  StatusOr<Tensor> EncodeBatch(const Tensor& texts) const;

  const TokenizerSpec& spec() const { return spec_; }
  size_t vocabulary_size() const { return ids_.size(); }

 private:
  TokenizerSpec spec_;
  std::unordered_map<std::string, int64_t> ids_;
  int64_t begin_id_ = -1;  // -1: no begin token
  int64_t unknown_id_ = 0;
  int64_t pad_id_ = 0;
};

// The config the engine sees: each tokenized BYTES input replaced by its
// ids, INT64 [-1, -1] named `feeds`, in the same place. Other fields as is.
ModelConfig ConfigAfterTokenizing(const ModelConfig& config);

}  // namespace thaw
