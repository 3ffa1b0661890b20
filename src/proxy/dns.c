/* One DNS query in, one answer out (RFC 1035 section 4.1). Only the header and the
 * question are read; the question's name must be written out in full (no compression
 * pointer), within 255 bytes on the wire. */
#include <errno.h>
#include <string.h>

#include "proxy/dns.h"

#define DNS_HEADER 12
#define DNS_MAX_WIRE 65535
#define DNS_MAX_NAME_WIRE 255
#define DNS_MAX_LABEL 63

#define DNS_QR 0x8000
#define DNS_OPCODE(f) (((f) >> 11) & 0xf)
#define DNS_RD 0x0100
#define DNS_RA 0x0080

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* The question's name, from buf[*pos] on, into dotted lower-case text. Label bytes are
 * visible ASCII other than '.', so the text reads back to the same name. */
static int parse_name(const uint8_t *buf, size_t len, size_t *pos, char name[256])
{
	size_t p = *pos, wire = 0, out = 0;

	for (;;) {
		size_t n;

		if (p >= len)
			return -EINVAL;
		n = buf[p++];
		wire++;
		if (n == 0)
			break;
		if (n > DNS_MAX_LABEL)
			return -EINVAL; /* a compression pointer (0xc0) or a reserved label type */
		wire += n;
		if (wire + 1 > DNS_MAX_NAME_WIRE || n > len - p)
			return -EINVAL;
		if (out)
			name[out++] = '.';
		for (size_t i = 0; i < n; i++) {
			uint8_t c = buf[p + i];
			if (c <= 0x20 || c >= 0x7f || c == '.')
				return -EINVAL;
			name[out++] = (char)((c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c);
		}
		p += n;
	}
	name[out] = '\0';
	*pos = p;
	return 0;
}

int ab_dns_parse_query(const uint8_t *buf, size_t len, struct ab_dns_query *q)
{
	uint16_t flags;
	size_t pos = DNS_HEADER;
	int r;

	if (!buf || !q)
		return -EINVAL;
	memset(q, 0, sizeof(*q));
	if (len < DNS_HEADER || len > DNS_MAX_WIRE)
		return -EINVAL;
	flags = get16(buf + 2);
	if (flags & DNS_QR)
		return -EINVAL; /* an answer, not a query */
	if (DNS_OPCODE(flags) != 0)
		return -EOPNOTSUPP;
	if (get16(buf + 4) != 1)
		return -EOPNOTSUPP;
	if (get16(buf + 6) != 0 || get16(buf + 8) != 0)
		return -EINVAL; /* answers or authority records in a query */

	r = parse_name(buf, len, &pos, q->name);
	if (r < 0)
		return r;
	if (len - pos < 4)
		return -EINVAL;
	q->id = get16(buf);
	q->recursion_desired = (flags & DNS_RD) != 0;
	q->qtype = get16(buf + pos);
	q->qclass = get16(buf + pos + 2);
	q->question_end = pos + 4;
	return 0;
}

static uint16_t answer_flags(uint16_t opcode, bool rd, int rcode)
{
	return (uint16_t)(DNS_QR | (opcode << 11) | (rd ? DNS_RD : 0) | DNS_RA | rcode);
}

int ab_dns_build_answer(const uint8_t *query, size_t qlen, const struct ab_dns_query *q,
			int rcode, const uint8_t *addr, size_t addr_len, uint32_t ttl,
			uint8_t *out, size_t out_size)
{
	size_t question, rr = 0, n;
	bool answer = rcode == AB_DNS_RCODE_NOERROR && addr;

	if (!query || !q || !out || rcode < 0 || rcode > 15)
		return -EINVAL;
	if (q->question_end < DNS_HEADER + 5 || q->question_end > qlen ||
	    q->question_end - DNS_HEADER > DNS_MAX_NAME_WIRE + 4)
		return -EINVAL;
	if (answer) {
		if (!((q->qtype == AB_DNS_TYPE_A && addr_len == 4) ||
		      (q->qtype == AB_DNS_TYPE_AAAA && addr_len == 16)))
			return -EINVAL;
		if (ttl > 0x7fffffff)
			return -EINVAL; /* RFC 2181 section 8 */
		rr = 2 + 2 + 2 + 4 + 2 + addr_len;
	}
	question = q->question_end - DNS_HEADER;
	n = DNS_HEADER + question + rr;
	if (n > out_size || n > AB_DNS_MAX_MSG)
		return -ENOSPC;

	put16(out, q->id);
	put16(out + 2, answer_flags(0, q->recursion_desired, rcode));
	put16(out + 4, 1);
	put16(out + 6, answer ? 1 : 0);
	put16(out + 8, 0);
	put16(out + 10, 0);
	memcpy(out + DNS_HEADER, query + DNS_HEADER, question);
	if (answer) {
		uint8_t *a = out + DNS_HEADER + question;

		put16(a, 0xc000 | DNS_HEADER); /* the name: a pointer to the question's */
		put16(a + 2, q->qtype);
		put16(a + 4, q->qclass);
		put16(a + 6, (uint16_t)(ttl >> 16));
		put16(a + 8, (uint16_t)ttl);
		put16(a + 10, (uint16_t)addr_len);
		memcpy(a + 12, addr, addr_len);
	}
	return (int)n;
}

int ab_dns_build_error(const uint8_t *query, size_t qlen, int rcode, uint8_t *out,
		       size_t out_size)
{
	uint16_t opcode = 0;
	bool rd = false;

	if (!query || !out || qlen < 2 || rcode < 0 || rcode > 15)
		return -EINVAL;
	if (out_size < DNS_HEADER)
		return -ENOSPC;
	if (qlen >= 3) {
		opcode = (query[2] >> 3) & 0xf;
		rd = query[2] & 0x01;
	}
	memset(out, 0, DNS_HEADER);
	out[0] = query[0];
	out[1] = query[1];
	put16(out + 2, answer_flags(opcode, rd, rcode));
	return DNS_HEADER;
}
