// interleave: scripts/bench's runner. Every command runs once per round, in a freshly shuffled
// order each round, so that a machine whose speed drifts (other jobs starting and stopping)
// shifts every command alike; sequential blocks per command (hyperfine) drift apart instead.
//
//   interleave spawn SEED ROUNDS WARMUP SPEC OUT.csv
//       one run of each command per round, timed from posix_spawn to its wait4
//       CSV rows: round,name,seconds,status
//   interleave batch SEED ROUNDS WARMUP CONCURRENCY RUNS SPEC OUT.csv
//       per round and command: RUNS runs with CONCURRENCY of them in flight at once, timed from
//       the first spawn to the last reap, and the machine's CPU time over the same span (all
//       CPUs, from /proc/stat: busy = user+nice+system+irq+softirq+steal, idle = idle+iowait;
//       whatever else ran meanwhile is counted too, so run it on an otherwise quiet machine)
//       CSV rows: round,name,seconds,runs,failures,cpu_busy_seconds,cpu_idle_seconds
//
// SPEC is a file with one command per line: NAME, then the program (an absolute path) and
// its arguments, separated by tabs; no shell is involved. Every command gets /dev/null as
// stdin, stdout and stderr (a command that needs a pipe runs through /bin/sh -c). The warmup
// rounds run the same way and are not written. "status" is wait4's raw status (0: exit 0).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

struct command {
    char *name;
    char **argv;
};

static void die(const char *what) {
    fprintf(stderr, "interleave: %s: %s\n", what, strerror(errno));
    exit(2);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

// xorshift64*: a seeded, reproducible shuffle.
static uint64_t rng_state;
static uint64_t rng(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1DULL;
}

static void shuffle(int *order, int n) {
    for (int i = 0; i < n; i++) order[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(rng() % (uint64_t)(i + 1));
        int t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
}

static struct command *read_spec(const char *path, int *count) {
    FILE *f = fopen(path, "r");
    if (!f) die(path);
    struct command *cmds = NULL;
    int n = 0;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, f)) > 0) {
        if (line[len - 1] == '\n') line[--len] = 0;
        if (len == 0) continue;
        cmds = realloc(cmds, (size_t)(n + 1) * sizeof *cmds);
        char **fields = NULL;
        int k = 0;
        char *s = strdup(line), *save = s;
        for (char *tok; (tok = strsep(&save, "\t")) != NULL;) {
            fields = realloc(fields, (size_t)(k + 2) * sizeof *fields);
            fields[k++] = tok;
        }
        if (!cmds || !fields || k < 2) {
            fprintf(stderr, "interleave: %s: line %d: want NAME<TAB>PROGRAM[<TAB>ARG...]\n", path, n + 1);
            exit(2);
        }
        fields[k] = NULL;
        cmds[n].name = fields[0];
        cmds[n].argv = fields + 1;
        n++;
    }
    free(line);
    fclose(f);
    if (n == 0) {
        fprintf(stderr, "interleave: %s: no commands\n", path);
        exit(2);
    }
    *count = n;
    return cmds;
}

static posix_spawn_file_actions_t devnull;

static pid_t start(const struct command *c) {
    pid_t pid;
    int err = posix_spawn(&pid, c->argv[0], &devnull, NULL, c->argv, environ);
    if (err) {
        errno = err;
        die(c->argv[0]);
    }
    return pid;
}

static int reap(pid_t pid) {
    int status;
    while (wait4(pid, &status, 0, NULL) < 0)
        if (errno != EINTR) die("wait4");
    return status;
}

/* The machine's CPU time so far, all CPUs, in seconds: busy and idle (see the header). */
static void cpu_times(double *busy, double *idle) {
    unsigned long long v[8] = {0};
    FILE *f = fopen("/proc/stat", "r");
    if (!f) die("/proc/stat");
    if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4],
               &v[5], &v[6], &v[7]) != 8) {
        fprintf(stderr, "interleave: /proc/stat: no cpu line\n");
        exit(1);
    }
    fclose(f);
    double hz = (double)sysconf(_SC_CLK_TCK);
    *busy = (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / hz;
    *idle = (double)(v[3] + v[4]) / hz;
}

int main(int argc, char **argv) {
    int batch = argc == 9 && strcmp(argv[1], "batch") == 0;
    if (!batch && !(argc == 7 && strcmp(argv[1], "spawn") == 0)) {
        fprintf(stderr,
                "usage: interleave spawn SEED ROUNDS WARMUP SPEC OUT.csv\n"
                "       interleave batch SEED ROUNDS WARMUP CONCURRENCY RUNS SPEC OUT.csv\n");
        return 2;
    }
    rng_state = strtoull(argv[2], NULL, 10) | 1;
    int rounds = atoi(argv[3]), warmup = atoi(argv[4]);
    int concurrency = batch ? atoi(argv[5]) : 1, runs = batch ? atoi(argv[6]) : 1;
    const char *spec = argv[batch ? 7 : 5], *out_path = argv[batch ? 8 : 6];
    if (rounds < 1 || warmup < 0 || concurrency < 1 || runs < 1) {
        fprintf(stderr, "interleave: ROUNDS, CONCURRENCY and RUNS must be at least 1, WARMUP at least 0\n");
        return 2;
    }
    int n;
    struct command *cmds = read_spec(spec, &n);
    FILE *out = fopen(out_path, "w");
    if (!out) die(out_path);

    posix_spawn_file_actions_init(&devnull);
    posix_spawn_file_actions_addopen(&devnull, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&devnull, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&devnull, 2, "/dev/null", O_WRONLY, 0);

    int *order = malloc((size_t)n * sizeof *order);
    if (!order) die("malloc");
    for (int round = -warmup; round < rounds; round++) {
        shuffle(order, n);
        for (int i = 0; i < n; i++) {
            const struct command *c = &cmds[order[i]];
            if (!batch) {
                double t0 = now();
                int status = reap(start(c));
                double t = now() - t0;
                if (round >= 0) fprintf(out, "%d,%s,%.9f,%d\n", round, c->name, t, status);
                continue;
            }
            int started = 0, done = 0, failures = 0;
            double busy0, idle0, busy1, idle1;
            cpu_times(&busy0, &idle0);
            double t0 = now();
            for (; started < concurrency && started < runs; started++) start(c);
            while (done < runs) {
                int status;
                if (wait4(-1, &status, 0, NULL) < 0) {
                    if (errno == EINTR) continue;
                    die("wait4");
                }
                done++;
                if (status != 0) failures++;
                if (started < runs) {
                    start(c);
                    started++;
                }
            }
            double t = now() - t0;
            cpu_times(&busy1, &idle1);
            if (round >= 0)
                fprintf(out, "%d,%s,%.9f,%d,%d,%.2f,%.2f\n", round, c->name, t, runs, failures,
                        busy1 - busy0, idle1 - idle0);
        }
        fflush(out);
    }
    if (fclose(out) != 0) die(out_path);
    return 0;
}
