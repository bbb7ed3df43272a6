// Writes seed inputs for ipc_frame_fuzz into the directory given: frames of
// every message type as the real encoders write them, alone and back to back,
// each file led by the piece-size byte the harness reads first.
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "ipc/messages.h"

namespace ipc = thaw::ipc;

namespace {

thaw::Tensor MakeTensor(std::string name, thaw::DataType type, thaw::Shape shape, std::string data) {
  thaw::Tensor t;
  t.name = std::move(name);
  t.datatype = type;
  t.shape = std::move(shape);
  t.data = std::move(data);
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_ipc_corpus DIR\n");
    return 2;
  }
  const std::string fp32(8 * 4, '\x3f');
  const std::string bytes = std::string("\x02\0\0\0hi\x00\0\0\0", 10);
  std::vector<std::pair<std::string, std::string>> frames = {
      {"ready", ipc::Encode(ipc::ReadyMessage{.pid = 4242, .started_us = 1795896000000000, .runtime_init_us = 120000,
                                              .model_load_us = 30000, .warmup_us = 2000})},
      {"init_error", ipc::Encode(ipc::InitErrorMessage{.message = "cannot load model.pt: bad magic"})},
      {"infer_request", ipc::Encode(ipc::InferRequestMessage{
                            .request_id = 17,
                            .inputs = {MakeTensor("features", thaw::DataType::kFp32, {2, 4}, fp32)},
                            .output_names = {"probability"}})},
      {"infer_request_bytes", ipc::Encode(ipc::InferRequestMessage{
                                  .request_id = 18,
                                  .inputs = {MakeTensor("text", thaw::DataType::kBytes, {2}, bytes),
                                             MakeTensor("ids", thaw::DataType::kInt64, {1, 1}, std::string(8, '\1'))}})},
      {"infer_response", ipc::Encode(ipc::InferResponseMessage{
                             .request_id = 17,
                             .outputs = {MakeTensor("probability", thaw::DataType::kFp32, {2, 1}, std::string(8, '\0'))},
                             .compute_us = 250})},
      {"infer_response_error", ipc::Encode(ipc::InferResponseMessage{
                                   .request_id = 19, .code = thaw::StatusCode::kInvalidArgument, .error = "bad input"})},
      {"spawn", ipc::Encode(ipc::SpawnMessage{.model_dir = "/run/thaw/models/fraud"})},
  };
  std::string all;
  for (const auto& [name, frame] : frames) all += frame;
  frames.emplace_back("conversation", all);
  for (const auto& [name, frame] : frames) {
    // Whole (piece byte 0) and in 3-byte pieces.
    for (const char piece : {'\0', '\3'}) {
      std::ofstream out(std::string(argv[1]) + "/" + name + (piece ? "_pieces" : ""), std::ios::binary);
      out.put(piece);
      out << frame;
    }
  }
  return 0;
}
