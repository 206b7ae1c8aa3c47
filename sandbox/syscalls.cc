// The real system calls behind the seam. Raw syscall(2) where glibc has no
// wrapper (pivot_root, mount_setattr, clone3, seccomp); every method returns
// the result or -errno.
#include "sandbox/syscalls.h"

#include <fcntl.h>
#include <linux/mount.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <grp.h>
#include <sched.h>
#include <linux/capability.h>

#include <cerrno>
#include <cstring>

namespace symphony::sandbox {

namespace {
long ret(long r) { return r < 0 ? -errno : r; }
}  // namespace

long SysCalls::mount(const char* source, const char* target, const char* fstype,
                     unsigned long flags, const void* data) {
  return ret(::mount(source, target, fstype, flags, data));
}
long SysCalls::umount2(const char* target, int flags) { return ret(::umount2(target, flags)); }
long SysCalls::mount_setattr(const char* path, unsigned flags, std::uint64_t set,
                             std::uint64_t clear) {
  struct mount_attr attr {};
  attr.attr_set = set;
  attr.attr_clr = clear;
  return ret(::syscall(SYS_mount_setattr, AT_FDCWD, path, flags, &attr, sizeof attr));
}
long SysCalls::pivot_root(const char* new_root, const char* put_old) {
  return ret(::syscall(SYS_pivot_root, new_root, put_old));
}
long SysCalls::chdir(const char* path) { return ret(::chdir(path)); }
long SysCalls::mkdir(const char* path, mode_t mode) { return ret(::mkdir(path, mode)); }
long SysCalls::create_file(const char* path, mode_t mode) {
  int fd = ::open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, mode);
  if (fd < 0) return -errno;
  ::close(fd);
  return 0;
}
long SysCalls::symlink(const char* target, const char* linkpath) {
  return ret(::symlink(target, linkpath));
}
long SysCalls::unshare(int flags) { return ret(::unshare(flags)); }
long SysCalls::sethostname(const char* name, std::size_t len) {
  return ret(::sethostname(name, len));
}
long SysCalls::prlimit(int resource, const rlimit& limit) {
  return ret(::syscall(SYS_prlimit64, 0, resource, &limit, nullptr));
}
long SysCalls::prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4,
                     unsigned long a5) {
  return ret(::prctl(option, a2, a3, a4, a5));
}
long SysCalls::capset(std::uint64_t effective, std::uint64_t permitted,
                      std::uint64_t inheritable) {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  data[0].effective = static_cast<std::uint32_t>(effective);
  data[1].effective = static_cast<std::uint32_t>(effective >> 32);
  data[0].permitted = static_cast<std::uint32_t>(permitted);
  data[1].permitted = static_cast<std::uint32_t>(permitted >> 32);
  data[0].inheritable = static_cast<std::uint32_t>(inheritable);
  data[1].inheritable = static_cast<std::uint32_t>(inheritable >> 32);
  return ret(::syscall(SYS_capset, &header, data));
}
long SysCalls::setresuid(uid_t uid) { return ret(::syscall(SYS_setresuid, uid, uid, uid)); }
long SysCalls::setresgid(gid_t gid) { return ret(::syscall(SYS_setresgid, gid, gid, gid)); }
long SysCalls::setgroups_empty() { return ret(::syscall(SYS_setgroups, 0, nullptr)); }
long SysCalls::seccomp_filter(const sock_fprog* program, unsigned flags) {
  return ret(::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, program));
}
long SysCalls::bring_up_loopback() {
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  ifreq req{};
  std::memcpy(req.ifr_name, "lo", 3);
  long r = 0;
  if (::ioctl(fd, SIOCGIFFLAGS, &req) < 0) {
    r = -errno;
  } else {
    req.ifr_flags = static_cast<short>(req.ifr_flags | IFF_UP | IFF_RUNNING);
    if (::ioctl(fd, SIOCSIFFLAGS, &req) < 0) r = -errno;
  }
  ::close(fd);
  return r;
}
long SysCalls::dup3(int from, int to) {
  if (from == to) {
    // Keep the fd across exec: clear its close-on-exec flag instead.
    int flags = ::fcntl(from, F_GETFD);
    if (flags < 0) return -errno;
    return ret(::fcntl(from, F_SETFD, flags & ~FD_CLOEXEC));
  }
  return ret(::dup3(from, to, 0));
}
long SysCalls::execve(const char* path, char* const argv[], char* const envp[]) {
  return ret(::execve(path, argv, envp));
}
long SysCalls::clone3(clone_args* args, std::size_t size) {
  return ret(::syscall(SYS_clone3, args, size));
}
long SysCalls::write_file(const char* path, const char* data, std::size_t len) {
  int fd = ::open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -errno;
  long r = ::write(fd, data, len);
  long result = r < 0 ? -errno : (static_cast<std::size_t>(r) == len ? 0 : -EIO);
  ::close(fd);
  return result;
}

SysCalls& real_syscalls() {
  static SysCalls calls;
  return calls;
}

}  // namespace symphony::sandbox
