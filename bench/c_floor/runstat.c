/*
 * runstat.c: runs a command and reports what it cost, for bench/startup.ts:
 * "runstat: wall_us=W cpu_us=C maxrss_kib=R" on stderr after the command's
 * own output, where C is user + system time of the process and all its
 * threads and children (wait4's rusage), at microsecond resolution (GNU
 * time rounds CPU time to 10 ms, too coarse for a 20 ms start-up).
 *
 * Build: gcc -O2 -o runstat runstat.c
 * Usage: runstat COMMAND [ARG...]; exits with the command's status (128 + N
 * for a signal N, 127 if it could not be started).
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: runstat COMMAND [ARG...]\n");
    return 127;
  }
  long long t0 = now_us();
  pid_t pid = fork();
  if (pid < 0) {
    perror("runstat: fork");
    return 127;
  }
  if (pid == 0) {
    execvp(argv[1], argv + 1);
    perror("runstat: exec");
    _exit(127);
  }
  int status;
  struct rusage ru;
  if (wait4(pid, &status, 0, &ru) < 0) {
    perror("runstat: wait4");
    return 127;
  }
  long long wall = now_us() - t0;
  long long cpu = (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000LL + ru.ru_utime.tv_usec +
                  ru.ru_stime.tv_usec;
  fprintf(stderr, "runstat: wall_us=%lld cpu_us=%lld maxrss_kib=%ld\n", wall, cpu, ru.ru_maxrss);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
