/* lwc runtime: a small thread pool behind lwc_parallel_for.
 *
 * Kernels are `void fn(void **args, int64_t lo, int64_t hi)`. lwc_parallel_for hands out [0, n)
 * in chunks from an atomic counter, so a thread that the OS delays (the machine may be shared)
 * simply takes fewer chunks. Workers spin briefly, then yield, then sleep on a condition
 * variable. They are created on first use; nothing on the run path allocates.
 * Thread count: lwc_set_num_threads(n), else $LWC_NUM_THREADS, else the online CPU count.
 * Calls from several threads at once are safe: a call that finds the pool busy runs serially.
 */
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#define LWC_MAX_THREADS 64

typedef void (*lwc_kernel_fn)(void **args, int64_t lo, int64_t hi);

static struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int nthreads;
  int started;
  int64_t epoch;
  int pending;      /* workers that have not yet finished the current job */
  int64_t next;     /* next unclaimed item */
  lwc_kernel_fn fn;
  void **args;
  int64_t n, chunk;
  int active;
} pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};

static void work(void) {
  for (;;) {
    int64_t lo = __atomic_fetch_add(&pool.next, pool.chunk, __ATOMIC_ACQ_REL);
    if (lo >= pool.n) return;
    int64_t hi = lo + pool.chunk < pool.n ? lo + pool.chunk : pool.n;
    pool.fn(pool.args, lo, hi);
  }
}

static void *worker(void *arg) {
  int id = (int)(intptr_t)arg;
  int64_t seen = 0;
  for (;;) {
    int spins = 0;
    while (__atomic_load_n(&pool.epoch, __ATOMIC_ACQUIRE) == seen) {
      ++spins;
      if (spins < 4000) {
        __builtin_ia32_pause();
      } else if (spins < 8000) {
        sched_yield();
      } else {
        pthread_mutex_lock(&pool.mu);
        while (__atomic_load_n(&pool.epoch, __ATOMIC_ACQUIRE) == seen) pthread_cond_wait(&pool.cv, &pool.mu);
        pthread_mutex_unlock(&pool.mu);
      }
    }
    seen = __atomic_load_n(&pool.epoch, __ATOMIC_ACQUIRE);
    if (id < pool.active) work();
    __atomic_sub_fetch(&pool.pending, 1, __ATOMIC_ACQ_REL);
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
  pthread_mutex_lock(&pool.mu);
  while (pool.started < want - 1) {
    pthread_t th;
    if (pthread_create(&th, 0, worker, (void *)(intptr_t)(pool.started + 1)) != 0) break;
    pthread_detach(th);
    pool.started++;
  }
  pthread_mutex_unlock(&pool.mu);
}

void lwc_parallel_for(lwc_kernel_fn fn, void **args, int64_t n) {
  static int busy = 0;
  int t = lwc_get_num_threads();
  if (t > n) t = (int)n;
  if (t <= 1 || __atomic_exchange_n(&busy, 1, __ATOMIC_ACQUIRE)) {
    if (n > 0) fn(args, 0, n);
    return;
  }
  ensure_workers(t);
  if (pool.started < t - 1) t = pool.started + 1;
  pool.fn = fn;
  pool.args = args;
  pool.n = n;
  pool.chunk = (n + 4 * t - 1) / (4 * t);
  pool.active = t;
  __atomic_store_n(&pool.next, 0, __ATOMIC_RELEASE);
  __atomic_store_n(&pool.pending, pool.started, __ATOMIC_RELEASE);
  pthread_mutex_lock(&pool.mu);
  __atomic_add_fetch(&pool.epoch, 1, __ATOMIC_ACQ_REL);
  pthread_cond_broadcast(&pool.cv);
  pthread_mutex_unlock(&pool.mu);
  work();
  for (int spins = 0; __atomic_load_n(&pool.pending, __ATOMIC_ACQUIRE) > 0; ++spins) {
    if (spins < 4000) __builtin_ia32_pause(); else sched_yield();
  }
  __atomic_store_n(&busy, 0, __ATOMIC_RELEASE);
}
