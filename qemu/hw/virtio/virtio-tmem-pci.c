/*
 * Virtio transcendent memory PCI device
 *
 * Copyright (c) 2026 The virtio-tmem authors
 *
 * This work is licensed under the terms of the GNU GPL, version 2 or later.
 * See the COPYING file in the top-level directory.
 */

#include "qemu/osdep.h"

#include "hw/virtio/virtio-pci.h"
#include "hw/virtio/virtio-tmem.h"
#include "hw/qdev-properties.h"
#include "qapi/error.h"
#include "qemu/module.h"
#include "qom/object.h"

typedef struct VirtIOTmemPCI VirtIOTmemPCI;

#define TYPE_VIRTIO_TMEM_PCI "virtio-tmem-pci-base"
DECLARE_INSTANCE_CHECKER(VirtIOTmemPCI, VIRTIO_TMEM_PCI,
                         TYPE_VIRTIO_TMEM_PCI)

struct VirtIOTmemPCI {
    VirtIOPCIProxy parent_obj;
    VirtIOTmem vdev;
};

static const Property virtio_tmem_pci_properties[] = {
    DEFINE_PROP_BIT("ioeventfd", VirtIOPCIProxy, flags,
                    VIRTIO_PCI_FLAG_USE_IOEVENTFD_BIT, true),
    DEFINE_PROP_UINT32("vectors", VirtIOPCIProxy, nvectors,
                       DEV_NVECTORS_UNSPECIFIED),
};

static void virtio_tmem_pci_realize(VirtIOPCIProxy *vpci_dev, Error **errp)
{
    VirtIOTmemPCI *dev = VIRTIO_TMEM_PCI(vpci_dev);
    DeviceState *vdev = DEVICE(&dev->vdev);

    if (vpci_dev->nvectors == DEV_NVECTORS_UNSPECIFIED) {
        /* one per request queue, one for configuration changes */
        vpci_dev->nvectors = dev->vdev.num_queues + 1;
    }
    /* The device id is not in the legacy range: modern only. */
    virtio_pci_force_virtio_1(vpci_dev);
    qdev_realize(vdev, BUS(&vpci_dev->bus), errp);
}

static void virtio_tmem_pci_class_init(ObjectClass *klass, void *data)
{
    DeviceClass *dc = DEVICE_CLASS(klass);
    VirtioPCIClass *k = VIRTIO_PCI_CLASS(klass);
    PCIDeviceClass *pcidev_k = PCI_DEVICE_CLASS(klass);

    k->realize = virtio_tmem_pci_realize;
    set_bit(DEVICE_CATEGORY_MISC, dc->categories);
    pcidev_k->revision = VIRTIO_PCI_ABI_VERSION;
    pcidev_k->class_id = PCI_CLASS_MEMORY_OTHER;
    device_class_set_props(dc, virtio_tmem_pci_properties);
}

static void virtio_tmem_pci_instance_init(Object *obj)
{
    VirtIOTmemPCI *dev = VIRTIO_TMEM_PCI(obj);

    virtio_instance_init_common(obj, &dev->vdev, sizeof(dev->vdev),
                                TYPE_VIRTIO_TMEM);
    /*
     * Class properties of the device (x-stall included) are aliased by
     * virtio_instance_init_common(); "stats" is an instance property.
     */
    object_property_add_alias(obj, VIRTIO_TMEM_STATS_PROP,
                              OBJECT(&dev->vdev), VIRTIO_TMEM_STATS_PROP);
}

static const VirtioPCIDeviceTypeInfo virtio_tmem_pci_info = {
    .base_name = TYPE_VIRTIO_TMEM_PCI,
    .generic_name = "virtio-tmem-pci",
    .instance_size = sizeof(VirtIOTmemPCI),
    .instance_init = virtio_tmem_pci_instance_init,
    .class_init = virtio_tmem_pci_class_init,
};

static void virtio_tmem_pci_register_types(void)
{
    virtio_pci_types_register(&virtio_tmem_pci_info);
}

type_init(virtio_tmem_pci_register_types)
