/* step-trace: runs a program under ptrace, one instruction at a time, and writes every
 * distinct address it executes inside its own executable, as offsets from the executable's
 * load address, in the order first executed (one hexadecimal offset per line).
 *
 * usage: step-trace OUT -- PROGRAM [ARG...]
 *
 * Used by scripts/hot-text to find which code of the static C library a run of cw-exec
 * executes: the C library is not built with a section per function, so the uprobes the
 * script puts on cw-exec's own functions cannot order it, and a probe on each of its
 * functions would fire on every memcpy. The process it starts is followed, and every
 * process and thread it clones until that one execs another program (cw-exec's init, and
 * the command's process up to its execve); their addresses are counted together.
 * Exits with the program's status. Not part of cw-exec: a development tool, built by the
 * script that uses it. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#define SLOTS (1u << 22) /* open addressing; far more than a run executes */

static uint64_t *seen;
static uint64_t *order;
static size_t order_len;

static void remember(uint64_t offset) {
    uint64_t key = offset + 1; /* 0 marks an empty slot */
    size_t i = (size_t)((key * 0x9E3779B97F4A7C15ull) >> 42) & (SLOTS - 1);
    while (seen[i] != 0) {
        if (seen[i] == key)
            return;
        i = (i + 1) & (SLOTS - 1);
    }
    if (order_len == SLOTS / 2) {
        fprintf(stderr, "step-trace: more distinct addresses than it can hold\n");
        exit(125);
    }
    seen[i] = key;
    order[order_len++] = offset;
}

/* The executable's lowest mapping (file offset 0) and its highest end. */
static int executable_range(pid_t pid, uint64_t *lo, uint64_t *hi) {
    char path[64], exe[4096], line[8192];
    snprintf(path, sizeof path, "/proc/%d/exe", pid);
    ssize_t n = readlink(path, exe, sizeof exe - 1);
    if (n < 0)
        return -1;
    exe[n] = 0;
    snprintf(path, sizeof path, "/proc/%d/maps", pid);
    FILE *maps = fopen(path, "r");
    if (!maps)
        return -1;
    *lo = UINT64_MAX;
    *hi = 0;
    while (fgets(line, sizeof line, maps)) {
        unsigned long long start, end;
        char name[4096] = "";
        if (sscanf(line, "%llx-%llx %*s %*s %*s %*s %4095s", &start, &end, name) < 2)
            continue;
        if (strcmp(name, exe) != 0)
            continue;
        if (start < *lo)
            *lo = start;
        if (end > *hi)
            *hi = end;
    }
    fclose(maps);
    return *lo < *hi ? 0 : -1;
}

int main(int argc, char **argv) {
    if (argc < 4 || strcmp(argv[2], "--") != 0) {
        fprintf(stderr, "usage: step-trace OUT -- PROGRAM [ARG...]\n");
        return 125;
    }
    seen = calloc(SLOTS, sizeof *seen);
    order = calloc(SLOTS / 2, sizeof *order);
    if (!seen || !order) {
        perror("step-trace: calloc");
        return 125;
    }
    pid_t pid = fork();
    if (pid < 0) {
        perror("step-trace: fork");
        return 125;
    }
    if (pid == 0) {
        /* The same layout every run: the offsets are what matters, but a fixed base
           keeps a trace comparable by eye. */
        personality(ADDR_NO_RANDOMIZE);
        if (ptrace(PTRACE_TRACEME, 0, 0, 0) != 0) {
            perror("step-trace: PTRACE_TRACEME");
            _exit(125);
        }
        execv(argv[3], argv + 3);
        perror("step-trace: execv");
        _exit(127);
    }
    int status;
    if (waitpid(pid, &status, 0) != pid || !WIFSTOPPED(status)) {
        fprintf(stderr, "step-trace: %s did not start\n", argv[3]);
        return 125;
    }
    uint64_t lo, hi;
    if (executable_range(pid, &lo, &hi) != 0) {
        fprintf(stderr, "step-trace: cannot find the executable's mapping\n");
        kill(pid, SIGKILL);
        return 125;
    }
    /* Every process or thread it makes is traced from its first instruction (it starts in
       a SIGSTOP stop, which is not delivered); a tracee that execs is let go; the tracer's
       death kills them all. */
    long options = PTRACE_O_TRACECLONE | PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK |
                   PTRACE_O_TRACEEXEC | PTRACE_O_EXITKILL;
    if (ptrace(PTRACE_SETOPTIONS, pid, 0, (void *)options) != 0) {
        perror("step-trace: PTRACE_SETOPTIONS");
        kill(pid, SIGKILL);
        return 125;
    }
    int main_status = 0;
    pid_t stepped = pid;
    int deliver = 0;
    for (;;) {
        if (stepped > 0 &&
            ptrace(PTRACE_SINGLESTEP, stepped, 0, (void *)(intptr_t)deliver) != 0 &&
            errno != ESRCH) {
            perror("step-trace: PTRACE_SINGLESTEP");
            return 125;
        }
        pid_t who = waitpid(-1, &status, __WALL);
        if (who < 0) {
            if (errno == ECHILD)
                break;
            if (errno == EINTR)
                continue;
            perror("step-trace: waitpid");
            return 125;
        }
        stepped = 0;
        deliver = 0;
        if (WIFEXITED(status) || WIFSIGNALED(status)) {
            if (who == pid)
                main_status = status;
            continue;
        }
        if (!WIFSTOPPED(status))
            continue;
        int sig = WSTOPSIG(status);
        int event = status >> 16;
        if (sig == SIGTRAP && event == PTRACE_EVENT_EXEC) {
            ptrace(PTRACE_DETACH, who, 0, 0);
            continue;
        }
        stepped = who;
        if (sig == SIGTRAP && event != 0)
            continue; /* a clone, fork or vfork: the parent goes on stepping */
        if (sig == SIGSTOP || event == PTRACE_EVENT_STOP)
            continue; /* a new tracee's first stop (or a group stop): not delivered */
        if (sig != SIGTRAP) {
            deliver = sig;
            continue;
        }
        struct user_regs_struct regs;
        if (ptrace(PTRACE_GETREGS, who, 0, &regs) != 0)
            continue;
        if (regs.rip >= lo && regs.rip < hi)
            remember(regs.rip - lo);
    }
    status = main_status;
    FILE *out = fopen(argv[1], "w");
    if (!out) {
        perror(argv[1]);
        return 125;
    }
    for (size_t i = 0; i < order_len; i++)
        fprintf(out, "%llx\n", (unsigned long long)order[i]);
    if (fclose(out) != 0) {
        perror(argv[1]);
        return 125;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
