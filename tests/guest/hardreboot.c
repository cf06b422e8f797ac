// SPDX-License-Identifier: BSD-3-Clause
/*
 * hardreboot - sync and restart (or power off) the guest at once: the
 * minimal root file system has no reboot or poweroff command.
 * Usage: hardreboot [--poweroff]
 */
#include <stdio.h>
#include <string.h>
#include <sys/reboot.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	int how = RB_AUTOBOOT;

	if (argc > 1 && !strcmp(argv[1], "--poweroff")) {
		how = RB_POWER_OFF;
	} else if (argc > 1) {
		fprintf(strcmp(argv[1], "--help") ? stderr : stdout,
			"Usage: hardreboot [--poweroff]\n"
			"Syncs file systems and restarts the machine (or powers "
			"it off).\n");
		return strcmp(argv[1], "--help") ? 2 : 0;
	}
	sync();
	reboot(how);
	perror("hardreboot: reboot");
	return 1;
}
