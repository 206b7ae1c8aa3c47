// Resident memory of a process tree from /proc/PID/statm and the children
// lists (CONFIG_PROC_CHILDREN).
#include "sandbox/process_tree.h"

#include <unistd.h>

#include <fstream>
#include <string>
#include <vector>

namespace symphony::sandbox {

std::uint64_t tree_rss(int pid) {
  std::uint64_t total = 0;
  std::vector<int> todo{pid};
  const long page = ::sysconf(_SC_PAGESIZE);
  while (!todo.empty()) {
    int p = todo.back();
    todo.pop_back();
    std::ifstream statm("/proc/" + std::to_string(p) + "/statm");
    std::uint64_t size = 0, resident = 0;
    if (statm >> size >> resident) total += resident * static_cast<std::uint64_t>(page);
    // Children of every thread (CONFIG_PROC_CHILDREN).
    std::ifstream children("/proc/" + std::to_string(p) + "/task/" + std::to_string(p) + "/children");
    int c;
    while (children >> c) todo.push_back(c);
  }
  return total;
}

}  // namespace symphony::sandbox
