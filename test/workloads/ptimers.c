/*
 * ptimers: POSIX timers of every notification kind, which must fire after restore
 * as before, at the same ids, with the same values and to the same threads.
 *
 *   ptimers
 *
 * Timers, created in this order (id 1 is deleted, so the ids have a gap):
 *   A  CLOCK_MONOTONIC, SIGEV_SIGNAL SIGRTMIN+1, sival 0xa11ce, every 20 ms
 *   -  a timer deleted at once
 *   B  CLOCK_REALTIME, SIGEV_THREAD_ID to the worker, SIGRTMIN+2, sival 0xb0b, every 30 ms
 *   C  CLOCK_BOOTTIME, SIGEV_NONE, one shot in 1000 s
 *   D  CLOCK_MONOTONIC, SIGEV_THREAD (glibc's helper thread), every 40 ms
 *   E  CLOCK_PROCESS_CPUTIME_ID, SIGEV_SIGNAL SIGRTMIN+3, unarmed
 *
 * Prints "ready pid=P worker=TID" and then every 50 ms
 *   tick a=N b=N d=N bad=N left=S
 * a/b/d: firings of A, B (on the worker only) and D; bad: deliveries with a wrong
 * sival, timer id or thread; left: seconds until C expires (timer_gettime).
 * A problem with the timers' own state after restore would show in bad or left.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static volatile int a_n, b_n, d_n, bad;
static timer_t ta, tb, tc, td, te;
static pid_t worker_tid;

static void on_a(int sig, siginfo_t *si, void *uc) {
  (void)sig; (void)uc;
  if (si->si_value.sival_ptr != (void *)0xa11ce || si->si_code != SI_TIMER || si->si_timerid != (int)(long)ta) bad++;
  else a_n++;
}

static void on_b(int sig, siginfo_t *si, void *uc) {
  (void)sig; (void)uc;
  if (si->si_value.sival_ptr != (void *)0xb0b || syscall(SYS_gettid) != worker_tid || si->si_timerid != (int)(long)tb) bad++;
  else b_n++;
}

static void on_d(union sigval v) {
  if (v.sival_int != 0xd) bad++;
  else d_n++;
}

static void *worker(void *arg) {
  (void)arg;
  worker_tid = syscall(SYS_gettid);
  for (;;) pause();
  return NULL;
}

static void mk(clockid_t clk, struct sigevent *ev, timer_t *t, long first_ms, long every_ms) {
  if (timer_create(clk, ev, t)) { perror("timer_create"); exit(1); }
  struct itimerspec its = {
    .it_interval = { every_ms / 1000, (every_ms % 1000) * 1000000 },
    .it_value = { first_ms / 1000, (first_ms % 1000) * 1000000 },
  };
  if (timer_settime(*t, 0, &its, NULL)) { perror("timer_settime"); exit(1); }
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  struct sigaction sa = { .sa_sigaction = on_a, .sa_flags = SA_SIGINFO | SA_RESTART };
  sigaction(SIGRTMIN + 1, &sa, NULL);
  sa.sa_sigaction = on_b;
  sigaction(SIGRTMIN + 2, &sa, NULL);
  sigset_t m;
  sigemptyset(&m);
  sigaddset(&m, SIGRTMIN + 2);
  pthread_t w;
  pthread_create(&w, NULL, worker, NULL);
  while (!worker_tid) usleep(1000);
  pthread_sigmask(SIG_BLOCK, &m, NULL); /* B's signal can only go to the worker */

  struct sigevent ev = { .sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGRTMIN + 1 };
  ev.sigev_value.sival_ptr = (void *)0xa11ce;
  mk(CLOCK_MONOTONIC, &ev, &ta, 20, 20);
  timer_t gone;
  mk(CLOCK_MONOTONIC, &ev, &gone, 0, 0);
  timer_delete(gone);
  ev.sigev_notify = SIGEV_THREAD_ID;
  ev.sigev_signo = SIGRTMIN + 2;
  ev.sigev_value.sival_ptr = (void *)0xb0b;
  ev._sigev_un._tid = worker_tid;
  mk(CLOCK_REALTIME, &ev, &tb, 30, 30);
  memset(&ev, 0, sizeof ev);
  ev.sigev_notify = SIGEV_NONE;
  mk(CLOCK_BOOTTIME, &ev, &tc, 1000000, 0);
  memset(&ev, 0, sizeof ev);
  ev.sigev_notify = SIGEV_THREAD;
  ev.sigev_notify_function = on_d;
  ev.sigev_value.sival_int = 0xd;
  mk(CLOCK_MONOTONIC, &ev, &td, 40, 40);
  memset(&ev, 0, sizeof ev);
  ev.sigev_notify = SIGEV_SIGNAL;
  ev.sigev_signo = SIGRTMIN + 3;
  if (timer_create(CLOCK_PROCESS_CPUTIME_ID, &ev, &te)) { perror("timer_create"); return 1; }

  printf("ready pid=%d worker=%d\n", getpid(), worker_tid);
  for (;;) {
    struct timespec ts = { 0, 50000000 };
    while (nanosleep(&ts, &ts)) {}
    struct itimerspec its;
    timer_gettime(tc, &its);
    struct itimerspec ite;
    timer_gettime(te, &ite);
    if (ite.it_value.tv_sec || ite.it_value.tv_nsec) bad++;
    printf("tick a=%d b=%d d=%d bad=%d left=%ld\n", a_n, b_n, d_n, bad, (long)its.it_value.tv_sec);
  }
}
