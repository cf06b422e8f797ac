// SPDX-License-Identifier: BSD-3-Clause
/*
 * migwait - wait in the guest until the host has carried out its Nth
 * migration action, and print that action's outcome.
 *
 * The host (scripts/tmem-run --migrate-on, tests/libvirt/run.sh) writes
 * "VTMEM-MIGRATED <n> <outcome>\n" at the start of a read-only control
 * disk whose virtio-blk serial is "vtmem-ctl".  The guest cannot be told
 * otherwise that it now runs in another QEMU; O_DIRECT reads bypass its
 * page cache, so each poll sees what the host wrote last.
 *
 * Usage: migwait [--timeout SECONDS] N
 * Exit status: 0 with the outcome on stdout; 1 on timeout or error.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CTL_SERIAL "vtmem-ctl"
#define BLOCK 4096

/* /dev/vdX of the disk whose serial is vtmem-ctl, into @path. */
static int find_ctl(char *path, size_t len)
{
	DIR *d = opendir("/sys/block");
	struct dirent *e;
	char name[300], serial[64];
	int found = 0;

	if (!d)
		return 0;
	while (!found && (e = readdir(d))) {
		FILE *f;

		if (strncmp(e->d_name, "vd", 2))
			continue;
		snprintf(name, sizeof(name), "/sys/block/%s/serial", e->d_name);
		f = fopen(name, "r");
		if (!f)
			continue;
		if (fgets(serial, sizeof(serial), f) &&
		    !strncmp(serial, CTL_SERIAL, strlen(CTL_SERIAL)) &&
		    (serial[strlen(CTL_SERIAL)] == '\n' || !serial[strlen(CTL_SERIAL)])) {
			snprintf(path, len, "/dev/%s", e->d_name);
			found = 1;
		}
		fclose(f);
	}
	closedir(d);
	return found;
}

/* The action number the disk shows now (0: none yet), its outcome in @out. */
static long read_ctl(const char *path, char *out, size_t len)
{
	static char *buf;
	char word[32];
	long n = 0;
	int fd;

	if (!buf && posix_memalign((void **)&buf, BLOCK, BLOCK))
		return -1;
	fd = open(path, O_RDONLY | O_DIRECT);
	if (fd < 0)
		return -1;
	if (pread(fd, buf, BLOCK, 0) != BLOCK) {
		close(fd);
		return -1;
	}
	close(fd);
	buf[BLOCK - 1] = 0;
	if (sscanf(buf, "VTMEM-MIGRATED %ld %31s", &n, word) == 2)
		snprintf(out, len, "%s", word);
	return n;
}

static int usage(FILE *to, int status)
{
	fprintf(to, "Usage: migwait [--timeout SECONDS] N\n"
		"Waits until the host wrote 'VTMEM-MIGRATED <n> <outcome>' with\n"
		"n >= N on the disk with serial " CTL_SERIAL ", prints the outcome.\n"
		"Default timeout: 1800 s.\n");
	return status;
}

int main(int argc, char **argv)
{
	long want, timeout = 1800, n;
	char path[300], outcome[32] = "";
	time_t end;
	char *tail;

	if (argc > 1 && !strcmp(argv[1], "--help"))
		return usage(stdout, 0);
	if (argc == 4 && !strcmp(argv[1], "--timeout")) {
		timeout = strtol(argv[2], &tail, 10);
		if (*tail || timeout <= 0) {
			fprintf(stderr, "migwait: --timeout %s: not a number of seconds\n", argv[2]);
			return 2;
		}
		argv += 2;
		argc -= 2;
	}
	if (argc != 2)
		return usage(stderr, 2);
	want = strtol(argv[1], &tail, 10);
	if (*tail || want <= 0) {
		fprintf(stderr, "migwait: '%s': want an action number >= 1\n", argv[1]);
		return 2;
	}
	if (!find_ctl(path, sizeof(path))) {
		fprintf(stderr, "migwait: no disk with serial " CTL_SERIAL "\n");
		return 1;
	}
	for (end = time(NULL) + timeout; time(NULL) < end; usleep(500000)) {
		n = read_ctl(path, outcome, sizeof(outcome));
		if (n < 0) {
			fprintf(stderr, "migwait: reading %s: %s\n", path, strerror(errno));
			return 1;
		}
		if (n >= want) {
			printf("%s\n", outcome);
			return 0;
		}
	}
	fprintf(stderr, "migwait: no action %ld after %ld s\n", want, timeout);
	return 1;
}
