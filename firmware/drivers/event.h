/*
 * event.h - unsolicited `! ...` lines on the console (protocol.md "Unsolicited
 * lines"), e.g. `! fault smmu ...`. Printed at once, so a line raised while a
 * request is being handled comes before that request's reply.
 */
#ifndef IOMEM_DRIVERS_EVENT_H
#define IOMEM_DRIVERS_EVENT_H

/* Print "! <formatted text>\r\n" (at most 255 bytes). */
void event_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif /* IOMEM_DRIVERS_EVENT_H */
