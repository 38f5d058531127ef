// landlock-seccomp: the smallest wrapper that confines a command with Landlock and seccomp,
// as a peer in scripts/bench (what a process-level sandbox without namespaces costs).
//
//   landlock-seccomp [-r DIR]... [-w DIR]... -- COMMAND [ARGS...]
//
// What it does, in order, then execve(COMMAND) with the caller's environment:
//   1. a Landlock ruleset handling every filesystem right of this kernel's ABI (and, from ABI 4,
//      TCP bind/connect with no rule: no TCP at all; from ABI 6, abstract-socket and signal
//      scoping), with rules: "/" read-only (read, list, execute), each -r DIR read-only, each
//      -w DIR every handled filesystem right, /dev/null read and write;
//   2. no_new_privs;
//   3. a small seccomp deny filter: another architecture is killed, x32 calls and a list of
//      host-facing calls (mount, ptrace, bpf, kexec, modules, keyrings, namespaces, ...) fail with
//      EPERM, everything else is allowed;
//   4. landlock_restrict_self, then execve.
// Exits 125 with a message naming the step when any of these fails (for example on a kernel
// without Landlock): it never runs the command less confined than described.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

extern char **environ;

// Landlock UAPI, spelled out here so that older kernel headers still build this file.
#define LL_CREATE_RULESET_VERSION (1U << 0)
#define LL_RULE_PATH_BENEATH 1
#define LL_FS_EXECUTE (1ULL << 0)
#define LL_FS_WRITE_FILE (1ULL << 1)
#define LL_FS_READ_FILE (1ULL << 2)
#define LL_FS_READ_DIR (1ULL << 3)
#define LL_NET_BIND_TCP (1ULL << 0)
#define LL_NET_CONNECT_TCP (1ULL << 1)
#define LL_SCOPE_ABSTRACT_UNIX_SOCKET (1ULL << 0)
#define LL_SCOPE_SIGNAL (1ULL << 1)

struct ll_ruleset_attr {
    uint64_t handled_access_fs;
    uint64_t handled_access_net;
    uint64_t scoped;
};

struct ll_path_beneath_attr {
    uint64_t allowed_access;
    int32_t parent_fd;
} __attribute__((packed));

#ifndef SYS_landlock_create_ruleset
#define SYS_landlock_create_ruleset 444
#define SYS_landlock_add_rule 445
#define SYS_landlock_restrict_self 446
#endif

#if defined(__x86_64__)
#define THIS_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define THIS_ARCH AUDIT_ARCH_AARCH64
#else
#error "landlock-seccomp: add this architecture's AUDIT_ARCH_ value"
#endif

static void fail(const char *step, const char *what) {
    fprintf(stderr, "landlock-seccomp: %s%s%s: %s\n", step, what ? " " : "", what ? what : "", strerror(errno));
    exit(125);
}

// Filesystem rights handled at each Landlock ABI: 1 has bits 0-12, 2 adds REFER (13),
// 3 TRUNCATE (14), 5 IOCTL_DEV (15).
static uint64_t fs_rights(int abi) {
    uint64_t all = (1ULL << 13) - 1;
    if (abi >= 2) all |= 1ULL << 13;
    if (abi >= 3) all |= 1ULL << 14;
    if (abi >= 5) all |= 1ULL << 15;
    return all;
}

static void add_rule(int ruleset, const char *path, uint64_t access) {
    struct ll_path_beneath_attr rule = {.allowed_access = access};
    rule.parent_fd = open(path, O_PATH | O_CLOEXEC);
    if (rule.parent_fd < 0) fail("open", path);
    if (syscall(SYS_landlock_add_rule, ruleset, LL_RULE_PATH_BENEATH, &rule, 0) != 0) fail("landlock_add_rule", path);
    close(rule.parent_fd);
}

// Calls that reach the host or the kernel's configuration; a sandboxed command needs none.
static const int denied[] = {
    SYS_mount, SYS_umount2, SYS_pivot_root, SYS_chroot, SYS_ptrace, SYS_process_vm_readv,
    SYS_process_vm_writev, SYS_kcmp, SYS_bpf, SYS_perf_event_open, SYS_userfaultfd,
    SYS_kexec_load, SYS_kexec_file_load, SYS_init_module, SYS_finit_module, SYS_delete_module,
    SYS_add_key, SYS_request_key, SYS_keyctl, SYS_unshare, SYS_setns, SYS_swapon, SYS_swapoff,
    SYS_reboot, SYS_acct, SYS_quotactl, SYS_open_by_handle_at, SYS_name_to_handle_at,
    SYS_settimeofday, SYS_clock_settime, SYS_adjtimex, SYS_clock_adjtime, SYS_syslog,
    SYS_fsopen, SYS_fsmount, SYS_fsconfig, SYS_move_mount, SYS_open_tree, SYS_mount_setattr,
    SYS_io_uring_setup, SYS_personality,
#if defined(__x86_64__)
    SYS_iopl, SYS_ioperm, SYS_uselib, SYS_sysfs,
#endif
};
#define NDENIED (sizeof denied / sizeof denied[0])

static void install_seccomp(void) {
    // arch check, x32 check, one comparison per denied call, allow.
    struct sock_filter prog[5 + 2 * NDENIED + 1];
    size_t n = 0;
    prog[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
    prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, THIS_ARCH, 1, 0);
    prog[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
    prog[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
#if defined(__x86_64__)
    // x32 system calls (bit 30) fail: the comparisons below name x86-64 numbers only. jt=1
    // skips the first comparison and lands on its EPERM return.
    prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000, 1, 0);
#else
    prog[n++] = (struct sock_filter)BPF_STMT(BPF_JMP | BPF_JA, 0);
#endif
    for (size_t i = 0; i < NDENIED; i++) {
        prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)denied[i], 0, 1);
        prog[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM);
    }
    prog[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    struct sock_fprog fprog = {.len = (unsigned short)n, .filter = prog};
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fprog) != 0) fail("seccomp", NULL);
}

int main(int argc, char **argv) {
    const char *ro[64], *rw[64];
    int nro = 0, nrw = 0, i = 1;
    for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
        if ((strcmp(argv[i], "-r") == 0 || strcmp(argv[i], "-w") == 0) && i + 1 < argc) {
            if (argv[i][1] == 'r' && nro < 64) ro[nro++] = argv[++i];
            else if (argv[i][1] == 'w' && nrw < 64) rw[nrw++] = argv[++i];
            else { fprintf(stderr, "landlock-seccomp: at most 64 -r and 64 -w\n"); return 125; }
        } else {
            fprintf(stderr, "usage: landlock-seccomp [-r DIR]... [-w DIR]... -- COMMAND [ARGS...]\n");
            return 125;
        }
    }
    if (i + 1 >= argc) {
        fprintf(stderr, "usage: landlock-seccomp [-r DIR]... [-w DIR]... -- COMMAND [ARGS...]\n");
        return 125;
    }
    char **cmd = argv + i + 1;

    int abi = (int)syscall(SYS_landlock_create_ruleset, NULL, 0, LL_CREATE_RULESET_VERSION);
    if (abi < 1) fail("landlock_create_ruleset", "(ABI version)");
    struct ll_ruleset_attr attr = {.handled_access_fs = fs_rights(abi)};
    size_t attr_size = offsetof(struct ll_ruleset_attr, handled_access_net);
    if (abi >= 4) {
        attr.handled_access_net = LL_NET_BIND_TCP | LL_NET_CONNECT_TCP;
        attr_size = offsetof(struct ll_ruleset_attr, scoped);
    }
    if (abi >= 6) {
        attr.scoped = LL_SCOPE_ABSTRACT_UNIX_SOCKET | LL_SCOPE_SIGNAL;
        attr_size = sizeof attr;
    }
    int ruleset = (int)syscall(SYS_landlock_create_ruleset, &attr, attr_size, 0);
    if (ruleset < 0) fail("landlock_create_ruleset", NULL);
    uint64_t read = LL_FS_READ_FILE | LL_FS_READ_DIR | LL_FS_EXECUTE;
    add_rule(ruleset, "/", read);
    add_rule(ruleset, "/dev/null", LL_FS_READ_FILE | LL_FS_WRITE_FILE);
    for (int k = 0; k < nro; k++) add_rule(ruleset, ro[k], read);
    for (int k = 0; k < nrw; k++) add_rule(ruleset, rw[k], fs_rights(abi));

    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) fail("prctl", "(no_new_privs)");
    install_seccomp();
    if (syscall(SYS_landlock_restrict_self, ruleset, 0) != 0) fail("landlock_restrict_self", NULL);
    close(ruleset);
    execve(cmd[0], cmd, environ);
    fail("execve", cmd[0]);
}
