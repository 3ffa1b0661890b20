/* The server_name extension (RFC 6066 section 3) of a TLS ClientHello (RFC 8446 section
 * 4.1.2), read from the first record only. Every length is checked against the one that
 * contains it, and all of them must add up exactly. */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "proxy/sni.h"

#define TLS_RECORD_HANDSHAKE 0x16
#define TLS_RECORD_MAX 16384 /* TLSPlaintext.length, 2^14 */
#define TLS_HANDSHAKE_CLIENT_HELLO 0x01
#define TLS_EXT_SERVER_NAME 0x0000
#define TLS_SNI_HOST_NAME 0x00

/* A bounded reader: every take fails once the bytes run out. */
struct reader {
	const uint8_t *p;
	size_t n;
};

static bool take(struct reader *r, size_t n, struct reader *out)
{
	if (r->n < n)
		return false;
	if (out)
		*out = (struct reader){ r->p, n };
	r->p += n;
	r->n -= n;
	return true;
}

static bool take_u8(struct reader *r, size_t *v)
{
	if (r->n < 1)
		return false;
	*v = r->p[0];
	return take(r, 1, NULL);
}

static bool take_u16(struct reader *r, size_t *v)
{
	if (r->n < 2)
		return false;
	*v = ((size_t)r->p[0] << 8) | r->p[1];
	return take(r, 2, NULL);
}

/* A vector with a 1- or 2-byte length prefix. */
static bool take_vec(struct reader *r, int prefix, struct reader *out)
{
	size_t n;

	if (!(prefix == 1 ? take_u8(r, &n) : take_u16(r, &n)))
		return false;
	return take(r, n, out);
}

/* The server_name_list: one host_name entry at most. Returns 1 found, 0 none, -EPROTO. */
static int parse_server_name(struct reader ext, char *host, size_t host_size)
{
	struct reader list;
	bool found = false;

	if (!take_vec(&ext, 2, &list) || ext.n != 0 || list.n == 0)
		return -EPROTO;
	while (list.n) {
		struct reader name;
		size_t type;

		if (!take_u8(&list, &type) || !take_vec(&list, 2, &name))
			return -EPROTO;
		if (type != TLS_SNI_HOST_NAME)
			continue;
		if (found || name.n == 0 || name.n >= host_size || name.n > 255)
			return -EPROTO;
		for (size_t i = 0; i < name.n; i++)
			if (name.p[i] <= 0x20 || name.p[i] >= 0x7f)
				return -EPROTO;
		for (size_t i = 0; i < name.n; i++) {
			uint8_t c = name.p[i];
			host[i] = (char)((c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c);
		}
		host[name.n] = '\0';
		found = true;
	}
	return found;
}

static int sniff(const uint8_t *buf, size_t len, char *host, size_t host_size)
{
	struct reader rec, hello, exts, skip;
	size_t rec_len, hs_len, v;
	bool seen_sni = false;
	int found = 0;

	/* The record header, judged byte by byte. */
	if (len >= 1 && buf[0] != TLS_RECORD_HANDSHAKE)
		return -EPROTO;
	if (len >= 2 && buf[1] != 0x03)
		return -EPROTO;
	if (len < 5)
		return 0;
	rec_len = ((size_t)buf[3] << 8) | buf[4];
	if (rec_len < 4 || rec_len > TLS_RECORD_MAX)
		return -EPROTO;
	if (len >= 6 && buf[5] != TLS_HANDSHAKE_CLIENT_HELLO)
		return -EPROTO;
	if (len < 5 + rec_len)
		return 0;
	rec = (struct reader){ buf + 5, rec_len };

	/* The handshake header: a ClientHello that must fit this record. */
	if (!take_u8(&rec, &v) || v != TLS_HANDSHAKE_CLIENT_HELLO || rec.n < 3)
		return -EPROTO;
	hs_len = ((size_t)rec.p[0] << 16) | ((size_t)rec.p[1] << 8) | rec.p[2];
	take(&rec, 3, NULL);
	if (hs_len > rec.n)
		return -ENOENT; /* split over records: the rest is not read */
	if (hs_len != rec.n)
		return -EPROTO;
	hello = rec;

	/* legacy_version, random, session id, cipher suites, compression methods. */
	if (!take_u16(&hello, &v) || (v >> 8) != 0x03 || !take(&hello, 32, NULL) ||
	    !take_vec(&hello, 1, &skip) || skip.n > 32 || !take_vec(&hello, 2, &skip) ||
	    skip.n < 2 || skip.n % 2 || !take_vec(&hello, 1, &skip) || skip.n < 1)
		return -EPROTO;
	if (hello.n == 0)
		return -ENOENT; /* no extensions at all */
	if (!take_vec(&hello, 2, &exts) || hello.n != 0)
		return -EPROTO;

	/* Every extension is walked, so that lengths which do not add up are refused
	 * wherever they are. */
	while (exts.n) {
		struct reader data;
		size_t type;

		if (!take_u16(&exts, &type) || !take_vec(&exts, 2, &data))
			return -EPROTO;
		if (type != TLS_EXT_SERVER_NAME)
			continue;
		if (seen_sni)
			return -EPROTO; /* the same extension twice */
		seen_sni = true;
		found = parse_server_name(data, host, host_size);
		if (found < 0)
			return found;
	}
	return found ? 1 : -ENOENT;
}

int ab_tls_sniff_sni(const uint8_t *buf, size_t len, char *host, size_t host_size)
{
	int r;

	if (!buf || !host || host_size < 2)
		return -EINVAL;
	r = sniff(buf, len, host, host_size);
	if (r != 1)
		host[0] = '\0';
	return r;
}
