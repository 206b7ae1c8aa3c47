// The cgroup v2 device controller: v2 has no devices.allow file, only a BPF
// program (BPF_PROG_TYPE_CGROUP_DEVICE) that the kernel runs on every device
// open and mknod. We write it as raw instructions, the way runc and crun do,
// so that no BPF toolchain or libbpf is needed: allow the listed devices,
// deny everything else.
#include <linux/bpf.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "sandbox/cgroup.h"

namespace symphony::sandbox {
namespace {

// Registers as the kernel numbers them: r0 is the return value, r1 the
// context (struct bpf_cgroup_dev_ctx); r2-r5 hold what we read from it.
constexpr std::uint8_t r0 = 0, r1 = 1, r2 = 2, r3 = 3, r4 = 4, r5 = 5;

bpf_insn make_insn(std::uint8_t code, std::uint8_t dst, std::uint8_t src, std::int16_t off,
                   std::int32_t imm) {
  bpf_insn insn;
  std::memset(&insn, 0, sizeof insn);
  insn.code = code;
  insn.dst_reg = dst & 0xf;
  insn.src_reg = src & 0xf;
  insn.off = off;
  insn.imm = imm;
  return insn;
}

// dst = *(u32 *)(src + off)
bpf_insn load_u32(std::uint8_t dst, std::uint8_t src, std::int16_t off) {
  return make_insn(BPF_LDX | BPF_MEM | BPF_W, dst, src, off, 0);
}
// 32-bit dst op= imm
bpf_insn alu32_imm(std::uint8_t op, std::uint8_t dst, std::int32_t imm) {
  return make_insn(BPF_ALU | op | BPF_K, dst, 0, 0, imm);
}
bpf_insn mov32_reg(std::uint8_t dst, std::uint8_t src) {
  return make_insn(BPF_ALU | BPF_MOV | BPF_X, dst, src, 0, 0);
}
bpf_insn mov64_imm(std::uint8_t dst, std::int32_t imm) {
  return make_insn(BPF_ALU64 | BPF_MOV | BPF_K, dst, 0, 0, imm);
}
// if dst != imm goto +off (the offset is patched in once the block is known)
bpf_insn jump_if_not(std::uint8_t dst, std::int32_t imm) {
  return make_insn(BPF_JMP | BPF_JNE | BPF_K, dst, 0, 0, imm);
}
bpf_insn exit_insn() { return make_insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0); }

Result<void> check_rule(const DeviceRule& rule) {
  std::string where = "device rule '" + std::string(1, rule.type) + " " +
                      std::to_string(rule.major) + ":" + std::to_string(rule.minor) + " " +
                      rule.access + "'";
  if (rule.type != 'c' && rule.type != 'b' && rule.type != 'a') {
    return Error::invalid(where + ": type must be 'c', 'b' or 'a'");
  }
  if (rule.major < -1 || rule.minor < -1) {
    return Error::invalid(where + ": major and minor are numbers, or -1 for any");
  }
  if (rule.access.empty() || rule.access.find_first_not_of("rwm") != std::string::npos) {
    return Error::invalid(where + ": access must be a non-empty subset of \"rwm\"");
  }
  return ok();
}

std::int32_t access_bits(const std::string& access) {
  std::int32_t bits = 0;
  for (char c : access) {
    if (c == 'r') bits |= BPF_DEVCG_ACC_READ;
    if (c == 'w') bits |= BPF_DEVCG_ACC_WRITE;
    if (c == 'm') bits |= BPF_DEVCG_ACC_MKNOD;
  }
  return bits;
}

// One rule: a run of "goto next rule unless ..." tests, then "return allow".
std::vector<bpf_insn> rule_block(const DeviceRule& rule) {
  constexpr std::int32_t all_access =
      BPF_DEVCG_ACC_READ | BPF_DEVCG_ACC_WRITE | BPF_DEVCG_ACC_MKNOD;
  std::vector<bpf_insn> block;
  if (rule.type != 'a') {
    block.push_back(jump_if_not(r2, rule.type == 'c' ? BPF_DEVCG_DEV_CHAR : BPF_DEVCG_DEV_BLOCK));
  }
  std::int32_t allowed = access_bits(rule.access);
  if (allowed != all_access) {
    // Skip the rule when the request asks for anything it does not grant.
    block.push_back(mov32_reg(r1, r3));
    block.push_back(alu32_imm(BPF_AND, r1, ~allowed & all_access));
    block.push_back(jump_if_not(r1, 0));
  }
  if (rule.major != -1) block.push_back(jump_if_not(r4, rule.major));
  if (rule.minor != -1) block.push_back(jump_if_not(r5, rule.minor));
  block.push_back(mov64_imm(r0, 1));
  block.push_back(exit_insn());
  // Every conditional jump lands just past this block.
  for (std::size_t i = 0; i < block.size(); ++i) {
    if (block[i].code == (BPF_JMP | BPF_JNE | BPF_K)) {
      block[i].off = static_cast<std::int16_t>(block.size() - i - 1);
    }
  }
  return block;
}

std::vector<bpf_insn> build_program(const std::vector<DeviceRule>& rules) {
  std::vector<bpf_insn> prog = {
      // struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }:
      // access_type is (BPF_DEVCG_ACC_* << 16) | BPF_DEVCG_DEV_*.
      load_u32(r2, r1, 0), alu32_imm(BPF_AND, r2, 0xffff),
      load_u32(r3, r1, 0), alu32_imm(BPF_RSH, r3, 16),
      load_u32(r4, r1, 4), load_u32(r5, r1, 8),
  };
  for (const DeviceRule& rule : rules) {
    auto block = rule_block(rule);
    prog.insert(prog.end(), block.begin(), block.end());
  }
  prog.push_back(mov64_imm(r0, 0));  // default deny
  prog.push_back(exit_insn());
  return prog;
}

std::uint64_t as_u64(const void* p) { return reinterpret_cast<std::uintptr_t>(p); }

int bpf(int cmd, bpf_attr* attr) {
  return static_cast<int>(::syscall(SYS_bpf, cmd, attr, sizeof *attr));
}

Result<UniqueFd> load_program(const std::vector<bpf_insn>& prog) {
  static const char license[] = "Apache-2.0";
  bpf_attr attr;
  std::memset(&attr, 0, sizeof attr);
  attr.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
  attr.insns = as_u64(prog.data());
  attr.insn_cnt = static_cast<std::uint32_t>(prog.size());
  attr.license = as_u64(license);
  int fd = bpf(BPF_PROG_LOAD, &attr);
  if (fd >= 0) return UniqueFd(fd);
  int saved = errno;
  // Load again with the verifier log, which says why; only worth it for
  // a rejected program (not for EPERM or ENOSYS).
  std::string why;
  if (saved == EINVAL || saved == EACCES) {
    std::vector<char> log(16384, '\0');
    attr.log_level = 1;
    attr.log_buf = as_u64(log.data());
    attr.log_size = static_cast<std::uint32_t>(log.size());
    int again = bpf(BPF_PROG_LOAD, &attr);
    if (again >= 0) {
      return UniqueFd(again);
    }
    why = std::string(log.data());
    while (!why.empty() && why.back() == '\n') why.pop_back();
    if (auto nl = why.rfind('\n'); nl != std::string::npos) why = why.substr(nl + 1);
    if (!why.empty()) why = " (verifier: " + why + ")";
  }
  return Error(saved, "bpf(BPF_PROG_LOAD) of the device filter" + why);
}

}  // namespace

Result<UniqueFd> attach_device_filter(int cgroup_dir_fd, const std::vector<DeviceRule>& rules) {
  for (const DeviceRule& rule : rules) {
    if (auto r = check_rule(rule); !r) return std::move(r).error();
  }
  auto prog = build_program(rules);
  if (prog.size() > BPF_MAXINSNS) {
    return Error::invalid("device filter: " + std::to_string(rules.size()) + " rules is too many");
  }
  auto fd = load_program(prog);
  if (!fd) return fd;

  bpf_attr attr;
  std::memset(&attr, 0, sizeof attr);
  attr.target_fd = static_cast<std::uint32_t>(cgroup_dir_fd);
  attr.attach_bpf_fd = static_cast<std::uint32_t>(fd->get());
  attr.attach_type = BPF_CGROUP_DEVICE;
  // ALLOW_MULTI: programs a supervisor (systemd) put on ancestors keep
  // running, and the kernel allows an access only when every one does.
  attr.attach_flags = BPF_F_ALLOW_MULTI;
  if (bpf(BPF_PROG_ATTACH, &attr) != 0) {
    return Error::from_errno("bpf(BPF_PROG_ATTACH, BPF_CGROUP_DEVICE) of the device filter");
  }
  return fd;
}

}  // namespace symphony::sandbox
