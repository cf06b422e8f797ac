/*
 * libqos driver framework: virtio-tmem-pci
 *
 * Copyright (c) 2026 The virtio-tmem authors
 *
 * This work is licensed under the terms of the GNU GPL, version 2 or later.
 * See the COPYING file in the top-level directory.
 */

#ifndef TESTS_LIBQOS_VIRTIO_TMEM_H
#define TESTS_LIBQOS_VIRTIO_TMEM_H

#include "qgraph.h"
#include "virtio.h"
#include "virtio-pci.h"

typedef struct QVirtioTmem QVirtioTmem;
typedef struct QVirtioTmemPCI QVirtioTmemPCI;

struct QVirtioTmem {
    QVirtioDevice *vdev;
};

struct QVirtioTmemPCI {
    QVirtioPCIDevice pci_vdev;
    QVirtioTmem tmem;
};

#endif
