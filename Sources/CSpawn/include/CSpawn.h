#ifndef CSPAWN_H
#define CSPAWN_H
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/// Starts `argv[0]` (searched in PATH) with its stdin, stdout and stderr on fresh pipes.
///
/// The child gets SIGKILL when the calling thread's process dies (PR_SET_PDEATHSIG), runs in a
/// process group of its own (so a signal to the server's group does not reach it before the
/// server has drained) and inherits no other descriptor. The parent's ends are O_CLOEXEC.
///
/// Between fork and exec the child is sandboxed: no new privileges; RLIMIT_FSIZE and RLIMIT_CORE
/// 0, RLIMIT_AS `memory_limit` bytes (0: unlimited); a Landlock domain (as much as the kernel's
/// ABI knows, skipped where the kernel has no Landlock) allowing only reading and executing files,
/// no TCP bind or connect, scoped abstract unix sockets and signals; a seccomp filter refusing
/// `socket`, `socketpair`, io_uring, `ptrace`, `bpf`, mounts and namespaces, and killing the
/// process on a syscall of a foreign ABI (i386, x32). A step that fails makes the
/// spawn fail with its errno: the child never runs with less than `cspawn_sandbox_mode()`.
///
/// `writable_dir_fd` (-1 for none; a trainer's private output directory, opened by the caller with
/// O_NOFOLLOW | O_DIRECTORY so that no symlink is followed) is one existing directory
/// in which the child may also create, write, rename and remove regular files, and nothing else;
/// RLIMIT_FSIZE is then `file_size_limit` instead of 0. Without Landlock that rule cannot be
/// expressed: the rlimit is then the only bound on writes.
/// Returns the child's pid, or -1 with errno set.
pid_t cspawn_piped(char *const argv[], unsigned long long memory_limit, int writable_dir_fd,
                   unsigned long long file_size_limit, int *stdin_fd, int *stdout_fd, int *stderr_fd);

/// What `cspawn_piped` applies to its children on this kernel.
enum {
    /// No seccomp filters in this kernel: every spawn fails.
    CSPAWN_SANDBOX_NONE = 0,
    /// seccomp, no-new-privileges and rlimits, but the kernel has no Landlock.
    CSPAWN_SANDBOX_SECCOMP = 1,
    /// Everything.
    CSPAWN_SANDBOX_LANDLOCK_SECCOMP = 2,
};

/// Probes the kernel: one of the `CSPAWN_SANDBOX_` values.
int cspawn_sandbox_mode(void);

/// The kernel's Landlock ABI version, 0 where Landlock is missing or disabled.
int cspawn_landlock_abi(void);

/// The Landlock rights the child's ruleset handles (so denies, but for reading and executing
/// files) on a kernel of Landlock ABI `abi`: every filesystem right the ABI knows, TCP bind and
/// connect from ABI 4, abstract unix socket and signal scoping from ABI 6; all 0 below ABI 1.
void cspawn_landlock_handled(int abi, uint64_t *fs, uint64_t *net, uint64_t *scoped);



/// Starts `body(argument)` on a detached thread named `name` (first 15 bytes) with `stack_size` bytes of stack; returns 0 or an errno.
int cspawn_thread(const char *name, size_t stack_size, void *(*body)(void *), void *argument);

/// Caps glibc's malloc arenas (mallopt M_ARENA_MAX); returns 1 on success.
int cspawn_limit_malloc_arenas(int arenas);

/// Returns freed heap pages to the system (malloc_trim(0)); returns 1 when some were.
int cspawn_trim_malloc(void);

/// Bytes malloc has handed out and not had back (mallinfo2: arena chunks in use plus mmapped chunks), whatever
/// the allocator keeps in its free lists: what a data structure costs, not what RSS happens to show.
size_t cspawn_heap_bytes_in_use(void);

/// The CPUs this process may use: those of its affinity mask, fewer under a cgroup CPU quota (a container's CPU
/// limit, rounded up: v2 `/sys/fs/cgroup/cpu.max`, else v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`); at least 1.
int cspawn_cpus_available(void);

/// The soft open-files limit (RLIMIT_NOFILE), or -1 when unlimited or unknown.
long cspawn_open_files_limit(void);

/// A new close-on-exec epoll instance, or -1 (errno set).
int cspawn_poll_create(void);

/// Arms `fd` in `poll` for one readable event carrying `token` (EPOLLIN | EPOLLONESHOT): adds it when `adding`,
/// re-arms it otherwise. Returns 0, or -1 with errno set.
int cspawn_poll_arm(int poll, int fd, uint64_t token, int adding);

/// Waits for one event of `poll` and returns 1 with its token, or -1 (errno set; EINTR included).
int cspawn_poll_wait(int poll, uint64_t *token);

/// accept4(SOCK_CLOEXEC) on `listener`: a blocking connection, or -1 with errno set.
int cspawn_accept(int listener);

#endif
