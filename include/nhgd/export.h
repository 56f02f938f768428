/* Symbol visibility: libnhgd is built with hidden visibility, and NHGD_API marks what it
 * exports. */
#ifndef NHGD_EXPORT_H
#define NHGD_EXPORT_H

#if defined(__GNUC__) && defined(NHGD_BUILDING_LIBRARY)
#define NHGD_API __attribute__((visibility("default")))
#else
#define NHGD_API
#endif

#endif
