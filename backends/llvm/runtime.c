/* lwc runtime: a small thread pool behind lwc_parallel_for.
 *
 * Kernels are `void fn(void **args, int64_t lo, int64_t hi)`. lwc_parallel_for publishes a job and
 * hands out [0, n) in chunks from one atomic ticket that holds (job generation << 32 | next item):
 * whoever claims a chunk with a compare-and-swap on a ticket of the current generation runs it.
 * The caller works too, and then waits only for chunks that were claimed and are still running,
 * never for a worker that has not woken up yet: on a machine shared with other processes a
 * descheduled worker simply takes no chunk, instead of stalling every layer by a time slice.
 * Workers spin briefly, then yield, then sleep on a condition variable. They are created on
 * first use; nothing on the run path allocates.
 * Thread count: lwc_set_num_threads(n), else $LWC_NUM_THREADS, else the online CPU count.
 * Calls from several threads at once are safe: a call that finds the pool busy runs serially.
 */
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#define LWC_MAX_THREADS 64
#define SPIN_PAUSE 20000
#define SPIN_YIELD 200

typedef void (*lwc_kernel_fn)(void **args, int64_t lo, int64_t hi);

static struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int nthreads;
  int started;
  int sleepers;     /* workers about to wait or waiting on cv */
  int active;       /* threads the current job may use (workers with id < active take part) */
  uint32_t gen;     /* generation of the current job */
  uint64_t ticket;  /* gen << 32 | next unclaimed item */
  int64_t done;     /* items of the current job that have finished */
  lwc_kernel_fn fn;
  void **args;
  int64_t n, chunk;
} pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};

/* Run chunks of job `gen` until none are left (or the job is no longer current). fn, args, n and
 * chunk are read after a ticket of `gen` was seen with items left: the job cannot finish (and the
 * caller cannot overwrite them) before those items are done, and a stale read is caught by the
 * compare-and-swap failing. */
static void participate(uint32_t gen) {
  for (;;) {
    uint64_t t = __atomic_load_n(&pool.ticket, __ATOMIC_ACQUIRE);
    if ((uint32_t)(t >> 32) != gen) return;
    int64_t lo = (int64_t)(t & 0xffffffffu);
    int64_t n = pool.n, chunk = pool.chunk;
    if (lo >= n) return;
    int64_t hi = lo + chunk < n ? lo + chunk : n;
    uint64_t want = ((uint64_t)gen << 32) | (uint64_t)hi;
    if (!__atomic_compare_exchange_n(&pool.ticket, &t, want, 0, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE))
      continue;
    pool.fn(pool.args, lo, hi);
    __atomic_add_fetch(&pool.done, hi - lo, __ATOMIC_RELEASE);
  }
}

static void *worker(void *arg) {
  int id = (int)(intptr_t)arg;
  uint32_t seen = __atomic_load_n(&pool.gen, __ATOMIC_ACQUIRE);
  for (;;) {
    int spins = 0;
    uint32_t g;
    while ((g = __atomic_load_n(&pool.gen, __ATOMIC_ACQUIRE)) == seen) {
      ++spins;
      if (spins < SPIN_PAUSE) {
        __builtin_ia32_pause();
      } else if (spins < SPIN_PAUSE + SPIN_YIELD) {
        sched_yield();
      } else {
        /* seq_cst on both sides (here and in lwc_parallel_for): either the caller sees this
         * sleeper and broadcasts, or this thread sees the new generation */
        __atomic_add_fetch(&pool.sleepers, 1, __ATOMIC_SEQ_CST);
        pthread_mutex_lock(&pool.mu);
        while (__atomic_load_n(&pool.gen, __ATOMIC_ACQUIRE) == seen)
          pthread_cond_wait(&pool.cv, &pool.mu);
        pthread_mutex_unlock(&pool.mu);
        __atomic_sub_fetch(&pool.sleepers, 1, __ATOMIC_SEQ_CST);
        spins = 0;
      }
    }
    seen = g;
    if (id < __atomic_load_n(&pool.active, __ATOMIC_ACQUIRE)) participate(g);
  }
  return 0;
}

void lwc_set_num_threads(int n) {
  if (n < 1) n = 1;
  if (n > LWC_MAX_THREADS) n = LWC_MAX_THREADS;
  pool.nthreads = n;
}

int lwc_get_num_threads(void) {
  if (pool.nthreads == 0) {
    const char *env = getenv("LWC_NUM_THREADS");
    long n = env ? strtol(env, 0, 10) : sysconf(_SC_NPROCESSORS_ONLN);
    lwc_set_num_threads(n > 0 ? (int)n : 1);
  }
  return pool.nthreads;
}

static void ensure_workers(int want) {
  if (__atomic_load_n(&pool.started, __ATOMIC_ACQUIRE) >= want - 1) return;
  pthread_mutex_lock(&pool.mu);
  while (pool.started < want - 1) {
    pthread_t th;
    if (pthread_create(&th, 0, worker, (void *)(intptr_t)(pool.started + 1)) != 0) break;
    pthread_detach(th);
    __atomic_add_fetch(&pool.started, 1, __ATOMIC_RELEASE);
  }
  pthread_mutex_unlock(&pool.mu);
}

void lwc_parallel_for(lwc_kernel_fn fn, void **args, int64_t n) {
  static int busy = 0;
  int t = lwc_get_num_threads();
  if (t > n) t = (int)n;
  if (t <= 1 || n > 0x7fffffff || __atomic_exchange_n(&busy, 1, __ATOMIC_ACQUIRE)) {
    if (n > 0) fn(args, 0, n);
    return;
  }
  ensure_workers(t);
  pool.fn = fn;
  pool.active = t;
  pool.args = args;
  pool.n = n;
  pool.chunk = (n + 8 * t - 1) / (8 * t);
  __atomic_store_n(&pool.done, 0, __ATOMIC_RELAXED);
  uint32_t gen = pool.gen + 1;
  __atomic_store_n(&pool.ticket, (uint64_t)gen << 32, __ATOMIC_RELEASE);
  __atomic_store_n(&pool.gen, gen, __ATOMIC_SEQ_CST);
  if (__atomic_load_n(&pool.sleepers, __ATOMIC_SEQ_CST) > 0) {
    pthread_mutex_lock(&pool.mu);
    pthread_cond_broadcast(&pool.cv);
    pthread_mutex_unlock(&pool.mu);
  }
  participate(gen);
  for (int spins = 0; __atomic_load_n(&pool.done, __ATOMIC_ACQUIRE) < n; ++spins) {
    if (spins < 2000) __builtin_ia32_pause(); else sched_yield();
  }
  __atomic_store_n(&busy, 0, __ATOMIC_RELEASE);
}
