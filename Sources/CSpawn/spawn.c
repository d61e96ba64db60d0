#define _GNU_SOURCE
#include "CSpawn.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void close_pair(int p[2]) {
    if (p[0] >= 0) close(p[0]);
    if (p[1] >= 0) close(p[1]);
}

pid_t cspawn_piped(char *const argv[], int *stdin_fd, int *stdout_fd, int *stderr_fd) {
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
        sigset_t all;
        sigemptyset(&all);
        sigprocmask(SIG_SETMASK, &all, NULL);
        signal(SIGPIPE, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(127); /* parent died before prctl */
        setpgid(0, 0);
        if (dup2(in[0], 0) < 0 || dup2(out[1], 1) < 0 || dup2(err[1], 2) < 0) goto fail;
        /* Close everything else (listening sockets, other shards' pipes) except the status pipe. */
        int keep = status[1];
#ifdef SYS_close_range
        if ((keep <= 3 || syscall(SYS_close_range, 3, keep - 1, 0) == 0) &&
            syscall(SYS_close_range, keep + 1, ~0U, 0) == 0) {
            execvp(argv[0], argv);
            goto fail;
        }
#endif
        int maxfd = (int)sysconf(_SC_OPEN_MAX);
        if (maxfd < 0 || maxfd > 65536) maxfd = 65536;
        for (int fd = 3; fd < maxfd; fd++) {
            if (fd != keep) close(fd);
        }
        execvp(argv[0], argv);
    fail:;
        int e = errno;
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
