#define _GNU_SOURCE
#include "CSpawn.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void close_pair(int p[2]) {
    if (p[0] >= 0) close(p[0]);
    if (p[1] >= 0) close(p[1]);
}


/* ---- Sandbox (applied in the child between fork and exec) ----------------------------------
 *
 * Landlock UAPI, declared here because Debian 12's headers stop at ABI 2. Raw syscalls: the
 * numbers are the same on every architecture (generic table).
 */
#define CS_NR_landlock_create_ruleset 444
#define CS_NR_landlock_add_rule 445
#define CS_NR_landlock_restrict_self 446
#define CS_LANDLOCK_CREATE_RULESET_VERSION (1U << 0)
#define CS_LANDLOCK_RULE_PATH_BENEATH 1

#define CS_FS_EXECUTE (1ULL << 0)
#define CS_FS_WRITE_FILE (1ULL << 1)
#define CS_FS_READ_FILE (1ULL << 2)
#define CS_FS_READ_DIR (1ULL << 3)
#define CS_FS_REMOVE_FILE (1ULL << 5)
#define CS_FS_MAKE_REG (1ULL << 8)
#define CS_FS_ABI1 ((1ULL << 13) - 1) /* EXECUTE .. MAKE_SYM */
#define CS_FS_REFER (1ULL << 13)      /* ABI 2 */
#define CS_FS_TRUNCATE (1ULL << 14)   /* ABI 3 */
#define CS_FS_IOCTL_DEV (1ULL << 15)  /* ABI 5 */
#define CS_NET_BIND_TCP (1ULL << 0)   /* ABI 4 */
#define CS_NET_CONNECT_TCP (1ULL << 1)
#define CS_SCOPE_ABSTRACT_UNIX_SOCKET (1ULL << 0) /* ABI 6 */
#define CS_SCOPE_SIGNAL (1ULL << 1)

struct cs_landlock_ruleset_attr {
    uint64_t handled_access_fs;
    uint64_t handled_access_net;
    uint64_t scoped;
};

struct cs_landlock_path_beneath_attr {
    uint64_t allowed_access;
    int32_t parent_fd;
} __attribute__((packed));

int cspawn_landlock_abi(void) {
    long abi = syscall(CS_NR_landlock_create_ruleset, NULL, 0, CS_LANDLOCK_CREATE_RULESET_VERSION);
    return abi < 0 ? 0 : (int)abi;
}

void cspawn_landlock_handled(int abi, uint64_t *fs, uint64_t *net, uint64_t *scoped) {
    *fs = *net = *scoped = 0;
    if (abi < 1) return;
    *fs = CS_FS_ABI1;
    if (abi >= 2) *fs |= CS_FS_REFER;
    if (abi >= 3) *fs |= CS_FS_TRUNCATE;
    if (abi >= 4) *net = CS_NET_BIND_TCP | CS_NET_CONNECT_TCP;
    if (abi >= 5) *fs |= CS_FS_IOCTL_DEV;
    if (abi >= 6) *scoped = CS_SCOPE_ABSTRACT_UNIX_SOCKET | CS_SCOPE_SIGNAL;
}

/* Read-only filesystem, no TCP, scoped abstract unix sockets and signals: as much of it as the
 * kernel's ABI knows. Returns 0 (also when the kernel has no Landlock) or an errno. */
static int apply_landlock(int writable_dir_fd) {
    int abi = cspawn_landlock_abi();
    if (abi <= 0) return 0; /* documented degradation: no Landlock in this kernel */
    struct cs_landlock_ruleset_attr attr = {0};
    cspawn_landlock_handled(abi, &attr.handled_access_fs, &attr.handled_access_net, &attr.scoped);
    int ruleset = (int)syscall(CS_NR_landlock_create_ruleset, &attr, sizeof attr, 0);
    if (ruleset < 0) return errno;
    int e = 0;
    int root = open("/", O_PATH | O_CLOEXEC);
    if (root < 0) {
        e = errno;
    } else {
        struct cs_landlock_path_beneath_attr rule = {
            .allowed_access = CS_FS_READ_FILE | CS_FS_READ_DIR | CS_FS_EXECUTE,
            .parent_fd = root,
        };
        if (syscall(CS_NR_landlock_add_rule, ruleset, CS_LANDLOCK_RULE_PATH_BENEATH, &rule, 0) < 0) e = errno;
        close(root);
    }
    if (e == 0 && writable_dir_fd >= 0) {
        /* The one directory this child may write in (a trainer's private output directory): create,
         * write, truncate, rename within and remove regular files (vw writes `<file>.writing`, then
         * renames it), nothing else: no subdirectory, link, device, fifo or socket. */
        int dir = writable_dir_fd;
        {
            struct cs_landlock_path_beneath_attr rule = {
                .allowed_access = CS_FS_READ_FILE | CS_FS_READ_DIR | CS_FS_WRITE_FILE | CS_FS_REMOVE_FILE |
                    CS_FS_MAKE_REG | (abi >= 3 ? CS_FS_TRUNCATE : 0),
                .parent_fd = dir,
            };
            if (syscall(CS_NR_landlock_add_rule, ruleset, CS_LANDLOCK_RULE_PATH_BENEATH, &rule, 0) < 0) e = errno;
        }
    }
    if (e == 0 && syscall(CS_NR_landlock_restrict_self, ruleset, 0) < 0) e = errno;
    close(ruleset);
    return e;
}

#if defined(__x86_64__)
#define CS_AUDIT_ARCH AUDIT_ARCH_X86_64
#define CS_X32_SYSCALL_BIT 0x40000000U
#elif defined(__aarch64__)
#define CS_AUDIT_ARCH AUDIT_ARCH_AARCH64
#else
#error "CSpawn's seccomp filter knows x86_64 and aarch64 only"
#endif

#define CS_REFUSE(nr, err) \
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 1), \
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ((err) & SECCOMP_RET_DATA))

/* Refuses sockets of every family (vw talks over inherited pipes only) and a few calls vw never
 * makes and an attacker would want. A syscall of a foreign ABI (i386 `int 0x80`, x32) kills the
 * process: vw never makes one, and the numbers below would not match it. */
static int apply_seccomp(void) {
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, CS_AUDIT_ARCH, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
#ifdef CS_X32_SYSCALL_BIT
        BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, CS_X32_SYSCALL_BIT, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
#endif
        CS_REFUSE(__NR_socket, EACCES),
        CS_REFUSE(__NR_socketpair, EACCES),
        CS_REFUSE(__NR_ptrace, EPERM),
        CS_REFUSE(__NR_process_vm_writev, EPERM),
        CS_REFUSE(__NR_bpf, EPERM),
        CS_REFUSE(__NR_mount, EPERM),
        CS_REFUSE(__NR_umount2, EPERM),
        CS_REFUSE(__NR_pivot_root, EPERM),
        CS_REFUSE(__NR_unshare, EPERM),
        CS_REFUSE(__NR_setns, EPERM),
        CS_REFUSE(428 /* open_tree */, EPERM),
        CS_REFUSE(429 /* move_mount */, EPERM),
        CS_REFUSE(430 /* fsopen */, EPERM),
        CS_REFUSE(432 /* fsmount */, EPERM),
        CS_REFUSE(433 /* fspick */, EPERM),
        CS_REFUSE(442 /* mount_setattr */, EPERM),
        /* io_uring can create sockets (IORING_OP_SOCKET) without the socket syscall. */
        CS_REFUSE(425 /* io_uring_setup */, EPERM),
        CS_REFUSE(426 /* io_uring_enter */, EPERM),
        CS_REFUSE(427 /* io_uring_register */, EPERM),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog program = {.len = (unsigned short)(sizeof filter / sizeof filter[0]), .filter = filter};
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program, 0, 0) != 0) return errno;
    return 0;
}

static int seccomp_available(void) {
    /* A NULL program: EFAULT where seccomp filters exist, EINVAL where they do not. */
    return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, NULL, 0, 0) != 0 && errno == EFAULT;
}

int cspawn_sandbox_mode(void) {
    if (!seccomp_available()) return CSPAWN_SANDBOX_NONE;
    return cspawn_landlock_abi() > 0 ? CSPAWN_SANDBOX_LANDLOCK_SECCOMP : CSPAWN_SANDBOX_SECCOMP;
}

/* Everything the child gives up before exec; 0 or the errno of the step that failed. */
static int apply_sandbox(unsigned long long memory_limit, int writable_dir_fd, unsigned long long file_size_limit) {
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return errno;
    struct rlimit zero = {0, 0};
    struct rlimit file_size = {(rlim_t)file_size_limit, (rlim_t)file_size_limit};
    if (setrlimit(RLIMIT_FSIZE, writable_dir_fd >= 0 ? &file_size : &zero) != 0 || setrlimit(RLIMIT_CORE, &zero) != 0) return errno;
    if (memory_limit > 0) {
        struct rlimit memory = {(rlim_t)memory_limit, (rlim_t)memory_limit};
        if (setrlimit(RLIMIT_AS, &memory) != 0) return errno;
    }
    int e = apply_landlock(writable_dir_fd);
    if (e != 0) return e;
    return apply_seccomp();
}

pid_t cspawn_piped(char *const argv[], unsigned long long memory_limit, int writable_dir_fd,
                   unsigned long long file_size_limit, int *stdin_fd, int *stdout_fd, int *stderr_fd) {
    int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1}, status[2] = {-1, -1};
    if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC) || pipe2(status, O_CLOEXEC)) {
        int saved = errno;
        close_pair(in); close_pair(out); close_pair(err); close_pair(status);
        errno = saved;
        return -1;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        int saved = errno;
        close_pair(in); close_pair(out); close_pair(err); close_pair(status);
        errno = saved;
        return -1;
    }
    if (pid == 0) {
        /* Only async-signal-safe calls from here on. */
        int e;
        sigset_t all;
        sigemptyset(&all);
        sigprocmask(SIG_SETMASK, &all, NULL);
        signal(SIGPIPE, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(127); /* parent died before prctl */
        setpgid(0, 0);
        if (dup2(in[0], 0) < 0 || dup2(out[1], 1) < 0 || dup2(err[1], 2) < 0) {
            e = errno;
            goto report;
        }
        /* Close everything else (listening sockets, other shards' pipes) except the status pipe and the
         * writable directory's descriptor (closed at exec: it is O_CLOEXEC, and Landlock holds its own reference). */
        int keep = status[1];
        int low = writable_dir_fd >= 3 && writable_dir_fd < keep ? writable_dir_fd : keep;
        int high = writable_dir_fd >= 3 && writable_dir_fd > keep ? writable_dir_fd : keep;
        int closed = 0;
#ifdef SYS_close_range
        closed = (low <= 3 || syscall(SYS_close_range, 3, low - 1, 0) == 0) &&
            (high <= low + 1 || syscall(SYS_close_range, low + 1, high - 1, 0) == 0) &&
            syscall(SYS_close_range, high + 1, ~0U, 0) == 0;
#endif
        if (!closed) {
            int maxfd = (int)sysconf(_SC_OPEN_MAX);
            if (maxfd < 0 || maxfd > 65536) maxfd = 65536;
            for (int fd = 3; fd < maxfd; fd++) {
                if (fd != low && fd != high) close(fd);
            }
        }
        /* Never exec unsandboxed: a step that fails is reported like a failed exec. */
        e = apply_sandbox(memory_limit, writable_dir_fd, file_size_limit);
        if (e == 0) {
            execvp(argv[0], argv);
            e = errno;
        }
    report:;
        ssize_t ignored = write(status[1], &e, sizeof e);
        (void)ignored;
        _exit(127);
    }
    close(in[0]); close(out[1]); close(err[1]); close(status[1]);
    int child_errno = 0;
    ssize_t n;
    do { n = read(status[0], &child_errno, sizeof child_errno); } while (n < 0 && errno == EINTR);
    close(status[0]);
    if (n == (ssize_t)sizeof child_errno) {
        close(in[1]); close(out[0]); close(err[0]);
        int st;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
        errno = child_errno;
        return -1;
    }
    *stdin_fd = in[1];
    *stdout_fd = out[0];
    *stderr_fd = err[0];
    return pid;
}

#include <malloc.h>
#include <pthread.h>

struct cspawn_thread_start {
    char name[16];
    void *(*body)(void *);
    void *argument;
};

static void *cspawn_thread_main(void *raw) {
    struct cspawn_thread_start start = *(struct cspawn_thread_start *)raw;
    free(raw);
    pthread_setname_np(pthread_self(), start.name);
    return start.body(start.argument);
}

int cspawn_thread(const char *name, size_t stack_size, void *(*body)(void *), void *argument) {
    struct cspawn_thread_start *start = malloc(sizeof *start);
    if (!start) return ENOMEM;
    strncpy(start->name, name, sizeof start->name - 1);
    start->name[sizeof start->name - 1] = 0;
    start->body = body;
    start->argument = argument;
    pthread_attr_t attributes;
    pthread_attr_init(&attributes);
    pthread_attr_setdetachstate(&attributes, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attributes, stack_size);
    pthread_t thread;
    int rc = pthread_create(&thread, &attributes, cspawn_thread_main, start);
    pthread_attr_destroy(&attributes);
    if (rc != 0) free(start);
    return rc;
}

int cspawn_limit_malloc_arenas(int arenas) {
    return mallopt(M_ARENA_MAX, arenas);
}

int cspawn_trim_malloc(void) {
    return malloc_trim(0);
}

size_t cspawn_heap_bytes_in_use(void) {
    struct mallinfo2 info = mallinfo2();
    return info.uordblks + info.hblkhd;
}

// The first integer in file `path`, or 0 when it has none (or cannot be read).
static long long cspawn_read_integer(const char *path) {
    long long value = 0;
    FILE *file = fopen(path, "re");
    if (!file) return 0;
    if (fscanf(file, "%lld", &value) != 1) value = 0;
    fclose(file);
    return value;
}

int cspawn_cpus_available(void) {
    cpu_set_t set;
    int count = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 1;
    long long limit = 0, period = 0;
    FILE *quota = fopen("/sys/fs/cgroup/cpu.max", "re");
    if (quota) {
        // cgroup v2. "max 100000" (no quota) fails the first conversion and leaves the count alone.
        if (fscanf(quota, "%lld %lld", &limit, &period) != 2) limit = period = 0;
        fclose(quota);
    } else {
        // cgroup v1 (older nodes): the cpu controller's own mount, under either of its usual names; -1 is no quota.
        static const char *const directories[] = {"/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct"};
        for (size_t i = 0; i < sizeof directories / sizeof directories[0] && limit == 0; i++) {
            char path[64];
            snprintf(path, sizeof path, "%s/cpu.cfs_quota_us", directories[i]);
            limit = cspawn_read_integer(path);
            snprintf(path, sizeof path, "%s/cpu.cfs_period_us", directories[i]);
            period = cspawn_read_integer(path);
        }
    }
    if (limit > 0 && period > 0) {
        long long cpus = (limit + period - 1) / period;
        if (cpus < count) count = (int)cpus;
    }
    return count > 0 ? count : 1;
}

long cspawn_open_files_limit(void) {
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return -1;
    return limit.rlim_cur > (rlim_t)1 << 30 ? 1L << 30 : (long)limit.rlim_cur;
}

int cspawn_poll_create(void) {
    return epoll_create1(EPOLL_CLOEXEC);
}

int cspawn_poll_arm(int poll, int fd, uint64_t token, int adding) {
    struct epoll_event event = {.events = EPOLLIN | EPOLLONESHOT, .data = {.u64 = token}};
    return epoll_ctl(poll, adding ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, fd, &event);
}

int cspawn_poll_wait(int poll, uint64_t *token) {
    struct epoll_event event;
    int count = epoll_wait(poll, &event, 1, -1);
    if (count == 1) *token = event.data.u64;
    return count == 1 ? 1 : -1;
}

int cspawn_accept(int listener) {
    return accept4(listener, NULL, NULL, SOCK_CLOEXEC);
}
