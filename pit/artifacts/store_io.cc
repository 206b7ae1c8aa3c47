// The default StoreIo: each call goes straight to the kernel. Tests replace
// it to inject EIO, ENOSPC and short writes at one stage of a put.
#include <fcntl.h>
#include <unistd.h>

#include "pit/artifacts/artifact_store.h"

namespace symphony::pit {

ssize_t StoreIo::write(int fd, const void* buf, std::size_t len) { return ::write(fd, buf, len); }
int StoreIo::fsync(int fd) { return ::fsync(fd); }
int StoreIo::fdatasync(int fd) { return ::fdatasync(fd); }
int StoreIo::renameat(int olddirfd, const char* oldpath, int newdirfd, const char* newpath) {
  return ::renameat(olddirfd, oldpath, newdirfd, newpath);
}
int StoreIo::unlinkat(int dirfd, const char* path, int flags) { return ::unlinkat(dirfd, path, flags); }
int StoreIo::openat(int dirfd, const char* path, int flags, unsigned mode) {
  return ::openat(dirfd, path, flags, static_cast<mode_t>(mode));
}
int StoreIo::syncfs(int fd) { return ::syncfs(fd); }

}  // namespace symphony::pit
