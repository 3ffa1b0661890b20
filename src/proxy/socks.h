/* SOCKS5 (RFC 1928) without authentication, CONNECT only. Pure; fuzzed. */
#ifndef AB_PROXY_SOCKS_H
#define AB_PROXY_SOCKS_H

#include <stddef.h>
#include <stdint.h>

#include "http.h" /* AB_HOST_MAX */

/* Reply codes (RFC 1928 section 6). */
#define AB_SOCKS_REP_OK 0x00
#define AB_SOCKS_REP_FAILURE 0x01
#define AB_SOCKS_REP_NOT_ALLOWED 0x02 /* "connection not allowed by ruleset" */
#define AB_SOCKS_REP_NET_UNREACH 0x03
#define AB_SOCKS_REP_HOST_UNREACH 0x04
#define AB_SOCKS_REP_REFUSED 0x05
#define AB_SOCKS_REP_CMD_UNSUPPORTED 0x07
#define AB_SOCKS_REP_ATYP_UNSUPPORTED 0x08

/* The greeting: VER=5, NMETHODS, METHODS. Returns 1 when whole and "no authentication"
 * (0x00) is offered, with *consumed its length; 0 when more bytes are needed; -EPROTO
 * when it is not SOCKS5; -EACCES when 0x00 is not offered (reply 05 FF and close). */
int ab_socks_parse_greeting(const uint8_t *buf, size_t len, size_t *consumed);

struct ab_socks_request {
	uint8_t cmd;            /* 1 CONNECT; others are refused by the parser */
	char host[AB_HOST_MAX]; /* a domain name as sent, or an address literal as text */
	uint16_t port;
};

/* The request: VER=5 CMD RSV ATYP DST.ADDR DST.PORT. Returns 1 whole (with *consumed),
 * 0 more bytes needed, or < 0 with *reply_code set to the code to send before closing:
 * -EOPNOTSUPP (a command other than CONNECT: 0x07), -EAFNOSUPPORT (unknown ATYP: 0x08),
 * -EINVAL (malformed: a zero-length name, a NUL in it, VER != 5: 0x01). */
int ab_socks_parse_request(const uint8_t *buf, size_t len, struct ab_socks_request *req,
			   size_t *consumed, uint8_t *reply_code);

/* Writes the 10-byte reply (BND.ADDR 0.0.0.0:0) into out; returns 10. */
size_t ab_socks_format_reply(uint8_t out[10], uint8_t rep);

#endif
