/* The server name of a TLS ClientHello (the SNI extension), read from the first bytes a
 * captured connection sends. Pure; fuzzed. */
#ifndef AB_PROXY_SNI_H
#define AB_PROXY_SNI_H

#include <stddef.h>
#include <stdint.h>

/* Returns 1 with host filled (lower case, NUL-terminated) when the first TLS record holds
 * a ClientHello with a host_name SNI entry; 0 when more bytes are needed (the record is
 * not complete yet); -ENOENT for a complete ClientHello without SNI; -EPROTO when the
 * bytes are not a TLS handshake record or are malformed (lengths that do not add up, a
 * name with a NUL or longer than host_size - 1). Only the first record is read (up to
 * 16 KiB + 5 bytes): a ClientHello split over records gives -ENOENT. */
int ab_tls_sniff_sni(const uint8_t *buf, size_t len, char *host, size_t host_size);

#endif
