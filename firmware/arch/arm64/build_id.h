/*
 * build_id.h - the GNU build-id of the running image (ld --build-id), which
 * the banner reports so the harness can check it booted the ELF it holds.
 */
#ifndef IOMEM_ARCH_BUILD_ID_H
#define IOMEM_ARCH_BUILD_ID_H

/* Lower-case hex of the build-id; "none" if the image carries no build-id note. */
const char *build_id_hex(void);

#endif /* IOMEM_ARCH_BUILD_ID_H */
