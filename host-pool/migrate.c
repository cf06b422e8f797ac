// SPDX-License-Identifier: BSD-3-Clause
/*
 * migrate.c - streaming a store's pools and pages, as stored, to another
 * store: the source's cursor and change log, the destination's install.
 *
 * The source sends a record per call of tmem_migration_next(): first a
 * pool record for every pool, then every page of every stripe of the
 * migrated pools, one stripe after the other (the full pass), then what
 * changed since (later rounds).  Each stripe has a change log; an op that
 * changes what a key holds notes the key in it under the bucket lock it
 * holds anyway (store_mig_note()).  The migration turns the log of a
 * stripe on when it first walks the stripe, so keys are noted only once
 * they may have been sent.  A log that would grow past MIG_LOG_MAX keys,
 * or that cannot grow, is replaced by "resend the stripe", as is a pool
 * flush (a FLUSH_BUCKET record then a walk of the stripe).
 *
 * Every record is made under the bucket lock of its key from what the
 * store holds at that moment, never from the log: the log only says which
 * keys to look at again.  So a key is either up to date on the destination
 * or noted (or ahead of a walk) since the record that sent it; once ops
 * stop, sending until nothing is left makes the destination equal the
 * source.  docs/design.md "Migration (library)" gives the whole argument.
 *
 * Removals go first.  A page the source drops after sending it (a flush,
 * an exclusive get) stays on the destination until its key is sent again,
 * and keys go in stripe and key order.  A swap device is one object, so
 * one stripe, walked in offset order; a guest swapping during the
 * migration takes pages back behind the walk and puts new ones ahead of
 * it, faster than its log can hold (the log then falls back to "send the
 * stripe again", after the walk).  The destination would hold the pages
 * dropped as well as those put, more than the source ever held, and a
 * destination of the source's size would refuse the stream (seen: 64,553
 * pages against the source's 45,116 at 256 MiB, with 65,000 flushes during
 * the migration).  So every key whose page went is also queued (a ring of
 * MIG_GONE_MAX keys; a full ring drops the newest, which the log or the
 * resend still covers) and goes as a flush record, a few bytes, before any
 * other record, if it still holds nothing then.  A record always says
 * what its key holds when it is made, and the log is untouched, so this
 * only makes the destination drop sooner what it would drop anyway.
 *
 * With TMEM_MIG_SHARED_IMAGE the destination opens the source's swap image
 * (shared storage), and a written-back page goes as a reference to its
 * slots (TMEM_MIG_SLOT) rather than as its bytes.  Writeback is then
 * logged too, so that the destination's pages end up where the source's
 * are, and the image holds every slot that falls free until the records
 * that drop the destination's references to it have gone (see
 * swapimg.c): a reference the destination holds at switchover is to a
 * slot the source never rewrote.
 *
 * The migration itself is single-threaded: its calls must not run
 * concurrently with each other; store ops may run on any thread meanwhile.
 * Lock order as in store.c: pools_lock, then a bucket lock, then
 * gone_lock.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "compress.h"
#include "store_internal.h"
#include "swapimg.h"

/*
 * Keys one stripe's log holds before it falls back to resending the
 * stripe: 40 bytes each, in a table at most half full (at most 320 KiB).
 * All logs together take at most 1/MIG_LOG_SHARE of the store's limit
 * (outside it), whatever the number of pools: past that, stripes fall
 * back too.  The memory goes when the stripe's keys are sent.
 */
#define MIG_LOG_MIN	16u
#define MIG_LOG_MAX	4096u
#define MIG_LOG_SHARE	32u
/* Keys the removal ring holds: 40 bytes each. */
#define MIG_GONE_MAX	8192u

/**
 * struct mig_key - a logged change
 * @oid: object
 * @index: page (MIG_NOTE_PAGE)
 * @what: enum mig_note plus one; 0 marks a free slot
 */
struct mig_key {
	struct tmem_oid oid;
	uint64_t index;
	uint32_t what;
};

/**
 * struct mig_log - what changed in one stripe since it was sent
 *		    (under the stripe's bucket lock)
 * @keys: open-addressed set of @cap slots, or NULL
 * @nr: keys in it
 * @cap: 0 or a power of two; kept at most half full
 * @reset: send the whole stripe again (after a FLUSH_BUCKET unless @clean)
 * @clean: the destination holds nothing of the stripe
 * @m: the migration, for its memory budget
 */
struct mig_log {
	struct mig_key *keys;
	uint32_t nr, cap;
	bool reset, clean;
	struct tmem_migration *m;
};

/**
 * struct mig_pool - what the destination was told of a pool id
 * @alive: a TMEM_MIG_POOL record went, and no TMEM_MIG_POOL_GONE since
 * @migrated: its pages are sent (persistent, or TMEM_MIG_EPHEMERAL)
 * @gen: the incarnation it described (struct tmem_pool @gen)
 * @refs: references it carried
 */
struct mig_pool {
	bool alive, migrated;
	unsigned int gen, refs;
};

enum walk_kind { WALK_NONE, WALK_BUCKET, WALK_OBJECT };

/**
 * struct mig_walk - a walk in key order over a stripe or one object
 * @kind: enum walk_kind
 * @pool: pool id
 * @bucket: stripe
 * @chain: object tree of the stripe being walked
 * @have_oid: @oid is the object being walked; else start the tree over
 * @more: the object may hold pages at or after @index
 * @oid: object
 * @index: next page index to look at
 * @sent: pages sent by the walk (for tmem_migration_pending())
 * @sent_bytes: their data bytes
 */
struct mig_walk {
	enum walk_kind kind;
	uint32_t pool, bucket;
	unsigned int chain;
	bool have_oid, more;
	struct tmem_oid oid;
	uint64_t index;
	uint64_t sent, sent_bytes;
};

/**
 * struct tmem_migration - the source's side
 * @s: store
 * @flags: TMEM_MIG_*
 * @pools_seen: @s->pools_gen when the pool table was last compared
 * @pools_synced: @pools_seen is valid
 * @pool: per pool id, what the destination knows
 * @log: per stripe (pool id * POOL_BUCKETS + bucket), its change log
 * @walk: the walk in progress
 * @batch: keys taken out of one stripe's log, being sent (@batch_cap slots)
 * @batch_cap: slots of @batch
 * @batch_at: next slot of @batch to send
 * @scan: next stripe to look for work in
 * @log_bytes: memory of the logs' tables and of @batch
 * @log_budget: most @log_bytes may reach (1/MIG_LOG_SHARE of the limit)
 * @gone_lock: protects @gone, @gone_head and @gone_nr (taken under a
 *	       bucket lock by mig_note())
 * @gone: ring of keys whose page went, to flush first (@what holds the
 *	  pool id plus one)
 * @gone_head: oldest key of @gone
 * @gone_nr: keys in @gone
 * @gone_dropped: keys a full ring could not take (for the tests)
 */
struct tmem_migration {
	struct tmem_store *s;
	unsigned int flags;
	unsigned int pools_seen;
	bool pools_synced;
	struct mig_pool *pool;
	struct mig_log *log;
	struct mig_walk walk;
	struct mig_key *batch;
	uint32_t batch_cap, batch_at;
	uint32_t scan;
	atomic_uint_fast64_t log_bytes;
	uint64_t log_budget;
	pthread_mutex_t gone_lock;
	struct mig_key *gone;
	uint32_t gone_head, gone_nr;
	uint64_t gone_dropped;
};

/* ---- change log ------------------------------------------------------- */

static uint64_t key_hash(const struct tmem_oid *oid, uint64_t index,
			 uint32_t what)
{
	return tmem_mix64(tmem_oid_hash(oid) ^
			  tmem_mix64(index ^ ((uint64_t)what << 62)));
}

static bool key_equal(const struct mig_key *k, const struct tmem_oid *oid,
		      uint64_t index, uint32_t what)
{
	return k->what == what && k->index == index &&
	       !memcmp(&k->oid, oid, sizeof(*oid));
}

/* Add a key to a table with room; a key already there is not added twice. */
static void table_add(struct mig_key *t, uint32_t cap, uint32_t *nr,
		      const struct tmem_oid *oid, uint64_t index, uint32_t what)
{
	uint32_t i = (uint32_t)key_hash(oid, index, what) & (cap - 1);

	for (; t[i].what; i = (i + 1) & (cap - 1))
		if (key_equal(&t[i], oid, index, what))
			return;
	t[i].oid = *oid;
	t[i].index = index;
	t[i].what = what;
	(*nr)++;
}

static void log_bytes_put(struct tmem_migration *m, uint32_t cap)
{
	atomic_fetch_sub(&m->log_bytes, (uint64_t)cap * sizeof(struct mig_key));
}

static void log_clear(struct mig_log *log)
{
	log_bytes_put(log->m, log->cap);
	free(log->keys);
	log->keys = NULL;
	log->nr = 0;
	log->cap = 0;
}

/* Double the table; false if it may not grow or there is no memory. */
static bool log_grow(struct mig_log *log)
{
	uint32_t cap = log->cap ? log->cap * 2 : MIG_LOG_MIN, i, nr = 0;
	uint64_t bytes = (uint64_t)cap * sizeof(struct mig_key);
	struct tmem_migration *m = log->m;
	struct mig_key *t;

	if (cap > 2 * MIG_LOG_MAX)
		return false;
	if (atomic_fetch_add(&m->log_bytes, bytes) + bytes > m->log_budget) {
		log_bytes_put(m, cap);
		return false;
	}
	t = calloc(cap, sizeof(*t));
	if (!t) {
		log_bytes_put(m, cap);
		return false;
	}
	log_bytes_put(m, log->cap);
	for (i = 0; i < log->cap; i++)
		if (log->keys[i].what)
			table_add(t, cap, &nr, &log->keys[i].oid,
				  log->keys[i].index, log->keys[i].what);
	free(log->keys);
	log->keys = t;
	log->cap = cap;
	return true;
}

/* Under a bucket lock: queue a key whose page went, to flush it first. */
static void gone_add(struct tmem_migration *m, uint32_t pool_id,
		     const struct tmem_oid *oid, uint64_t index)
{
	struct mig_key *k;

	pthread_mutex_lock(&m->gone_lock);
	if (m->gone_nr < MIG_GONE_MAX) {
		k = &m->gone[(m->gone_head + m->gone_nr++) % MIG_GONE_MAX];
		k->oid = *oid;
		k->index = index;
		k->what = pool_id + 1;
	} else {
		m->gone_dropped++;
	}
	pthread_mutex_unlock(&m->gone_lock);
}

/**
 * mig_note() - note a change in a tracked stripe (store_mig_note())
 * @b: the stripe, locked, with a log
 * @oid: object (MIG_NOTE_PAGE, MIG_NOTE_OBJECT)
 * @index: page (MIG_NOTE_PAGE)
 * @what: enum mig_note
 *
 * Never fails: when the key cannot be added the stripe is marked to be
 * sent whole, which covers every key.
 */
void mig_note(struct tmem_bucket *b, const struct tmem_oid *oid,
	      uint64_t index, enum mig_note what)
{
	struct mig_log *log = b->log;

	if (what == MIG_NOTE_GONE) {
		gone_add(log->m, b->pool->id, oid, index);
		what = MIG_NOTE_PAGE;
	}
	if (log->reset)
		return;
	if (what != MIG_NOTE_BUCKET &&
	    (2 * (log->nr + 1) <= log->cap || log_grow(log))) {
		table_add(log->keys, log->cap, &log->nr, oid,
			  what == MIG_NOTE_PAGE ? index : 0, what + 1);
		return;
	}
	log_clear(log);
	log->reset = true;
}

/**
 * mig_note_moved() - note a page that writeback moved (store_mig_note_moved())
 * @b: its stripe, locked, with a log
 * @e: the entry, now in the image
 *
 * Only a shared-image stream sends the move (the page goes again, as a
 * reference): for any other the bytes the destination has are the same.
 */
void mig_note_moved(struct tmem_bucket *b, const struct tmem_entry *e)
{
	if (b->log->m->flags & TMEM_MIG_SHARED_IMAGE)
		mig_note(b, &e->obj->oid, e->ri.index, MIG_NOTE_PAGE);
}

static void batch_free(struct tmem_migration *m)
{
	log_bytes_put(m, m->batch_cap);
	free(m->batch);
	m->batch = NULL;
	m->batch_cap = 0;
}

/* ---- pools ------------------------------------------------------------ */

static bool kind_migrated(const struct tmem_migration *m, enum tmem_kind kind)
{
	return kind == TMEM_PERSISTENT || (m->flags & TMEM_MIG_EPHEMERAL);
}

static struct mig_log *stripe_log(struct tmem_migration *m, uint32_t id,
				  unsigned int bucket)
{
	return &m->log[(size_t)id * POOL_BUCKETS + bucket];
}

/*
 * Under pools_lock: start the destination's pool @id afresh.  Its stripes
 * are to be walked (migrated pools) and are not tracked until then; a
 * walk or batch of an older incarnation is dropped.
 */
static void pool_reset(struct tmem_migration *m, struct tmem_pool *p,
		       uint32_t id, bool walk)
{
	unsigned int i;

	for (i = 0; i < POOL_BUCKETS; i++) {
		struct mig_log *log = stripe_log(m, id, i);

		pthread_mutex_lock(&p->bucket[i].lock);
		p->bucket[i].log = NULL;
		log_clear(log);
		log->reset = walk;
		log->clean = true;
		pthread_mutex_unlock(&p->bucket[i].lock);
	}
	if (m->walk.kind != WALK_NONE && m->walk.pool == id)
		m->walk.kind = WALK_NONE;
	if (m->batch && m->scan / POOL_BUCKETS == id)
		batch_free(m);
}

static unsigned int pool_flags(const struct tmem_pool *p)
{
	return (pool_kind(p) == TMEM_PERSISTENT ? TMEM_POOL_PERSISTENT : 0) |
	       (p->shared ? TMEM_POOL_SHARED : 0);
}

static void pool_record(struct tmem_mig_record *rec, const struct tmem_pool *p)
{
	rec->type = TMEM_MIG_POOL;
	rec->pool_id = p->id;
	rec->pool_flags = pool_flags(p);
	rec->refs = p->refs;
	if (p->shared)
		rec->uuid = p->uuid;
}

/* Under pools_lock: the pool, if alive. */
static struct tmem_pool *pool_alive(struct tmem_store *s, uint32_t id)
{
	struct tmem_pool *p = atomic_load(&s->pools[id]);

	return p && atomic_load(&p->alive) ? p : NULL;
}

/* Under pools_lock: a record for a pool that went or was recreated. */
static bool pools_sync_gone(struct tmem_migration *m,
			    struct tmem_mig_record *rec)
{
	struct tmem_store *s = m->s;
	uint32_t id;

	for (id = 0; id < s->cfg.max_pools; id++) {
		struct tmem_pool *p = pool_alive(s, id);
		struct mig_pool *mp = &m->pool[id];

		if (!mp->alive || (p && atomic_load(&p->gen) == mp->gen))
			continue;
		mp->alive = false;
		p = atomic_load(&s->pools[id]);
		pool_reset(m, p, id, false);
		rec->type = TMEM_MIG_POOL_GONE;
		rec->pool_id = id;
		return true;
	}
	return false;
}

/* Under pools_lock: a record for a new pool, or new references. */
static bool pools_sync_new(struct tmem_migration *m,
			   struct tmem_mig_record *rec)
{
	struct tmem_store *s = m->s;
	uint32_t id;

	for (id = 0; id < s->cfg.max_pools; id++) {
		struct tmem_pool *p = pool_alive(s, id);
		struct mig_pool *mp = &m->pool[id];

		if (!p || (mp->alive && mp->refs == p->refs))
			continue;
		if (!mp->alive) {
			mp->alive = true;
			mp->gen = atomic_load(&p->gen);
			mp->migrated = kind_migrated(m, pool_kind(p));
			pool_reset(m, p, id, mp->migrated);
		}
		mp->refs = p->refs;
		pool_record(rec, p);
		return true;
	}
	return false;
}

/*
 * Bring the destination's pool table up to date first: a page record may
 * only follow the record of its pool's incarnation.  Gone pools go first,
 * so that a shared UUID is never on two ids of the destination.
 */
static bool pools_sync(struct tmem_migration *m, struct tmem_mig_record *rec)
{
	struct tmem_store *s = m->s;
	bool found;

	if (m->pools_synced &&
	    atomic_load(&s->pools_gen) == m->pools_seen)
		return false;
	pthread_mutex_lock(&s->pools_lock);
	found = pools_sync_gone(m, rec) || pools_sync_new(m, rec);
	if (!found) {
		m->pools_seen = atomic_load(&s->pools_gen);
		m->pools_synced = true;
	}
	pthread_mutex_unlock(&s->pools_lock);
	return found;
}

/*
 * Under a bucket lock of pool @id: whether the pool is the incarnation
 * the destination was told of (else its records must wait for
 * pools_sync()).
 */
static bool pool_current(const struct tmem_migration *m, struct tmem_pool *p,
			 uint32_t id)
{
	return m->pool[id].alive &&
	       atomic_load_explicit(&p->alive, memory_order_acquire) &&
	       atomic_load_explicit(&p->gen, memory_order_relaxed) ==
	       m->pool[id].gen;
}

/* ---- records ---------------------------------------------------------- */

/*
 * Under the entry's bucket lock: a written-back page as a reference to its
 * slots in the shared image, which the destination opens too.
 */
static void slot_record(struct tmem_migration *m, const struct tmem_entry *e,
			struct tmem_mig_record *rec)
{
	struct tmem_store *s = m->s;
	uint64_t next;

	rec->form = TMEM_MIG_SLOT;
	rec->slot = e->where;
	swapimg_slot_ref(s->image.img, e->where, &rec->csum, &next,
			 &rec->next_csum);
	if (e->state == ENTRY_IMAGE_RAW) {
		rec->compressor = TMEM_COMP_NONE;
		rec->len = TMEM_PAGE_SIZE;
	} else {
		rec->compressor = (uint8_t)s->cfg.compressor;
		rec->len = e->size;
		rec->offset = image_offset(e) + s->alloc->obj_hdr(e->size);
	}
	if (!image_straddles(s, e)) {
		next = SWAPIMG_NO_SLOT;
		rec->next_csum = 0;
	}
	rec->next_slot = next == SWAPIMG_NO_SLOT ? TMEM_MIG_NO_SLOT :
						  (uint32_t)next;
}

/* Under the entry's bucket lock: the page as stored. */
static int page_record(struct tmem_migration *m, uint32_t id,
		       const struct tmem_entry *e, struct tmem_mig_record *rec,
		       uint8_t *buf)
{
	struct tmem_store *s = m->s;
	struct iovec iov = { .iov_base = buf, .iov_len = TMEM_PAGE_SIZE };
	int ret = 0;

	rec->type = TMEM_MIG_PAGE;
	rec->pool_id = id;
	rec->oid = e->obj->oid;
	rec->index = e->ri.index;
	if ((m->flags & TMEM_MIG_SHARED_IMAGE) &&
	    (e->state == ENTRY_IMAGE || e->state == ENTRY_IMAGE_RAW)) {
		slot_record(m, e, rec);
		return 0;
	}
	switch (e->state) {
	case ENTRY_FILLED:
		rec->form = TMEM_MIG_FILLED;
		rec->fill = e->where;
		return 0;
	case ENTRY_COMPRESSED:
		s->alloc->read(s->alloc_priv, entry_handle(e), buf, e->size);
		break;
	case ENTRY_RAW:
		memcpy(buf, zbud_frame_addr(&s->zbud, e->where),
		       TMEM_PAGE_SIZE);
		break;
	case ENTRY_IMAGE:
		ret = store_image_read(s, e, buf, NULL, 0);
		break;
	case ENTRY_IMAGE_RAW:
		ret = store_image_read(s, e, NULL, &iov, 1);
		break;
	}
	if (e->state == ENTRY_RAW || e->state == ENTRY_IMAGE_RAW) {
		rec->form = TMEM_MIG_RAW;
		rec->len = TMEM_PAGE_SIZE;
	} else {
		rec->form = TMEM_MIG_COMPRESSED;
		rec->compressor = (uint8_t)s->cfg.compressor;
		rec->len = e->size;
	}
	return ret;
}

/*
 * Under the walked stripe's lock: the next page of the walk, or NULL when
 * it is over.  Objects and pages come in key order, from where the walk
 * stopped, whatever changed meanwhile.
 */
static struct tmem_entry *walk_step(struct tmem_migration *m,
				    struct tmem_bucket *b)
{
	struct mig_walk *w = &m->walk;
	struct op op = { .pool = b->pool, .b = b };
	struct tmem_object *obj;
	struct radix_item *it;

	while (w->chain < BUCKET_CHAINS) {
		op.chain = w->chain;
		obj = NULL;
		if (w->have_oid) {
			obj = store_object_find(m->s, &op, &w->oid);
			it = obj && w->more ? radix_next(&obj->root, w->index) :
					      NULL;
			if (it) {
				w->more = it->index != UINT64_MAX;
				w->index = it->index + 1;
				return (struct tmem_entry *)it;
			}
			if (w->kind == WALK_OBJECT)
				return NULL;
			obj = store_object_after(m->s, b->chain[w->chain],
						 &w->oid);
		} else if (w->kind == WALK_BUCKET) {
			obj = store_object_after(m->s, b->chain[w->chain],
						 NULL);
		}
		if (!obj) {
			if (w->kind == WALK_OBJECT)
				return NULL;
			w->chain++;
			w->have_oid = false;
			continue;
		}
		w->oid = obj->oid;
		w->have_oid = true;
		w->more = true;
		w->index = 0;
	}
	return NULL;
}

/* The walk's next page; 0 when the walk is over. */
static int walk_next(struct tmem_migration *m, struct tmem_mig_record *rec,
		     uint8_t *buf)
{
	struct tmem_pool *p = atomic_load(&m->s->pools[m->walk.pool]);
	struct tmem_bucket *b = &p->bucket[m->walk.bucket];
	struct tmem_entry *e = NULL;
	int ret = 0;

	pthread_mutex_lock(&b->lock);
	if (pool_current(m, p, m->walk.pool))
		e = walk_step(m, b);
	if (e) {
		ret = page_record(m, m->walk.pool, e, rec, buf);
		m->walk.sent++;
		m->walk.sent_bytes += rec->form == TMEM_MIG_SLOT ? 0 : rec->len;
	} else {
		m->walk.kind = WALK_NONE;
	}
	pthread_mutex_unlock(&b->lock);
	return ret ? ret : e != NULL;
}

/* One logged key: its page as it is now, or its removal. */
static int batch_next(struct tmem_migration *m, struct tmem_mig_record *rec,
		      uint8_t *buf)
{
	uint32_t id = m->scan / POOL_BUCKETS;
	struct tmem_pool *p = atomic_load(&m->s->pools[id]);
	struct tmem_object *obj;
	struct tmem_entry *e;
	struct mig_key *k;
	struct op op;
	int ret = 1;

	while (m->batch_at < m->batch_cap && !m->batch[m->batch_at].what)
		m->batch_at++;
	if (m->batch_at == m->batch_cap) {
		batch_free(m);
		m->scan++;
		return 0;
	}
	k = &m->batch[m->batch_at++];
	if (store_op_lock(p, &k->oid, &op))
		return 0;
	if (!pool_current(m, p, id)) {
		op_unlock(&op);
		return 0;
	}
	rec->pool_id = id;
	rec->oid = k->oid;
	obj = store_object_find(m->s, &op, &k->oid);
	if (k->what == MIG_NOTE_OBJECT + 1) {
		rec->type = TMEM_MIG_FLUSH_OBJECT;
		m->walk = (struct mig_walk){
			.kind = WALK_OBJECT, .pool = id,
			.bucket = m->scan % POOL_BUCKETS, .chain = op.chain,
			.have_oid = true, .more = true, .oid = k->oid,
		};
	} else {
		e = obj ? (struct tmem_entry *)radix_lookup(&obj->root,
							     k->index) : NULL;
		rec->index = k->index;
		rec->type = TMEM_MIG_FLUSH_PAGE;
		if (e && page_record(m, id, e, rec, buf))
			ret = -TMEM_E_IO;
	}
	op_unlock(&op);
	return ret;
}

/*
 * Under the stripe's lock: take up the work its log holds: a walk of the
 * whole stripe (returns 1 with a FLUSH_BUCKET record if the destination
 * may hold some of it), or its keys.  Returns -1 if there is none.
 */
static int stripe_take(struct tmem_migration *m, struct tmem_bucket *b,
		       uint32_t at, struct tmem_mig_record *rec)
{
	struct mig_log *log = &m->log[at];
	bool clean = log->clean;

	if (log->reset) {
		log->reset = false;
		log->clean = false;
		log_clear(log);
		b->log = log;
		m->walk = (struct mig_walk){
			.kind = WALK_BUCKET, .pool = at / POOL_BUCKETS,
			.bucket = at % POOL_BUCKETS,
		};
		m->scan = at + 1;
		if (clean)
			return 0;
		rec->type = TMEM_MIG_FLUSH_BUCKET;
		rec->pool_id = at / POOL_BUCKETS;
		rec->bucket = (uint16_t)(at % POOL_BUCKETS);
		return 1;
	}
	if (!log->nr)
		return -1;
	m->batch = log->keys;
	m->batch_cap = log->cap;
	m->batch_at = 0;
	m->scan = at;
	log->keys = NULL;
	log->nr = 0;
	log->cap = 0;
	return 0;
}

/*
 * The oldest queued key that still holds nothing, as a flush record: 1
 * with one, 0 once the ring is empty.  A key holding a page again is
 * left to its log (or its stripe's resend).
 */
static int gone_next(struct tmem_migration *m, struct tmem_mig_record *rec)
{
	struct tmem_object *obj;
	struct tmem_pool *p;
	struct mig_key k;
	struct op op;
	uint32_t id;
	bool gone;

	for (;;) {
		pthread_mutex_lock(&m->gone_lock);
		if (!m->gone_nr) {
			pthread_mutex_unlock(&m->gone_lock);
			return 0;
		}
		k = m->gone[m->gone_head];
		m->gone_head = (m->gone_head + 1) % MIG_GONE_MAX;
		m->gone_nr--;
		pthread_mutex_unlock(&m->gone_lock);
		id = k.what - 1;
		if (!m->pool[id].alive || !m->pool[id].migrated)
			continue;
		p = atomic_load(&m->s->pools[id]);
		if (store_op_lock(p, &k.oid, &op))
			continue;
		gone = false;
		if (pool_current(m, p, id)) {
			obj = store_object_find(m->s, &op, &k.oid);
			gone = !obj || !radix_lookup(&obj->root, k.index);
		}
		op_unlock(&op);
		if (!gone)
			continue;
		rec->type = TMEM_MIG_FLUSH_PAGE;
		rec->pool_id = id;
		rec->oid = k.oid;
		rec->index = k.index;
		return 1;
	}
}

/* Find the next stripe with work, round robin; -1 if none has any. */
static int find_work(struct tmem_migration *m, struct tmem_mig_record *rec)
{
	struct tmem_store *s = m->s;
	uint32_t stripes = s->cfg.max_pools * POOL_BUCKETS, n;

	for (n = 0; n < stripes; n++) {
		uint32_t at = (m->scan + n) % stripes, id = at / POOL_BUCKETS;
		struct tmem_pool *p;
		int ret = -1;

		if (!m->pool[id].alive || !m->pool[id].migrated) {
			n += POOL_BUCKETS - 1 - at % POOL_BUCKETS;
			continue;
		}
		p = atomic_load(&s->pools[id]);
		pthread_mutex_lock(&p->bucket[at % POOL_BUCKETS].lock);
		if (pool_current(m, p, id))
			ret = stripe_take(m, &p->bucket[at % POOL_BUCKETS], at,
					  rec);
		pthread_mutex_unlock(&p->bucket[at % POOL_BUCKETS].lock);
		if (ret >= 0)
			return ret;
	}
	return -1;
}

/**
 * tmem_migration_start() - start streaming a store out
 * @s: store (the source)
 * @flags: TMEM_MIG_EPHEMERAL to send the pages of ephemeral pools too
 *	   (their pools are always sent, to keep their ids);
 *	   TMEM_MIG_SHARED_IMAGE to send written-back pages as references
 *	   to the store's swap image, which the destination opens too
 * @out: the migration
 *
 * Nothing is logged until tmem_migration_next() reaches a stripe.  One
 * migration at a time; tmem_migration_end() before tmem_store_destroy().
 *
 * Return: 0, or -TMEM_E_INVAL (bad flags, TMEM_MIG_SHARED_IMAGE without
 * an image, or a migration is running), -TMEM_E_NOMEM.
 */
int tmem_migration_start(struct tmem_store *s, unsigned int flags,
			 struct tmem_migration **out)
{
	size_t stripes, i;
	struct tmem_migration *m;
	int ret = 0;

	if (!s || !out ||
	    (flags & ~(TMEM_MIG_EPHEMERAL | TMEM_MIG_SHARED_IMAGE)) ||
	    ((flags & TMEM_MIG_SHARED_IMAGE) && !s->image.img))
		return -TMEM_E_INVAL;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -TMEM_E_NOMEM;
	m->s = s;
	m->flags = flags;
	m->log_budget = s->cfg.limit_bytes / MIG_LOG_SHARE;
	stripes = (size_t)s->cfg.max_pools * POOL_BUCKETS;
	m->pool = calloc(s->cfg.max_pools, sizeof(*m->pool));
	m->log = calloc(stripes, sizeof(*m->log));
	m->gone = calloc(MIG_GONE_MAX, sizeof(*m->gone));
	if (!m->pool || !m->log || !m->gone)
		ret = -TMEM_E_NOMEM;
	pthread_mutex_init(&m->gone_lock, NULL);
	for (i = 0; !ret && i < stripes; i++)
		m->log[i].m = m;
	pthread_mutex_lock(&s->pools_lock);
	if (!ret && s->mig)
		ret = -TMEM_E_INVAL;
	if (!ret && (flags & TMEM_MIG_SHARED_IMAGE))
		ret = swapimg_hold_start(s->image.img);
	if (!ret)
		s->mig = m;
	pthread_mutex_unlock(&s->pools_lock);
	if (ret) {
		pthread_mutex_destroy(&m->gone_lock);
		free(m->gone);
		free(m->pool);
		free(m->log);
		free(m);
		return ret;
	}
	*out = m;
	return 0;
}

/**
 * tmem_migration_next() - the next record to send
 * @m: migration
 * @rec: filled in
 * @buf: TMEM_PAGE_SIZE bytes; receives the record's @rec->len bytes of
 *	 data (the page as stored: compressed bytes or the raw page)
 *
 * Pool records come first, then the pages of each stripe in key order
 * (the full pass), then, stripe after stripe, what changed since it was
 * sent; a key whose page went is flushed before anything else.  Takes one bucket lock at a time and holds none on return.
 * Returning 0 ends a round: nothing is pending now, though ops may change
 * keys later; with the guest stopped it means the destination is equal.
 *
 * A shared image's slots that fell free before a round ends are reused
 * only once it has: the records returned until then dropped every
 * reference the destination had to them (the caller sends each record
 * before it asks for the next).
 *
 * Return: 1 with a record, 0 if there is none left now, or -TMEM_E_IO (a
 * written-back page could not be read from the swap image).
 */
int tmem_migration_next(struct tmem_migration *m, struct tmem_mig_record *rec,
			uint8_t *buf)
{
	bool shared = m->flags & TMEM_MIG_SHARED_IMAGE;
	int ret;

	for (;;) {
		memset(rec, 0, sizeof(*rec));
		if (pools_sync(m, rec) || gone_next(m, rec))
			return 1;
		if (m->walk.kind != WALK_NONE) {
			ret = walk_next(m, rec, buf);
		} else if (m->batch) {
			ret = batch_next(m, rec, buf);
		} else {
			/* slots freed so far: their flushes are noted by now */
			if (shared)
				swapimg_hold_mark(m->s->image.img);
			if (find_work(m, rec) >= 0) {
				ret = rec->type ? 1 : 0;
			} else {
				if (pools_sync(m, rec))
					return 1;
				if (shared)
					swapimg_hold_release(m->s->image.img,
							     false);
				return 0;
			}
		}
		if (ret)
			return ret;
	}
}

/*
 * Data bytes of a stripe's pages, the image's at the mean compressed size
 * (none when they go as references).
 */
static uint64_t stripe_bytes(const struct tmem_migration *m,
			     const struct bucket_stats *st, uint64_t *mean)
{
	uint64_t in_ram = st->stored_pages - st->zero_pages - st->same_pages -
			  st->raw_pages - st->image_pages;

	*mean = in_ram ? st->compressed_bytes / in_ram : TMEM_PAGE_SIZE / 2;
	return st->compressed_bytes + st->raw_pages * TMEM_PAGE_SIZE +
	       (m->flags & TMEM_MIG_SHARED_IMAGE ? 0 :
		st->image_pages * *mean);
}

static uint32_t batch_left(const struct tmem_migration *m)
{
	uint32_t i, n = 0;

	for (i = m->batch_at; m->batch && i < m->batch_cap; i++)
		n += m->batch[i].what != 0;
	return n;
}

/* Under the stripe's lock: what is left to send of it. */
static void stripe_pending(struct tmem_migration *m, uint32_t at,
			   const struct tmem_bucket *b,
			   struct tmem_mig_pending *pend)
{
	const struct mig_log *log = &m->log[at];
	uint64_t mean, all = stripe_bytes(m, &b->stats, &mean);
	uint64_t keys = log->nr, pages = b->stats.stored_pages;
	const struct mig_walk *w = &m->walk;

	if (pages)
		mean = all / pages;
	if (m->batch && m->scan == at)
		keys += batch_left(m);
	if (log->reset) {
		pend->records += pages + !log->clean;
		pend->bytes += all;
	} else if (w->kind == WALK_BUCKET &&
		   w->pool * POOL_BUCKETS + w->bucket == at) {
		/* what the walk has not sent yet, as far as counts tell */
		pend->records += pages > w->sent ? pages - w->sent : 0;
		pend->bytes += all > w->sent_bytes ? all - w->sent_bytes : 0;
	}
	pend->records += keys;
	pend->bytes += keys * mean;
}

/**
 * tmem_migration_pending() - what is left to send
 * @m: migration
 * @pend: filled in
 *
 * Counts a record per logged key, stripes still to walk at their stored
 * pages, and a walk in progress at its stripe's pages less those it sent,
 * under each stripe's lock in turn: QEMU's pending estimate and its exact
 * count alike.  Exact while nothing changes; changes meanwhile make it an
 * estimate (a logged object counts one record).
 */
void tmem_migration_pending(struct tmem_migration *m,
			    struct tmem_mig_pending *pend)
{
	struct tmem_store *s = m->s;
	uint64_t mean;
	uint32_t id, i;

	memset(pend, 0, sizeof(*pend));
	pthread_mutex_lock(&s->pools_lock);
	for (id = 0; id < s->cfg.max_pools; id++) {
		struct tmem_pool *p = pool_alive(s, id);

		if (m->pool[id].alive != (p != NULL))
			pend->records++;	/* its pool record */
		if (!p || !kind_migrated(m, pool_kind(p)))
			continue;
		for (i = 0; i < POOL_BUCKETS; i++) {
			struct tmem_bucket *b = &p->bucket[i];

			pthread_mutex_lock(&b->lock);
			if (pool_current(m, p, id)) {
				stripe_pending(m, id * POOL_BUCKETS + i, b,
					       pend);
			} else {	/* not described yet: all of it */
				pend->records += b->stats.stored_pages;
				pend->bytes += stripe_bytes(m, &b->stats,
							    &mean);
			}
			pthread_mutex_unlock(&b->lock);
		}
	}
	pthread_mutex_unlock(&s->pools_lock);
}

/**
 * tmem_migration_end() - stop logging and free the migration
 * @m: migration (NULL is ignored)
 *
 * Ops go back to one untaken branch each.  The source may go on, or start
 * another migration later (which sends everything again).
 */
void tmem_migration_end(struct tmem_migration *m)
{
	struct tmem_store *s;
	uint32_t id, i;

	if (!m)
		return;
	s = m->s;
	pthread_mutex_lock(&s->pools_lock);
	for (id = 0; id < s->cfg.max_pools; id++) {
		struct tmem_pool *p = atomic_load(&s->pools[id]);

		for (i = 0; p && i < POOL_BUCKETS; i++) {
			pthread_mutex_lock(&p->bucket[i].lock);
			p->bucket[i].log = NULL;
			log_clear(stripe_log(m, id, i));
			pthread_mutex_unlock(&p->bucket[i].lock);
		}
	}
	s->mig = NULL;
	pthread_mutex_unlock(&s->pools_lock);
	if (m->flags & TMEM_MIG_SHARED_IMAGE)
		swapimg_hold_release(s->image.img, true);
	batch_free(m);
	pthread_mutex_destroy(&m->gone_lock);
	free(m->gone);
	free(m->pool);
	free(m->log);
	free(m);
}

/**
 * tmem_migration_freeze_image() - stop writeback for the switchover
 * @m: a TMEM_MIG_SHARED_IMAGE migration, the guest stopped
 *
 * Called before the last tmem_migration_next() round: no page moves to
 * the image from now on, and those under way are done (and logged), so
 * that the last round leaves the destination's references equal to the
 * source's pages.  tmem_image_release() then hands the image over;
 * tmem_image_acquire() undoes both (the source going on).
 */
void tmem_migration_freeze_image(struct tmem_migration *m)
{
	swapimg_freeze(m->s->image.img);
	store_writeback_wait_idle(m->s);
}

/* ---- destination ------------------------------------------------------ */

static _Thread_local uint8_t tls_check[TMEM_PAGE_SIZE];

/*
 * A record's page as the store will hold it.  Compressed bytes must come
 * from this store's compressor and decompress to exactly one page, so
 * that a stream cannot plant bytes a get would fail on.
 */
static int install_page_data(const struct tmem_store *s,
			     const struct tmem_mig_record *rec,
			     const uint8_t *data, struct page_data *pd)
{
	memset(pd, 0, sizeof(*pd));
	pd->data = data;
	pd->size = rec->len;
	switch (rec->form) {
	case TMEM_MIG_FILLED:
		pd->state = ENTRY_FILLED;
		pd->pattern = rec->fill;
		return rec->len ? -TMEM_E_INVAL : 0;
	case TMEM_MIG_RAW:
		pd->state = ENTRY_RAW;
		return rec->len == TMEM_PAGE_SIZE && data ? 0 : -TMEM_E_INVAL;
	case TMEM_MIG_COMPRESSED:
		pd->state = ENTRY_COMPRESSED;
		if (rec->compressor != s->cfg.compressor ||
		    rec->compressor == TMEM_COMP_NONE || !data || !rec->len ||
		    rec->len > s->cfg.max_compressed)
			return -TMEM_E_INVAL;
		return decompress_page(&s->cfg, data, rec->len, tls_check);
	}
	return -TMEM_E_INVAL;
}

/*
 * A TMEM_MIG_SLOT record as the entry that will reference it: the slot,
 * the unit object's place in it (16-byte units) and whether the page
 * straddles into the next slot must be what this store's allocator makes
 * of them, as they were on the source.
 */
static int install_slot_data(const struct tmem_store *s,
			     const struct tmem_mig_record *rec,
			     struct page_data *pd)
{
	unsigned int hdr, obj;
	bool straddles;

	memset(pd, 0, sizeof(*pd));
	pd->pattern = rec->slot;
	pd->size = rec->len;
	if (rec->compressor == TMEM_COMP_NONE) {
		pd->state = ENTRY_IMAGE_RAW;
		return rec->len == TMEM_PAGE_SIZE && !rec->offset &&
		       rec->next_slot == TMEM_MIG_NO_SLOT ? 0 : -TMEM_E_INVAL;
	}
	pd->state = ENTRY_IMAGE;
	if (rec->compressor != s->cfg.compressor || !rec->len ||
	    rec->len > s->cfg.max_compressed)
		return -TMEM_E_INVAL;
	hdr = s->alloc->obj_hdr(rec->len);
	if (rec->offset < hdr || rec->offset - hdr >= TMEM_PAGE_SIZE ||
	    (rec->offset - hdr) % (1u << IMAGE_OFFSET_SHIFT))
		return -TMEM_E_INVAL;
	obj = rec->offset - hdr;
	pd->buddy = (uint8_t)(obj >> IMAGE_OFFSET_SHIFT);
	straddles = obj + s->alloc->obj_bytes(rec->len) > TMEM_PAGE_SIZE;
	return straddles == (rec->next_slot != TMEM_MIG_NO_SLOT) ? 0 :
	       -TMEM_E_INVAL;
}

/*
 * A written-back page by reference: count it in its slots, then make the
 * entry that points at them, uncounting it if that fails.  The image is
 * the source's file, frozen until the switchover; nothing is read.
 */
static int install_slot(struct tmem_store *s, struct tmem_pool *p,
			const struct tmem_mig_record *rec)
{
	uint64_t next = rec->next_slot == TMEM_MIG_NO_SLOT ? SWAPIMG_NO_SLOT :
							     rec->next_slot;
	struct tmem_image *img = s->image.img;
	struct page_data pd;
	bool replaced;
	int ret;

	if (!img || pool_kind(p) != TMEM_PERSISTENT)
		return -TMEM_E_INVAL;
	ret = install_slot_data(s, rec, &pd);
	if (!ret)
		ret = swapimg_import_slot(img, rec->slot, rec->csum, next,
					  rec->next_csum);
	if (ret)
		return ret;
	ret = store_put_data(s, p, TMEM_PERSISTENT, &rec->oid, rec->index,
			     &pd, &replaced);
	if (ret)
		swapimg_page_put(img, rec->slot, next != SWAPIMG_NO_SLOT);
	return ret;
}

static int install_page(struct tmem_store *s,
			const struct tmem_mig_record *rec, const void *data)
{
	struct tmem_pool *p = store_pool_get(s, rec->pool_id);
	enum tmem_kind kind;
	struct page_data pd;
	bool replaced;
	int ret;

	if (!p)
		return -TMEM_E_BAD_POOL;
	if (rec->form == TMEM_MIG_SLOT)
		return install_slot(s, p, rec);
	kind = pool_kind(p);
	ret = install_page_data(s, rec, data, &pd);
	if (!ret)
		ret = store_put_data(s, p, kind, &rec->oid, rec->index, &pd,
				     &replaced);
	/*
	 * An ephemeral page may always be dropped, but not left older than
	 * the source's: no room for it is no reason to give the stream up.
	 */
	if (ret == -TMEM_E_FULL && kind == TMEM_EPHEMERAL) {
		ret = tmem_flush_page(s, rec->pool_id, &rec->oid, rec->index);
		return ret < 0 ? ret : 0;
	}
	return ret;
}

/* Remove every page of a stripe (TMEM_MIG_FLUSH_BUCKET). */
static int install_flush_bucket(struct tmem_store *s,
				const struct tmem_mig_record *rec)
{
	struct tmem_pool *p = store_pool_get(s, rec->pool_id);
	struct tmem_bucket *b;
	struct tmem_object *obj;
	unsigned int c;

	if (!p)
		return -TMEM_E_BAD_POOL;
	if (rec->bucket >= POOL_BUCKETS)
		return -TMEM_E_INVAL;
	b = &p->bucket[rec->bucket];
	pthread_mutex_lock(&b->lock);
	if (atomic_load_explicit(&p->alive, memory_order_acquire)) {
		store_mig_note_bucket(b);
		for (c = 0; c < BUCKET_CHAINS; c++)
			while ((obj = object_of_ref(s, b->chain[c])))
				b->stats.flushed_pages +=
					store_object_drain(s, b, obj);
	}
	pthread_mutex_unlock(&b->lock);
	zbud_clean(&s->zbud);
	return 0;
}

/**
 * tmem_install() - apply one record of a migration stream
 * @s: store (the destination; empty when the stream began)
 * @rec: the record, as tmem_migration_next() made it on the source
 * @data: its @rec->len bytes (TMEM_MIG_PAGE), else ignored
 *
 * A page is stored as it came, with no recompression, charged to the
 * limit as a put is.  A failure leaves the store as it was, except for a
 * page record failing with -TMEM_E_NOMEM, which leaves its key empty (as
 * a failed put does); the caller is expected to give up the stream.  An
 * ephemeral page that finds no room is dropped instead, with any older
 * page at its key, and the call succeeds.
 *
 * A TMEM_MIG_SLOT page (a shared-image stream) must fit this store's
 * image, allocator and compressor; it is counted in its slots, with their
 * checksums, and read only when the guest gets it (after
 * tmem_image_acquire()).
 *
 * Return: 0, or -TMEM_E_INVAL (malformed record, compressor not this
 * store's, compressed bytes longer than its max_compressed, pool
 * descriptor in conflict, a slot reference without an image, out of its
 * range or in conflict with the slot's other pages), -TMEM_E_IO
 * (compressed bytes that
 * do not decompress to a page), -TMEM_E_BAD_POOL, -TMEM_E_FULL (no room:
 * nothing was touched), -TMEM_E_NO_POOLS, -TMEM_E_NOMEM.
 */
int tmem_install(struct tmem_store *s, const struct tmem_mig_record *rec,
		 const void *data)
{
	int ret;

	if (!s || !rec)
		return -TMEM_E_INVAL;
	switch (rec->type) {
	case TMEM_MIG_POOL:
		return store_pool_restore(s, rec->pool_id, rec->pool_flags,
					  (rec->pool_flags & TMEM_POOL_SHARED) ?
					  &rec->uuid : NULL, rec->refs);
	case TMEM_MIG_POOL_GONE:
		return store_pool_drop(s, rec->pool_id);
	case TMEM_MIG_PAGE:
		return install_page(s, rec, data);
	case TMEM_MIG_FLUSH_PAGE:
		ret = tmem_flush_page(s, rec->pool_id, &rec->oid, rec->index);
		return ret < 0 ? ret : 0;
	case TMEM_MIG_FLUSH_OBJECT:
		return tmem_flush_object(s, rec->pool_id, &rec->oid, NULL);
	case TMEM_MIG_FLUSH_BUCKET:
		return install_flush_bucket(s, rec);
	}
	return -TMEM_E_INVAL;
}

/*
 * The capacity, after writing persistent units back to the image until it
 * covers @need or no more can go: what background writeback does given
 * time, done here so that a destination judges its credits at once.  Each
 * round moves a unit out of RAM (or waits for one the thread is writing),
 * so the loop ends by the time RAM holds no persistent unit.
 */
static uint64_t capacity_after_writeback(struct tmem_store *s, uint64_t need)
{
	uint64_t cap = tmem_persistent_capacity(s);
	enum wb_result wb;

	while (cap < need && s->image.img) {
		wb = store_writeback_unit(s);
		if (wb != WB_FREED &&
		    !(wb == WB_NONE && store_writeback_wait_idle(s)))
			break;
		cap = tmem_persistent_capacity(s);
	}
	return cap;
}

/**
 * tmem_install_check_room() - whether a destination honours the credits
 * @s: store (the destination)
 * @pages: persistent pages still to install (the source's stored
 *	   persistent pages before loading; 0 once the stream is loaded)
 * @credits: credited puts the guest may still make (granted, not spent)
 * @capacity: if not NULL, set to tmem_persistent_capacity()
 *
 * An install, like a put, lowers the capacity by at most one, so before
 * loading, room for @pages + @credits is what the destination must have
 * to be worth trying; once loaded, the capacity itself must cover the
 * credits, whatever the pages' packing.  Installs fill RAM as fast as the
 * stream comes, ahead of background writeback: with an image, the store
 * first writes back as much as that takes, in the caller's thread, rather
 * than refuse credits that writeback would honour.  The caller holds no
 * store lock; the call may write to the image.
 *
 * Return: 0, or -TMEM_E_FULL.
 */
int tmem_install_check_room(struct tmem_store *s, uint64_t pages,
			    uint64_t credits, uint64_t *capacity)
{
	uint64_t need = pages + credits < pages ? UINT64_MAX : pages + credits;
	uint64_t cap = capacity_after_writeback(s, need);

	if (capacity)
		*capacity = cap;
	return cap >= need ? 0 : -TMEM_E_FULL;
}
