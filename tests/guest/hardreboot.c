// SPDX-License-Identifier: BSD-3-Clause
/*
 * hardreboot - sync and restart the guest at once (the minimal root file
 * system has no reboot command).  Usage: hardreboot
 */
#include <stdio.h>
#include <string.h>
#include <sys/reboot.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc > 1) {
		fprintf(strcmp(argv[1], "--help") ? stderr : stdout,
			"Usage: hardreboot\nSyncs file systems and restarts the machine.\n");
		return strcmp(argv[1], "--help") ? 2 : 0;
	}
	sync();
	reboot(RB_AUTOBOOT);
	perror("hardreboot: reboot");
	return 1;
}
