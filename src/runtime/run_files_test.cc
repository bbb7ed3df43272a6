#include "runtime/run_files.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace thaw {
namespace {

namespace fs = std::filesystem;

class ModelSnapshotsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/thaw-snapshots-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { fs::remove_all(dir_); }
  void Write(const std::string& path, const std::string& text) {
    fs::create_directories(fs::path(path).parent_path());
    std::ofstream(path, std::ios::trunc) << text;
  }
  static std::string Read(const std::string& path) {
    std::stringstream text;
    text << std::ifstream(path).rdbuf();
    return text.str();
  }
  static ino_t Inode(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
  }
  size_t Stored() const {
    size_t n = 0;
    for (const auto& entry : fs::directory_iterator(dir_ + "/store")) n += entry.path().extension() != ".new";
    return n;
  }
  std::string dir_;
};

TEST_F(ModelSnapshotsTest, OneCopyPerContentLinkedIntoEveryRunDirectory) {
  Write(dir_ + "/repo/a/model.pt", "weights of a");
  Write(dir_ + "/repo/b/model.pt", "weights of a");  // a copy under another name
  fs::create_directories(dir_ + "/repo/c");
  fs::create_hard_link(dir_ + "/repo/a/model.pt", dir_ + "/repo/c/model.pt");  // a package store's link
  Write(dir_ + "/repo/d/model.pt", "weights of d");
  ModelSnapshots snapshots(dir_ + "/store");
  for (const char* m : {"a", "b", "c", "d"})
    ASSERT_TRUE(snapshots.Place(dir_ + "/repo/" + m + "/model.pt", dir_ + "/run/" + m + "/model.pt").ok()) << m;
  EXPECT_EQ(Stored(), 2u);  // two contents
  EXPECT_EQ(Inode(dir_ + "/run/a/model.pt"), Inode(dir_ + "/run/b/model.pt"));
  EXPECT_EQ(Inode(dir_ + "/run/a/model.pt"), Inode(dir_ + "/run/c/model.pt"));
  EXPECT_NE(Inode(dir_ + "/run/a/model.pt"), Inode(dir_ + "/run/d/model.pt"));
  EXPECT_NE(Inode(dir_ + "/run/a/model.pt"), Inode(dir_ + "/repo/a/model.pt"));  // the runtime's own copy
  EXPECT_EQ(Read(dir_ + "/run/d/model.pt"), "weights of d");
}

TEST_F(ModelSnapshotsTest, EditingTheRepositoryChangesNothingUntilPlacedAgain) {
  Write(dir_ + "/repo/a/model.pt", "version 1");
  ModelSnapshots snapshots(dir_ + "/store");
  ASSERT_TRUE(snapshots.Place(dir_ + "/repo/a/model.pt", dir_ + "/run/a/model.pt").ok());
  ::usleep(10000);  // a later mtime
  Write(dir_ + "/repo/a/model.pt", "version 2, longer");
  EXPECT_EQ(Read(dir_ + "/run/a/model.pt"), "version 1");
  ASSERT_TRUE(snapshots.Place(dir_ + "/repo/a/model.pt", dir_ + "/run/a/model.pt").ok());  // a reload
  EXPECT_EQ(Read(dir_ + "/run/a/model.pt"), "version 2, longer");
  EXPECT_EQ(Stored(), 2u);
  EXPECT_EQ(snapshots.Place(dir_ + "/repo/missing/model.pt", dir_ + "/run/m/model.pt").code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace thaw
