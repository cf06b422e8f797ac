/*
 * libqos driver framework: virtio-tmem-pci
 *
 * Copyright (c) 2026 The virtio-tmem authors
 *
 * This work is licensed under the terms of the GNU GPL, version 2 or later.
 * See the COPYING file in the top-level directory.
 */

#include "qemu/osdep.h"
#include "../libqtest.h"
#include "qemu/module.h"
#include "qgraph.h"
#include "virtio-tmem.h"

static void *qvirtio_tmem_get_driver(QVirtioTmem *tmem, const char *interface)
{
    if (!g_strcmp0(interface, "virtio-tmem")) {
        return tmem;
    }
    if (!g_strcmp0(interface, "virtio")) {
        return tmem->vdev;
    }
    fprintf(stderr, "%s not present in virtio-tmem\n", interface);
    g_assert_not_reached();
}

static void *qvirtio_tmem_pci_get_driver(void *object, const char *interface)
{
    QVirtioTmemPCI *dev = object;

    if (!g_strcmp0(interface, "pci-device")) {
        return dev->pci_vdev.pdev;
    }
    return qvirtio_tmem_get_driver(&dev->tmem, interface);
}

static void *virtio_tmem_pci_create(void *pci_bus, QGuestAllocator *t_alloc,
                                    void *addr)
{
    QVirtioTmemPCI *dev = g_new0(QVirtioTmemPCI, 1);
    QOSGraphObject *obj = &dev->pci_vdev.obj;

    virtio_pci_init(&dev->pci_vdev, pci_bus, addr);
    dev->tmem.vdev = &dev->pci_vdev.vdev;
    obj->get_driver = qvirtio_tmem_pci_get_driver;
    return obj;
}

static void virtio_tmem_register_nodes(void)
{
    QPCIAddress addr = {
        .devfn = QPCI_DEVFN(4, 0),
    };
    QOSGraphEdgeOptions opts = {
        .extra_device_opts = "addr=04.0,id=tmem0",
    };

    add_qpci_address(&opts, &addr);
    qos_node_create_driver("virtio-tmem-pci", virtio_tmem_pci_create);
    qos_node_consumes("virtio-tmem-pci", "pci-bus", &opts);
    qos_node_produces("virtio-tmem-pci", "pci-device");
    qos_node_produces("virtio-tmem-pci", "virtio");
    qos_node_produces("virtio-tmem-pci", "virtio-tmem");
}

libqos_init(virtio_tmem_register_nodes);
