// SPDX-License-Identifier: BSD-3-Clause
/*
 * writeback.c - the background writeback thread and its policy.
 *
 * The thread runs when the store uses wb_high_pct of its limit and works
 * until wb_low_pct: it evicts ephemeral frames first and writes back
 * persistent frames only when no ephemeral frame is left.  Both go through
 * the store's one reclaim path (store_evict_ephemeral_unit() and
 * store_writeback_unit(), see store_reclaim.c); this file never touches
 * entries, frames or slots.  After a failed writeback (the thread's or a put's) the
 * thread backs off, 10 ms doubling to 1 s.
 *
 * The store starts the thread when an image is attached, wakes it when a
 * put finds the store above the high mark (writeback_kick()) and stops it
 * when the store is destroyed.  wb->lock guards only the thread's state
 * and is never held with another lock.
 */
#include <stdlib.h>
#include <time.h>

#include "lock.h"
#include "store_internal.h"
#include "swapimg.h"

#define BACKOFF_MIN_MS	10u
#define BACKOFF_MAX_MS	1000u
#define POLL_MS		20u

/**
 * struct tmem_writeback - the background writeback thread
 * @s: the store it works for
 * @img: the store's image (only trimmed here)
 * @lock: protects the fields below
 * @kick: wakes the thread
 * @kicked: a wake-up is pending (read without @lock, so that puts above
 *	    the high mark signal once, not each)
 * @thread: the thread
 * @stop: the thread must exit
 * @backoff_ms: the thread's wait after a failure
 * @high_bytes: background writeback starts at this use... (atomic: puts
 *	       read it, tmem_set_limit() moves it)
 * @low_bytes: ... and stops at this one
 * @wakeups: background runs
 */
struct tmem_writeback {
	struct tmem_store *s;
	struct tmem_image *img;
	pthread_mutex_t lock;
	pthread_cond_t kick;
	atomic_bool kicked;
	pthread_t thread;
	bool stop;
	unsigned int backoff_ms;
	_Atomic uint64_t high_bytes, low_bytes;
	uint64_t wakeups;
};

/**
 * writeback_kick() - wake the thread if the store is above the high mark
 * @wb: the thread
 * @used: bytes the store uses now
 *
 * The caller holds no lock.
 */
void writeback_kick(struct tmem_writeback *wb, uint64_t used)
{
	uint64_t high = atomic_load_explicit(&wb->high_bytes,
					     memory_order_relaxed);

	if (used < high ||
	    atomic_load_explicit(&wb->kicked, memory_order_relaxed) ||
	    atomic_exchange(&wb->kicked, true))
		return;
	pthread_mutex_lock(&wb->lock);
	pthread_cond_signal(&wb->kick);
	pthread_mutex_unlock(&wb->lock);
}

/**
 * writeback_set_marks() - move the watermarks (the limit changed)
 * @wb: the thread
 * @high_bytes: use at which the thread starts reclaiming
 * @low_bytes: use at which it stops
 *
 * A thread at work goes on to the new low mark.  The caller holds no lock.
 */
void writeback_set_marks(struct tmem_writeback *wb, uint64_t high_bytes,
			 uint64_t low_bytes)
{
	atomic_store_explicit(&wb->low_bytes, low_bytes, memory_order_relaxed);
	atomic_store_explicit(&wb->high_bytes, high_bytes,
			      memory_order_relaxed);
}

/* ---- the background thread --------------------------------------------- */

static void deadline_in(struct timespec *ts, unsigned int ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	ts->tv_sec += ms / 1000 + ts->tv_nsec / 1000000000L;
	ts->tv_nsec %= 1000000000L;
}

/*
 * Evict or write back until the store is down to the low mark.  Returns
 * true when it stopped because the image is full or failing.
 */
static bool writeback_run(struct tmem_writeback *wb)
{
	struct tmem_store *s = wb->s;
	enum wb_result ret = WB_NONE;

	while (store_used_bytes(s) >
	       atomic_load_explicit(&wb->low_bytes, memory_order_relaxed)) {
		pthread_mutex_lock(&wb->lock);
		if (wb->stop) {
			pthread_mutex_unlock(&wb->lock);
			break;
		}
		pthread_mutex_unlock(&wb->lock);
		if (store_evict_ephemeral_unit(s) > 0)
			continue;
		ret = store_writeback_unit(s);
		if (ret != WB_FREED)
			break;
	}
	return ret == WB_NO_SLOT || ret == WB_IO_ERROR;
}

static void *writeback_thread(void *arg)
{
	struct tmem_writeback *wb = arg;
	struct timespec ts;

	for (;;) {
		/* a put's writeback may fail or succeed too */
		bool failing = store_writeback_failing(wb->s);
		bool failed = false, stop;

		pthread_mutex_lock(&wb->lock);
		if (!wb->stop) {
			deadline_in(&ts, failing ? wb->backoff_ms : POLL_MS);
			pthread_cond_timedwait(&wb->kick, &wb->lock, &ts);
		}
		atomic_store(&wb->kicked, false);
		stop = wb->stop;
		pthread_mutex_unlock(&wb->lock);
		if (stop)
			break;
		swapimg_trim(wb->img);
		if (store_used_bytes(wb->s) >=
		    atomic_load_explicit(&wb->high_bytes,
					 memory_order_relaxed)) {
			pthread_mutex_lock(&wb->lock);
			wb->wakeups++;
			pthread_mutex_unlock(&wb->lock);
			failed = writeback_run(wb);
		}
		pthread_mutex_lock(&wb->lock);
		if (failed)
			wb->backoff_ms = wb->backoff_ms >= BACKOFF_MAX_MS / 2 ?
					 BACKOFF_MAX_MS : wb->backoff_ms * 2;
		else
			wb->backoff_ms = BACKOFF_MIN_MS;
		pthread_mutex_unlock(&wb->lock);
	}
	return NULL;
}

/**
 * writeback_start() - start the background thread
 * @s: the store it works for
 * @img: the store's image
 * @high_bytes: use at which the thread starts reclaiming
 * @low_bytes: use at which it stops
 *
 * Return: the thread, or NULL (out of memory or threads).
 */
struct tmem_writeback *writeback_start(struct tmem_store *s,
				       struct tmem_image *img,
				       uint64_t high_bytes, uint64_t low_bytes)
{
	struct tmem_writeback *wb = calloc(1, sizeof(*wb));
	pthread_condattr_t attr;

	if (!wb)
		return NULL;
	wb->s = s;
	wb->img = img;
	wb->high_bytes = high_bytes;
	wb->low_bytes = low_bytes;
	wb->backoff_ms = BACKOFF_MIN_MS;
	tmem_mutex_init(&wb->lock);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&wb->kick, &attr);
	pthread_condattr_destroy(&attr);
	if (pthread_create(&wb->thread, NULL, writeback_thread, wb)) {
		pthread_cond_destroy(&wb->kick);
		pthread_mutex_destroy(&wb->lock);
		free(wb);
		return NULL;
	}
	return wb;
}

/**
 * writeback_stop() - stop the thread and free it
 * @wb: the thread (NULL is ignored)
 */
void writeback_stop(struct tmem_writeback *wb)
{
	if (!wb)
		return;
	pthread_mutex_lock(&wb->lock);
	wb->stop = true;
	pthread_cond_signal(&wb->kick);
	pthread_mutex_unlock(&wb->lock);
	pthread_join(wb->thread, NULL);
	pthread_cond_destroy(&wb->kick);
	pthread_mutex_destroy(&wb->lock);
	free(wb);
}

/**
 * writeback_stats() - fill the thread's part of a stats snapshot
 * @wb: the thread
 * @st: where to put them (only @st->wakeups)
 */
void writeback_stats(struct tmem_writeback *wb, struct tmem_image_stats *st)
{
	pthread_mutex_lock(&wb->lock);
	st->wakeups = wb->wakeups;
	pthread_mutex_unlock(&wb->lock);
}
