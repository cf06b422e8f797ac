/*
 * make_seeds - write seed inputs for the fuzz targets.
 *
 * Usage: fuzz-seeds codec|pool DIR
 * codec: valid batches (every op, 1 op, max ops, mixed) in fuzz_codec's
 * input format; pool: short op programs in fuzz_pool's format.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "vtmem_codec.h"

static struct virtio_tmem_req_hdr hdr;
static struct virtio_tmem_op ops[64];
static uint8_t buf[6 + 16 + 64 * 48 + 4 * 4096];

static int write_file(const char *dir, const char *name, const void *p,
		      size_t n)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f || fwrite(p, 1, n, f) != n) {
		fprintf(stderr, "fuzz-seeds: cannot write %s: %s\n", path,
			strerror(errno));
		return 1;
	}
	return fclose(f) != 0;
}

/* fuzz_codec input: in_len, max_batch selector, no splits, readable bytes */
static size_t codec_input(const struct vtmem_batch *b)
{
	uint32_t in = (uint32_t)vtmem_batch_in_len(b);
	size_t n = 0;
	unsigned int i;

	memcpy(buf, &in, 4);
	buf[4] = 255;
	buf[5] = 0;
	n = 6;
	memcpy(buf + n, b->hdr, sizeof(*b->hdr));
	n += sizeof(*b->hdr);
	memcpy(buf + n, b->ops, b->nr_ops * sizeof(*b->ops));
	n += b->nr_ops * sizeof(*b->ops);
	for (i = 0; i < b->nr_put && i < 4; i++, n += 4096)
		memset(buf + n, (int)i, 4096);
	return n;
}

static int codec_seeds(const char *dir)
{
	struct vtmem_oid oid = { { 1, 2, 3 } };
	uint8_t uuid[16] = { 1 };
	struct vtmem_batch b;
	int err = 0;
	unsigned int i;

	vtmem_batch_init(&b, &hdr, ops, 64, 1);
	vtmem_batch_new_pool(&b, VIRTIO_TMEM_POOL_SHARED, uuid);
	vtmem_batch_put(&b, 1, &oid, 1, false);
	vtmem_batch_get(&b, 1, &oid, 1, true);
	vtmem_batch_flush_page(&b, 1, &oid, 1);
	vtmem_batch_flush_object(&b, 1, &oid);
	vtmem_batch_flush_pool(&b, 1);
	vtmem_batch_destroy_pool(&b, 1);
	err |= write_file(dir, "every-op", buf, codec_input(&b));

	vtmem_batch_init(&b, &hdr, ops, 64, 2);
	vtmem_batch_get(&b, 2, &oid, 9, false);
	err |= write_file(dir, "one-get", buf, codec_input(&b));

	vtmem_batch_init(&b, &hdr, ops, 64, 3);
	for (i = 0; i < 64; i++)
		vtmem_batch_flush_page(&b, 2, &oid, i);
	err |= write_file(dir, "max-flushes", buf, codec_input(&b));

	vtmem_batch_init(&b, &hdr, ops, 64, 4);
	for (i = 0; i < 4; i++)
		vtmem_batch_put(&b, 2, &oid, i, true);
	err |= write_file(dir, "four-puts", buf, codec_input(&b));
	return err;
}

static int pool_seeds(const char *dir)
{
	static const uint8_t prog[][8] = {
		{ 0, 1, 0, 0, 2, 1, 100, 0 }, { 1, 1, 0, 0, 0, 0, 0, 0 },
		{ 0, 0, 1, 3, 3, 2, 0, 1 }, { 1, 0, 1, 3, 1, 0, 0, 3 },
		{ 0, 1, 2, 0x81, 1, 3, 0, 0 }, { 2, 1, 2, 0x81, 0, 0, 0, 0 },
		{ 0, 2, 3, 4, 0, 0, 0, 0 }, { 3, 1, 0, 0, 0, 0, 0, 0 },
		{ 4, 0, 0, 0, 0, 0, 0, 0 }, { 5, 0, 0, 0, 0, 0, 0, 0 },
	};
	/* the same program with zstd (level 1) and with no compressor */
	uint8_t with[sizeof(prog) + 1];
	int err;

	memcpy(with, prog, sizeof(prog));
	err = write_file(dir, "program", prog, sizeof(prog));
	with[sizeof(prog)] = 1;
	err |= write_file(dir, "program-zstd", with, sizeof(with));
	with[sizeof(prog)] = 2;
	err |= write_file(dir, "program-none", with, sizeof(with));
	return err;
}

int main(int argc, char **argv)
{
	if (argc != 3 || (strcmp(argv[1], "codec") && strcmp(argv[1], "pool"))) {
		fprintf(stderr, "usage: fuzz-seeds codec|pool DIR\n");
		return 2;
	}
	if (mkdir(argv[2], 0700) && errno != EEXIST) {
		fprintf(stderr, "fuzz-seeds: cannot create %s: %s\n", argv[2],
			strerror(errno));
		return 1;
	}
	return strcmp(argv[1], "codec") ? pool_seeds(argv[2]) :
					  codec_seeds(argv[2]);
}
