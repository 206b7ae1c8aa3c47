// The system-call seam of the sandbox (STYLE.md: Envoy's OsSysCalls). Every
// call a setup step makes goes through SysCalls, so tests can make any one of
// them fail (EPERM, ENOSYS, EBUSY…) and check that the step reports it.
// Kernel convention on purpose: each method returns the result or -errno and
// never touches errno or the heap, because the child half of a spawn runs
// between clone and exec, where only async-signal-safe code may run.
#pragma once

#include <linux/filter.h>
#include <sys/resource.h>
#include <sys/types.h>

#include <cstdint>

struct clone_args;
struct mount_attr;

namespace symphony::sandbox {

class SysCalls {
 public:
  virtual ~SysCalls() = default;

  // Names are the system calls'; so are the arguments.
  virtual long mount(const char* source, const char* target, const char* fstype,
                     unsigned long flags, const void* data);
  virtual long umount2(const char* target, int flags);
  virtual long mount_setattr(const char* path, unsigned flags, std::uint64_t set,
                             std::uint64_t clear);
  virtual long pivot_root(const char* new_root, const char* put_old);
  virtual long chdir(const char* path);
  virtual long mkdir(const char* path, mode_t mode);
  virtual long create_file(const char* path, mode_t mode);  // open(O_CREAT|O_EXCL) + close
  virtual long symlink(const char* target, const char* linkpath);
  virtual long unshare(int flags);
  virtual long sethostname(const char* name, std::size_t len);
  virtual long prlimit(int resource, const rlimit& limit);
  virtual long prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4,
                     unsigned long a5);
  virtual long capset(std::uint64_t effective, std::uint64_t permitted, std::uint64_t inheritable);
  virtual long setresuid(uid_t uid);
  virtual long setresgid(gid_t gid);
  virtual long setgroups_empty();
  virtual long seccomp_filter(const sock_fprog* program, unsigned flags);
  virtual long bring_up_loopback();  // SIOCSIFFLAGS IFF_UP on "lo"
  virtual long dup3(int from, int to);
  virtual long execve(const char* path, char* const argv[], char* const envp[]);
  virtual long clone3(clone_args* args, std::size_t size);
  virtual long write_file(const char* path, const char* data, std::size_t len);
};

// The real system calls.
SysCalls& real_syscalls();

}  // namespace symphony::sandbox
