// Content codings: what zlib writes inflates back, Accept-Encoding picks by
// q-value, and bad or oversized data is refused with a message.
#include "server/compression.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <string>

namespace thaw {
namespace {

std::string Sample() {
  std::string text = R"({"inputs":[{"name":"features","shape":[1,30],"datatype":"FP32","data":[)";
  for (int i = 0; i < 30; ++i) text += (i ? ",0.5" : "0.5");
  return text + "]}]}";
}

// Raw DEFLATE (no zlib header), as some clients send under "deflate".
std::string RawDeflate(const std::string& data) {
  z_stream s{};
  deflateInit2(&s, 6, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&s, data.size()), '\0');
  s.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  s.avail_in = data.size();
  s.next_out = reinterpret_cast<Bytef*>(out.data());
  s.avail_out = out.size();
  deflate(&s, Z_FINISH);
  out.resize(out.size() - s.avail_out);
  deflateEnd(&s);
  return out;
}

TEST(CompressionTest, RoundTripsGzipAndDeflate) {
  const std::string body = Sample();
  for (ContentCoding coding : {ContentCoding::kGzip, ContentCoding::kDeflate, ContentCoding::kIdentity}) {
    std::optional<std::string> packed = Compress(body, coding);
    ASSERT_TRUE(packed.has_value());
    if (coding != ContentCoding::kIdentity) EXPECT_LT(packed->size(), body.size());
    auto unpacked = Decompress(*packed, coding, 1 << 20);
    ASSERT_TRUE(unpacked.ok()) << unpacked.status().message();
    EXPECT_EQ(*unpacked, body);
  }
  // gzip starts with its magic bytes; deflate with a zlib header.
  EXPECT_EQ(Compress(body, ContentCoding::kGzip)->substr(0, 2), "\x1f\x8b");
  EXPECT_EQ(static_cast<unsigned char>((*Compress(body, ContentCoding::kDeflate))[0]) & 0x0f, 8);
  auto raw = Decompress(RawDeflate(body), ContentCoding::kDeflate, 1 << 20);
  ASSERT_TRUE(raw.ok()) << raw.status().message();
  EXPECT_EQ(*raw, body);
}

TEST(CompressionTest, RefusesCorruptTruncatedAndOversizedBodies) {
  const std::string packed = *Compress(Sample(), ContentCoding::kGzip);
  auto corrupt = Decompress("this is not gzip", ContentCoding::kGzip, 1 << 20);
  ASSERT_FALSE(corrupt.ok());
  EXPECT_NE(corrupt.status().message().find("not valid gzip"), std::string::npos) << corrupt.status().message();
  auto truncated = Decompress(packed.substr(0, packed.size() / 2), ContentCoding::kGzip, 1 << 20);
  ASSERT_FALSE(truncated.ok());
  EXPECT_NE(truncated.status().message().find("truncated"), std::string::npos) << truncated.status().message();
  auto trailing = Decompress(packed + "xyz", ContentCoding::kGzip, 1 << 20);
  ASSERT_FALSE(trailing.ok());
  // A bomb: 64 MiB of zeros packs into ~64 KiB; the limit stops it early.
  const std::string bomb = *Compress(std::string(64 << 20, '\0'), ContentCoding::kGzip);
  EXPECT_LT(bomb.size(), 1u << 20);
  auto big = Decompress(bomb, ContentCoding::kGzip, 1 << 20);
  ASSERT_FALSE(big.ok());
  EXPECT_NE(big.status().message().find("more than 1048576 bytes"), std::string::npos) << big.status().message();
}

TEST(CompressionTest, ParsesContentEncoding) {
  EXPECT_EQ(*ParseContentEncoding(std::nullopt), ContentCoding::kIdentity);
  EXPECT_EQ(*ParseContentEncoding("identity"), ContentCoding::kIdentity);
  EXPECT_EQ(*ParseContentEncoding("GZIP"), ContentCoding::kGzip);
  EXPECT_EQ(*ParseContentEncoding(" x-gzip "), ContentCoding::kGzip);
  EXPECT_EQ(*ParseContentEncoding("deflate"), ContentCoding::kDeflate);
  auto br = ParseContentEncoding("br");
  ASSERT_FALSE(br.ok());
  EXPECT_NE(br.status().message().find("'br' is not supported"), std::string::npos);
  EXPECT_FALSE(ParseContentEncoding("gzip, deflate").ok());  // stacked codings
}

TEST(CompressionTest, ChoosesTheResponseCodingByQuality) {
  EXPECT_EQ(ChooseResponseCoding(std::nullopt), ContentCoding::kIdentity);
  EXPECT_EQ(ChooseResponseCoding("gzip"), ContentCoding::kGzip);
  EXPECT_EQ(ChooseResponseCoding("deflate"), ContentCoding::kDeflate);
  EXPECT_EQ(ChooseResponseCoding("gzip, deflate"), ContentCoding::kGzip);  // first on a tie
  EXPECT_EQ(ChooseResponseCoding("gzip;q=0.5, deflate;q=0.8"), ContentCoding::kDeflate);
  EXPECT_EQ(ChooseResponseCoding("gzip;q=0"), ContentCoding::kIdentity);
  EXPECT_EQ(ChooseResponseCoding("br, zstd"), ContentCoding::kIdentity);
  EXPECT_EQ(ChooseResponseCoding("*"), ContentCoding::kGzip);
  EXPECT_EQ(ChooseResponseCoding("identity, gzip;q=0.9"), ContentCoding::kIdentity);
}

}  // namespace
}  // namespace thaw
