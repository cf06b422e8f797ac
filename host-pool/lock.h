/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * lock.h - the store's mutexes.
 *
 * Every critical section in the store is short (a lookup, a list move, a
 * copy of at most one page), so a waiter spins briefly before sleeping:
 * with the default mutex two threads colliding on zbud->lock each pay a
 * futex sleep and wake-up, longer than the section itself.
 */
#ifndef TMEM_LOCK_H
#define TMEM_LOCK_H

#define _GNU_SOURCE 1
#include <pthread.h>

static inline void tmem_mutex_init(pthread_mutex_t *m)
{
	pthread_mutexattr_t attr;

	pthread_mutexattr_init(&attr);
	pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ADAPTIVE_NP);
	pthread_mutex_init(m, &attr);
	pthread_mutexattr_destroy(&attr);
}

#endif /* TMEM_LOCK_H */
