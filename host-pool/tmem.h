/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * tmem.h - host-side transcendent memory store.
 *
 * A store holds pages for the pools of one virtual device: ephemeral pools
 * (clean page cache: the store may drop their pages) and persistent pools
 * (swap: a page stays until it is flushed).  Pages are compressed with LZ4
 * (or zstd) and packed two per 4 KiB pageframe by a zbud allocator; zero-
 * and same-filled pages cost only metadata.  Everything the store allocates,
 * pageframes and metadata alike, is charged against one memory limit.
 *
 * All entry points are thread-safe and return 0 (or a non-negative value)
 * on success and a negative TMEM_E* code on failure; none aborts on bad
 * input.
 */
#ifndef TMEM_H
#define TMEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TMEM_PAGE_SIZE		4096u
#define TMEM_MAX_IOV		1024	/* pieces one page may come in */

/* Error codes (returned negated). */
enum tmem_error {
	TMEM_E_INVAL = 1,	/* NULL pointer, unknown flag, bad config */
	TMEM_E_BAD_POOL,	/* no pool with that id */
	TMEM_E_NOT_FOUND,	/* get: no such page */
	TMEM_E_IOV,		/* iovec does not describe exactly one page */
	TMEM_E_FULL,		/* limit reached and nothing could be reclaimed */
	TMEM_E_INCOMPRESSIBLE,	/* ephemeral page compresses too poorly */
	TMEM_E_NO_POOLS,	/* max_pools pools exist */
	TMEM_E_UUID_KIND,	/* shared UUID exists with another pool kind */
	TMEM_E_NOMEM,		/* the host itself is out of memory */
	TMEM_E_IO,		/* stored data unreadable (corrupt or I/O) */
	TMEM_E_IMAGE,		/* swap image: open, size or attach failed */
	TMEM_E__MAX
};

/*
 * Compressors: LZ4 (the default, fastest), zstd (denser, slower; see
 * docs/benchmarks.md, "Compressors"), or none (pages stored raw).
 */
enum tmem_compressor {
	TMEM_COMP_LZ4 = 0,
	TMEM_COMP_NONE,
	TMEM_COMP_ZSTD,
};

/* Pool flags */
#define TMEM_POOL_PERSISTENT	(1u << 0)
#define TMEM_POOL_SHARED	(1u << 1)

/* Get flags */
#define TMEM_GET_EXCLUSIVE	(1u << 0)

enum tmem_kind {
	TMEM_EPHEMERAL = 0,
	TMEM_PERSISTENT = 1,
	TMEM_NR_KINDS
};

/*
 * Ranges and defaults of struct tmem_config.  Users that expose the
 * settings (the QEMU device's properties, the tools) take them from here
 * and let tmem_config_check() judge a configuration, rather than repeating
 * the rules.
 */
#define TMEM_MIN_LIMIT			(1ull << 20)
#define TMEM_MAX_LIMIT			(32ull << 30)
#define TMEM_DEFAULT_LIMIT		(64ull << 20)
#define TMEM_DEFAULT_COMPRESSOR		TMEM_COMP_LZ4
/* liblz4 clamps larger values to this (LZ4_ACCELERATION_MAX in lz4.c). */
#define TMEM_LZ4_ACCEL_MIN		1
#define TMEM_LZ4_ACCEL_MAX		65537
#define TMEM_DEFAULT_LZ4_ACCEL		1
/*
 * zstd's levels 1..ZSTD_maxCLevel(); its negative ("fast") levels are left
 * out: who wants speed before density has LZ4.
 */
#define TMEM_ZSTD_LEVEL_MIN		1
#define TMEM_ZSTD_LEVEL_MAX		22
/* The knee of density against CPU on real pages (docs/benchmarks.md) */
#define TMEM_DEFAULT_ZSTD_LEVEL		2
#define TMEM_MAX_COMPRESSED_MIN		64u
#define TMEM_MAX_COMPRESSED_MAX		TMEM_PAGE_SIZE
#define TMEM_DEFAULT_MAX_COMPRESSED	(TMEM_PAGE_SIZE * 3 / 4)
#define TMEM_MIN_POOLS			1u
#define TMEM_MAX_POOLS			4096u
#define TMEM_DEFAULT_MAX_POOLS		32u
#define TMEM_WB_HIGH_PCT_MIN		1u
#define TMEM_WB_HIGH_PCT_MAX		100u
#define TMEM_DEFAULT_WB_HIGH_PCT	90u
#define TMEM_DEFAULT_WB_LOW_PCT		75u
#define TMEM_DEFAULT_ALLOCATOR		TMEM_ALLOC_ZBUD

/**
 * enum tmem_allocator - how compressed pages are laid out in frames
 * @TMEM_ALLOC_ZBUD: at most two pages a frame (zbud.c): reclaim frees a
 *		     frame by removing at most two pages
 * @TMEM_ALLOC_ZSMALLOC: size classes every 16 bytes, pages packed back to
 *			 back across frames (zspage.c), with compaction
 */
enum tmem_allocator {
	TMEM_ALLOC_ZBUD = 0,
	TMEM_ALLOC_ZSMALLOC,
};

/**
 * struct tmem_config - store settings
 * @limit_bytes: pageframes plus metadata may not exceed this
 *		 (TMEM_MIN_LIMIT..TMEM_MAX_LIMIT), and must leave room for
 *		 the store's own metadata, which grows with @max_pools
 * @compressor: TMEM_COMP_LZ4, TMEM_COMP_ZSTD or TMEM_COMP_NONE
 * @lz4_acceleration: LZ4_compress_fast() acceleration,
 *		      TMEM_LZ4_ACCEL_MIN..TMEM_LZ4_ACCEL_MAX (LZ4 only)
 * @zstd_level: zstd compression level,
 *		TMEM_ZSTD_LEVEL_MIN..TMEM_ZSTD_LEVEL_MAX (zstd only)
 * @max_compressed: a page compressing to more bytes than this is
 *		    incompressible: stored raw (persistent) or refused
 *		    (ephemeral);
 *		    TMEM_MAX_COMPRESSED_MIN..TMEM_MAX_COMPRESSED_MAX
 * @max_pools: pools that may exist at once, TMEM_MIN_POOLS..TMEM_MAX_POOLS
 * @wb_high_pct: with a swap image, background writeback starts when the
 *		 store uses this percentage of @limit_bytes
 *		 (TMEM_WB_HIGH_PCT_MIN..TMEM_WB_HIGH_PCT_MAX)
 * @wb_low_pct: ... and stops at this one (0..@wb_high_pct - 1)
 * @allocator: enum tmem_allocator
 * @max_limit_bytes: most tmem_set_limit() may raise the limit to (0: the
 *		     initial @limit_bytes); address space and frame
 *		     descriptors are reserved for it, not memory
 *		     (@limit_bytes..TMEM_MAX_LIMIT)
 *
 * tmem_config_init() fills in the TMEM_DEFAULT_* values.
 */
struct tmem_config {
	uint64_t limit_bytes;
	enum tmem_compressor compressor;
	int lz4_acceleration;
	int zstd_level;
	unsigned int max_compressed;
	unsigned int max_pools;
	unsigned int wb_high_pct, wb_low_pct;
	enum tmem_allocator allocator;
	uint64_t max_limit_bytes;
};

/**
 * enum tmem_config_field - what tmem_config_check() found wrong
 * @TMEM_CFG_OK: nothing
 * @TMEM_CFG_LIMIT: @limit_bytes
 * @TMEM_CFG_COMPRESSOR: @compressor
 * @TMEM_CFG_LZ4_ACCEL: @lz4_acceleration
 * @TMEM_CFG_ZSTD_LEVEL: @zstd_level
 * @TMEM_CFG_MAX_COMPRESSED: @max_compressed
 * @TMEM_CFG_MAX_POOLS: @max_pools
 * @TMEM_CFG_WB_HIGH: @wb_high_pct
 * @TMEM_CFG_WB_LOW: @wb_low_pct
 * @TMEM_CFG_ALLOCATOR: @allocator
 * @TMEM_CFG_MAX_LIMIT: @max_limit_bytes
 */
enum tmem_config_field {
	TMEM_CFG_OK = 0,
	TMEM_CFG_LIMIT,
	TMEM_CFG_COMPRESSOR,
	TMEM_CFG_LZ4_ACCEL,
	TMEM_CFG_ZSTD_LEVEL,
	TMEM_CFG_MAX_COMPRESSED,
	TMEM_CFG_MAX_POOLS,
	TMEM_CFG_WB_HIGH,
	TMEM_CFG_WB_LOW,
	TMEM_CFG_ALLOCATOR,
	TMEM_CFG_MAX_LIMIT,
};

struct tmem_uuid {
	uint8_t b[16];
};

struct tmem_oid {
	uint64_t id[3];
};

/**
 * struct tmem_kind_stats - counters of one pool kind
 * @puts: put calls
 * @gets: get calls
 * @hits: gets that found their page
 * @flushes: flush_page calls
 * @flush_objects: flush_object calls
 * @flushed_pages: pages removed by flushes, pool flushes and destroys
 * @stored_pages: pages held now
 * @zero_pages: of @stored_pages, zero-filled (metadata only)
 * @same_pages: of @stored_pages, filled with one non-zero word
 * @raw_pages: of @stored_pages, stored uncompressed in a frame of their own
 * @image_pages: of @stored_pages, written back to the swap image
 * @compressed_bytes: compressed bytes of the pages held in frames
 * @frames: pageframes holding pages of this kind
 * @meta_frames: pageframes holding metadata of this kind
 * @evicted_pages: pages dropped to make room (ephemeral only)
 * @evicted_frames: frames reclaimed to make room (ephemeral only)
 * @reject_full: puts refused for lack of room
 * @reject_incompressible: puts refused as incompressible (ephemeral only)
 * @reject_nomem: puts refused because the host was out of memory
 */
struct tmem_kind_stats {
	uint64_t puts, gets, hits, flushes, flush_objects, flushed_pages;
	uint64_t stored_pages, zero_pages, same_pages, raw_pages;
	uint64_t compressed_bytes, frames, meta_frames;
	uint64_t evicted_pages, evicted_frames;
	uint64_t reject_full, reject_incompressible, reject_nomem;
	uint64_t image_pages;
};

/**
 * struct tmem_image_stats - writeback to the swap image
 * @frames_written: frames written back
 * @pages_written: pages in them
 * @pages_read: gets served from the image
 * @pages_in_image: pages whose data is in the image now
 * @slots_used: slots holding at least one live page
 * @slots_total: slots the image may have
 * @bytes_allocated: bytes allocated in the file (used and reserved slots)
 * @write_errors: writebacks that failed (the frame stayed in RAM)
 * @read_errors: gets that failed to read their slot
 * @checksum_errors: gets that read a slot whose checksum did not match
 * @reserve_errors: failures to allocate image space ahead
 * @overdraft_puts: persistent puts stored beyond the limit because
 *		    writeback failed (see tmem_put())
 * @wakeups: background writeback thread runs
 */
struct tmem_image_stats {
	uint64_t frames_written, pages_written, pages_read, pages_in_image;
	uint64_t slots_used, slots_total, bytes_allocated;
	uint64_t write_errors, read_errors, checksum_errors, reserve_errors;
	uint64_t overdraft_puts, wakeups;
};

/**
 * struct tmem_stats - a snapshot of the store's counters
 * @kind: per pool kind
 * @limit_bytes: the limit now (tmem_set_limit())
 * @used_bytes: bytes charged against the limit now
 * @meta_bytes: of @used_bytes, metadata (frames of metadata, descriptors,
 *		pool tables)
 * @pools: pools that exist
 * @arenas: mapped arenas
 * @persistent_capacity: tmem_persistent_capacity() at snapshot time
 * @compact_moved: pages compaction moved (TMEM_ALLOC_ZSMALLOC)
 * @compact_frames: frames compaction freed
 * @image: swap image counters (all zero without an image)
 */
struct tmem_stats {
	struct tmem_kind_stats kind[TMEM_NR_KINDS];
	uint64_t limit_bytes, used_bytes, meta_bytes;
	uint64_t pools, arenas, persistent_capacity;
	uint64_t compact_moved, compact_frames;
	struct tmem_image_stats image;
};

struct tmem_store;

void tmem_config_init(struct tmem_config *cfg);
enum tmem_config_field tmem_config_check(const struct tmem_config *cfg,
					 char *why, size_t len);

int tmem_store_create(const struct tmem_config *cfg, struct tmem_store **out);
void tmem_store_destroy(struct tmem_store *s);

struct tmem_image;

/**
 * struct tmem_image_io - how the swap image is read and written
 * @pwrite: pwrite(2) of one whole slot; bytes written or -errno
 * @pread: pread(2) of one whole slot; bytes read or -errno
 * @fallocate: fallocate(2); 0 or -errno
 * @opaque: first argument of each
 *
 * The default is the system calls; tests pass their own to inject ENOSPC
 * and EIO.
 */
struct tmem_image_io {
	long (*pwrite)(void *opaque, int fd, const void *buf, size_t len,
		       uint64_t off);
	long (*pread)(void *opaque, int fd, void *buf, size_t len,
		      uint64_t off);
	int (*fallocate)(void *opaque, int fd, int mode, uint64_t off,
			 uint64_t len);
	void *opaque;
};

/**
 * struct tmem_image_config - swap image settings
 * @path: the file; created with mode 0600, or truncated and made 0600 if
 *	  it exists (its old contents are never read); it must be a regular
 *	  file with no other hard link, not held by another open image
 * @size_bytes: most bytes the image may grow to (a multiple of 4096,
 *		TMEM_MIN_IMAGE..TMEM_MAX_IMAGE)
 * @reserve_bytes: image space kept allocated ahead for credits (0: as much
 *		   as the store's limit)
 * @unlink_path: remove @path once open (nothing left behind on exit)
 * @incoming: @path is the image of a migration source that shares it
 *	      (shared storage): open it as it is, frozen and without its
 *	      lock, until tmem_image_acquire(); not with @unlink_path
 * @direct: open with O_DIRECT (bypass the host page cache)
 * @io: I/O layer, or NULL for the system calls
 * @report: if not NULL, called on every failed write, read, checksum or
 *	    allocation ahead (@op "write", "read", "checksum", "allocate"),
 *	    from whichever thread met it, with no store lock held except
 *	    possibly a bucket lock; it must not call into the store
 * @report_opaque: its first argument
 * @why: if not NULL, tmem_image_open() writes here why it failed with
 *	 TMEM_E_IMAGE, a sentence naming @path (and the system's error text,
 *	 if any), e.g. "Failed to get "write" lock: is another process using
 *	 the swap image '/path'?"
 * @why_len: size of @why
 */
struct tmem_image_config {
	const char *path;
	uint64_t size_bytes;
	uint64_t reserve_bytes;
	bool unlink_path;
	bool incoming;
	bool direct;
	const struct tmem_image_io *io;
	void (*report)(void *opaque, const char *op, uint64_t offset, int err);
	void *report_opaque;
	char *why;
	size_t why_len;
};

#define TMEM_MIN_IMAGE		(1ull << 20)
#define TMEM_MAX_IMAGE		(1ull << 40)

int tmem_image_open(const struct tmem_image_config *cfg,
		    struct tmem_image **out, int *os_errno);
void tmem_image_close(struct tmem_image *img);
int tmem_store_attach_image(struct tmem_store *s, struct tmem_image *img);
int tmem_image_acquire(struct tmem_image *img, char *why, size_t why_len);
int tmem_image_release(struct tmem_image *img, char *why, size_t why_len);

int tmem_new_pool(struct tmem_store *s, unsigned int flags,
		  const struct tmem_uuid *uuid);
int tmem_destroy_pool(struct tmem_store *s, uint32_t pool_id,
		      uint64_t *flushed);
int tmem_pool_kind(struct tmem_store *s, uint32_t pool_id);

int tmem_put(struct tmem_store *s, uint32_t pool_id,
	     const struct tmem_oid *oid, uint64_t index,
	     const struct iovec *iov, int iovcnt, bool *replaced);
int tmem_get(struct tmem_store *s, uint32_t pool_id,
	     const struct tmem_oid *oid, uint64_t index,
	     const struct iovec *iov, int iovcnt, unsigned int flags);
int tmem_flush_page(struct tmem_store *s, uint32_t pool_id,
		    const struct tmem_oid *oid, uint64_t index);
int tmem_flush_object(struct tmem_store *s, uint32_t pool_id,
		      const struct tmem_oid *oid, uint64_t *flushed);
int tmem_flush_pool(struct tmem_store *s, uint32_t pool_id,
		    uint64_t *flushed);

/*
 * Migration: a source store streams its pools and pages, as stored, into
 * an empty destination store; see docs/design.md "Migration (library)".
 */

/* tmem_migration_start() flags */
#define TMEM_MIG_EPHEMERAL	(1u << 0)	/* send ephemeral pages too */
/* the destination opens the same image: send written-back pages as slots */
#define TMEM_MIG_SHARED_IMAGE	(1u << 1)

/**
 * enum tmem_mig_type - what a migration record does on the destination
 * @TMEM_MIG_POOL: create pool @pool_id as @pool_flags/@uuid with @refs
 *		   references, or set the references of the pool there
 * @TMEM_MIG_POOL_GONE: destroy pool @pool_id and every page in it
 * @TMEM_MIG_PAGE: store the page at (@pool_id, @oid, @index), replacing
 *		   any; the page is @form
 * @TMEM_MIG_FLUSH_PAGE: remove the page at (@pool_id, @oid, @index)
 * @TMEM_MIG_FLUSH_OBJECT: remove every page of (@pool_id, @oid)
 * @TMEM_MIG_FLUSH_BUCKET: remove every page of the objects of @pool_id
 *			   whose id hashes to lock stripe @bucket
 */
enum tmem_mig_type {
	TMEM_MIG_POOL = 1,
	TMEM_MIG_POOL_GONE,
	TMEM_MIG_PAGE,
	TMEM_MIG_FLUSH_PAGE,
	TMEM_MIG_FLUSH_OBJECT,
	TMEM_MIG_FLUSH_BUCKET,
};

/**
 * enum tmem_mig_form - how a TMEM_MIG_PAGE record carries its page
 * @TMEM_MIG_COMPRESSED: @len bytes of @compressor output
 * @TMEM_MIG_RAW: the page itself, @len = TMEM_PAGE_SIZE
 * @TMEM_MIG_FILLED: no bytes: the page is @fill repeated
 * @TMEM_MIG_SLOT: no bytes: the page is in the shared swap image, @len
 *		   bytes at @offset of slot @slot going on into @next_slot
 *		   (@compressor's output), or the whole slot (@compressor
 *		   TMEM_COMP_NONE, @len TMEM_PAGE_SIZE); @csum and
 *		   @next_csum are the slots' checksums
 */
enum tmem_mig_form {
	TMEM_MIG_COMPRESSED = 1,
	TMEM_MIG_RAW,
	TMEM_MIG_FILLED,
	TMEM_MIG_SLOT,
};

#define TMEM_MIG_NO_SLOT	UINT32_MAX	/* @next_slot: none */

/**
 * struct tmem_mig_record - one step of a migration stream
 * @type: enum tmem_mig_type
 * @form: enum tmem_mig_form (TMEM_MIG_PAGE)
 * @compressor: enum tmem_compressor that produced compressed bytes
 * @bucket: lock stripe (TMEM_MIG_FLUSH_BUCKET)
 * @pool_id: pool
 * @pool_flags: TMEM_POOL_* (TMEM_MIG_POOL)
 * @refs: references (TMEM_MIG_POOL)
 * @uuid: shared pool's UUID (TMEM_MIG_POOL with TMEM_POOL_SHARED)
 * @oid: object id (pages and objects)
 * @index: page index (pages)
 * @len: bytes of data that go with the record (TMEM_MIG_PAGE), or of
 *	 the page in the image (TMEM_MIG_SLOT)
 * @fill: fill word (TMEM_MIG_FILLED)
 * @slot: image slot (TMEM_MIG_SLOT)
 * @next_slot: the slot the page goes on into, or TMEM_MIG_NO_SLOT
 * @offset: where the page's bytes start in @slot
 * @csum: @slot's checksum
 * @next_csum: @next_slot's checksum (0 without one)
 *
 * A library structure, not a wire format: whoever sends it encodes each
 * field, and checks on receipt what tmem_install() cannot (lengths).
 */
struct tmem_mig_record {
	uint8_t type, form, compressor;
	uint16_t bucket;
	uint32_t pool_id, pool_flags, refs;
	struct tmem_uuid uuid;
	struct tmem_oid oid;
	uint64_t index;
	uint32_t len, fill;
	uint32_t slot, next_slot, offset, csum, next_csum;
};

/**
 * struct tmem_mig_pending - what a migration has still to send
 * @records: records (exact while nothing changes; a logged object
 *	     counts as one)
 * @bytes: their data, from the stripes' compressed sizes (a logged key
 *	   at its stripe's mean, pages in the swap image at the mean of
 *	   the stripe's compressed pages in RAM)
 */
struct tmem_mig_pending {
	uint64_t records, bytes;
};

struct tmem_migration;

int tmem_migration_start(struct tmem_store *s, unsigned int flags,
			 struct tmem_migration **out);
int tmem_migration_next(struct tmem_migration *m, struct tmem_mig_record *rec,
			uint8_t *buf);
void tmem_migration_pending(struct tmem_migration *m,
			    struct tmem_mig_pending *pend);
void tmem_migration_end(struct tmem_migration *m);
void tmem_migration_freeze_image(struct tmem_migration *m);
int tmem_install(struct tmem_store *s, const struct tmem_mig_record *rec,
		 const void *data);
int tmem_install_check_room(struct tmem_store *s, uint64_t pages,
			    uint64_t credits, uint64_t *capacity);

/**
 * struct tmem_resize - where a change of the limit stands
 * @target_bytes: the limit now (tmem_set_limit())
 * @used_bytes: bytes charged against it now
 * @start_bytes: @used_bytes when the limit was last lowered below it
 *		 (progress: (@start_bytes - @used_bytes) / (@start_bytes -
 *		 @target_bytes)); 0 if it never was
 * @persistent_pages: persistent pages stored (in RAM and in the image)
 * @excess_pages: persistent pages in RAM the store cannot shed itself
 *		  (no image, or the image cannot take them): about this many
 *		  must be flushed for @used_bytes to reach @target_bytes;
 *		  0 once it does or while other memory can still go
 * @done: @used_bytes is within @target_bytes
 */
struct tmem_resize {
	uint64_t target_bytes, used_bytes, start_bytes;
	uint64_t persistent_pages, excess_pages;
	bool done;
};

int tmem_set_limit(struct tmem_store *s, uint64_t limit_bytes);
uint64_t tmem_limit_for_credits(struct tmem_store *s, uint64_t credits);
int tmem_shrink(struct tmem_store *s, uint64_t max_frames,
		struct tmem_resize *st);
void tmem_resize_status(struct tmem_store *s, struct tmem_resize *st);

uint64_t tmem_persistent_capacity(struct tmem_store *s);
uint64_t tmem_compact(struct tmem_store *s);
void tmem_get_stats(struct tmem_store *s, struct tmem_stats *st);
const char *tmem_strerror(int err);

#ifdef __cplusplus
}
#endif

#endif /* TMEM_H */
