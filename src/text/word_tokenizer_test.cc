// WordTokenizer against Python, case by case: testdata/words_reference.jsonl
// holds Python's words and ids (models/build_models.py, the tokenizer the
// textenc model was trained with) for hard texts and the test set's first
// 300 package descriptions, with textenc's vocabulary.
#include "text/word_tokenizer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <simdjson.h>

#include <cstring>
#include <fstream>

#include "base/test_paths.h"

namespace thaw {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TokenizerSpec TextencSpec() {
  return TokenizerSpec{.vocab_file = "vocab.txt", .feeds = "input_ids", .begin_token = "[CLS]",
                       .unknown_token = "[UNK]", .pad_token = "[PAD]", .max_tokens = 64};
}

Tensor Texts(std::initializer_list<std::string_view> texts, Shape shape = {}) {
  Tensor t{.name = "text", .datatype = DataType::kBytes, .shape = shape};
  if (t.shape.empty()) t.shape = {static_cast<int64_t>(texts.size())};
  for (std::string_view text : texts) AppendBytesElement(&t.data, text);
  return t;
}

std::vector<int64_t> Ids(const Tensor& t) {
  std::vector<int64_t> ids(t.data.size() / 8);
  std::memcpy(ids.data(), t.data.data(), t.data.size());
  return ids;
}

TEST(SplitWords, LowerCasesAndSplitsOnEverythingButAsciiLettersAndDigits) {
  EXPECT_THAT(SplitWords("GNU/Linux C++ lib64, x86_64!"), ElementsAre("gnu", "linux", "c", "lib64", "x86", "64"));
  EXPECT_TRUE(SplitWords("").empty());
  EXPECT_TRUE(SplitWords(" \t\n-_.").empty());
  // Non-ASCII letters separate words; the two whose lower case is ASCII join them.
  EXPECT_THAT(SplitWords("fa\xc3\xa7" "ade"), ElementsAre("fa", "ade"));
  EXPECT_THAT(SplitWords("5\xe2\x84\xaa"), ElementsAre("5k"));                 // KELVIN SIGN
  EXPECT_THAT(SplitWords("\xc4\xb0stanbul"), ElementsAre("i", "stanbul"));     // U+0130
  // Bytes that are not UTF-8 separate, like any other non-word character.
  EXPECT_THAT(SplitWords("ab\xff" "cd\xc3" "ef\xe2\x84" "gh"), ElementsAre("ab", "cd", "ef", "gh"));
  EXPECT_THAT(SplitWords("a\xc0\xaf" "b\xed\xa0\x80" "c"), ElementsAre("a", "b", "c"));  // overlong, surrogate
}

TEST(WordTokenizer, MatchesPythonOnTheReferenceCases) {
  const std::string dir = TestSourceDir() + "/examples/models/textenc";
  auto tokenizer = WordTokenizer::Load(TextencSpec(), dir);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status().ToString();
  std::ifstream in(TestSourceDir() + "/src/text/testdata/words_reference.jsonl");
  ASSERT_TRUE(in);
  simdjson::dom::parser parser;
  int cases = 0;
  for (std::string line; std::getline(in, line);) {
    simdjson::dom::element doc;
    ASSERT_FALSE(parser.parse(line).get(doc)) << line;
    std::string_view text = doc["text"].get_string().value();
    std::vector<std::string> words;
    for (auto w : doc["words"].get_array()) words.emplace_back(std::string_view(w.get_string().value()));
    std::vector<int64_t> ids;
    for (auto id : doc["ids"].get_array()) ids.push_back(id.get_int64().value());
    EXPECT_EQ(SplitWords(text), words) << line;
    EXPECT_EQ(tokenizer->Encode(text), ids) << line;
    ++cases;
  }
  EXPECT_GE(cases, 300);
}

TEST(WordTokenizer, EncodeBeginsUnknownsAndCuts) {
  TokenizerSpec spec = TextencSpec();
  spec.max_tokens = 4;
  auto tokenizer = WordTokenizer::FromVocabulary(spec, {"[PAD]", "[UNK]", "[CLS]", "cat", "dog"});
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status().ToString();
  EXPECT_THAT(tokenizer->Encode("Cat, dog; cow"), ElementsAre(2, 3, 4, 1));
  EXPECT_THAT(tokenizer->Encode("cat dog cat dog"), ElementsAre(2, 3, 4, 3));  // 4 tokens, [CLS] included
  EXPECT_THAT(tokenizer->Encode(""), ElementsAre(2));
  std::string long_text;
  for (int i = 0; i < 1000000; ++i) long_text += "dog cat ";
  EXPECT_THAT(tokenizer->Encode(long_text), ElementsAre(2, 4, 3, 4));
  spec.begin_token.clear();
  auto no_begin = WordTokenizer::FromVocabulary(spec, {"[PAD]", "[UNK]", "cat"});
  ASSERT_TRUE(no_begin.ok());
  EXPECT_THAT(no_begin->Encode("cat bird"), ElementsAre(2, 1));
}

TEST(WordTokenizer, EncodeBatchPadsToTheLongestRow) {
  auto tokenizer = WordTokenizer::FromVocabulary(TextencSpec(), {"[PAD]", "[UNK]", "[CLS]", "cat", "dog"});
  ASSERT_TRUE(tokenizer.ok());
  auto ids = tokenizer->EncodeBatch(Texts({"cat dog dog", "", "dog"}));
  ASSERT_TRUE(ids.ok()) << ids.status().ToString();
  EXPECT_EQ(ids->name, "input_ids");
  EXPECT_EQ(ids->datatype, DataType::kInt64);
  EXPECT_EQ(ids->shape, (Shape{3, 4}));
  EXPECT_THAT(Ids(*ids), ElementsAre(2, 3, 4, 4, 2, 0, 0, 0, 2, 4, 0, 0));
  auto column = tokenizer->EncodeBatch(Texts({"cat", "dog"}, {2, 1}));
  ASSERT_TRUE(column.ok()) << column.status().ToString();
  EXPECT_EQ(column->shape, (Shape{2, 2}));
}

TEST(WordTokenizer, EncodeBatchRefusesWhatIsNotOneTextPerRow) {
  auto tokenizer = WordTokenizer::FromVocabulary(TextencSpec(), {"[PAD]", "[UNK]", "[CLS]"});
  ASSERT_TRUE(tokenizer.ok());
  EXPECT_THAT(tokenizer->EncodeBatch(Texts({"a", "b"}, {1, 2})).status().message(), HasSubstr("one text per row"));
  Tensor numbers{.name = "text", .datatype = DataType::kInt64, .shape = {1}, .data = std::string(8, '\0')};
  EXPECT_THAT(tokenizer->EncodeBatch(numbers).status().message(), HasSubstr("BYTES"));
  Tensor truncated = Texts({"abc"});
  truncated.data.pop_back();
  EXPECT_EQ(tokenizer->EncodeBatch(truncated).status().code(), StatusCode::kInvalidArgument);
}

TEST(WordTokenizer, VocabularyErrorsNameTheProblem) {
  EXPECT_THAT(WordTokenizer::FromVocabulary(TextencSpec(), {"[PAD]", "[CLS]"}).status().message(),
              HasSubstr("no unknown token '[UNK]'"));
  EXPECT_THAT(WordTokenizer::FromVocabulary(TextencSpec(), {"[PAD]", "[UNK]", "[CLS]", "[UNK]"}).status().message(),
              HasSubstr("line 4 repeats"));
  EXPECT_EQ(WordTokenizer::Load(TextencSpec(), "/nonexistent").status().code(), StatusCode::kNotFound);
}

TEST(ConfigAfterTokenizing, TheEngineSeesTheIdsInTheInputsPlace) {
  ModelConfig config;
  config.inputs = {TensorSpec{.name = "text", .datatype = DataType::kBytes, .shape = {-1}, .tokenizer = TextencSpec()},
                   TensorSpec{.name = "extra", .datatype = DataType::kFp32, .shape = {-1, 2}}};
  const ModelConfig engine = ConfigAfterTokenizing(config);
  ASSERT_EQ(engine.inputs.size(), 2u);
  EXPECT_EQ(engine.inputs[0].name, "input_ids");
  EXPECT_EQ(engine.inputs[0].datatype, DataType::kInt64);
  EXPECT_EQ(engine.inputs[0].shape, (Shape{-1, -1}));
  EXPECT_FALSE(engine.inputs[0].tokenizer.has_value());
  EXPECT_EQ(engine.inputs[1].name, "extra");
}

}  // namespace
}  // namespace thaw
