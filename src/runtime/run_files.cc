#include "runtime/run_files.h"

#include <stdlib.h>
#include <vector>
#include <memory>
#include <sys/stat.h>
#include <openssl/evp.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace thaw {

StatusOr<std::string> ContentKeys::Of(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return NotFound("cannot read " + path);
  const std::string id = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino) + ":" +
                         std::to_string(st.st_size) + ":" + std::to_string(st.st_mtim.tv_sec) + "." +
                         std::to_string(st.st_mtim.tv_nsec);
  if (auto it = known_.find(id); it != known_.end()) return it->second;
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound("cannot read " + path);
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) return Internal("cannot start SHA-256");
  std::vector<char> buffer(1 << 20);
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    if (in.gcount() > 0) EVP_DigestUpdate(ctx.get(), buffer.data(), static_cast<size_t>(in.gcount()));
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_DigestFinal_ex(ctx.get(), digest, &length);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string key;
  for (unsigned int i = 0; i < length; ++i) {
    key += kHex[digest[i] >> 4];
    key += kHex[digest[i] & 15];
  }
  known_.emplace(id, key);
  return key;
}

Status ModelSnapshots::Place(const std::string& source, const std::string& target) {
  namespace fs = std::filesystem;
  StatusOr<std::string> key = keys_.Of(source);
  if (!key.ok()) return NotFound("cannot read model file " + source + ": " + key.status().message());
  std::error_code ec;
  fs::create_directories(store_dir_, ec);
  const fs::path stored = fs::path(store_dir_) / *key;
  if (!fs::exists(stored)) {
    const fs::path staged = stored.string() + ".new";
    fs::copy_file(source, staged, fs::copy_options::overwrite_existing, ec);
    if (!ec) fs::permissions(staged, fs::perms::owner_read | fs::perms::group_read | fs::perms::others_read, ec);
    if (!ec) fs::rename(staged, stored, ec);
    if (ec) return NotFound("cannot copy model file " + source + ": " + ec.message());
  }
  fs::create_directories(fs::path(target).parent_path(), ec);
  return LinkStoredFile(stored.string(), target);
}

Status LinkStoredFile(const std::string& stored, const std::string& target) {
  namespace fs = std::filesystem;
  const fs::path staged = target + ".new";
  std::error_code ec;
  fs::remove(staged, ec);
  ec.clear();
  fs::create_hard_link(stored, staged, ec);
  if (ec) {  // another file system: a copy
    ec.clear();
    fs::copy_file(stored, staged, fs::copy_options::overwrite_existing, ec);
  }
  if (!ec) fs::permissions(staged, fs::perms::owner_read | fs::perms::group_read | fs::perms::others_read, ec);
  if (!ec) fs::rename(staged, target, ec);  // processes loading the old file keep their copy
  if (ec) return Internal("cannot write " + target + ": " + ec.message());
  return Status::Ok();
}

Status WriteRunFiles(const std::string& directory, const ModelConfig& config, bool snapshot_model_file,
                     ModelSnapshots* snapshots) {
  namespace fs = std::filesystem;
  const fs::path dir = directory;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Internal("cannot create " + dir.string() + " for model '" + config.name + "': " + ec.message());
  // Readable by the workers' uid whatever the umask; the run directory
  // above it admits only the server and the workers' group.
  const fs::perms readable = fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read | fs::perms::others_read;
  fs::permissions(dir, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                           fs::perms::others_read | fs::perms::others_exec, ec);
  // A file workers read (`what` in errors), snapshotted into the run
  // directory: through `snapshots`, else a copy, not a link, so editing the
  // repository file never changes what the next template or instance
  // loads; only a load/reload does.
  auto place = [&](const std::string& what, const fs::path& source, const fs::path& target) -> Status {
    if (snapshots) return snapshots->Place(source.string(), target.string());
    const fs::path staged = target.string() + ".new";
    fs::create_directories(target.parent_path(), ec);
    fs::remove(staged, ec);
    fs::copy_file(source, staged, fs::copy_options::overwrite_existing, ec);
    if (ec) return NotFound("cannot copy " + what + " " + source.string() + " of model '" + config.name + "': " + ec.message());
    fs::permissions(staged, readable, ec);
    fs::rename(staged, target, ec);  // processes loading the old file keep their copy
    if (ec) return Internal("cannot write " + target.string() + ": " + ec.message());
    return Status::Ok();
  };
  if (snapshot_model_file) {
    THAW_RETURN_IF_ERROR(place("model file", config.ModelPath(), dir / config.model_file));
    // Tokenizer vocabularies are read by workers too.
    for (const TensorSpec& spec : config.inputs)
      if (spec.tokenizer)
        THAW_RETURN_IF_ERROR(place("tokenizer vocabulary", fs::path(config.directory) / spec.tokenizer->vocab_file,
                                   dir / spec.tokenizer->vocab_file));
  }
  const fs::path path = dir / "config.json";
  const fs::path staged = dir / "config.json.new";
  {
    std::ofstream out(staged, std::ios::trunc);
    out << EncodeModelConfig(config);
    if (!out) return Internal("cannot write " + staged.string());
  }
  fs::permissions(staged, readable, ec);
  fs::rename(staged, path, ec);  // workers never see a half-written file
  if (ec) return Internal("cannot write " + path.string() + ": " + ec.message());
  return Status::Ok();
}

StatusOr<std::string> MakeRunDirectory(const std::optional<sandbox::WorkerUser>& workers) {
  char pattern[] = "/tmp/thaw-run-XXXXXX";
  if (!::mkdtemp(pattern)) return Internal(std::string("cannot create a run directory: ") + std::strerror(errno));
  // mkdtemp made it 0700: workers of another uid must be able to read it.
  if (workers) THAW_RETURN_IF_ERROR(sandbox::ShareDirectoryWith(pattern, *workers));
  return std::string(pattern);
}

}  // namespace thaw
