#ifndef CSPAWN_H
#define CSPAWN_H
#include <stddef.h>
#include <sys/types.h>

/// Starts `argv[0]` (searched in PATH) with its stdin, stdout and stderr on fresh pipes.
///
/// The child gets SIGKILL when the calling thread's process dies (PR_SET_PDEATHSIG), runs in a
/// process group of its own (so a signal to the server's group does not reach it before the
/// server has drained) and inherits no other descriptor. The parent's ends are O_CLOEXEC.
/// Returns the child's pid, or -1 with errno set.
pid_t cspawn_piped(char *const argv[], int *stdin_fd, int *stdout_fd, int *stderr_fd);



/// Starts `body(argument)` on a detached thread named `name` (first 15 bytes) with `stack_size` bytes of stack; returns 0 or an errno.
int cspawn_thread(const char *name, size_t stack_size, void *(*body)(void *), void *argument);

/// Caps glibc's malloc arenas (mallopt M_ARENA_MAX); returns 1 on success.
int cspawn_limit_malloc_arenas(int arenas);

#endif
